/**
 * The one place MySQL/MariaDB driver connections are opened, every option explicit: no my.cnf,
 * no default database decides where the tool connects or as whom.
 *
 * @module
 */
import type mysql from "mysql2/promise";
import type { ConnectionParams } from "../../config/types.ts";

// Loaded on first use: a run against PostgreSQL never pays for mysql2's memory and start-up
// (tens of MiB of resident memory).
let myDriver: Promise<typeof mysql> | undefined;

/** Driver options for reading values back exactly as the server wrote them (accounts). */
export const VERBATIM: Partial<mysql.ConnectionOptions> = {
  dateStrings: true,
  bigNumberStrings: true,
  charset: "utf8mb4",
};

/**
 * mysql2 quotes the values of `?` placeholders with backslash escapes (`'` as `\'`). A server
 * whose sql_mode holds NO_BACKSLASH_ESCAPES reads the backslash as a character and the quote as
 * the end of the string: a database named `x' OR 1=1 -- ` (a tenant of a hosting server may
 * create one) would rewrite the query around it. Every session of ours reads backslashes as
 * escapes; the rest of the server's mode stays.
 */
const BACKSLASH_ESCAPES_ON = "SET SESSION sql_mode = TRIM(BOTH ',' FROM " +
  "REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))";

/**
 * Opens a MySQL/MariaDB connection (one statement per query, utf8mb4). `options` adds or
 * overrides driver options, e.g. {@linkcode VERBATIM} where values are copied verbatim.
 */
export async function openMysql(
  params: ConnectionParams,
  options: Partial<mysql.ConnectionOptions> = {},
): Promise<mysql.Connection> {
  myDriver ??= import("mysql2/promise").then((m) => m.default);
  const conn = await (await myDriver).createConnection({
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
  try {
    // Asked first: a session without the flag (the usual case) sends no SET, which some
    // proxies refuse.
    const [rows] = await conn.query("SELECT @@SESSION.sql_mode AS m");
    const mode = String((rows as { m?: unknown }[])[0]?.m ?? "");
    if (mode.split(",").includes("NO_BACKSLASH_ESCAPES")) await conn.query(BACKSLASH_ESCAPES_ON);
  } catch (e) {
    conn.destroy();
    throw e;
  }
  return conn;
}
