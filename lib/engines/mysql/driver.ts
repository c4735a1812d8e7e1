/**
 * The one place driver connections are opened, every option explicit: no `PG*` variable, no
 * my.cnf, no default database decides where the tool connects or as whom.
 *
 * @module
 */
import type postgresModule from "postgres";
import type mysql from "mysql2/promise";
import type { ConnectionParams } from "../config/types.ts";

/** A porsager/postgres client. */
export type PgSql = ReturnType<typeof postgresModule>;

// The drivers are loaded on first use: a run against PostgreSQL never pays for mysql2's memory
// and start-up, nor a MySQL run for postgres's (each is tens of MiB of resident memory).
let pgDriver: Promise<typeof postgresModule> | undefined;
let myDriver: Promise<typeof mysql> | undefined;

/**
 * Opens a single-connection PostgreSQL client to `database`. The driver connects on the first
 * query.
 */
export async function openPostgres(
  params: ConnectionParams,
  database = "postgres",
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
    onnotice: () => {},
    connection: { application_name: "vya-backupdb" },
  });
}

/**
 * Opens a MySQL/MariaDB connection (one statement per query, utf8mb4). `options` adds or
 * overrides driver options, e.g. `dateStrings` where values are copied verbatim.
 */
export async function openMysql(
  params: ConnectionParams,
  options: Partial<mysql.ConnectionOptions> = {},
): Promise<mysql.Connection> {
  myDriver ??= import("mysql2/promise").then((m) => m.default);
  return await (await myDriver).createConnection({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    connectTimeout: params.connectTimeout * 1000,
    charset: "utf8mb4_general_ci",
    supportBigNumbers: true,
    multipleStatements: false,
    ...options,
  });
}
