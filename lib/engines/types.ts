/**
 * The engine-neutral contract: an {@linkcode Engine} per database family (PostgreSQL; MySQL and
 * MariaDB as one family whose differences live in lib/engines/mysql/flavour.ts), chosen once
 * from the server's flavour and version (lib/engines/mod.ts), and the {@linkcode EngineAdapter}
 * connection it opens. backup, restore, users and check ask these, never an engine's name.
 *
 * @module
 */
import type { ConnectionParams, EngineType, ToolsConfig } from "../config/types.ts";
import { VyaError, type VyaErrorOptions } from "../errors.ts";
import type { DatabaseProperties } from "../storage/metadata.ts";
import type { DumpCommand } from "../dump/types.ts";
import type { TargetServer } from "../restore/target.ts";
import type { SearchOptions, ToolSet } from "../tools/find.ts";
import type { AccountRef, Section } from "../users/format.ts";
import type { RestoreTarget } from "../users/target.ts";
import type { AccountSummary } from "../users/summary.ts";
import type { SqlDialect } from "./dialect.ts";

/** The family of an engine: what its dumps are (and which engines can restore them). */
export type EngineFamily = "postgresql" | "mysql";

/** The product a server turned out to be. */
export type Flavor = "postgresql" | "mysql" | "mariadb";

/** How a dump child is run (scheduling and buffering only; never what it dumps). */
export interface DumpTuning {
  /** nice(1) level. */
  nice?: number;
  /** ionice(1) class. */
  ionice?: "none" | "idle" | "best-effort";
  /** A 1 MiB stdout buffer (see ChildSpec.bufferOutput); default on. */
  bufferOutput?: boolean;
  /** PostgreSQL: dump in this exported snapshot (EngineAdapter.shareSnapshot). */
  snapshot?: string;
}

/** What a users backup collected from a server. */
export interface CollectedUsers {
  /** Statements run before the accounts (pg_dumpall's session settings; none on MySQL). */
  preamble: string[];
  /** One section per account, in restore order. */
  sections: Section[];
  /** Summaries for the metadata (never a hash). */
  summaries: AccountSummary[];
  /** Things the user should know. */
  warnings: string[];
  /** How the accounts were read, as recorded in the metadata's `dump`. */
  dump: { tool: string; path: string; tool_version: string; options: string[] };
}

/** What {@linkcode Engine.collectUsers} needs. */
export interface CollectUsersOptions {
  /** Connection parameters. */
  params: ConnectionParams;
  /** Server major (PostgreSQL: pg_dumpall must be at least this). */
  serverMajor: number;
  /** The instance's `tools` configuration. */
  tools: ToolsConfig;
  /** `users.exclude` globs. */
  exclude: readonly string[];
  /** Leave password hashes out. */
  noPasswords?: boolean;
}

/**
 * One database family, as the rest of the tool sees it. Stateless: {@linkcode Engine.connect}
 * opens connections; everything else is facts and commands for the server it was chosen for.
 */
export interface Engine {
  /** The family (what its dumps are). */
  readonly family: EngineFamily;
  /** The product it was chosen for (`mysql` also before a server said it is MariaDB). */
  readonly flavor: Flavor;
  /** The family's name in messages ("PostgreSQL", "MySQL/MariaDB"). */
  readonly label: string;
  /** Whether an instance configured as `type` may run this product (`mysql` takes MariaDB). */
  matchesConfigured(type: EngineType): boolean;

  /** Connects and checks the login (see {@linkcode EngineAdapter}). */
  connect(params: ConnectionParams): Promise<EngineAdapter>;

  /** Databases that belong to the server itself; never backed up as user data. */
  readonly systemDatabases: readonly string[];
  /** Whether `name` is one of {@linkcode Engine.systemDatabases}. */
  isSystemDatabase(name: string): boolean;

  /** Finds the dump, (PostgreSQL) dumpall and client tools for a server of `serverMajor`. */
  findTools(serverMajor: number, tools: ToolsConfig, options?: SearchOptions): Promise<ToolSet>;

  /** The command that dumps one database to stdout with the found dump tool. */
  dumpCommand(
    tool: { name: string; path: string },
    params: ConnectionParams,
    database: string,
    tuning?: DumpTuning,
  ): Promise<DumpCommand>;
  /** Text the last lines of a complete dump contain (the tool reached its end). */
  readonly completionMarker: string;
  /** Its dumps' SQL: banner, completion marker, lexical rules (lib/engines/dialect.ts). */
  readonly dialect: SqlDialect;
  /** Caveats every dump of this family carries, as warnings. */
  readonly dumpCaveats: readonly string[];

  /** Opens the restore target (create, inspect, mark, lock, drop, load command). */
  openRestoreTarget(params: ConnectionParams, serverMajor: number): Promise<TargetServer>;
  /**
   * Whether objects in its dumps name owners and grantees that must exist on the target (and
   * `--no-owner` applies).
   */
  readonly ownership: boolean;
  /** The roles the captured database properties name (owner, grantees, settings' roles). */
  propertyRoles(props: DatabaseProperties, noOwner: boolean): string[];
  /** The target major the dump filter adapts statements to, or undefined (none needed). */
  filterTargetMajor(serverMajor: number): number | undefined;

  /** Reads every account (role/user) of the server as the statements that recreate it. */
  collectUsers(options: CollectUsersOptions): Promise<CollectedUsers>;
  /** The names of the accounts a users backup would take (`user@host` where hosts exist). */
  listAccounts(params: ConnectionParams, exclude: readonly string[]): Promise<string[]>;
  /** Connects to a server accounts are restored onto. */
  openUsersTarget(params: ConnectionParams): Promise<RestoreTarget>;
  /** Whether accounts are `user@host` (MySQL/MariaDB) rather than names alone (PostgreSQL). */
  readonly accountsHaveHosts: boolean;
  /** Whether an account is a pseudo-account (MariaDB's PUBLIC), restored by granting only. */
  isPseudoAccount(account: AccountRef): boolean;

  /** Quotes an identifier for this family's SQL. */
  quoteIdent(name: string): string;
}

/** One database on a server, as listed before selection. */
export interface DatabaseInfo {
  /** Database name. */
  name: string;
  /** On-disk size in bytes as the server reports it (MySQL: data + index length). */
  sizeBytes: number;
}

/** What {@linkcode EngineAdapter.listDatabases} sizes. */
export interface ListOptions {
  /** Size only these databases (`[]`: none). Default: every one. */
  sizeOf?: readonly string[];
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
  /**
   * Large objects (PostgreSQL only; named as the metadata file spells it). A parallel restore
   * that knows from the metadata there are none need not read the whole file first.
   */
  large_objects?: number;
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
  flavor: Flavor;
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
  /**
   * Every database except templates, with sizes, before any selection; sorted by name. With
   * `sizeOf`, only those databases are sized (the others report 0): sizing walks each
   * database's files, 0.2 s for 200 databases, which a check for one name need not pay.
   */
  listDatabases(options?: ListOptions): Promise<DatabaseInfo[]>;
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
  /**
   * Until the returned release is called, the per-database queries on `database`
   * (objectCounts, tableRows, restoreWarning) share one connection instead of opening one each:
   * a backup of hundreds of small databases otherwise pays a connection (fork, authentication)
   * three times per database. Engines whose home connection reaches every database leave it
   * out. Never hold a database that may be dropped meanwhile: the held session keeps it in use.
   */
  hold?(database: string): () => void;
  /**
   * Exports a snapshot of a held `database` for its dump to run in (PostgreSQL:
   * `pg_export_snapshot()` on the held connection; the id goes to DumpTuning.snapshot), or
   * undefined where none can be shared. Until `end` or the hold's release, tableRows and
   * objectCounts of that database count in that snapshot, so the counts are exactly the dump's
   * rows and objects, and they may run while the dump does. End it only once the dump has
   * exited: the dump imports the snapshot when it starts, and it is gone once its transaction
   * ends.
   */
  shareSnapshot?(database: string): Promise<{ id: string; end(): Promise<void> } | undefined>;
  /** Closes the connection(s), held ones included. Safe to call twice. */
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
