/**
 * The server accounts are restored onto, behind one small interface for both engines: which
 * accounts and databases exist, who we are logged in as, how an account is removed, and running
 * one statement through the driver (never a client tool: no password in any argv).
 *
 * @module
 */
import type { ConnectionParams, EngineType } from "../config/types.ts";
import { ConnectError } from "../engines/types.ts";
import { connectError } from "../engines/connect_error.ts";
import type { AccountRef, Section } from "./format.ts";
import { mysqlDifferences } from "./compare.ts";
import { openMysql, readMysqlAccount } from "./mysql_collect.ts";
import { pgDifferences } from "./pg_compare.ts";
import { quoteAccount, quoteIdent } from "./mysql_grants.ts";
import { openPg } from "./pg_db.ts";

/** A connection to the restore target. */
export interface RestoreTarget {
  /** postgresql, or mysql/mariadb as the server says. */
  readonly engine: "postgresql" | "mysql" | "mariadb";
  /** The account this connection is logged in as. */
  current(): Promise<{ name: string; host?: string }>;
  /** Whether the account exists (MariaDB's PUBLIC: whether it holds any privilege). */
  exists(account: AccountRef): Promise<boolean>;
  /**
   * How an existing account differs from its backup section, as short phrases (empty: the
   * same). Privileges on databases `databaseExists` says are absent are not expected.
   */
  differences(section: Section, databaseExists: (db: string) => boolean): Promise<string[]>;
  /** Whether a database exists. */
  databaseExists(database: string): Promise<boolean>;
  /**
   * The statements that remove an account before it is recreated (MySQL: DROP USER/ROLE), or
   * reset it in place (PostgreSQL, see {@linkcode RestoreTarget.replaceInPlace}).
   */
  dropStatements(account: AccountRef): Promise<string[]>;
  /**
   * PostgreSQL replaces a role in place (its CREATE ROLE is skipped): a role that owns objects
   * or holds privileges cannot be dropped, and dropping it would lose them.
   */
  readonly replaceInPlace: boolean;
  /** Runs one statement. */
  exec(sql: string): Promise<void>;
  /** Closes the connection. */
  close(): Promise<void>;
}

/** Quotes a PostgreSQL identifier. */
export function pgIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Connects to the restore target. */
export async function openTarget(
  type: EngineType,
  params: ConnectionParams,
): Promise<RestoreTarget> {
  return type === "postgresql" ? await openPgTarget(params) : await openMysqlTarget(params);
}

async function openPgTarget(params: ConnectionParams): Promise<RestoreTarget> {
  const sql = await openPg(params);
  try {
    await sql`select 1`;
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw connectError(e, params);
  }
  return {
    engine: "postgresql",
    replaceInPlace: true,
    async current() {
      const [row] = await sql<{ u: string }[]>`select current_user::text as u`;
      return { name: row.u };
    },
    async exists(a) {
      const rows = await sql`select 1 from pg_roles where rolname = ${a.name}`;
      return rows.length > 0;
    },
    async databaseExists(db) {
      const rows = await sql`select 1 from pg_database where datname = ${db}`;
      return rows.length > 0;
    },
    differences: (section) => pgDifferences(sql, section),
    async dropStatements(a) {
      const role = pgIdent(a.name);
      const held = await sql<{ r: string }[]>`
        select b.rolname::text as r from pg_auth_members m
          join pg_roles b on b.oid = m.roleid join pg_roles u on u.oid = m.member
         where u.rolname = ${a.name} order by 1`;
      return [
        `ALTER ROLE ${role} RESET ALL;`,
        ...held.map((h) => `REVOKE ${pgIdent(h.r)} FROM ${role};`),
      ];
    },
    async exec(statement) {
      await sql.unsafe(statement);
    },
    close: () => sql.end({ timeout: 1 }).catch(() => {}),
  };
}

async function openMysqlTarget(params: ConnectionParams): Promise<RestoreTarget> {
  let conn: Awaited<ReturnType<typeof openMysql>>;
  try {
    conn = await openMysql(params);
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw connectError(e, params);
  }
  const [[ver]] = await conn.query<import("mysql2/promise").RowDataPacket[]>(
    "SELECT VERSION() AS v",
  );
  const engine = /mariadb/i.test(String(ver.v)) ? "mariadb" : "mysql";
  if (engine === "mysql") {
    // As the backup read them (hex hashes): an existing account compares equal to its backup.
    await conn.query("SET SESSION print_identified_with_as_hex = ON").catch(() => {});
  }
  type Rows = import("mysql2/promise").RowDataPacket[];
  return {
    engine,
    replaceInPlace: false,
    async current() {
      const [[row]] = await conn.query<Rows>("SELECT CURRENT_USER() AS u");
      const text = String(row.u);
      const at = text.lastIndexOf("@");
      return { name: text.slice(0, at), host: text.slice(at + 1) };
    },
    async exists(a) {
      if (a.pseudo) return (await readMysqlAccount(conn, a)).steps.length > 0;
      const [rows] = await conn.query<Rows>(
        "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
        [a.name, a.host ?? ""],
      );
      return rows.length > 0;
    },
    async differences(section, databaseExists) {
      const live = await readMysqlAccount(conn, section.account);
      return mysqlDifferences(section.steps, live.steps, { databaseExists });
    },
    async databaseExists(db) {
      const [rows] = await conn.query<Rows>(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        [db],
      );
      return rows.length > 0;
    },
    dropStatements(a) {
      // PUBLIC cannot be dropped: replacing it means taking back what it holds.
      if (a.pseudo) return Promise.resolve(["REVOKE ALL PRIVILEGES, GRANT OPTION FROM PUBLIC;"]);
      const isMariaRole = a.kind === "role" && (a.host ?? "") === "";
      return Promise.resolve([
        isMariaRole
          ? `DROP ROLE ${quoteIdent(a.name)};`
          : `DROP USER ${quoteAccount(a.name, a.host ?? "%")};`,
      ]);
    },
    async exec(statement) {
      await conn.query(statement);
    },
    close: () => conn.end().catch(() => {}),
  };
}

/**
 * Whether a driver error means the connection is gone (server crashed or restarted, network
 * cut): every later statement would fail the same way, so a restore stops there.
 */
export function isConnectionLost(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const err = e as Error & { code?: string; fatal?: boolean };
  if (err.fatal) return true;
  const codes = [
    "PROTOCOL_CONNECTION_LOST",
    "ECONNRESET",
    "ECONNREFUSED",
    "EPIPE",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
  ];
  if (err.code && codes.includes(err.code)) return true;
  return /closed state|connection (?:lost|closed|terminated)|server has gone away/i.test(
    err.message,
  );
}
