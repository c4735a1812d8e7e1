/**
 * Restores accounts from a users backup onto a server.
 *
 * Each account is restored completely (create, attributes, privileges, memberships, default
 * role) before the next one is started, so a run cut short (a server crash, a lost connection)
 * leaves at most one incomplete account, and a re-run names it. Accounts come after the roles
 * they hold (see {@linkcode restoreOrder}). Privileges on tables, columns and routines need
 * their database: when it does not exist yet (a rebuild onto an empty server), they wait, are
 * listed, and {@linkcode applyWaitingGrants} applies them once the database has been restored.
 *
 * Existing accounts are refused by default (before anything is changed), compared with the
 * backup and left alone with `skip` (those that differ are reported as `differs`), or replaced
 * with `replace` (MySQL/MariaDB: DROP then CREATE; PostgreSQL: reset in place, since a role
 * holding privileges cannot be dropped). Two kinds of accounts are never touched by `--all`
 * when they exist: the account the restore is logged in as, and accounts every fresh server has
 * (root@localhost, the bootstrap superuser). MariaDB's PUBLIC is never created or dropped: its
 * privileges are granted (and, to replace it, revoked).
 *
 * @module
 */
import type { ConnectionParams, InstanceConfig } from "../config/types.ts";
import { OptionError, RefusedError, VyaError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { accountLabel, type AccountRef, PHASES, type Section, type UsersFile } from "./format.ts";
import { engineOf, familyOf } from "../engines/mod.ts";
import { restoreOrder } from "./compare.ts";
import { maskHashes } from "./mask.ts";
import { latestUsersBackup, readUsersBackup } from "./store.ts";
import type { IdentitySource } from "../crypto/identity_source.ts";
import { isConnectionLost, openTarget, type RestoreTarget } from "./target.ts";

/** Which accounts to restore. */
export type AccountSelection = { all: true } | { user: string };

/** What to do with an account that already exists. */
export type ExistingPolicy = "error" | "skip" | "replace";

/** Options of {@linkcode restoreUsers}. */
export interface UsersRestoreOptions {
  /** The parsed backup. */
  file: UsersFile;
  /** Engine type of the target instance. */
  type: InstanceConfig["type"];
  /** Connection to the target. */
  params: ConnectionParams;
  /** `--all` or `--user NAME`. */
  select: AccountSelection;
  /** Existing accounts: refuse (default), skip, replace. */
  existing?: ExistingPolicy;
  /** List the statements (hashes masked) and change nothing. */
  dryRun?: boolean;
  /** Logger. */
  log: Logger;
}

/** The outcome for one account. */
export interface AccountOutcome {
  /** `user@host` or role name. */
  account: string;
  /** What happened (`planned` in a dry run). */
  status: "created" | "replaced" | "skipped" | "differs" | "failed" | "planned";
  /** Why it was skipped, or what else to know. */
  note?: string;
  /** `differs`: what the existing account lacks or has beyond the backup. */
  differences?: string[];
  /** The first error (hashes masked, redacted). */
  error?: string;
}

/** An object privilege waiting for its database. */
export interface WaitingGrant {
  /** The account it is for. */
  account: string;
  /** The database it needs. */
  database: string;
  /** The statement, hashes masked. */
  statement: string;
}

/** What a restore did (or would do). */
export interface UsersRestoreResult {
  /** Per account, in file order. */
  accounts: AccountOutcome[];
  /** Object privileges waiting for their database. */
  waiting: WaitingGrant[];
  /** The statements run (or, in a dry run, that would run), hashes masked. */
  statements: string[];
}

/**
 * Some accounts to restore already exist and the policy is to refuse: nothing was changed
 * (kind `refused`, exit 3, as for a restore into a non-empty database).
 */
export class ExistingAccountsError extends VyaError {
  /** The accounts that exist. */
  readonly accounts: string[];

  /** Creates the error. */
  constructor(accounts: string[], instance: string) {
    super(
      `${accounts.length} account(s) already exist on ${instance}: ${accounts.join(", ")}; ` +
        "nothing was changed",
      "refused",
      {
        hint: "pass --skip-existing to leave them (those that differ from the backup are " +
          "listed), or --replace to drop and recreate them",
      },
    );
    this.name = "ExistingAccountsError";
    this.accounts = accounts;
  }
}

/** Picks the sections `select` names; otherwise throws an OptionError naming what the file has. */
export function selectSections(file: UsersFile, select: AccountSelection): Section[] {
  if ("all" in select) return file.sections;
  const wanted = select.user;
  const namesOnly = !engineOf(file.header.engine).accountsHaveHosts;
  const found = file.sections.filter((s) => {
    if (namesOnly) return s.account.name === wanted;
    if (s.account.name === wanted) return true;
    const at = wanted.lastIndexOf("@");
    return at >= 0 && s.account.name === wanted.slice(0, at) &&
      (s.account.host ?? "") === wanted.slice(at + 1);
  });
  if (found.length === 0) {
    const names = file.sections.map((s) => accountLabel(s.account));
    throw new OptionError(`no account ${wanted} in this users backup`, {
      flag: "--user",
      reason: `name one it holds: ${names.slice(0, 20).join(", ")}${
        names.length > 20 ? ", …" : ""
      }`,
    });
  }
  return found;
}

function sameAccount(a: AccountRef, b: { name: string; host?: string }): boolean {
  return a.name === b.name && (a.host ?? "") === (b.host ?? "");
}

function checkEngine(file: UsersFile, target: RestoreTarget, log: Logger): void {
  if (familyOf(file.header.engine) !== familyOf(target.engine)) {
    throw new RefusedError(
      `this users backup is of a ${file.header.engine} server; the target is ${target.engine}; ` +
        "nothing was changed",
    );
  }
  if (file.header.engine !== target.engine) {
    log.warn(
      `users backup taken from ${file.header.engine} ${file.header.server_version}, restoring ` +
        `onto ${target.engine}: statements may need adjusting`,
    );
  }
}

function errorText(e: unknown): string {
  return redact(maskHashes(e instanceof Error ? e.message : String(e)));
}

interface Plan {
  section: Section;
  outcome: AccountOutcome;
  replace: boolean;
}

/** The sections with MariaDB's PUBLIC marked as the pseudo-role it is (older backups). */
function markPseudo(sections: Section[], engineName: string): Section[] {
  const engine = engineOf(engineName);
  return sections.map((s) =>
    engine.isPseudoAccount(s.account) && !s.account.pseudo
      ? { ...s, account: { ...s.account, pseudo: true } }
      : s
  );
}

/** Restores (or, with `dryRun`, plans) the selected accounts. */
export async function restoreUsers(o: UsersRestoreOptions): Promise<UsersRestoreResult> {
  const chosen = markPseudo(selectSections(o.file, o.select), o.file.header.engine);
  const target = await openTarget(o.type, o.params);
  try {
    checkEngine(o.file, target, o.log);
    const dbs = databaseCache(target);
    const plans = await planAccounts(chosen, o, target, dbs);

    const namesOnly = !engineOf(o.file.header.engine).accountsHaveHosts;
    const active = restoreOrder(
      plans.filter((p) => p.outcome.status !== "skipped" && p.outcome.status !== "differs"),
      namesOnly,
    );
    const result: UsersRestoreResult = {
      accounts: plans.map((p) => p.outcome),
      waiting: [],
      statements: [],
    };
    await applyPlans(active, o, target, dbs, result);
    logOutcomes(plans, result, o);
    return result;
  } finally {
    await target.close();
  }
}

/** Whether each database exists on the target, asked of the server once per database. */
interface DatabaseCache {
  /** Asks (once) and answers. */
  ready(db: string): Promise<boolean>;
  /** The answer given before; false for a database not asked about. */
  known(db: string): boolean;
}

function databaseCache(target: RestoreTarget): DatabaseCache {
  const dbExists = new Map<string, boolean>();
  return {
    ready: async (db) => {
      if (!dbExists.has(db)) dbExists.set(db, await target.databaseExists(db));
      return dbExists.get(db)!;
    },
    known: (db) => dbExists.get(db) ?? false,
  };
}

/**
 * What happens to each chosen account: created, skipped, replaced or (with --skip-existing)
 * compared. Refuses the whole restore, before any change, when accounts exist and the policy
 * is "error".
 */
async function planAccounts(
  chosen: Section[],
  o: UsersRestoreOptions,
  target: RestoreTarget,
  dbs: DatabaseCache,
): Promise<Plan[]> {
  const all = "all" in o.select;
  const policy = o.existing ?? "error";
  const me = await target.current();
  const databaseReady = dbs.ready;
  const plans: Plan[] = [];
  const conflicts: string[] = [];
  for (const section of chosen) {
    const label = accountLabel(section.account);
    const outcome: AccountOutcome = { account: label, status: o.dryRun ? "planned" : "created" };
    const plan: Plan = { section, outcome, replace: false };
    plans.push(plan);
    if (sameAccount(section.account, me)) {
      outcome.status = "skipped";
      outcome.note = "the account this restore is logged in as is left alone";
      continue;
    }
    if (!(await target.exists(section.account))) continue;
    if (section.account.bootstrap && all) {
      outcome.status = "skipped";
      outcome.note = "exists (every server has it): left alone";
    } else if (policy === "skip") {
      for (const db of new Set(section.steps.flatMap((s) => s.database ?? []))) {
        await databaseReady(db);
      }
      const differences = await target.differences(section, dbs.known);
      if (differences.length) {
        outcome.status = "differs";
        outcome.differences = differences;
        outcome.note = `exists but differs from the backup: ${differences.join("; ")}`;
      } else {
        outcome.status = "skipped";
        outcome.note = "exists, same as the backup: left alone (--skip-existing)";
      }
    } else if (policy === "replace") {
      plan.replace = true;
      if (!o.dryRun) outcome.status = "replaced";
      outcome.note = section.account.pseudo
        ? "exists: its privileges revoked first"
        : target.replaceInPlace
        ? "exists: reset in place"
        : "exists: dropped first";
    } else {
      conflicts.push(label);
    }
  }
  if (conflicts.length) throw new ExistingAccountsError(conflicts, o.file.header.instance);
  return plans;
}

/**
 * Runs the plans in order (the file's preamble first): each account completely, or up to its
 * first failing statement. A lost connection fails the accounts not yet begun.
 */
async function applyPlans(
  active: Plan[],
  o: UsersRestoreOptions,
  target: RestoreTarget,
  dbs: DatabaseCache,
  result: UsersRestoreResult,
): Promise<void> {
  const databaseReady = dbs.ready;
  let lost: string | undefined;
  const fail = (plan: Plan, sql: string, e: unknown) => {
    plan.outcome.status = "failed";
    plan.outcome.error = `${maskHashes(sql.slice(0, 120))}: ${errorText(e)}`;
    o.log.error(`account ${plan.outcome.account}: ${plan.outcome.error}`);
    if (isConnectionLost(e)) lost = errorText(e);
  };
  /** Runs one statement of `plan`; false when it failed (the account stops there). */
  const run = async (plan: Plan | undefined, sql: string): Promise<boolean> => {
    result.statements.push(maskHashes(sql));
    if (o.dryRun) return true;
    try {
      await target.exec(sql);
      return true;
    } catch (e) {
      if (!plan) throw new VyaError(`${maskHashes(sql)}: ${errorText(e)}`, "unreachable");
      fail(plan, sql, e);
      return false;
    }
  };
  /** Restores one account completely; stops at its first failing statement. */
  const restoreAccount = async (plan: Plan): Promise<void> => {
    const account = plan.section.account;
    if (plan.replace) {
      for (const sql of await target.dropStatements(account)) {
        if (!(await run(plan, sql))) return;
      }
    }
    for (const phase of PHASES) {
      for (const step of plan.section.steps.filter((s) => s.phase === phase)) {
        if (phase === "create" && (account.pseudo || (plan.replace && target.replaceInPlace))) {
          continue;
        }
        if (step.database !== undefined && !(await databaseReady(step.database))) {
          result.waiting.push({
            account: plan.outcome.account,
            database: step.database,
            statement: maskHashes(step.sql),
          });
          continue;
        }
        if (!(await run(plan, step.sql))) return;
      }
    }
  };
  if (active.length) { for (const sql of o.file.preamble) await run(undefined, sql); }
  for (const plan of active) {
    if (lost !== undefined) {
      plan.outcome.status = "failed";
      plan.outcome.error = `not restored: the connection to the server was lost (${lost})`;
      continue;
    }
    await restoreAccount(plan);
  }
  if (lost !== undefined) {
    o.log.error(
      `the connection to the server was lost; the accounts restored before it are complete, ` +
        `the one in progress may not be`,
      {
        hint: "run the same command again with --skip-existing: it names accounts that " +
          "differ from the backup; --replace restores those completely",
      },
    );
  }
}

/** Logs each outcome (debug) and the privileges that wait for a database. */
function logOutcomes(plans: Plan[], result: UsersRestoreResult, o: UsersRestoreOptions): void {
  for (const p of plans) {
    const line = `${p.outcome.account}: ${p.outcome.status}` +
      (p.outcome.note ? ` (${p.outcome.note})` : "");
    if (p.outcome.status === "failed") continue;
    // The command prints each outcome on stdout; the log keeps it for --verbose and cron logs.
    o.log.debug(line);
  }
  const byDb = new Map<string, number>();
  for (const w of result.waiting) byDb.set(w.database, (byDb.get(w.database) ?? 0) + 1);
  for (const [db, n] of byDb) {
    o.log.info(
      `${n} privilege(s) wait for database ${db}: applied when it is restored ` +
        `(restore of ${db} on ${o.file.header.instance})`,
      { database: db },
    );
  }
}

/** Where {@linkcode applyWaitingGrants} finds the users backup. */
export interface WaitingGrantsSource {
  /** Storage folder (config.storage.path). */
  storage: string;
  /** Host name the backups were taken on. */
  hostname: string;
  /** A specific users backup file instead of the latest. */
  file?: string;
  /** The identity file an encrypted users backup is decrypted with. */
  identities?: IdentitySource;
}

/** What {@linkcode applyWaitingGrants} did. */
export interface WaitingGrantsResult {
  /** The users backup used; undefined when the instance has none. */
  file?: string;
  /** Statements applied. */
  applied: number;
  /** Accounts skipped (they do not exist on the server). */
  skipped: string[];
  /** Statements that failed (hashes masked, redacted). */
  failed: { account: string; error: string }[];
}

/**
 * Applies the object privileges (table, column, routine) on `database` kept in the instance's
 * latest users backup, for accounts that exist on the server. Called after a database restore:
 * on a rebuild those privileges could not be applied before the database existed. Safe to
 * call again (GRANT is idempotent), and a no-op when there is no users backup or nothing waits.
 */
export async function applyWaitingGrants(
  instance: InstanceConfig,
  params: ConnectionParams,
  database: string,
  log: Logger,
  source: WaitingGrantsSource,
): Promise<WaitingGrantsResult> {
  const path = source.file ?? await latestUsersBackup(source.storage, source.hostname, instance.id);
  const result: WaitingGrantsResult = { file: path, applied: 0, skipped: [], failed: [] };
  if (!path) return result;
  const file = await readUsersBackup(path, source.identities);
  const pending = markPseudo(file.sections, file.header.engine)
    .map((s) => ({ s, steps: s.steps.filter((st) => st.database === database) }))
    .filter((x) => x.steps.length > 0);
  if (pending.length === 0) return result;
  const target = await openTarget(instance.type, params);
  try {
    for (const sql of file.preamble) await target.exec(sql);
    for (const { s, steps } of pending) {
      const label = accountLabel(s.account);
      // PUBLIC is on every server, whether or not it holds anything yet.
      if (!s.account.pseudo && !(await target.exists(s.account))) {
        result.skipped.push(label);
        continue;
      }
      for (const step of steps) {
        try {
          await target.exec(step.sql);
          result.applied++;
        } catch (e) {
          result.failed.push({ account: label, error: errorText(e) });
        }
      }
    }
  } finally {
    await target.close();
  }
  if (result.applied) {
    log.info(
      `applied ${result.applied} privilege(s) on ${database} from the users backup ${path}`,
      { database },
    );
  }
  for (const f of result.failed) {
    log.warn(`privilege of ${f.account} on ${database} not applied: ${f.error}`, { database });
  }
  if (result.skipped.length) {
    log.info(
      `privileges on ${database} of account(s) absent from this server not applied: ` +
        result.skipped.join(", "),
      { database },
    );
  }
  return result;
}
