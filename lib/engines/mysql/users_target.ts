/**
 * The MySQL/MariaDB server accounts are restored onto (see lib/users/target.ts): an account
 * is dropped and recreated; the live account is read exactly as a backup reads it.
 *
 * @module
 */
import type mysql from "mysql2/promise";
import type { ConnectionParams } from "../../config/types.ts";
import { ConnectError } from "../types.ts";
import { connectError } from "../connect_error.ts";
import { mysqlDifferences } from "../../users/compare.ts";
import type { RestoreTarget } from "../../users/target.ts";
import { openMysql, VERBATIM } from "./driver.ts";
import { isMariadbVersion, mysqlFacts } from "./flavour.ts";
import { myIdent, quoteAccount } from "./quote.ts";
import { hashesAsHex, readMysqlAccount } from "./users_collect.ts";

/** Connects to the target, checks the login and reads which product it is. */
export async function openMysqlUsersTarget(params: ConnectionParams): Promise<RestoreTarget> {
  let conn: mysql.Connection;
  try {
    conn = await openMysql(params, VERBATIM);
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw connectError(e, params);
  }
  type Rows = mysql.RowDataPacket[];
  const [[ver]] = await conn.query<Rows>("SELECT VERSION() AS v");
  const facts = mysqlFacts(isMariadbVersion(String(ver.v)) ? "mariadb" : "mysql");
  // As the backup read them (hex hashes): an existing account compares equal to its backup.
  await hashesAsHex(conn, facts);
  return {
    engine: facts.flavor,
    replaceInPlace: false,
    async current() {
      const [[row]] = await conn.query<Rows>("SELECT CURRENT_USER() AS u");
      const text = String(row.u);
      const at = text.lastIndexOf("@");
      return { name: text.slice(0, at), host: text.slice(at + 1) };
    },
    async exists(a) {
      if (a.pseudo) return (await readMysqlAccount(conn, a)).steps.length > 0;
      const [rows] = await conn.query<Rows>(
        "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
        [a.name, a.host ?? ""],
      );
      return rows.length > 0;
    },
    async differences(section, databaseExists) {
      const live = await readMysqlAccount(conn, section.account);
      return mysqlDifferences(section.steps, live.steps, { databaseExists });
    },
    async databaseExists(db) {
      const [rows] = await conn.query<Rows>(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        [db],
      );
      return rows.length > 0;
    },
    dropStatements(a) {
      // PUBLIC cannot be dropped: replacing it means taking back what it holds.
      if (a.pseudo) return Promise.resolve(["REVOKE ALL PRIVILEGES, GRANT OPTION FROM PUBLIC;"]);
      const isMariaRole = a.kind === "role" && (a.host ?? "") === "";
      return Promise.resolve([
        isMariaRole
          ? `DROP ROLE ${myIdent(a.name)};`
          : `DROP USER ${quoteAccount(a.name, a.host ?? "%")};`,
      ]);
    },
    async exec(statement) {
      await conn.query(statement);
    },
    close: () => conn.end().catch(() => {}),
  };
}
