/**
 * The PostgreSQL side of a restore: whether the target exists and which roles are there, the
 * statements that recreate a database with its captured properties, dropping it, and the psql
 * command that loads the dump.
 *
 * @module
 */
import { openPostgres, type PgSql } from "./driver.ts";
import type { ConnectionParams } from "../../config/types.ts";
import type { DatabaseProperties } from "../../storage/metadata.ts";
import type { ChildSpec } from "../../process.ts";
import { pgConninfo, pgEnv } from "./dump.ts";
import { pgIdent, pgLiteral } from "./quote.ts";
import { lockKey, type TargetServer } from "../../restore/target.ts";
import { markerText, parseMarker } from "../../restore/marker.ts";
import { RestoreRefusedError } from "../../restore/errors.ts";

// NAMEDATALEN - 1: a longer name is cut to this many bytes by the server, without an error.
const PG_NAME_BYTES = 63;

// Settings whose value is a list written as is (pg_dumpall does the same).
const LIST_SETTINGS = new Set([
  "search_path",
  "temp_tablespaces",
  "session_preload_libraries",
  "shared_preload_libraries",
  "local_preload_libraries",
  "unix_socket_directories",
]);

function settingClause(setting: string): string {
  const eq = setting.indexOf("=");
  const name = setting.slice(0, eq);
  const value = setting.slice(eq + 1);
  if (LIST_SETTINGS.has(name.toLowerCase())) return `SET ${name} = ${value === "" ? "''" : value}`;
  return `SET ${pgIdent(name)} = ${pgLiteral(value)}`;
}

function isPublic(grantee: string): boolean {
  return grantee === "" || grantee.toUpperCase() === "PUBLIC";
}

/** Options of {@linkcode pgCreateStatements}. */
export interface PgCreateOptions {
  /** Server major version (LOCALE_PROVIDER exists from 15). */
  serverMajor: number;
  /** Skip ownership: the database belongs to the connecting user. */
  noOwner?: boolean;
}

/** The statements that create `name` with the captured properties, in order. */
export function pgCreateStatements(
  name: string,
  props: DatabaseProperties,
  options: PgCreateOptions,
): string[] {
  const db = pgIdent(name);
  const create = [`CREATE DATABASE ${db} WITH TEMPLATE = template0`];
  if (props.encoding) create.push(`ENCODING = ${pgLiteral(props.encoding)}`);
  const provider = props.locale_provider;
  if (provider && (options.serverMajor >= 15 || provider !== "libc")) {
    create.push(`LOCALE_PROVIDER = ${pgIdent(provider)}`);
  }
  if (props.collate) create.push(`LC_COLLATE = ${pgLiteral(props.collate)}`);
  if (props.ctype) create.push(`LC_CTYPE = ${pgLiteral(props.ctype)}`);
  if (props.icu_locale) create.push(`ICU_LOCALE = ${pgLiteral(props.icu_locale)}`);
  if (props.owner && !options.noOwner) create.push(`OWNER = ${pgIdent(props.owner)}`);
  if (props.connection_limit !== undefined && props.connection_limit !== -1) {
    create.push(`CONNECTION LIMIT = ${Math.trunc(props.connection_limit)}`);
  }
  const out = [create.join(" ")];
  // No COMMENT: the restore's mark is the comment until the load has gone through, and the
  // captured comment replaces it then (TargetServer.unmarkStatements).
  const grants = (props.grants ?? []).filter((g) =>
    !(options.noOwner && props.owner && g.grantee === props.owner)
  );
  if (props.grants && props.grants.length > 0) {
    // An explicit ACL replaces the defaults: PUBLIC keeps only what it was granted.
    out.push(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    for (const g of grants) {
      const to = isPublic(g.grantee) ? "PUBLIC" : pgIdent(g.grantee);
      out.push(
        `GRANT ${g.privilege} ON DATABASE ${db} TO ${to}${g.grantable ? " WITH GRANT OPTION" : ""}`,
      );
    }
  }
  for (const s of props.settings ?? []) {
    if (!s.setting.includes("=")) continue;
    out.push(
      s.role === null
        ? `ALTER DATABASE ${db} ${settingClause(s.setting)}`
        : `ALTER ROLE ${pgIdent(s.role)} IN DATABASE ${db} ${settingClause(s.setting)}`,
    );
  }
  return out;
}

/** The roles a database's properties name (owner, grantees, per-role settings). */
export function pgPropertyRoles(props: DatabaseProperties, noOwner: boolean): string[] {
  const roles = new Set<string>();
  if (props.owner && !noOwner) roles.add(props.owner);
  for (const g of props.grants ?? []) {
    if (isPublic(g.grantee) || (noOwner && g.grantee === props.owner)) continue;
    roles.add(g.grantee);
  }
  for (const s of props.settings ?? []) if (s.role) roles.add(s.role);
  return [...roles];
}

/** Why `name` cannot be a PostgreSQL database name as given, if it cannot. */
function pgNameProblem(name: string): string | undefined {
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > PG_NAME_BYTES) {
    return `database name "${name}" is ${bytes} bytes long; PostgreSQL keeps only the ` +
      `first ${PG_NAME_BYTES} bytes of a name, so it would name another database`;
  }
  if (name.includes("\0")) return `database name "${name}" holds a NUL character`;
  return undefined;
}

/** psql loading a dump into `target` from stdin. */
function psqlCommand(
  params: ConnectionParams,
  toolPath: string,
  target: string,
): { child: ChildSpec; cleanup: () => Promise<void> } {
  // "-f -" (not plain stdin) makes psql prefix errors with "psql:<stdin>:LINE:". No
  // --single-transaction: psql would COMMIT at the end of its input, also when that input
  // ends early because this run was killed. The restore sends BEGIN and COMMIT itself.
  const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"];
  args.push(`--dbname=${pgConninfo(params, target)}`);
  const child: ChildSpec = {
    cmd: toolPath,
    args,
    env: pgEnv(params),
    stdin: "piped",
    stdout: "null",
  };
  return { child, cleanup: () => Promise.resolve() };
}

/** Opens the PostgreSQL side of a restore. */
export async function pgTarget(
  params: ConnectionParams,
  serverMajor: number,
): Promise<TargetServer> {
  const sql = await openPostgres(params);
  const comment = async (name: string): Promise<string | undefined> => {
    const [row] = await sql`
      select shobj_description(oid, 'pg_database') as comment
        from pg_database where datname = ${name}`;
    return row?.comment ?? undefined;
  };

  return {
    transactional: true,
    nameProblem: pgNameProblem,
    async lockTarget(name) {
      // Advisory locks live as long as the session: a killed run leaves none behind.
      const key = await lockKey(`vya-backupdb restore ${name}`);
      // This session holds the lock for the whole load, mostly idle: a server-side idle limit
      // must not end it (and the lock with it).
      if (serverMajor >= 14) await sql`select set_config('idle_session_timeout', '0', false)`;
      const [row] = await sql`
        select pg_try_advisory_lock(('x' || ${key.slice(0, 16)})::bit(64)::bigint) as ok`;
      return row.ok === true;
    },
    async readMarker(name) {
      return parseMarker(await comment(name));
    },
    markStatements(name, marker) {
      return [`COMMENT ON DATABASE ${pgIdent(name)} IS ${pgLiteral(markerText(marker))}`];
    },
    unmarkStatements(name, comment) {
      return [
        `COMMENT ON DATABASE ${pgIdent(name)} IS ${
          comment === undefined ? "NULL" : pgLiteral(comment)
        }`,
      ];
    },
    comment,
    async missingRoles(names) {
      if (names.length === 0) return [];
      const rows = await sql`select rolname from pg_roles where rolname = any(${names})`;
      const present = new Set(rows.map((r) => r.rolname as string));
      return names.filter((n) => !present.has(n)).sort();
    },
    missingDefiners: () => Promise.resolve([]),
    async lockCapacity() {
      const [row] = await sql`
        select current_setting('max_locks_per_transaction')::int *
               (current_setting('max_connections')::int +
                current_setting('max_prepared_transactions')::int) as capacity`;
      return Number(row.capacity);
    },
    async busy(name) {
      const [row] = await sql`
        select count(*)::int as n from pg_stat_activity
         where datname = ${name} and state = 'active' and pid <> pg_backend_pid()`;
      return Number(row.n) > 0;
    },
    freeConnections: () => pgFreeConnections(sql),
    async sessionsUsing(name) {
      const [row] = await sql`
        select count(*)::int as n from pg_stat_activity
         where datname = ${name} and pid <> pg_backend_pid()`;
      return Number(row.n);
    },
    dropEffect(sessions) {
      return sessions === 0
        ? "no session is connected to it"
        : `the ${sessions} session(s) connected to it are terminated (DROP DATABASE … WITH (FORCE))`;
    },
    createStatements(name, props, opts) {
      return pgCreateStatements(name, props ?? {}, { serverMajor, noOwner: opts.noOwner });
    },
    async execute(statements) {
      for (const s of statements) await sql.unsafe(s);
    },
    async drop(name) {
      // WITH (FORCE) ends sessions still connected to it (PostgreSQL 13+).
      await sql.unsafe(
        `DROP DATABASE IF EXISTS ${pgIdent(name)}${serverMajor >= 13 ? " WITH (FORCE)" : ""}`,
      ).catch((e) => {
        throw new RestoreRefusedError(`could not drop database ${name}: ${e?.message ?? e}`);
      });
    },
    clientCommand: (toolPath, target) => Promise.resolve(psqlCommand(params, toolPath, target)),
    async close() {
      await sql.end({ timeout: 5 }).catch(() => {});
    },
  };
}

/** Connections this login may still open: max_connections less those in use and reserved. */
async function pgFreeConnections(sql: PgSql): Promise<{ free: number; limit: string }> {
  // Superusers may use the reserved slots; others are also bound by their role's limit.
  const [row] = await sql`
    with me as (select rolsuper, rolconnlimit from pg_roles where rolname = current_user),
         used as (select count(*)::int as n,
                         count(*) filter (where usename = current_user)::int as mine
                    from pg_stat_activity where backend_type = 'client backend')
    select current_setting('max_connections')::int - used.n -
           case when me.rolsuper then 0
                else current_setting('superuser_reserved_connections')::int +
                     coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::int
           end as free,
           case when me.rolsuper or me.rolconnlimit < 0 then null
                else me.rolconnlimit - used.mine end as role_free
      from me, used`;
  const free = Number(row.free);
  if (row.role_free !== null && Number(row.role_free) < free) {
    return { free: Number(row.role_free), limit: "the login role's CONNECTION LIMIT" };
  }
  return { free, limit: "max_connections" };
}
