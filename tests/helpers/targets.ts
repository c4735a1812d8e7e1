/**
 * What the restore tests and the kill drill read of a restore target, per engine, straight from
 * the server (never through the tool under test): whether it exists, whether it carries the
 * incomplete-restore mark, how many of the dump's tables it holds, whether a session still uses
 * it, and the drill comparison of its rows.
 *
 * @module
 */
import type { MyServer, PgServer } from "../harness/servers.ts";
import { myRows, pgRows } from "./compare.ts";
import { myExists, pgExists } from "./restore_support.ts";
import { MARKER_PREFIX, MARKER_TABLE } from "../../lib/restore/marker.ts";

/** One engine's view of a restore target, read from the server. */
export interface TargetView {
  /** Instance id in the test configs: `pg` or `my`. */
  id: "pg" | "my";
  server: PgServer | MyServer;
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
export function pgTargetView(pg: PgServer): TargetView {
  return {
    id: "pg",
    server: pg,
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
export function myTargetView(my: MyServer): TargetView {
  return {
    id: "my",
    server: my,
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
