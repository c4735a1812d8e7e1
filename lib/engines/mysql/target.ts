/**
 * The MySQL/MariaDB side of a restore: recreating a database with its character set and
 * collation, dropping it, and the client command that loads the dump (password in a 0600
 * options file, never in argv).
 *
 * @module
 */
import type mysql from "mysql2/promise";
import { openMysql } from "./driver.ts";
import type { ConnectionParams } from "../../config/types.ts";
import type { DatabaseProperties } from "../../storage/metadata.ts";
import { writeOptionsFile } from "./options_file.ts";
import { connectError } from "../connect_error.ts";
import { myIdent } from "./quote.ts";
import { lockKey, type TargetServer } from "../../restore/target.ts";
import { MARKER_TABLE, markerText, parseMarker } from "../../restore/marker.ts";
import { type DefinerAccount, formatDefiner } from "../../restore/mysql_body_scan.ts";
import { RestoreRefusedError } from "../../restore/errors.ts";
import { withTimeout } from "../../timeout.ts";
import { type ChildSpec, runTool } from "../../process.ts";

// NAME_CHAR_LEN: the server refuses longer names; refused here first, with the reason.
const MY_NAME_CHARS = 64;
// ER_LOCK_WAIT_TIMEOUT: lock_wait_timeout passed while waiting for a metadata lock.
const LOCK_WAIT_TIMEOUT = 1205;

/**
 * The statements that create `name` with the captured character set, collation and (MariaDB)
 * comment.
 *
 * A backslash is read differently with and without the session's NO_BACKSLASH_ESCAPES, and
 * `COMMENT` takes only a plain string literal (no hex, no expression), so no single spelling of
 * a backslash is right in both modes. A comment holding one is therefore written with escaped
 * backslashes inside a session where the flag is off, and the session's mode is put back after.
 * Without backslashes, doubling the quotes is right in both modes.
 */
export function myCreateStatements(name: string, props: DatabaseProperties): string[] {
  let s = `CREATE DATABASE ${myIdent(name)}`;
  const word = /^[A-Za-z0-9_]+$/;
  if (props.character_set && word.test(props.character_set)) {
    s += ` CHARACTER SET ${props.character_set}`;
  }
  if (props.collation && word.test(props.collation)) s += ` COLLATE ${props.collation}`;
  const comment = props.comment ?? "";
  if (comment === "") return [s];
  const quoted = comment.replaceAll("\\", "\\\\").replaceAll("'", "''");
  s += ` COMMENT '${quoted}'`;
  if (!comment.includes("\\")) return [s];
  return [
    "SET @vya_sql_mode = @@SESSION.sql_mode",
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), " +
    "',NO_BACKSLASH_ESCAPES,', ','))",
    s,
    "SET SESSION sql_mode = @vya_sql_mode",
  ];
}

const switches = new Map<string, Promise<string[]>>();

/**
 * The client's switch that turns off its own commands (`\!` runs a shell, `\.` reads a file,
 * `tee` writes one) for the dump it reads: MariaDB's `--sandbox`, MySQL's `--commands=OFF`.
 * Found in the client's `--help`, since both exist only from some release on; none for an
 * older client (the restore's scan of the dump still refuses such lines).
 */
function commandsOff(toolPath: string): Promise<string[]> {
  let known = switches.get(toolPath);
  if (!known) {
    known = runTool({ cmd: toolPath, args: ["--no-defaults", "--help"] }).then(
      ({ stdout }) =>
        /^\s*--sandbox\b/m.test(stdout)
          ? ["--sandbox"]
          : /^\s*--commands\b/m.test(stdout)
          ? ["--commands=OFF"]
          : [],
      () => [],
    );
    switches.set(toolPath, known);
  }
  return known;
}

/** The DEFINER accounts of `accounts` the server lacks; undefined when it cannot tell. */
async function myMissingDefiners(
  query: <T>(text: string, values?: unknown[]) => Promise<T[]>,
  accounts: DefinerAccount[],
): Promise<string[] | undefined> {
  if (accounts.length === 0) return [];
  let rows: { User: string; Host: string }[];
  try {
    rows = await query("SELECT User, Host FROM mysql.user");
  } catch {
    return undefined;
  }
  // User names compare exactly, host names without case, as the server does.
  const present = new Set(rows.map((r) => `${r.User}\0${String(r.Host).toLowerCase()}`));
  return accounts
    .filter((a) => !present.has(`${a.user}\0${(a.host ?? "").toLowerCase()}`))
    .map(formatDefiner)
    .sort();
}

/** Drops `name`, refusing (nothing changed) when other sessions hold its locks too long. */
async function myDrop(conn: mysql.Connection, name: string, waitSeconds: number): Promise<void> {
  await conn.query(`SET SESSION lock_wait_timeout = ${Math.max(1, Math.trunc(waitSeconds))}`);
  try {
    await conn.query(`DROP DATABASE IF EXISTS ${myIdent(name)}`);
  } catch (e) {
    if ((e as { errno?: number }).errno === LOCK_WAIT_TIMEOUT) {
      throw new RestoreRefusedError(
        `could not drop database ${name}: other sessions held locks on it for ` +
          `${waitSeconds} s; nothing was changed`,
        { hint: "end those sessions (SHOW PROCESSLIST), or wait longer with --lock-wait" },
      );
    }
    throw e;
  }
}

/** The mysql/mariadb client loading a dump into `target` from stdin, its commands off. */
async function mysqlCommand(
  params: ConnectionParams,
  toolPath: string,
  target: string,
): Promise<{ child: ChildSpec; cleanup: () => Promise<void> }> {
  const noCommands = await commandsOff(toolPath);
  const file = await writeOptionsFile(params);
  return {
    child: {
      cmd: toolPath,
      // --defaults-file must come first.
      args: [
        `--defaults-file=${file.path}`,
        ...noCommands,
        "--default-character-set=utf8mb4",
        `--database=${target}`,
      ],
      stdin: "piped",
      stdout: "null",
    },
    cleanup: file.remove,
  };
}

/** Opens the MySQL/MariaDB side of a restore. */
export async function myTarget(params: ConnectionParams): Promise<TargetServer> {
  let conn: mysql.Connection;
  try {
    conn = await openMysql(params);
  } catch (error) {
    throw connectError(error, params);
  }
  const query = async <T>(text: string, values: unknown[] = []): Promise<T[]> =>
    (await conn.query(text, values))[0] as T[];
  const marker = (name: string) => `${myIdent(name)}.${myIdent(MARKER_TABLE)}`;
  return {
    transactional: false,
    nameProblem(name) {
      const chars = [...name].length;
      if (chars > MY_NAME_CHARS) {
        return `database name "${name}" is ${chars} characters long; MySQL and MariaDB allow ` +
          `at most ${MY_NAME_CHARS}`;
      }
      return undefined;
    },
    async lockTarget(name) {
      // A named lock lives as long as the session: a killed run leaves none behind.
      const key = await lockKey(`vya-backupdb restore ${name}`);
      // This session holds the lock for the whole load, mostly idle: wait_timeout (8 h by
      // default) must not end it, and the lock with it.
      await conn.query("SET SESSION wait_timeout = 31536000");
      const [row] = await query<{ ok: number | null }>("SELECT GET_LOCK(?, 0) AS ok", [
        `vya-restore-${key}`,
      ]);
      return Number(row?.ok) === 1;
    },
    async readMarker(name) {
      // BINARY: names that differ only in case are different databases on Linux.
      const rows = await query<{ c: string }>(
        `SELECT TABLE_COMMENT AS c FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = BINARY ? AND TABLE_NAME = BINARY ?`,
        [name, MARKER_TABLE],
      );
      if (rows.length === 0) return undefined;
      // The table is the mark; a comment that does not parse is a mark of an unknown run.
      return parseMarker(rows[0].c) ?? { run: "", started_at: "", file: "", created: false };
    },
    markStatements(name, m) {
      // The mark's text holds no quote or backslash (restore keeps the file name to safe
      // characters), so it reads the same under every sql_mode.
      const text = markerText(m).replaceAll("'", "''");
      return [`CREATE TABLE ${marker(name)} (id INT) COMMENT = '${text}'`];
    },
    unmarkStatements: (name) => [`DROP TABLE IF EXISTS ${marker(name)}`],
    comment: () => Promise.resolve(undefined),
    missingRoles: () => Promise.resolve([]),
    missingDefiners: (accounts) => myMissingDefiners(query, accounts),
    lockCapacity: () => Promise.resolve(undefined),
    async busy(name) {
      const [row] = await query<{ n: number }>(
        `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
          WHERE DB = BINARY ? AND COMMAND = 'Query' AND ID <> CONNECTION_ID()`,
        [name],
      );
      return Number(row?.n ?? 0) > 0;
    },
    freeConnections: () => myFreeConnections(query),
    async sessionsUsing(name) {
      const [row] = await query<{ n: number }>(
        `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
          WHERE DB = BINARY ? AND ID <> CONNECTION_ID()`,
        [name],
      );
      return Number(row?.n ?? 0);
    },
    dropEffect(sessions, waitSeconds) {
      return sessions === 0
        ? "no session is using it"
        : `${sessions} session(s) are using it: DROP DATABASE waits up to ${waitSeconds} s for ` +
          `their locks, then the restore stops with nothing changed`;
    },
    createStatements: (name, props) => myCreateStatements(name, props ?? {}),
    async execute(statements) {
      for (const s of statements) await conn.query(s);
    },
    drop: (name, waitSeconds) => myDrop(conn, name, waitSeconds),
    clientCommand: (toolPath, target) => mysqlCommand(params, toolPath, target),
    async close() {
      // A server that stopped answering must not hold the run: end, or give up after 5 s.
      await withTimeout(conn.end(), 5000, "closing the connection").catch(() => conn.destroy());
    },
  };
}

/** Connections the server still accepts: max_connections less those connected. */
async function myFreeConnections(
  query: <T>(text: string, values?: unknown[]) => Promise<T[]>,
): Promise<{ free: number; limit: string }> {
  // SHOW STATUS works on every version (MySQL 8 has no information_schema.GLOBAL_STATUS).
  const [max] = await query<{ max: number }>("SELECT @@GLOBAL.max_connections AS max");
  const [used] = await query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Threads_connected'");
  return { free: Number(max.max) - Number(used.Value), limit: "max_connections" };
}
