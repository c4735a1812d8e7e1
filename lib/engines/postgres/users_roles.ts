/**
 * The PostgreSQL driver connection users backup and restore use, and the catalog facts about
 * roles they read.
 *
 * @module
 */
import type { PgSql } from "./driver.ts";
import type { PgRoleFacts } from "./users_collect.ts";

/** Reads every non-`pg_*` role's attributes, hash method and memberships (never the hash). */
export async function readRoleFacts(sql: PgSql): Promise<PgRoleFacts[]> {
  const method = async () => {
    try {
      // pg_authid needs superuser; without it the method stays unknown.
      const rows = await sql<{ rolname: string; method: string | null }[]>`
        SELECT rolname,
               CASE WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram-sha-256'
                    WHEN rolpassword LIKE 'md5%' THEN 'md5'
                    WHEN rolpassword IS NOT NULL THEN 'password' END AS method
          FROM pg_authid`;
      return new Map(rows.map((r) => [r.rolname, r.method]));
    } catch {
      return new Map<string, string | null>();
    }
  };
  const methods = await method();
  const rows = await sql<
    {
      rolname: string;
      oid: number;
      rolsuper: boolean;
      rolinherit: boolean;
      rolcreaterole: boolean;
      rolcreatedb: boolean;
      rolcanlogin: boolean;
      rolreplication: boolean;
      rolbypassrls: boolean;
      rolconnlimit: number;
      rolvaliduntil: string | null;
      member_of: string[];
    }[]
  >`
    SELECT r.rolname, r.oid::int AS oid, r.rolsuper, r.rolinherit, r.rolcreaterole,
           r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
           r.rolvaliduntil::text AS rolvaliduntil,
           ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
                  WHERE m.member = r.oid ORDER BY 1) AS member_of
      FROM pg_roles r
     WHERE r.rolname !~ '^pg_'
     ORDER BY r.rolname`;
  return rows.map((r) => {
    const attributes: string[] = [];
    if (r.rolsuper) attributes.push("SUPERUSER");
    if (r.rolcanlogin) attributes.push("LOGIN");
    if (r.rolcreatedb) attributes.push("CREATEDB");
    if (r.rolcreaterole) attributes.push("CREATEROLE");
    if (!r.rolinherit) attributes.push("NOINHERIT");
    if (r.rolreplication) attributes.push("REPLICATION");
    if (r.rolbypassrls) attributes.push("BYPASSRLS");
    if (r.rolconnlimit >= 0) attributes.push(`CONNECTION LIMIT ${r.rolconnlimit}`);
    if (r.rolvaliduntil) attributes.push(`VALID UNTIL ${r.rolvaliduntil}`);
    return {
      name: r.rolname,
      login: r.rolcanlogin,
      attributes,
      method: methods.get(r.rolname) ?? null,
      memberOf: r.member_of,
      bootstrap: r.oid === 10,
    };
  });
}
