/**
 * Entry point of the engines: the one place an engine is chosen, from a server's flavour and
 * version ({@linkcode engineFor}) or from a configured or recorded engine name
 * ({@linkcode engineOf}), and the engine-neutral helpers built on that choice.
 *
 * @module
 */
import type { ConnectionParams, EngineType, ToolsConfig } from "../config/types.ts";
import type { SearchOptions, ToolSet } from "../tools/find.ts";
import { mysqlEngine } from "./mysql/engine.ts";
import { mysqlFacts } from "./mysql/flavour.ts";
import { postgresEngine } from "./postgres/engine.ts";
import { selectDatabases as selectFrom } from "./select.ts";
import type { DatabaseInfo, Engine, EngineAdapter, EngineFamily, ServerVersion } from "./types.ts";

export type {
  CollectedUsers,
  CollectUsersOptions,
  ConnectFailure,
  DatabaseInfo,
  DumpTuning,
  Engine,
  EngineAdapter,
  EngineFamily,
  Flavor,
  ObjectCounts,
  ServerVersion,
} from "./types.ts";
export { ConnectError, MissingDatabaseError } from "./types.ts";
export { DIALECTS } from "./dialect.ts";
export type { BodyTreatment, LexicalRules, SqlDialect } from "./dialect.ts";
export { excludedAccount, globMatch } from "./select.ts";

const cache = new Map<string, Engine>();

function mysqlFamily(flavor: "mysql" | "mariadb", major = 0, minor = 0): Engine {
  const key = `${flavor} ${major}.${minor}`;
  let engine = cache.get(key);
  if (!engine) {
    engine = mysqlEngine(mysqlFacts(flavor, major, minor));
    cache.set(key, engine);
  }
  return engine;
}

/** The engine for a server, chosen once from the flavour and version it reported. */
export function engineFor(version: ServerVersion): Engine {
  if (version.flavor === "postgresql") return postgresEngine;
  return mysqlFamily(version.flavor, version.major, version.minor);
}

/**
 * The engine for an engine name as configured (`type`) or recorded (metadata, users file),
 * before any server said which version it is. Any name other than `postgresql` is of the
 * MySQL/MariaDB family, as dumps of either are.
 */
export function engineOf(name: string): Engine {
  if (name === "postgresql") return postgresEngine;
  return mysqlFamily(name === "mariadb" ? "mariadb" : "mysql");
}

/** The family of an engine name (see {@linkcode engineOf}). */
export function familyOf(name: string): EngineFamily {
  return engineOf(name).family;
}

/**
 * Connects to a server by configured type and checks the login. `mysql` and `mariadb` share one
 * adapter whose {@linkcode EngineAdapter.engine} tells which product actually answered.
 *
 * @throws {ConnectError} when the server is unreachable, does not answer in time, or refuses
 *   the login (the message names host, port and user, never the password)
 */
export function connect(type: EngineType, params: ConnectionParams): Promise<EngineAdapter> {
  return engineOf(type).connect(params);
}

/**
 * Finds the dump and restore tools for an instance.
 *
 * @param engine the engine as detected from the server (`mysql` vs `mariadb` matters)
 * @param serverMajor the server's major version (PostgreSQL: tools must be at least this)
 * @param tools the instance's `tools` configuration
 * @param options search locations (tests only)
 */
export function findTools(
  engine: EngineType,
  serverMajor: number,
  tools: ToolsConfig,
  options: SearchOptions = {},
): Promise<ToolSet> {
  return engineOf(engine).findTools(serverMajor, tools, options);
}

/** Databases that belong to the server itself, per engine name. */
export const SYSTEM_DATABASES: Readonly<Record<EngineType, readonly string[]>> = {
  postgresql: engineOf("postgresql").systemDatabases,
  mysql: engineOf("mysql").systemDatabases,
  mariadb: engineOf("mariadb").systemDatabases,
};

/** Whether a database name is a system database of the engine. */
export function isSystemDatabase(engine: EngineType, name: string): boolean {
  return engineOf(engine).isSystemDatabase(name);
}

/**
 * Selects the databases to back up (see lib/engines/select.ts), never the engine's system
 * databases; `engine` is the chosen engine or an engine name.
 */
export function selectDatabases(
  engine: Engine | EngineType,
  all: readonly DatabaseInfo[],
  include: readonly string[],
  exclude: readonly string[],
): DatabaseInfo[] {
  return selectFrom(typeof engine === "string" ? engineOf(engine) : engine, all, include, exclude);
}
