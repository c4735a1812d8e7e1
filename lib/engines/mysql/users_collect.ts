/**
 * Reads every account of a MySQL/MariaDB server as the statements that recreate it:
 * `SHOW CREATE USER` (plugin and hash, so passwords survive; locking, expiry, limits, TLS) or
 * `CREATE ROLE`, then `SHOW GRANTS` (global, database, table, column, routine, proxy, role
 * grants and, on MariaDB, the default role).
 *
 * Left out: the server's own accounts (`mysql.sys`, `mysql.session`, `mysql.infoschema`,
 * `mariadb.sys`, `debian-sys-maint`), which every server creates for itself, and whatever the
 * instance's `users.exclude` names. `root@localhost` is kept but marked bootstrap: a fresh
 * server has its own, which `users restore --all` leaves alone.
 *
 * @module
 */
import type mysql from "mysql2/promise";
import { excludedAccount } from "../select.ts";
import type { AccountRef, Section, Step } from "../../users/format.ts";
import { classifyGrant, withoutPassword } from "./grants.ts";
import { myIdent as quoteIdent, quoteAccount } from "./quote.ts";
import type { MysqlFacts } from "./flavour.ts";
import type { AccountSummary } from "../../users/summary.ts";

/** Accounts every MySQL/MariaDB server makes for itself. */
export const MYSQL_SYSTEM_ACCOUNTS: readonly string[] = [
  "mysql.sys",
  "mysql.session",
  "mysql.infoschema",
  "mariadb.sys",
  "debian-sys-maint",
];

/** Accounts a fresh server already has: kept in the backup, restored by `--all` only if missing. */
const BOOTSTRAP = new Set(["root@localhost"]);

/**
 * Whether an account is MariaDB's PUBLIC pseudo-role. Backups taken before the `pseudo` mark
 * hold it as a role called PUBLIC with a CREATE ROLE: recognised by name, so they restore too.
 */
export function isPseudoAccount(a: AccountRef): boolean {
  if (a.pseudo) return true;
  return a.kind === "role" && (a.host ?? "") === "" && a.name.toUpperCase() === "PUBLIC";
}

/** What was read from the server. */
export interface CollectedAccounts {
  /** One section per account, roles first. */
  sections: Section[];
  /** Summaries for the metadata (no hash). */
  summaries: AccountSummary[];
  /** Things the user should know. */
  warnings: string[];
}

type Row = mysql.RowDataPacket;

/**
 * Makes the session print password hashes as the backup reads them (hex, where the server
 * would print binary): an existing account then compares equal to its backup.
 */
export async function hashesAsHex(conn: mysql.Connection, facts: MysqlFacts): Promise<void> {
  if (!facts.hashesAsHex) return;
  await conn.query("SET SESSION print_identified_with_as_hex = ON").catch(() => {});
}

/** Reads every account of the server. */
export async function collectMysqlAccounts(
  conn: mysql.Connection,
  facts: MysqlFacts,
  options: { exclude: readonly string[]; noPasswords?: boolean },
): Promise<CollectedAccounts> {
  await hashesAsHex(conn, facts);
  const [rows] = await conn.query<Row[]>(
    facts.rolesInUserTable
      ? `SELECT User AS user, Host AS host, is_role AS is_role, plugin,
                authentication_string <> '' AS has_password
           FROM mysql.user ORDER BY User, Host`
      : `SELECT User AS user, Host AS host, 'N' AS is_role, plugin,
                authentication_string <> '' AS has_password
           FROM mysql.user ORDER BY User, Host`,
  );
  let mysqlRoles = new Set<string>();
  if (facts.roleEdges) {
    // MySQL 8 roles are accounts; those granted to someone are created first.
    const [edges] = await conn.query<Row[]>(
      "SELECT DISTINCT FROM_USER AS user, FROM_HOST AS host FROM mysql.role_edges",
    ).catch(() => [[] as Row[]]);
    mysqlRoles = new Set(edges.map((e) => `${e.user}@${e.host}`));
  }
  const sections: Section[] = [];
  const summaries: AccountSummary[] = [];
  const warnings: string[] = [];
  for (const row of rows) {
    const user = String(row.user);
    const host = String(row.host);
    if (MYSQL_SYSTEM_ACCOUNTS.includes(user)) continue;
    const mariaRole = row.is_role === "Y";
    if (excludedAccount(options.exclude, user, mariaRole ? undefined : host)) continue;
    const isRole = mariaRole || mysqlRoles.has(`${user}@${host}`);
    const account: AccountRef = { name: user, host, kind: isRole ? "role" : "user" };
    if (BOOTSTRAP.has(`${user}@${host}`)) account.bootstrap = true;
    if (isPseudoAccount(account)) account.pseudo = true;
    const got = await readMysqlAccount(conn, account, { noPasswords: options.noPasswords });
    if (account.pseudo && got.steps.length === 0) continue; // PUBLIC holds nothing
    sections.push({ account, steps: got.steps });
    summaries.push({
      name: user,
      host,
      kind: account.kind,
      ...(account.bootstrap ? { bootstrap: true } : {}),
      ...(account.pseudo ? { pseudo: true } : {}),
      plugin: mariaRole ? null : String(row.plugin ?? "") || null,
      has_password: !mariaRole && Boolean(Number(row.has_password)) && !options.noPasswords,
      roles: got.roles,
      ...(got.defaultRole ? { default_role: got.defaultRole } : {}),
      grants: got.grants,
    });
  }
  if (options.noPasswords) {
    warnings.push(
      "taken with --no-role-passwords: accounts are restored without password and locked",
    );
  }
  // Roles first: a user's grants and default role name them.
  const order = (s: Section) => (s.account.kind === "role" ? 0 : 1);
  const indexed = sections.map((s, i) => ({ s, i, sum: summaries[i] }));
  indexed.sort((a, b) => order(a.s) - order(b.s) || a.i - b.i);
  return {
    sections: indexed.map((x) => x.s),
    summaries: indexed.map((x) => x.sum),
    warnings,
  };
}

/** One account as read from the server. */
export interface MysqlAccount {
  /** The statements that recreate it, in the server's own (normalised) words. */
  steps: Step[];
  /** Its privileges, for the metadata. */
  grants: NonNullable<AccountSummary["grants"]>;
  /** Roles granted to it. */
  roles: string[];
  /** Its default role. */
  defaultRole?: string;
}

/**
 * Reads one account (`SHOW CREATE USER`, `SHOW GRANTS`) as the steps a backup keeps. The same
 * reading serves the backup and the comparison of an existing account with a backup on
 * restore, so both sides are normalised alike. MariaDB roles get `CREATE ROLE`; the PUBLIC
 * pseudo-role gets no create step (it cannot be created, only granted to).
 */
export async function readMysqlAccount(
  conn: mysql.Connection,
  account: AccountRef,
  options: { noPasswords?: boolean } = {},
): Promise<MysqlAccount> {
  const mariaRole = account.kind === "role" && (account.host ?? "") === "";
  const target = mariaRole
    ? quoteIdent(account.name)
    : quoteAccount(account.name, account.host ?? "%");
  const steps: Step[] = [];
  if (account.pseudo) {
    // nothing to create
  } else if (mariaRole) {
    steps.push({ phase: "create", sql: `CREATE ROLE ${target};` });
  } else {
    const [[created]] = await conn.query<Row[]>(`SHOW CREATE USER ${target}`);
    let sql = String(Object.values(created)[0]);
    if (options.noPasswords) sql = withoutPassword(sql);
    steps.push({ phase: "create", sql: `${sql};` });
  }
  const [grantRows] = await conn.query<Row[]>(`SHOW GRANTS FOR ${target}`);
  const out: MysqlAccount = { steps, grants: [], roles: [] };
  for (const g of grantRows) {
    const info = classifyGrant(String(Object.values(g)[0]));
    if (!info || info.usageOnly) continue;
    steps.push({
      phase: info.phase,
      ...(info.phase === "object" ? { database: info.database } : {}),
      sql: `${info.sql};`,
    });
    if (info.level === "role") out.roles.push(roleOf(info.sql));
    else if (info.level === "default-role") out.defaultRole = roleOf(info.sql);
    else {
      out.grants.push({
        level: info.level,
        ...(info.database !== undefined ? { database: info.database } : {}),
        grant: info.sql,
      });
    }
  }
  return out;
}

/** The role named by `GRANT `r` TO …` or `SET DEFAULT ROLE `r` FOR …`. */
function roleOf(sql: string): string {
  const m = /^(?:GRANT|SET DEFAULT ROLE)\s+`((?:[^`]|``)*)`(?:@`((?:[^`]|``)*)`)?/i.exec(sql);
  if (!m) return sql;
  const name = m[1].replaceAll("``", "`");
  return m[2] === undefined ? name : `${name}@${m[2].replaceAll("``", "`")}`;
}
