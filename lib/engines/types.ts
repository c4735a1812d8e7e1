/**
 * The contract every database engine adapter fulfils: what the rest of the tool may ask a
 * server (version, databases with sizes, object counts) without knowing its driver.
 *
 * @module
 */
import type { EngineType } from "../config/types.ts";
import { VyaError, type VyaErrorOptions } from "../errors.ts";
import type { DatabaseProperties } from "../storage/metadata.ts";

/** One database on a server, as listed before selection. */
export interface DatabaseInfo {
  /** Database name. */
  name: string;
  /** On-disk size in bytes as the server reports it (MySQL: data + index length). */
  sizeBytes: number;
}

/** How many objects of each kind a database holds (used to verify restores and in reports). */
export interface ObjectCounts {
  /** Base tables (PostgreSQL: ordinary and partitioned tables, not partitions' parents twice). */
  tables: number;
  /** Views (PostgreSQL: plain and materialized). */
  views: number;
  /** Functions and procedures (PostgreSQL: excluding those of extensions and aggregates). */
  routines: number;
  /** Triggers (PostgreSQL: user triggers only, not constraint triggers). */
  triggers: number;
  /** Scheduled events (MySQL/MariaDB only). */
  events?: number;
  /** Sequences (PostgreSQL only). */
  sequences?: number;
}

/** One table's row count: counted exactly (`COUNT(*)`), or the server's own estimate. */
export interface TableRows {
  /** Rows. */
  rows: number;
  /** true: `COUNT(*)`; false: the engine's statistics (PostgreSQL reltuples, InnoDB TABLE_ROWS). */
  exact: boolean;
}

/**
 * Default of {@linkcode EngineAdapter.tableRows}'s `exactMaxBytes`: tables up to this size on
 * disk are counted exactly, larger ones estimated, so a backup never scans a big table twice.
 */
export const EXACT_ROWS_MAX_BYTES = 64 * 1024 * 1024;

/** A server's version, parsed from its version string. */
export interface ServerVersion {
  /** The full version string as the server reports it. */
  full: string;
  /** Major version (PostgreSQL 15 → 15, MariaDB 10.11 → 10, MySQL 8.0 → 8). */
  major: number;
  /** Minor version (PostgreSQL 15.18 → 18, MariaDB 10.11 → 11, MySQL 8.0 → 0). */
  minor: number;
  /** The actual product: a server configured as `mysql` may turn out to be MariaDB. */
  flavor: "postgresql" | "mysql" | "mariadb";
}

/** A connection to one database server. */
export interface EngineAdapter {
  /**
   * The engine as detected: `postgresql`, or `mysql` / `mariadb` from the server version string
   * (whatever the configuration said).
   */
  readonly engine: EngineType;
  /** The server's version. */
  serverVersion(): Promise<ServerVersion>;
  /** Every database except templates, with sizes, before any selection; sorted by name. */
  listDatabases(): Promise<DatabaseInfo[]>;
  /** Counts the objects in one database. */
  objectCounts(database: string): Promise<ObjectCounts>;
  /**
   * Rows of every base table of a database, keyed by name (PostgreSQL `schema.table`,
   * MySQL/MariaDB `table`): `COUNT(*)` for tables up to `exactMaxBytes` on disk (default
   * {@linkcode EXACT_ROWS_MAX_BYTES}; Infinity counts every table), the engine's estimate above.
   */
  tableRows(
    database: string,
    options?: { exactMaxBytes?: number },
  ): Promise<Record<string, TableRows>>;
  /**
   * The properties a database must be recreated with, which its dump leaves out (PostgreSQL:
   * owner, encoding, locale, connection limit, comment, grants, settings; MySQL/MariaDB:
   * character set and collation).
   */
  databaseProperties(database: string): Promise<DatabaseProperties>;
  /**
   * Why a restore of the database in one transaction would fail on a server set up like this
   * one (PostgreSQL: more relations than it can lock at once), or undefined. Engines without
   * such a limit leave it out.
   */
  restoreWarning?(database: string): Promise<string | undefined>;
  /**
   * The text of the mark an unfinished restore left in the database (see
   * lib/restore/marker.ts), or undefined: such a database holds part of a dump at most.
   */
  restoreMark(database: string): Promise<string | undefined>;
  /** Closes the connection(s). Safe to call twice. */
  close(): Promise<void>;
}

/** Why a connection could not be made. */
export type ConnectFailure = "refused" | "auth" | "timeout" | "dns" | "permission" | "other";

/**
 * A server could not be reached or refused the login (kind `unreachable`, exit 2): the caller decides
 * whether the run as a whole is partial. The message never contains the password.
 */
export class ConnectError extends VyaError {
  /** What went wrong, for callers that react differently (e.g. `check`). */
  readonly reason: ConnectFailure;

  /** Creates a connection error. */
  constructor(message: string, reason: ConnectFailure, options: VyaErrorOptions = {}) {
    // Lacking --allow-net is this machine's configuration, not the server's fault: exit 3.
    super(message, reason === "permission" ? "permission" : "unreachable", options);
    this.name = "ConnectError";
    this.reason = reason;
  }
}

/** A database asked for by name does not exist on the server (kind `failed`: that item fails). */
export class MissingDatabaseError extends VyaError {
  /** Creates the error. */
  constructor(message: string) {
    super(message, "failed");
    this.name = "MissingDatabaseError";
  }
}
