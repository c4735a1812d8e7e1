/**
 * The PostgreSQL server roles are restored onto (see lib/users/target.ts): roles are reset in
 * place, never dropped, since a role that owns objects or holds privileges cannot be.
 *
 * @module
 */
import type { ConnectionParams } from "../../config/types.ts";
import { connectError } from "../connect_error.ts";
import type { RestoreTarget } from "../../users/target.ts";
import { openPostgres } from "./driver.ts";
import { pgIdent } from "./quote.ts";
import { pgDifferences } from "./users_compare.ts";

/** Connects to the target and checks the login. */
export async function openPgUsersTarget(params: ConnectionParams): Promise<RestoreTarget> {
  const sql = await openPostgres(params);
  try {
    await sql`select 1`;
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw connectError(e, params);
  }
  return {
    engine: "postgresql",
    replaceInPlace: true,
    async current() {
      const [row] = await sql<{ u: string }[]>`select current_user::text as u`;
      return { name: row.u };
    },
    async exists(a) {
      const rows = await sql`select 1 from pg_roles where rolname = ${a.name}`;
      return rows.length > 0;
    },
    async databaseExists(db) {
      const rows = await sql`select 1 from pg_database where datname = ${db}`;
      return rows.length > 0;
    },
    differences: (section) => pgDifferences(sql, section),
    async dropStatements(a) {
      const role = pgIdent(a.name);
      const held = await sql<{ r: string }[]>`
        select b.rolname::text as r from pg_auth_members m
          join pg_roles b on b.oid = m.roleid join pg_roles u on u.oid = m.member
         where u.rolname = ${a.name} order by 1`;
      return [
        `ALTER ROLE ${role} RESET ALL;`,
        ...held.map((h) => `REVOKE ${pgIdent(h.r)} FROM ${role};`),
      ];
    },
    async exec(statement) {
      await sql.unsafe(statement);
    },
    close: () => sql.end({ timeout: 1 }).catch(() => {}),
  };
}
