/**
 * Entry point of the engine adapters: connect to a server by engine type.
 *
 * @module
 */
import type { ConnectionParams, EngineType } from "../config/types.ts";
import { connectMysql } from "./mysql.ts";
import { connectPostgres } from "./postgres.ts";
import type { EngineAdapter } from "./types.ts";

export type {
  ConnectFailure,
  DatabaseInfo,
  EngineAdapter,
  ObjectCounts,
  ServerVersion,
} from "./types.ts";
export { ConnectError, MissingDatabaseError } from "./types.ts";
export { globMatch, isSystemDatabase, selectDatabases, SYSTEM_DATABASES } from "./select.ts";

/**
 * Connects to a server and checks the login. `mysql` and `mariadb` share one adapter whose
 * {@linkcode EngineAdapter.engine} tells which product actually answered.
 *
 * @throws {ConnectError} when the server is unreachable, does not answer in time, or refuses
 *   the login (the message names host, port and user, never the password)
 */
export function connect(type: EngineType, params: ConnectionParams): Promise<EngineAdapter> {
  return type === "postgresql" ? connectPostgres(params) : connectMysql(params);
}
