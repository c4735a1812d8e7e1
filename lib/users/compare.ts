/**
 * Comparing an account that already exists on the server with its section of a users backup,
 * and the order accounts must be restored in.
 *
 * A re-run with `--skip-existing` (after a crash, say) must not call an account fine because it
 * exists: it is compared with the backup, statement by statement, in the words the server
 * itself prints (the live account is read exactly as a backup reads it), and what is missing or
 * extra is named. Privileges that wait for a database the server does not have are not counted
 * as missing: `restore` of that database applies them.
 *
 * @module
 */
import { accountLabel, type AccountRef, type Section, type Step } from "./format.ts";
import { isWord, type Token, tokenize } from "../engines/sql_tokens.ts";

/**
 * A statement as compared: without its `;`, blanks collapsed, and the column lists of column
 * privileges sorted (the server prints them in an order of its own, which changes when the same
 * grant is given again and means nothing).
 */
export function normaliseStatement(sql: string): string {
  const text = sql.trim().replace(/;$/, "").replace(/\s+/g, " ");
  const on = text.indexOf(" ON ");
  if (!/^GRANT /i.test(text) || on < 0) return text;
  const privileges = text.slice(0, on).replace(
    /\(([^()]*)\)/g,
    (_, columns: string) => `(${columns.split(",").map((c) => c.trim()).sort().join(", ")})`,
  );
  return privileges + text.slice(on);
}

/** Options of {@linkcode mysqlDifferences}. */
export interface CompareOptions {
  /** Whether a database exists on the server (privileges on the others wait). */
  databaseExists: (database: string) => boolean;
}

/**
 * What differs between an account's backup steps and the steps read from the server
 * (MySQL/MariaDB), as short phrases; empty when the account is as the backup has it. Password
 * hashes never appear: a differing CREATE USER is named, not printed.
 */
export function mysqlDifferences(backup: Step[], live: Step[], o: CompareOptions): string[] {
  const out: string[] = [];
  const create = (steps: Step[]) => steps.find((s) => s.phase === "create");
  const want = create(backup);
  const have = create(live);
  // A backup taken with --no-role-passwords has no authentication clause: the administrator is
  // expected to set passwords (and unlock) afterwards, so its CREATE USER is not compared.
  if (want && have && /\bIDENTIFIED\b/i.test(want.sql)) {
    if (normaliseStatement(want.sql) !== normaliseStatement(have.sql)) {
      out.push(
        "CREATE USER differs (password, plugin, limits, locking or TLS; see SHOW CREATE USER)",
      );
    }
  }
  const grants = (steps: Step[]) =>
    new Set(steps.filter((s) => s.phase !== "create").map((s) => normaliseStatement(s.sql)));
  const expected = grants(
    backup.filter((s) => s.database === undefined || o.databaseExists(s.database)),
  );
  const actual = grants(live);
  const missing = [...expected].filter((g) => !actual.has(g));
  const extra = [...actual].filter((g) => !expected.has(g) && !waitingOnly(g, backup));
  if (missing.length) out.push(`missing grants: ${missing.join("; ")}`);
  if (extra.length) out.push(`grants not in the backup: ${extra.join("; ")}`);
  return out;
}

/** A live grant that is in the backup but counted as waiting (its database was absent). */
function waitingOnly(grant: string, backup: Step[]): boolean {
  return backup.some((s) => s.database !== undefined && normaliseStatement(s.sql) === grant);
}

/** The key accounts are matched by: `name@host` (MySQL/MariaDB), the name (PostgreSQL). */
export function accountKey(a: Pick<AccountRef, "name" | "host">): string {
  return accountLabel(a);
}

/** Reads `ident [@ ident]` account references from `tokens[from..to)`, comma-separated. */
function refsBetween(tokens: Token[], from: number, to: number, pg: boolean): string[] {
  const refs: string[] = [];
  for (let i = from; i < to; i++) {
    const t = tokens[i];
    if (t.type === "punct" && t.value === ",") continue;
    if (t.type !== "ident" && t.type !== "word") continue;
    if (pg) {
      refs.push(t.value);
      continue;
    }
    if (tokens[i + 1]?.value === "@" && i + 2 < to) {
      refs.push(`${t.value}@${tokens[i + 2].value}`);
      i += 2;
    } else {
      refs.push(`${t.value}@`);
    }
  }
  return refs;
}

/**
 * The accounts a section's statements name and need to exist first: roles granted to it
 * (`GRANT r TO …`), its default role, and on PostgreSQL the grantor of a membership
 * (`GRANTED BY`). Keys as {@linkcode accountKey}; MariaDB roles are `name@`.
 */
export function referencedAccounts(section: Section, pg: boolean): string[] {
  const refs: string[] = [];
  for (const step of section.steps) {
    if (step.phase !== "member" && step.phase !== "default-role") continue;
    const t = tokenize(step.sql, { pg });
    if (isWord(t[0], "GRANT")) {
      const to = t.findIndex((x) => isWord(x, "TO"));
      if (to > 1) refs.push(...refsBetween(t, 1, to, pg));
      const by = t.findIndex((x, i) => isWord(x, "GRANTED") && isWord(t[i + 1], "BY"));
      if (pg && by > 0 && t[by + 2]) refs.push(t[by + 2].value);
    } else if (isWord(t[0], "SET") && isWord(t[2], "ROLE")) {
      const end = t.findIndex((x) => isWord(x, "FOR"));
      const stop = end < 0 ? t.length : end;
      for (const r of refsBetween(t, 3, stop, pg)) {
        if (!/^(NONE|ALL)@$/i.test(r)) refs.push(r);
      }
    }
  }
  return refs;
}

/**
 * Orders sections so that every account comes after the accounts it names (roles granted to
 * it, its default role, a membership's grantor), keeping the file's order otherwise. A cycle
 * (which servers do not allow) leaves the remaining sections in file order.
 */
export function restoreOrder<T extends { section: Section }>(items: T[], pg: boolean): T[] {
  const byKey = new Map(items.map((x) => [accountKey(x.section.account), x]));
  const done = new Set<T>();
  const visiting = new Set<T>();
  const out: T[] = [];
  const visit = (x: T) => {
    if (done.has(x) || visiting.has(x)) return;
    visiting.add(x);
    for (const ref of referencedAccounts(x.section, pg)) {
      const dep = byKey.get(ref);
      if (dep && dep !== x) visit(dep);
    }
    visiting.delete(x);
    done.add(x);
    out.push(x);
  };
  for (const x of items) visit(x);
  return out;
}
