/**
 * PostgreSQL adapter over npm:postgres (porsager). One connection at a time (`max: 1`); every
 * option is passed explicitly so the driver's PG* environment fallbacks never decide anything.
 *
 * @module
 */
import { openPostgres, type PgSql } from "./driver.ts";
import { pgIdent, pgLiteral } from "./quote.ts";
import { DumpSnapshot } from "./dump_snapshot.ts";
import { MARKER_PREFIX } from "../../restore/marker.ts";
import type { DatabaseProperties } from "../../storage/metadata.ts";
import type { ConnectionParams } from "../../config/types.ts";
import { VyaError } from "../../errors.ts";
import { redact } from "../../redact.ts";
import { connectError } from "../connect_error.ts";
import {
  type DatabaseInfo,
  type EngineAdapter,
  EXACT_ROWS_MAX_BYTES,
  type ListOptions,
  MissingDatabaseError,
  type ObjectCounts,
  type ServerVersion,
  type TableRows,
} from "../types.ts";

type Sql = PgSql;

/** The database every PostgreSQL server has; the adapter's home connection goes there. */
const HOME_DATABASE = "postgres";

const open = openPostgres;

/** How the connections of #on (per-database catalog queries and row counts) are opened. */
const PER_DATABASE = { arrayTypes: false } as const;

/**
 * Opens a connection and proves it works, so bad credentials fail here, not on first use.
 * `arrayTypes: false` for the per-database connections, whose catalog queries use no array:
 * a backup opens one per database, and the type query took a quarter of each one's opening.
 */
async function openChecked(
  params: ConnectionParams,
  database: string,
  options: { arrayTypes?: boolean } = {},
): Promise<Sql> {
  const sql = await open(params, database, options);
  try {
    await sql`select 1`;
    return sql;
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {});
    if ((error as { code?: string }).code === "3D000") {
      throw new MissingDatabaseError(
        `database ${database} does not exist on ${params.host}:${params.port}`,
      );
    }
    throw connectError(error, params);
  }
}

/** Parses `server_version_num` (e.g. 150018, or 90624 before PostgreSQL 10). */
export function parsePgVersion(full: string, num: number): ServerVersion {
  // Before 10 the major had two parts (9.6 = 90600); major 9, minor 6 then.
  const major = Math.floor(num / 10000);
  const minor = num >= 100000 ? num % 10000 : Math.floor(num / 100) % 100;
  return { full, major, minor, flavor: "postgresql" };
}

function queryError(error: unknown, what: string): VyaError {
  const message = redact(error instanceof Error ? error.message : String(error));
  return new VyaError(`${what}: ${message}`, "unreachable", { cause: error });
}

/** A held database's connection (see PostgresAdapter.hold). */
interface HeldConnection {
  /** Opened on first use. */
  sql?: Promise<Sql>;
  holders: number;
  /** The snapshot shared with the database's dump, while it is open (see shareSnapshot). */
  snapshot?: DumpSnapshot;
}

class PostgresAdapter implements EngineAdapter {
  readonly engine = "postgresql" as const;
  #sql: Sql;
  #params: ConnectionParams;
  #version?: ServerVersion;
  #closed = false;
  /** Connections of held databases (see hold), opened on first use. */
  #held = new Map<string, HeldConnection>();
  /** Held connections being closed; close() waits for them. */
  #closing = new Set<Promise<void>>();

  constructor(sql: Sql, params: ConnectionParams) {
    this.#sql = sql;
    this.#params = params;
  }

  async serverVersion(): Promise<ServerVersion> {
    if (this.#version) return this.#version;
    try {
      const [row] = await this.#sql`
        select current_setting('server_version') as full,
               current_setting('server_version_num')::int as num`;
      this.#version = parsePgVersion(row.full, row.num);
      return this.#version;
    } catch (error) {
      throw queryError(error, "cannot read the server version");
    }
  }

  async listDatabases(options: ListOptions = {}): Promise<DatabaseInfo[]> {
    // As JSON text (a jsonb parameter would be encoded once more by the driver), not an array:
    // the names need no array type on the connection.
    const only = options.sizeOf ? JSON.stringify(options.sizeOf) : null;
    try {
      // pg_database_size needs CONNECT on the database (or pg_read_all_stats): report 0 rather
      // than fail the whole listing when the backup account lacks it.
      const rows = await this.#sql`
        select datname as name,
               case when has_database_privilege(oid, 'CONNECT')
                     and (${only}::text is null or (${only}::text)::jsonb ? datname)
                    then pg_database_size(oid) else 0 end::text as size
          from pg_database
         where not datistemplate`;
      return rows
        .map((r) => ({ name: r.name as string, sizeBytes: Number(r.size) }))
        .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    } catch (error) {
      throw queryError(error, "cannot list databases");
    }
  }

  async databaseProperties(database: string): Promise<DatabaseProperties> {
    try {
      // to_jsonb(d) rather than named columns: the locale columns differ across majors
      // (daticulocale until 16, datlocale from 17).
      const [row] = await this.#sql`
        select to_jsonb(d) as d, pg_get_userbyid(d.datdba) as owner,
               pg_encoding_to_char(d.encoding) as encoding,
               shobj_description(d.oid, 'pg_database') as comment
          from pg_database d where d.datname = ${database}`;
      if (!row) throw new Error(`database "${database}" does not exist`);
      const d = row.d as Record<string, unknown>;
      const grants = await this.#sql`
        select case a.grantee when 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end as grantee,
               a.privilege_type as privilege, a.is_grantable as grantable
          from pg_database d, aclexplode(d.datacl) a
         where d.datname = ${database} order by 1, 2`;
      const settings = await this.#sql`
        select pg_get_userbyid(nullif(s.setrole, 0)) as role, unnest(s.setconfig) as setting
          from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase
         where d.datname = ${database} order by 1 nulls first, 2`;
      const provider = { c: "libc", i: "icu", b: "builtin" }[String(d.datlocprovider ?? "c")];
      return {
        owner: row.owner,
        encoding: row.encoding,
        collate: String(d.datcollate ?? ""),
        ctype: String(d.datctype ?? ""),
        locale_provider: provider ?? "libc",
        icu_locale: (d.datlocale ?? d.daticulocale ?? null) as string | null,
        connection_limit: Number(d.datconnlimit ?? -1),
        comment: row.comment ?? null,
        grants: grants.map((g) => ({
          grantee: g.grantee as string,
          privilege: g.privilege as string,
          grantable: g.grantable as boolean,
        })),
        settings: settings.map((s) => ({
          role: (s.role ?? null) as string | null,
          setting: s.setting as string,
        })),
      };
    } catch (error) {
      throw queryError(error, `cannot read the properties of database "${database}"`);
    }
  }

  async restoreMark(database: string): Promise<string | undefined> {
    const [row] = await this.#sql`
      select shobj_description(oid, 'pg_database') as comment
        from pg_database where datname = ${database}`;
    const comment = row?.comment as string | null | undefined;
    return comment?.startsWith(MARKER_PREFIX) ? comment : undefined;
  }

  hold(database: string): () => void {
    const entry = this.#held.get(database) ?? { holders: 0 };
    entry.holders++;
    this.#held.set(database, entry);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--entry.holders > 0) return;
      this.#held.delete(database);
      this.#endLater(entry);
    };
  }

  /**
   * Ends a held connection in the background (the next database need not wait), its shared
   * snapshot's transaction told to end first so the driver's end does not wait it out.
   */
  #endLater(entry: HeldConnection): void {
    const { sql, snapshot } = entry;
    entry.snapshot = undefined;
    snapshot?.end().catch(() => {});
    if (!sql) return;
    const done = sql.then((s) => s.end({ timeout: 5 }), () => {}).catch(() => {})
      .finally(() => this.#closing.delete(done));
    this.#closing.add(done);
  }

  /**
   * A connection to `database` and how to give it back: the held one (kept open), or a fresh
   * one ended on release.
   */
  async #on(database: string): Promise<{ sql: Sql; done(): Promise<void> }> {
    const entry = this.#held.get(database);
    if (!entry) {
      const sql = await openChecked(this.#params, database, PER_DATABASE);
      return { sql, done: () => sql.end({ timeout: 5 }).catch(() => {}) };
    }
    entry.sql ??= openChecked(this.#params, database, PER_DATABASE);
    const pending = entry.sql;
    // A failed open is not kept: the next query tries again (and reports its own error).
    const sql = await pending.catch((e) => {
      if (entry.sql === pending) entry.sql = undefined;
      throw e;
    });
    return { sql, done: () => Promise.resolve() };
  }

  /** Runs `query` on a connection to `database` (see #on) and gives the connection back. */
  async #with<T>(database: string, query: (sql: Sql) => Promise<T>): Promise<T> {
    const { sql, done } = await this.#on(database);
    try {
      return await query(sql);
    } finally {
      await done();
    }
  }

  async restoreWarning(database: string): Promise<string | undefined> {
    const { sql, done } = await this.#on(database);
    try {
      // Every relation a restore creates (tables, their TOAST tables and indexes, sequences,
      // views) holds a lock until a one-transaction restore commits.
      const [row] = await sql`
        select
          (select count(*) + 2 * count(*) filter (where c.reltoastrelid <> 0)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
              and n.nspname !~ '^pg_(toast_)?temp_')::int as relations,
          current_setting('max_locks_per_transaction')::int as per_tx,
          current_setting('max_connections')::int +
            current_setting('max_prepared_transactions')::int as slots`;
      const capacity = row.per_tx * row.slots;
      if (row.relations <= capacity) return undefined;
      return `${database} has ${row.relations} relations; a restore in one transaction locks ` +
        `each of them, and a server set up like this one locks at most ${capacity} ` +
        `(max_locks_per_transaction ${row.per_tx} × ${row.slots} connection slots): restore it ` +
        `with --no-single-transaction, or raise max_locks_per_transaction on the target to at ` +
        `least ${Math.ceil(row.relations / row.slots)}`;
    } catch (e) {
      throw queryError(e, `checking the relations of ${database}`);
    } finally {
      await done();
    }
  }

  async objectCounts(database: string): Promise<ObjectCounts> {
    const snapshot = this.#held.get(database)?.snapshot;
    // A connection's own errors (a missing database, a refused login) pass as they are.
    const failed = (error: unknown): never => {
      throw queryError(error, `cannot count objects in ${database}`);
    };
    // In the dump's snapshot while one is shared: the counts are then the dump's own objects.
    // In the snapshot it runs before the row counts: it must not keep them waiting long.
    const rows = snapshot
      ? await snapshot.isolated(async (q) => {
        await q.unsafe("set lock_timeout = '3s'");
        await q.unsafe("set statement_timeout = '30s'");
        return await q.unsafe(OBJECT_COUNTS);
      }).catch(failed)
      : await this.#with(database, (sql) => sql.unsafe(OBJECT_COUNTS).catch(failed));
    const row = rows[0];
    return {
      tables: row.tables,
      views: row.views,
      routines: row.routines,
      triggers: row.triggers,
      sequences: row.sequences,
      large_objects: row.large_objects,
    };
  }

  async tableRows(
    database: string,
    options: { exactMaxBytes?: number } = {},
  ): Promise<Record<string, TableRows>> {
    const limit = options.exactMaxBytes ?? EXACT_ROWS_MAX_BYTES;
    const snapshot = this.#held.get(database)?.snapshot;
    try {
      // In the dump's snapshot while one is shared: the counts are then the dump's own rows.
      if (snapshot) return await countTables((query) => snapshot.isolated(query), limit);
      return await this.#with(database, (sql) => countTables((query) => query(sql), limit));
    } catch (error) {
      throw queryError(error, `cannot count rows in ${database}`);
    }
  }

  async shareSnapshot(
    database: string,
  ): Promise<{ id: string; end(): Promise<void> } | undefined> {
    const entry = this.#held.get(database);
    if (!entry) return undefined;
    const { sql } = await this.#on(database);
    const snapshot = await DumpSnapshot.open(sql);
    if (!snapshot) return undefined;
    entry.snapshot = snapshot;
    const end = async () => {
      if (entry.snapshot === snapshot) entry.snapshot = undefined;
      await snapshot.end();
    };
    return { id: snapshot.id, end };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#held.values()) this.#endLater(entry);
    this.#held.clear();
    await Promise.all([this.#sql.end({ timeout: 5 }).catch(() => {}), ...this.#closing]);
  }
}

/**
 * The user objects of a database: system schemas and extension members are left out, as a dump
 * of the database would recreate them through CREATE EXTENSION.
 */
const OBJECT_COUNTS = `
  with user_ns as (
    select oid from pg_namespace
     where nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
       and nspname !~ '^pg_(toast_)?temp_'
  ), ext as (
    select objid, classid from pg_depend where deptype = 'e'
  )
  select
    (select count(*) from pg_class c where c.relnamespace in (select oid from user_ns)
        and c.relkind in ('r', 'p')
        and c.oid not in (select objid from ext where classid = 'pg_class'::regclass))::int
      as tables,
    (select count(*) from pg_class c where c.relnamespace in (select oid from user_ns)
        and c.relkind in ('v', 'm')
        and c.oid not in (select objid from ext where classid = 'pg_class'::regclass))::int
      as views,
    (select count(*) from pg_class c where c.relnamespace in (select oid from user_ns)
        and c.relkind = 'S'
        and c.oid not in (select objid from ext where classid = 'pg_class'::regclass))::int
      as sequences,
    (select count(*) from pg_proc p where p.pronamespace in (select oid from user_ns)
        and p.prokind in ('f', 'p')
        and p.oid not in (select objid from ext where classid = 'pg_proc'::regclass))::int
      as routines,
    (select count(*) from pg_trigger t join pg_class c on c.oid = t.tgrelid
      where not t.tgisinternal and c.relnamespace in (select oid from user_ns))::int
      as triggers,
    (select count(*) from pg_largeobject_metadata)::int as large_objects`;

/** What countTables queries through: the plain connection, or the dump's snapshot. */
type Queryable = Pick<Sql, "unsafe">;

/**
 * Rows of every table (see EngineAdapter.tableRows), each query run through `run`. Counting
 * must never hold up the backup behind another session's lock: each query sets its own lock
 * timeout, since a snapshot's savepoints roll a setting back with the query.
 */
async function countTables(
  run: <T>(query: (q: Queryable) => Promise<T>) => Promise<T>,
  limit: number,
): Promise<Record<string, TableRows>> {
  const guarded = <T>(text: string) =>
    run(async (q) => {
      await q.unsafe("set lock_timeout = '3s'");
      // A backup stops waiting for its counts after a minute; the server must stop too (a table
      // never analyzed has no estimate and is counted whatever its size). A verification counts
      // every row of the restored copy, however long it takes.
      if (limit !== Infinity) await q.unsafe("set statement_timeout = '30s'");
      return await q.unsafe(text) as T;
    });
  // Tables that hold rows: ordinary ones and partitions (a partitioned parent holds none of its
  // own), outside system schemas and extensions, as objectCounts sees them. Their sizes are read
  // table by table below: pg_table_size locks the table, and one locked table must cost only
  // its own count.
  const tables = await guarded<
    { oid: number; schema: string; name: string; estimate: number; filenode: number }[]
  >(`
    select c.oid::int8::float8 as oid, n.nspname as schema, c.relname as name,
           c.reltuples::float8 as estimate, c.relfilenode::int8::float8 as filenode
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind = 'r'
       and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
       and n.nspname !~ '^pg_(toast_)?temp_'
       and c.oid not in (select objid from pg_depend
                          where deptype = 'e' and classid = 'pg_class'::regclass)
     order by 2, 3`);
  const out: Record<string, TableRows> = {};
  for (const t of tables) {
    const key = `${t.schema}.${t.name}`;
    const estimate = t.estimate >= 0 ? { rows: Math.round(t.estimate), exact: false } : undefined;
    // reltuples is -1 for a table never vacuumed or analyzed: no estimate, so it is counted.
    // Otherwise only up to the limit: no row comes back for a bigger table, which is not scanned.
    const small = t.estimate < 0 || limit === Infinity
      ? ""
      : ` where pg_table_size(${t.oid}::oid) <= ${limit}`;
    // Quoted here: postgres.js's sql(name) splits identifiers on dots. The file node and the
    // name's oid are read once the count holds its lock: a table rewritten since the snapshot
    // (TRUNCATE, VACUUM FULL, a rewriting ALTER, once pg_dump no longer holds its lock) reads as
    // empty in it, and a table renamed into the name (a "swap" migration) is another table.
    const name = `${pgIdent(t.schema)}.${pgIdent(t.name)}`;
    const rows = await guarded<{ n: number; filenode: number; oid: number }[]>(
      `select (select count(*) from ${name})::float8 as n,` +
        ` pg_relation_filenode(${t.oid}::oid)::int8::float8 as filenode,` +
        ` ${pgLiteral(name)}::regclass::oid::int8::float8 as oid` + small,
    ).catch((e) => {
      // Locked by another session (never waited for), dropped since the listing (the dump holds
      // what it had) or cancelled by the statement timeout: that table gets its estimate.
      if (["55P03", "42P01", "57014"].includes((e as { code?: string }).code ?? "")) return [];
      throw e;
    });
    if (rows.length && rows[0].filenode === t.filenode && rows[0].oid === t.oid) {
      out[key] = { rows: rows[0].n, exact: true };
    } else if (estimate) out[key] = estimate;
  }
  return out;
}

/**
 * Connects to a PostgreSQL server (database `postgres`, or `template1` where `postgres` was
 * dropped) and checks the login.
 */
export async function connectPostgres(params: ConnectionParams): Promise<EngineAdapter> {
  let sql: Sql;
  try {
    sql = await openChecked(params, HOME_DATABASE);
  } catch (error) {
    if (!(error instanceof MissingDatabaseError)) throw error;
    sql = await openChecked(params, "template1");
  }
  return new PostgresAdapter(sql, params);
}
