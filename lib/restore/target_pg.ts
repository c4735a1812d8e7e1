/**
 * The PostgreSQL side of a restore: whether the target exists and which roles are there, the
 * statements that recreate a database with its captured properties, dropping it, and the psql
 * command that loads the dump.
 *
 * @module
 */
import { openPostgres } from "../engines/drivers.ts";
import type { ConnectionParams } from "../config/types.ts";
import type { DatabaseProperties } from "../backup/metadata.ts";
import type { ChildSpec } from "../process.ts";
import { pgConninfo, pgEnv } from "../dump/postgres.ts";
import type { TargetServer } from "./target.ts";

/** Quotes an identifier. */
export function pgIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a string literal (standard_conforming_strings, the default since 9.1). */
export function pgLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

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
  if (props.comment) out.push(`COMMENT ON DATABASE ${db} IS ${pgLiteral(props.comment)}`);
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

/** Opens the PostgreSQL side of a restore. */
export async function pgTarget(
  params: ConnectionParams,
  serverMajor: number,
): Promise<TargetServer> {
  const sql = await openPostgres(params);

  return {
    async missingRoles(names) {
      if (names.length === 0) return [];
      const rows = await sql`select rolname from pg_roles where rolname = any(${names})`;
      const present = new Set(rows.map((r) => r.rolname as string));
      return names.filter((n) => !present.has(n)).sort();
    },
    createStatements(name, props, opts) {
      return pgCreateStatements(name, props ?? {}, { serverMajor, noOwner: opts.noOwner });
    },
    async execute(statements) {
      for (const s of statements) await sql.unsafe(s);
    },
    dropStatement(name) {
      // WITH (FORCE) ends sessions still connected to it (PostgreSQL 13+).
      return `DROP DATABASE IF EXISTS ${pgIdent(name)}${serverMajor >= 13 ? " WITH (FORCE)" : ""}`;
    },
    clientCommand(toolPath, target, opts) {
      // "-f -" (not plain stdin) makes psql prefix errors with "psql:<stdin>:LINE:".
      const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"];
      if (opts.singleTransaction) args.push("--single-transaction");
      args.push(`--dbname=${pgConninfo(params, target)}`);
      const child: ChildSpec = {
        cmd: toolPath,
        args,
        env: pgEnv(params),
        stdin: "piped",
        stdout: "null",
      };
      return Promise.resolve({ child, cleanup: () => Promise.resolve() });
    },
    async close() {
      await sql.end({ timeout: 5 }).catch(() => {});
    },
  };
}
