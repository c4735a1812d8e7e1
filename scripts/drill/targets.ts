/**
 * What the kill drill reads of a restore target, per engine, straight from the server (never
 * through the tool under test): whether it exists, whether it carries the incomplete-restore
 * mark, how many of the dump's tables it holds, whether a session still uses it, and the drill
 * comparison of its rows (tests/helpers/compare.ts).
 *
 * @module
 */
import type { MyServer, PgServer } from "../../tests/harness/servers.ts";
import { myRows, pgRows } from "../../tests/helpers/compare.ts";
import { myExists, pgExists } from "../../tests/helpers/restore_support.ts";
import { MARKER_PREFIX, MARKER_TABLE } from "../../lib/restore/marker.ts";

/** One engine's view of a target. */
export interface DrillEngine {
  /** Instance id in the drill's config: `pg` or `my`. */
  id: "pg" | "my";
  server: PgServer | MyServer;
  /** Where the server writes its log. */
  logFile: string;
  /** absent, marked (incomplete), or unmarked (a database that claims to be whole). */
  state(db: string): Promise<"absent" | "marked" | "unmarked">;
  exists(db: string): Promise<boolean>;
  /** Sessions connected to `db` (the killed restore's, until the server has noticed). */
  sessions(db: string): Promise<number>;
  /** Tables in `db`, the mark's own table not counted. */
  tables(db: string): Promise<number>;
  /** The drill comparison: row count and checksum of every table. */
  rows(db: string): Promise<Record<string, string>>;
  drop(db: string): Promise<void>;
}

/** The PostgreSQL view: the mark is the database comment. */
export function pgDrill(pg: PgServer): DrillEngine {
  return {
    id: "pg",
    server: pg,
    logFile: `${pg.dir}/server.log`,
    exists: (db) => pgExists(pg, db),
    async state(db) {
      const comment = await pg.sql(
        `SELECT coalesce(shobj_description(oid, 'pg_database'), '-') FROM pg_database
          WHERE datname = '${db}'`,
      );
      if (comment === "") return "absent";
      return comment.startsWith(MARKER_PREFIX) ? "marked" : "unmarked";
    },
    sessions: async (db) =>
      Number(await pg.sql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}'`)),
    tables: async (db) =>
      Number(
        await pg.sql(
          `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname !~ '^pg_(toast|temp)'`,
          { database: db },
        ),
      ),
    rows: (db) => pgRows(pg, db),
    drop: (db) => pg.sql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).then(() => {}),
  };
}

/** The MariaDB view: the mark is a table of its own in the target. */
export function myDrill(my: MyServer): DrillEngine {
  return {
    id: "my",
    server: my,
    logFile: `${my.dir}/error.log`,
    exists: (db) => myExists(my, db),
    async state(db) {
      if (!await myExists(my, db)) return "absent";
      const marked = await my.sql(
        `SELECT COUNT(*) FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = '${db}' AND TABLE_NAME = '${MARKER_TABLE}'`,
      );
      return marked === "1" ? "marked" : "unmarked";
    },
    sessions: async (db) =>
      Number(
        await my.sql(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '${db}'`),
      ),
    tables: async (db) =>
      Number(
        await my.sql(
          `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}'
            AND TABLE_NAME <> '${MARKER_TABLE}'`,
        ),
      ),
    rows: (db) => myRows(my, db),
    drop: (db) => my.sql(`DROP DATABASE IF EXISTS ${db}`).then(() => {}),
  };
}

/** The last `n` lines of a server log, for a failure report. */
export async function logTail(engine: DrillEngine, n = 30): Promise<string> {
  try {
    return (await Deno.readTextFile(engine.logFile)).trimEnd().split("\n").slice(-n).join("\n");
  } catch (e) {
    return `(cannot read ${engine.logFile}: ${e instanceof Error ? e.message : e})`;
  }
}
