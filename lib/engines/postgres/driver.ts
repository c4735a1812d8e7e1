/**
 * The one place PostgreSQL driver connections are opened, every option explicit: no `PG*`
 * variable, no service file, no default database decides where the tool connects or as whom.
 *
 * @module
 */
import type postgresModule from "postgres";
import type { ConnectionParams } from "../../config/types.ts";

/** A porsager/postgres client. */
export type PgSql = ReturnType<typeof postgresModule>;

// Loaded on first use: a run against MySQL never pays for this driver's memory and start-up.
let pgDriver: Promise<typeof postgresModule> | undefined;

/**
 * Opens a single-connection PostgreSQL client to `database`. The driver connects on the first
 * query.
 */
export async function openPostgres(
  params: ConnectionParams,
  database = "postgres",
  options: {
    /**
     * Ask the server for its array types on connecting (default), so that arrays are sent and
     * read as arrays. A connection whose queries use no array spares that catalog query.
     */
    arrayTypes?: boolean;
  } = {},
): Promise<PgSql> {
  pgDriver ??= import("postgres").then((m) => m.default);
  const postgres = await pgDriver;
  return postgres({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    database,
    ssl: false,
    max: 1,
    connect_timeout: params.connectTimeout,
    idle_timeout: 0,
    max_lifetime: null,
    prepare: false,
    fetch_types: options.arrayTypes ?? true,
    onnotice: () => {},
    connection: { application_name: "vya-backupdb" },
  });
}
