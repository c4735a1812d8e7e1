/**
 * What a sysadmin checks after moving databases and accounts from one server to another, as
 * values that compare equal when nothing was lost: schema dumps, per-table row checksums of
 * every table, database properties, account definitions and privileges, and logins.
 *
 * Every helper takes the server and the database name, so the same call on the source and the
 * target gives two values for one `assertEquals`.
 *
 * @module
 */
import { assert } from "../harness/assert.ts";
import type { MyServer, PgServer } from "../harness/servers.ts";
import type { DatabaseProperties } from "../../lib/storage/metadata.ts";
import { openPostgres as openPg } from "../../lib/engines/postgres/driver.ts";
import { openMysql } from "../../lib/engines/mysql/driver.ts";
import type mysql from "mysql2/promise";

const decoder = new TextDecoder();

/** Rows of a tab-separated client output, empty lines dropped. */
function lines(text: string): string[] {
  return text.split("\n").filter(Boolean);
}

function pgLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function myIdent(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}

function myLiteral(value: string): string {
  return "'" + value.replaceAll("\\", "\\\\").replaceAll("'", "\\'") + "'";
}

async function output(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** Schemas that belong to the server, not to the application. */
const PG_SYSTEM_SCHEMAS =
  `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'`;

/**
 * An ACL as a sorted set: the order of entries follows the order grants were given, which a
 * restore does not keep and which means nothing. NULL (the built-in defaults) stays NULL, since
 * it differs from an empty ACL (everything revoked).
 */
function sortedAcl(column: string): string {
  return `CASE WHEN ${column} IS NULL THEN NULL ELSE ARRAY(SELECT unnest(${column})::text ORDER BY 1) END`;
}

/** `pg_dump --schema-only` of a database, without the random `\restrict` key lines. */
export async function pgSchema(pg: PgServer, db: string): Promise<string> {
  const out = await output(
    `${pg.bin}/pg_dump`,
    ["--schema-only", "-h", pg.host, "-p", String(pg.port), "-U", pg.user, "-d", db],
    pg.clientEnv,
  );
  assert(out.code === 0, out.stderr);
  return out.stdout.split("\n").filter((l) => !/^\\(un)?restrict /.test(l)).join("\n");
}

/**
 * Row count and an order-independent checksum of every table of every application schema
 * (keyed `schema.table`), and the state of every sequence (keyed `sequence schema.name`).
 */
export async function pgRows(pg: PgServer, db: string): Promise<Record<string, string>> {
  const tables = lines(
    await pg.sql(
      `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND ${PG_SYSTEM_SCHEMAS} ORDER BY 1`,
      { database: db },
    ),
  );
  const sums: Record<string, string> = {};
  for (const t of tables) {
    sums[t] = await pg.sql(
      `SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM ${t} t`,
      { database: db },
    );
  }
  const sequences = lines(
    await pg.sql(
      `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND ${PG_SYSTEM_SCHEMAS} ORDER BY 1`,
      { database: db },
    ),
  );
  for (const s of sequences) {
    sums[`sequence ${s}`] = await pg.sql(`SELECT last_value || ':' || is_called FROM ${s}`, {
      database: db,
    });
  }
  return sums;
}

/** The database properties a backup records, read from the live server. */
export async function pgProps(pg: PgServer, db: string): Promise<DatabaseProperties> {
  const q = (s: string) => pg.sql(s.replaceAll("$DB", pgLiteral(db)));
  const [owner, encoding, collate, ctype, provider, limit] = (await q(`
    SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype,
           CASE datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END, datconnlimit
      FROM pg_database WHERE datname = $DB`)).split("\t");
  const comment = await q(
    `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $DB`,
  );
  const grants = lines(
    await q(`
    SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
           a.privilege_type, a.is_grantable
      FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $DB ORDER BY 1, 2`),
  ).map((l) => {
    const [grantee, privilege, grantable] = l.split("\t");
    return { grantee, privilege, grantable: grantable === "t" };
  });
  const settings = lines(
    await q(`
    SELECT COALESCE(pg_get_userbyid(NULLIF(s.setrole, 0)), ''), unnest(s.setconfig)
      FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
     WHERE d.datname = $DB ORDER BY 1, 2`),
  ).map((l) => {
    const [role, setting] = l.split("\t");
    return { role: role || null, setting };
  });
  return {
    owner,
    encoding,
    collate,
    ctype,
    locale_provider: provider,
    connection_limit: Number(limit),
    comment: comment || null,
    grants,
    settings,
  };
}

/**
 * The server-wide account catalog: every role but the bootstrap superuser and the built-in
 * `pg_*` ones with its attributes, settings, comment and password hash (equal hashes mean the
 * same password), every membership with its grantor and admin option, every database's owner
 * and ACL, and per-database role settings.
 */
export async function pgRoles(pg: PgServer): Promise<string> {
  return await pg.sql(`
    SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
           rolbypassrls, rolconnlimit, rolvaliduntil, rolconfig,
           shobj_description(oid, 'pg_authid')
      FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> 'postgres' ORDER BY 1;
    SELECT r.rolname, m.rolname, g.rolname, a.admin_option
      FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
      JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.grantor ORDER BY 1, 2;
    SELECT rolname, rolpassword FROM pg_authid
     WHERE rolname !~ '^pg_' AND rolname <> 'postgres' ORDER BY 1;
    SELECT datname, datdba::regrole, ${sortedAcl("datacl")} FROM pg_database ORDER BY 1;
    SELECT COALESCE(d.datname, ''), COALESCE(r.rolname, ''), s.setconfig
      FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
      LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2;`);
}

/**
 * Owners and privileges inside one database, for every application schema: schemas, relations
 * (tables, views, sequences…), columns with their own ACL, functions and procedures (with their
 * argument types), and every default-privilege entry. ACLs are compared as sets.
 */
export async function pgObjectAcls(pg: PgServer, db: string): Promise<string> {
  return await pg.sql(
    `
    SELECT n.nspname, n.nspowner::regrole, ${sortedAcl("n.nspacl")}
      FROM pg_namespace n WHERE ${PG_SYSTEM_SCHEMAS} ORDER BY 1;
    SELECT n.nspname, c.relname, c.relkind, c.relowner::regrole, ${sortedAcl("c.relacl")}
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE ${PG_SYSTEM_SCHEMAS} ORDER BY 1, 2;
    SELECT n.nspname, c.relname, a.attname, ${sortedAcl("a.attacl")}
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE ${PG_SYSTEM_SCHEMAS} AND a.attacl IS NOT NULL ORDER BY 1, 2, 3;
    SELECT p.oid::regprocedure, p.prokind, p.proowner::regrole, ${sortedAcl("p.proacl")}
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE ${PG_SYSTEM_SCHEMAS} ORDER BY 1;
    SELECT d.defaclrole::regrole, COALESCE(n.nspname, ''), d.defaclobjtype,
           ${sortedAcl("d.defaclacl")}
      FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
     ORDER BY 1, 2, 3;`,
    { database: db },
  );
}

/**
 * Logs in over TCP with a password (real scram authentication) and returns `current_user`;
 * throws when the login is refused.
 */
export async function pgLogin(
  server: PgServer,
  user: string,
  password: string,
  database = "postgres",
): Promise<string> {
  const sql = await openPg({ ...server.params, user, password }, database);
  try {
    const [row] = await sql<{ u: string }[]>`select current_user::text as u`;
    return row.u;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// MariaDB

/**
 * `mariadb-dump --no-data` of a database with its routines, events and triggers; the name is
 * replaced in comment lines only, so a copy under another name compares equal.
 */
export async function mySchema(my: MyServer, db: string): Promise<string> {
  const out = await output(`${my.bin}/mariadb-dump`, [
    "--no-defaults",
    "--protocol=TCP",
    "-h",
    my.host,
    "-P",
    String(my.port),
    "-u",
    my.user,
    "--no-data",
    "--skip-dump-date",
    "--routines",
    "--events",
    "--triggers",
    db,
  ], my.clientEnv);
  assert(out.code === 0, out.stderr);
  return out.stdout.split("\n")
    .map((l) => l.startsWith("-- ") ? l.replaceAll(db, "DB") : l).join("\n");
}

/**
 * Row count and `CHECKSUM TABLE … EXTENDED` (a sum of row checksums, so independent of row
 * order) of every base table of a database, keyed by table name.
 */
export async function myRows(my: MyServer, db: string): Promise<Record<string, string>> {
  const tables = lines(
    await my.sql(
      `SELECT TABLE_NAME FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ${myLiteral(db)} AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1`,
    ),
  );
  const sums: Record<string, string> = {};
  for (const t of tables) {
    const name = `${myIdent(db)}.${myIdent(t)}`;
    const count = await my.sql(`SELECT COUNT(*) FROM ${name}`);
    const checksum = (await my.sql(`CHECKSUM TABLE ${name} EXTENDED`)).split("\t").pop();
    sums[t] = `${count}:${checksum}`;
  }
  return sums;
}

/** The database properties a backup records, read from the live server. */
export async function myProps(my: MyServer, db: string): Promise<DatabaseProperties> {
  // Through the driver in utf8mb4: the command-line client would mangle a comment's emoji and
  // escape its backslashes. SCHEMA_COMMENT exists on MariaDB 10.5+ only.
  const conn = await openMysql(my.params);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(
      "SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
      [db],
    );
    assert(rows.length === 1, `database ${db} exists on ${my.port}`);
    const row = rows[0];
    const props: DatabaseProperties = {
      character_set: String(row.DEFAULT_CHARACTER_SET_NAME),
      collation: String(row.DEFAULT_COLLATION_NAME),
    };
    if ("SCHEMA_COMMENT" in row) props.comment = String(row.SCHEMA_COMMENT ?? "");
    return props;
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

/**
 * Sorts the column lists of column-level privileges (`SELECT (\`a\`, \`b\`)`): the server
 * prints them in an order of its own that changes when the same grant is given again, which
 * means nothing.
 */
function sortColumnLists(grants: string): string {
  return grants.split("\n").map((line) => {
    const on = line.indexOf(" ON ");
    if (!line.startsWith("GRANT ") || on < 0) return line;
    const privileges = line.slice(0, on).replace(
      /\(([^()]*)\)/g,
      (_, columns: string) => `(${columns.split(", ").sort().join(", ")})`,
    );
    return privileges + line.slice(on);
  }).join("\n");
}

/**
 * Every account and role of the server with its `SHOW CREATE USER` (plugin, hash, limits, lock)
 * and `SHOW GRANTS` (roles: `SHOW GRANTS` only), keyed `'user'@'host'` (roles: `'role'@''`).
 * Accounts named in `skipUsers` are left out: the servers' own root accounts differ by design.
 * Column lists of column privileges are sorted (see {@linkcode sortColumnLists}).
 */
export async function mariaAccounts(
  server: MyServer,
  options: { skipUsers?: string[] } = {},
): Promise<Record<string, string>> {
  const skip = new Set(options.skipUsers ?? ["root"]);
  const rows = lines(
    await server.sql("SELECT User, Host, is_role FROM mysql.user ORDER BY User, Host"),
  );
  const out: Record<string, string> = {};
  for (const row of rows) {
    const [user, host, isRole] = row.split("\t");
    if (skip.has(user)) continue;
    if (isRole === "Y") {
      out[`'${user}'@''`] = sortColumnLists(
        await server.sql(`SHOW GRANTS FOR ${myLiteral(user)}`),
      );
    } else {
      const account = `${myLiteral(user)}@${myLiteral(host)}`;
      out[`'${user}'@'${host}'`] = sortColumnLists(
        await server.sql(`SHOW CREATE USER ${account}; SHOW GRANTS FOR ${account};`),
      );
    }
  }
  return out;
}

/**
 * Logs in with the mariadb client over TCP to 127.0.0.1 and asks `CURRENT_USER()`; a refused
 * login gives a non-zero code and the server's message on stderr.
 */
export async function mariaLogin(
  server: MyServer,
  user: string,
  password: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await output(`${server.bin}/mariadb`, [
    "--no-defaults",
    "--protocol=TCP",
    "-h",
    "127.0.0.1",
    "-P",
    String(server.port),
    "-u",
    user,
    "-N",
    "-e",
    "SELECT CURRENT_USER()",
  ], { MYSQL_PWD: password });
}
