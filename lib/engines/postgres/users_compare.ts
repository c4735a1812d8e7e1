/**
 * Comparing an existing PostgreSQL role with its section of a users backup: its attributes
 * (pg_dumpall's `ALTER ROLE … WITH` line: SUPERUSER … BYPASSRLS, CONNECTION LIMIT, PASSWORD,
 * VALID UNTIL) and its memberships (`GRANT role TO …`), read from the catalog. pg_dumpall's
 * wording changes between versions, so the comparison is of meaning, not of text.
 *
 * Role settings (`ALTER ROLE … SET`) and comments are not compared.
 *
 * @module
 */
import type { Section } from "../../users/format.ts";
import { isWord, tokenize } from "../sql_tokens.ts";
import type { PgSql } from "./driver.ts";

/** The flags pg_dumpall prints, each as KEYWORD / NOKEYWORD, and their catalog columns. */
const FLAGS: [string, string][] = [
  ["SUPERUSER", "rolsuper"],
  ["INHERIT", "rolinherit"],
  ["CREATEROLE", "rolcreaterole"],
  ["CREATEDB", "rolcreatedb"],
  ["LOGIN", "rolcanlogin"],
  ["REPLICATION", "rolreplication"],
  ["BYPASSRLS", "rolbypassrls"],
];

/** What the backup's `ALTER ROLE … WITH …` says. */
export interface Attributes {
  /** Each flag the statement names (SUPERUSER, LOGIN, …): true as written, false as NO…. */
  flags: Map<string, boolean>;
  /** `CONNECTION LIMIT n`. */
  connectionLimit?: number;
  /** `PASSWORD '…'`; null for `PASSWORD NULL`. */
  password?: string | null;
  /** `VALID UNTIL '…'`; null when not a string. */
  validUntil?: string | null;
}

/** Parses pg_dumpall's `ALTER ROLE name WITH …` statement; undefined for other statements. */
export function parseRoleAttributes(sql: string): Attributes | undefined {
  const t = tokenize(sql, { pg: true });
  if (!isWord(t[0], "ALTER") || !isWord(t[1], "ROLE") || !isWord(t[3], "WITH")) return undefined;
  const a: Attributes = { flags: new Map() };
  for (let i = 4; i < t.length; i++) {
    const w = t[i].type === "word" ? t[i].value.toUpperCase() : "";
    const flag = FLAGS.find(([k]) => w === k || w === `NO${k}`);
    if (flag) a.flags.set(flag[0], w === flag[0]);
    else if (w === "CONNECTION" && isWord(t[i + 1], "LIMIT")) {
      a.connectionLimit = Number(t[i + 2]?.value);
      i += 2;
    } else if (w === "PASSWORD") {
      a.password = t[i + 1]?.type === "string" ? t[i + 1].value : null;
      i += 1;
    } else if (w === "VALID" && isWord(t[i + 1], "UNTIL")) {
      a.validUntil = t[i + 2]?.type === "string" ? t[i + 2].value : null;
      i += 2;
    }
  }
  return a;
}

/** How the role on the server differs from the backup's section (empty: the same). */
export async function pgDifferences(sql: PgSql, section: Section): Promise<string[]> {
  const name = section.account.name;
  const out: string[] = [];
  const attrs = section.steps.map((s) => parseRoleAttributes(s.sql)).find((a) => a);
  const [role] = await sql<Record<string, unknown>[]>`
    SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
           rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_roles WHERE rolname = ${name}`;
  if (!role) return ["the role does not exist"];
  if (attrs) {
    const differ: string[] = [];
    for (const [k, col] of FLAGS) {
      const want = attrs.flags.get(k);
      if (want !== undefined && want !== role[col]) differ.push(want ? k : `NO${k}`);
    }
    if (attrs.connectionLimit !== undefined && attrs.connectionLimit !== role.rolconnlimit) {
      differ.push(`CONNECTION LIMIT ${attrs.connectionLimit}`);
    }
    if (attrs.validUntil !== undefined) {
      const [same] = await sql<{ same: boolean }[]>`
        SELECT rolvaliduntil IS NOT DISTINCT FROM ${attrs.validUntil}::timestamptz AS same
          FROM pg_roles WHERE rolname = ${name}`;
      if (!same?.same) differ.push(`VALID UNTIL ${attrs.validUntil ?? "infinity"}`);
    }
    if (differ.length) out.push(`attributes differ (the backup has ${differ.join(" ")})`);
    if (attrs.password !== undefined) {
      // pg_authid needs superuser; without it the password cannot be compared.
      const rows = await sql<{ p: string | null }[]>`
        SELECT rolpassword AS p FROM pg_authid WHERE rolname = ${name}`.catch(() => undefined);
      if (rows && rows.length && (rows[0].p ?? null) !== attrs.password) {
        out.push("password differs");
      }
    }
  }
  const expected = new Set(section.steps.filter((s) => s.phase === "member").flatMap(grantedRoles));
  const held = await sql<{ r: string }[]>`
    SELECT b.rolname::text AS r FROM pg_auth_members m
      JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
     WHERE u.rolname = ${name}`;
  const actual = new Set(held.map((h) => h.r));
  const missing = [...expected].filter((r) => !actual.has(r)).sort();
  const extra = [...actual].filter((r) => !expected.has(r)).sort();
  if (missing.length) out.push(`missing memberships: ${missing.join(", ")}`);
  if (extra.length) out.push(`memberships not in the backup: ${extra.join(", ")}`);
  return out;
}

/** The roles a membership statement grants: `GRANT a, b TO x …` gives a and b. */
function grantedRoles(step: { sql: string }): string[] {
  const t = tokenize(step.sql, { pg: true });
  const to = t.findIndex((x) => isWord(x, "TO"));
  if (!isWord(t[0], "GRANT") || to < 0) return [];
  return t.slice(1, to).filter((x) => x.type !== "punct").map((x) => x.value);
}
