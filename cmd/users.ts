/**
 * `users backup` and `users restore`: accounts, roles and their privileges.
 *
 * @module
 */
import { object, or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { choice, string } from "@optique/core/valueparser";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { ExitCode, InterruptedError, type ItemOutcome, runExitCode } from "../lib/errors.ts";
import { itemOutcome } from "../lib/backup/run.ts";
import { UsageError } from "./usage.ts";
import { backupUsersOfInstances } from "../lib/users/backup.ts";
import {
  type ExistingPolicy,
  restoreUsers,
  type UsersRestoreResult,
} from "../lib/users/restore.ts";
import { latestUsersBackup, readUsersBackup, UsersFileError } from "../lib/users/store.ts";
import { identitySource } from "../lib/crypto/identity_source.ts";
import { openReadStorage, type ReadFrom } from "../lib/storage/open.ts";
import { downloadLatestUsers } from "../lib/restore/remote_source.ts";
import type { Context } from "./context.ts";
import { findInstance, pickInstances } from "./instances.ts";
import { withInterruption } from "./signals.ts";

/** The parsed `users …` command line. */
export type UsersArgs = UsersBackupParsed | UsersRestoreParsed;

/** Parser of the `users` command group. */
export const usersCommand: Parser<"sync", UsersArgs, unknown> = command(
  "users",
  or(
    command(
      "backup",
      object({
        command: constant("users backup" as const),
        instance: optional(option("--instance", string({ metavar: "ID" }), {
          description: message`Back up the accounts of this instance.`,
        })),
        all: optional(option("--all", {
          description: message`Every enabled instance whose users.backup is true.`,
        })),
        dryRun: optional(option("--dry-run", {
          description: message`Connect and list the accounts that would be backed up; write \
nothing.`,
        })),
        noRolePasswords: optional(option("--no-role-passwords", {
          description: message`Leave password hashes out. Restored PostgreSQL roles have no \
password; restored MySQL/MariaDB accounts have none and are locked.`,
        })),
      }),
      {
        brief: message`Back up accounts, roles and their privileges.`,
        description: message`Writes {storage}/{host}/{instance}/users_{YYYYMMDDTHHMMSSZ}.sql.gz \
with .sha256 and .metadata.json (the metadata lists accounts, plugins, roles and privileges, \
never a hash). The file is SQL in one section per account. MySQL/MariaDB: SHOW CREATE USER and \
SHOW GRANTS of every account except the server's own (mysql.sys, mysql.session, \
mysql.infoschema, mariadb.sys, debian-sys-maint) and users.exclude; PostgreSQL: \
pg_dumpall --roles-only. Password hashes are kept unless --no-role-passwords. \
Exit: 0 ok, 1 some instances failed, 2 all failed, 3 configuration/credential/permission error \
(every failure of that sort, as for backup), 4 locked, 64 usage, 130 interrupted.`,
      },
    ),
    command(
      "restore",
      object({
        command: constant("users restore" as const),
        instance: option("--instance", string({ metavar: "ID" }), {
          description: message`Restore onto this instance (and, with --latest, from its backups).`,
        }),
        all: optional(option("--all", {
          description: message`Every account of the backup.`,
        })),
        user: optional(option("--user", string({ metavar: "NAME" }), {
          description: message`One account: user@host or user (every host) for MySQL/MariaDB, \
a role name for PostgreSQL.`,
        })),
        latest: optional(option("--latest", {
          description: message`The instance's newest good users backup (the default).`,
        })),
        file: optional(option("--file", string({ metavar: "PATH" }), {
          description: message`This users backup file.`,
        })),
        from: optional(option("--from", choice(["local", "remote"] as const), {
          description: message`With --latest: read the local folder or storage.remote (S3; \
downloaded into a private temporary folder and verified). Default: local when storage.path \
exists, else remote.`,
        })),
        dryRun: optional(option("--dry-run", {
          description: message`Print the statements that would run (hashes masked); change \
nothing.`,
        })),
        skipExisting: optional(option("--skip-existing", {
          description: message`Leave accounts that already exist as they are; those that \
differ from the backup (missing grants, roles, attributes) are listed and make the exit 1.`,
        })),
        replace: optional(option("--replace", {
          description: message`Replace accounts that already exist (MySQL/MariaDB: drop and \
recreate; PostgreSQL: reset attributes, password, settings and memberships in place).`,
        })),
      }),
      {
        brief: message`Restore accounts, roles and their privileges.`,
        description: message`Verifies the file's checksum, then creates roles before the \
accounts holding them, then privileges, memberships and default roles. Privileges on tables, \
columns and routines of a database that does not exist yet wait: they are listed, and applied \
when that database is restored with the restore command. Each account is restored completely \
(create, privileges, roles, default role) before the next. An account that already exists is \
an error (nothing is changed) unless --skip-existing (it is compared with the backup: one that \
differs is listed as "differs" and left alone, exit 1) or --replace. The account the restore logs in \
as, and accounts every server has (root@localhost, the bootstrap superuser) are left alone by \
--all. Exit: 0 ok, 1 some accounts failed or differ from the backup, 2 all failed or the \
server could not be reached, 3 refused with nothing changed (accounts exist without \
--skip-existing or --replace; the file is missing, corrupted or of another engine) or \
configuration/credential error, 64 usage (also --user naming no account of the file).`,
      },
    ),
  ),
  { brief: message`Back up or restore users and roles.` },
);

/** The parsed `users backup` command line. */
export type UsersBackupParsed = {
  command: "users backup";
  instance?: string;
  all?: boolean;
  dryRun?: boolean;
  noRolePasswords?: boolean;
};

/** Runs `users backup`. */
export async function runUsersBackup(parsed: UsersBackupParsed, ctx: Context): Promise<number> {
  const { config } = await ctx.loadConfig();
  let instances = pickInstances(config, parsed);
  if (parsed.all) instances = instances.filter((i) => i.users.backup);
  if (instances.length === 0) {
    ctx.log.warn("no enabled instance has users.backup: true");
    return ExitCode.OK;
  }
  const results = await withInterruption((signal) =>
    backupUsersOfInstances({
      config,
      instances,
      hostname: Deno.hostname(),
      credentials: new CredentialResolver(config.credentials, ctx.log),
      log: ctx.log,
      dryRun: parsed.dryRun,
      noPasswords: parsed.noRolePasswords,
      signal,
    })
  );
  if (results === undefined) throw new InterruptedError("users backup interrupted");
  if (ctx.json) ctx.outJson({ dry_run: parsed.dryRun ?? false, results });
  else {
    for (const r of results) {
      if (r.status === "planned") ctx.out(`would back up ${r.instance} users -> ${r.path}`);
      else if (r.status === "ok") ctx.out(`ok      ${r.instance} users  ${r.path}`);
      else ctx.out(`FAILED  ${r.instance} users: ${r.error}`);
    }
  }
  return runExitCode(results.map(itemOutcome));
}

/** The parsed `users restore` command line. */
export type UsersRestoreParsed = {
  command: "users restore";
  instance: string;
  all?: boolean;
  user?: string;
  latest?: boolean;
  file?: string;
  from?: ReadFrom;
  dryRun?: boolean;
  skipExisting?: boolean;
  replace?: boolean;
};

/** Runs `users restore`. */
export async function runUsersRestore(parsed: UsersRestoreParsed, ctx: Context): Promise<number> {
  if (Boolean(parsed.all) === (parsed.user !== undefined)) {
    throw new UsageError("name the accounts with --all or --user NAME (one of them)");
  }
  if (parsed.latest && parsed.file) throw new UsageError("--latest and --file exclude each other");
  if (parsed.skipExisting && parsed.replace) {
    throw new UsageError("--skip-existing and --replace exclude each other");
  }
  const { config } = await ctx.loadConfig();
  const instance = findInstance(config, parsed.instance);
  const credentials = new CredentialResolver(config.credentials, ctx.log);
  const storage = parsed.file === undefined
    ? await openReadStorage(config.storage, credentials, parsed.from)
    : undefined;
  // From S3 the file is downloaded (and removed when done); readUsersBackup then verifies it.
  await using download = storage && storage.kind !== "local"
    ? await downloadLatestUsers(storage, Deno.hostname(), instance.id)
    : undefined;
  const path = parsed.file ?? download?.path ??
    (storage?.kind === "local"
      ? await latestUsersBackup(config.storage.path, Deno.hostname(), instance.id)
      : undefined);
  if (!path) {
    throw new UsersFileError(
      `no users backup of ${instance.id} under ${storage?.location ?? config.storage.path}`,
      "take one with `users backup --instance " + instance.id + "`, or pass --file PATH",
    );
  }
  const file = await readUsersBackup(path, identitySource(config.storage.encryption));
  ctx.log.info(
    `users backup ${download?.entry.paths.dump ?? path}: checksum ok, ` +
      `${file.sections.length} account(s)`,
  );
  const params = await credentials.connectionParams(instance);
  const existing: ExistingPolicy = parsed.replace
    ? "replace"
    : parsed.skipExisting
    ? "skip"
    : "error";
  const result = await restoreUsers({
    file,
    type: instance.type,
    params,
    select: parsed.all ? { all: true } : { user: parsed.user! },
    existing,
    dryRun: parsed.dryRun,
    log: ctx.log,
  });
  print(ctx, path, parsed.dryRun ?? false, result);
  return restoreExitCode(result);
}

/**
 * Accounts left alone as the backup has them are not counted; one that differs from the backup
 * (`--skip-existing` leaves it, listed) makes the run partial.
 */
function restoreExitCode(result: UsersRestoreResult): number {
  return runExitCode(result.accounts.map((a): ItemOutcome => {
    if (a.status === "failed") return { status: "failed", kind: "failed" };
    if (a.status === "skipped" || a.status === "differs") return { status: a.status };
    return { status: "ok" };
  }));
}

function print(ctx: Context, path: string, dryRun: boolean, r: UsersRestoreResult): void {
  if (ctx.json) {
    ctx.outJson({ file: path, dry_run: dryRun, ...r });
    return;
  }
  if (dryRun) {
    ctx.out(`-- statements that would run (password hashes masked):`);
    for (const s of r.statements) ctx.out(s);
  }
  for (const a of r.accounts) {
    const status = (a.status === "failed" ? "FAILED" : a.status).padEnd(8);
    ctx.out(
      `${status} ${a.account}${a.note ? `  (${a.note})` : ""}${a.error ? `: ${a.error}` : ""}`,
    );
  }
  const differing = r.accounts.filter((a) => a.status === "differs");
  if (differing.length) {
    ctx.out(
      `${differing.length} existing account(s) differ from the backup and were left as they ` +
        `are; restore them as backed up with --replace: ` +
        differing.map((a) => a.account).join(", "),
    );
  }
  if (r.waiting.length) {
    ctx.out(`waiting for their database (applied when it is restored):`);
    for (const w of r.waiting) ctx.out(`  ${w.database}: ${w.statement}`);
  }
}
