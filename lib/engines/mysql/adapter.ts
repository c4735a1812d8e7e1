/**
 * MySQL and MariaDB adapter over npm:mysql2. The product is detected from the server's version
 * string, so an instance configured as `mysql` that is really MariaDB gets MariaDB's tools.
 *
 * @module
 */
import { MARKER_TABLE } from "../../restore/marker.ts";
import type mysql from "mysql2/promise";
import type { DatabaseProperties } from "../../storage/metadata.ts";
import { openMysql } from "./driver.ts";
import { myIdent } from "./quote.ts";
import type { ConnectionParams } from "../../config/types.ts";
import { VyaError } from "../../errors.ts";
import { redact } from "../../redact.ts";
import { connectError } from "../connect_error.ts";
import type {
  DatabaseInfo,
  EngineAdapter,
  ListOptions,
  ObjectCounts,
  ServerVersion,
  TableRows,
} from "../types.ts";
import { EXACT_ROWS_MAX_BYTES, MissingDatabaseError } from "../types.ts";
import { isMariadbVersion, type MysqlFacts, mysqlFacts } from "./flavour.ts";

/**
 * Parses a MySQL/MariaDB version string: `8.0.36`, `10.11.19-MariaDB-0+deb12u1`, or the
 * `5.5.5-10.11.19-MariaDB` form MariaDB sends in the protocol handshake.
 */
export function parseMysqlVersion(full: string): ServerVersion {
  const flavor = isMariadbVersion(full) ? "mariadb" : "mysql";
  const stripped = flavor === "mariadb" ? full.replace(/^5\.5\.5-/, "") : full;
  const match = /^(\d+)\.(\d+)/.exec(stripped);
  if (!match) {
    throw new VyaError(`unrecognised server version ${JSON.stringify(full)}`, "unreachable");
  }
  return { full, major: Number(match[1]), minor: Number(match[2]), flavor };
}

function queryError(error: unknown, what: string): VyaError {
  const message = redact(error instanceof Error ? error.message : String(error));
  return new VyaError(`${what}: ${message}`, "unreachable", { cause: error });
}

class MysqlAdapter implements EngineAdapter {
  readonly engine: "mysql" | "mariadb";
  #conn: mysql.Connection;
  #version: ServerVersion;
  #facts: MysqlFacts;
  #closed = false;

  constructor(conn: mysql.Connection, version: ServerVersion) {
    this.#conn = conn;
    this.#version = version;
    this.#facts = mysqlFacts(version.flavor as MysqlFacts["flavor"], version.major, version.minor);
    this.engine = this.#facts.flavor;
  }

  serverVersion(): Promise<ServerVersion> {
    return Promise.resolve(this.#version);
  }

  async listDatabases(options: ListOptions = {}): Promise<DatabaseInfo[]> {
    try {
      // information_schema compares names case-insensitively (utf8_general_ci), but with
      // lower_case_table_names=0 (Linux's default) `Shop` and `shop` are two databases: a JOIN
      // or GROUP BY on the names would merge them and one would never be backed up. Names are
      // listed as they are and sizes grouped by the names' bytes, matched here exactly.
      const [schemata] = await this.#conn.query<mysql.RowDataPacket[]>(
        "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA",
      );
      const only = options.sizeOf;
      // The IN list compares case-insensitively too: the grouping by bytes below keeps `Shop`
      // and `shop` apart, and only exact names are looked up.
      const [sizes] = only?.length === 0 ? [[]] : await this.#conn.query<mysql.RowDataPacket[]>(
        `SELECT CAST(TABLE_SCHEMA AS BINARY) AS name,
                CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS CHAR) AS size
           FROM information_schema.TABLES
          ${only ? "WHERE TABLE_SCHEMA IN (?)" : ""}
          GROUP BY CAST(TABLE_SCHEMA AS BINARY)`,
        only ? [only] : [],
      );
      const bytes = new Map<string, number>();
      for (const r of sizes) {
        const name = r.name instanceof Uint8Array
          ? new TextDecoder().decode(r.name)
          : String(r.name);
        bytes.set(name, Number(r.size));
      }
      return schemata
        .map((r) => ({ name: String(r.name), sizeBytes: bytes.get(String(r.name)) ?? 0 }))
        .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    } catch (error) {
      throw queryError(error, "cannot list databases");
    }
  }

  async databaseProperties(database: string): Promise<DatabaseProperties> {
    // MariaDB 10.5+ has database comments (CREATE DATABASE … COMMENT); MySQL has none.
    const withComment = this.#facts.databaseComments;
    const [rows] = await this.#conn.query<mysql.RowDataPacket[]>(
      `SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS coll,
              ${withComment ? "SCHEMA_COMMENT" : "''"} AS comment
         FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`,
      [database],
    );
    if (rows.length === 0) {
      throw new VyaError(`database "${database}" does not exist`, "failed");
    }
    const props: DatabaseProperties = { character_set: rows[0].cs, collation: rows[0].coll };
    const comment = rows[0].comment == null ? "" : String(rows[0].comment);
    if (comment !== "") props.comment = comment;
    return props;
  }

  async restoreMark(database: string): Promise<string | undefined> {
    const [rows] = await this.#conn.query<mysql.RowDataPacket[]>(
      `SELECT TABLE_COMMENT AS c FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
      [database, MARKER_TABLE],
    );
    // The table is the mark, whatever its comment says.
    return rows.length ? String(rows[0].c ?? "") || MARKER_TABLE : undefined;
  }

  async objectCounts(database: string): Promise<ObjectCounts> {
    try {
      const [exists] = await this.#conn.query<mysql.RowDataPacket[]>(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        [database],
      );
      if (exists.length === 0) {
        throw new MissingDatabaseError(`database ${database} does not exist`);
      }
      const [[row]] = await this.#conn.query<mysql.RowDataPacket[]>(
        `SELECT
           (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
               AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')) AS tables,
           (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
               AND TABLE_TYPE = 'VIEW') AS views,
           (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
               AND TABLE_TYPE = 'SEQUENCE') AS sequences,
           (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?) AS routines,
           (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?) AS triggers,
           (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?) AS events`,
        [database, database, database, database, database, database],
      );
      const counts: ObjectCounts = {
        tables: Number(row.tables),
        views: Number(row.views),
        routines: Number(row.routines),
        triggers: Number(row.triggers),
        events: Number(row.events),
      };
      // Only MariaDB has sequences; MySQL reports none, so the field is left out there.
      if (this.#facts.sequences) counts.sequences = Number(row.sequences);
      return counts;
    } catch (error) {
      if (error instanceof VyaError) throw error;
      throw queryError(error, `cannot count objects in ${database}`);
    }
  }

  async tableRows(
    database: string,
    options: { exactMaxBytes?: number } = {},
  ): Promise<Record<string, TableRows>> {
    const limit = options.exactMaxBytes ?? EXACT_ROWS_MAX_BYTES;
    // Counting must never hold up the backup behind another session's lock.
    await this.#conn.query(
      "SET @vya_lock_wait = @@SESSION.lock_wait_timeout, SESSION lock_wait_timeout = 3",
    );
    try {
      // TABLE_ROWS is InnoDB's sampled estimate (it can be off by half); DATA_LENGTH its size.
      const [tables] = await this.#conn.query<mysql.RowDataPacket[]>(
        `SELECT TABLE_NAME AS name, TABLE_ROWS AS estimate, DATA_LENGTH AS bytes
           FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
          ORDER BY TABLE_NAME`,
        [database],
      );
      const out: Record<string, TableRows> = {};
      for (const t of tables) {
        const name = String(t.name);
        if (Number(t.bytes ?? 0) <= limit || t.estimate === null) {
          // Quoted here: mysql2's ?? splits identifiers on dots, and names may hold dots.
          const row = await this.#conn.query<mysql.RowDataPacket[]>(
            `SELECT COUNT(*) AS n FROM ${myIdent(database)}.${myIdent(name)}`,
          ).then(([[r]]) => r, (e) => {
            // A table another session holds locked gets its estimate, never a wait.
            if ((e as { errno?: number }).errno === 1205) return undefined;
            throw e;
          });
          if (row) out[name] = { rows: Number(row.n), exact: true };
          else if (t.estimate !== null) out[name] = { rows: Number(t.estimate), exact: false };
        } else {
          out[name] = { rows: Number(t.estimate), exact: false };
        }
      }
      return out;
    } catch (error) {
      throw queryError(error, `cannot count rows in ${database}`);
    } finally {
      await this.#conn.query("SET SESSION lock_wait_timeout = @vya_lock_wait").catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#conn.end().catch(() => this.#conn.destroy());
  }
}

/** Connects to a MySQL or MariaDB server, checks the login and reads the version. */
export async function connectMysql(params: ConnectionParams): Promise<EngineAdapter> {
  let conn: mysql.Connection;
  try {
    conn = await openMysql(params);
  } catch (error) {
    throw connectError(error, params);
  }
  try {
    const [[row]] = await conn.query<mysql.RowDataPacket[]>("SELECT VERSION() AS v");
    return new MysqlAdapter(conn, parseMysqlVersion(String(row.v)));
  } catch (error) {
    conn.destroy();
    if (error instanceof VyaError) throw error;
    throw queryError(error, "cannot read the server version");
  }
}
