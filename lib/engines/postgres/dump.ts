/**
 * pg_dump of one database, plain SQL, without `--create` so it restores under any name. The
 * database's own properties (owner, encoding, grants, settings) are captured separately from
 * the catalog and kept in the metadata.
 *
 * @module
 */
import type { ConnectionParams } from "../../config/types.ts";
import type { DumpCommand } from "../../dump/types.ts";
import type { DumpTuning } from "../types.ts";
import { quoteConninfo } from "./quote.ts";

/**
 * The connection string for the client tools: host, port, user and database, never the
 * password (that goes through PGPASSWORD). Passing the database in a conninfo keeps a name
 * with `=` or a leading `-` from being read as something else.
 */
export function pgConninfo(params: ConnectionParams, database: string): string {
  return [
    `host=${quoteConninfo(params.host)}`,
    `port=${params.port}`,
    `user=${quoteConninfo(params.user)}`,
    `dbname=${quoteConninfo(database)}`,
    `connect_timeout=${params.connectTimeout}`,
    `application_name='vya-backupdb'`,
  ].join(" ");
}

/** Environment for a libpq child: the password, and nothing from ~/.pgpass or PGSERVICE. */
export function pgEnv(params: ConnectionParams): Record<string, string> {
  return { PGPASSWORD: params.password, PGPASSFILE: "/dev/null", PGSERVICEFILE: "/dev/null" };
}

/** Text the last lines of a complete pg_dump output contain. */
export const PG_COMPLETION_MARKER = "PostgreSQL database dump complete";

/** Options pg_dump gets, recorded in metadata. */
export const PG_DUMP_OPTIONS = ["--format=plain", "--no-password"];

/** Builds the pg_dump command for one database. */
export function pgDumpCommand(
  toolPath: string,
  params: ConnectionParams,
  database: string,
  tuning: DumpTuning = {},
): DumpCommand {
  const { snapshot, ...process } = tuning;
  // The snapshot is this run's alone: it stays out of the options metadata records.
  const inSnapshot = snapshot ? [`--snapshot=${snapshot}`] : [];
  return {
    child: {
      cmd: toolPath,
      args: [...PG_DUMP_OPTIONS, ...inSnapshot, `--dbname=${pgConninfo(params, database)}`],
      env: pgEnv(params),
      bufferOutput: true,
      ...process,
    },
    tool: "pg_dump",
    options: PG_DUMP_OPTIONS,
    completionMarker: PG_COMPLETION_MARKER,
    cleanup: () => Promise.resolve(),
  };
}
