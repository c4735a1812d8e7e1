/**
 * The snapshot a PostgreSQL backup shares between pg_dump and its row counts
 * (EngineAdapter.shareSnapshot), against a real server: counts read the snapshot, not later
 * writes; a table locked by another session gets its estimate after the lock timeout, and the
 * snapshot survives that failed count (the tables after it are still counted in it, and another
 * session can still import it, as pg_dump does); after its end the counts see the present.
 */
import { assert, assertEquals } from "./harness/assert.ts";
import { sharedPostgres } from "./harness/servers.ts";
import { connectPostgres } from "../lib/engines/postgres/adapter.ts";

Deno.test("dump snapshot: counts in it ignore later writes, survive a lock timeout, and it stays importable until its end", async () => {
  const pg = await sharedPostgres();
  const db = `snap_${crypto.randomUUID().slice(0, 8)}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  const adapter = await connectPostgres(pg.params);
  let locker: Promise<string> | undefined;
  try {
    await pg.sql(
      `CREATE TABLE a (id int); INSERT INTO a VALUES (1), (2);
       CREATE TABLE m_locked (id int); INSERT INTO m_locked VALUES (1); ANALYZE m_locked;
       CREATE TABLE z (id int); INSERT INTO z VALUES (1);`,
      { database: db },
    );
    const release = adapter.hold!(db);
    const snapshot = await adapter.shareSnapshot!(db);
    assert(snapshot, "no snapshot shared");
    await pg.sql(`INSERT INTO a VALUES (3), (4), (5); INSERT INTO z VALUES (2);`, {
      database: db,
    });
    locker = pg.sql(
      `BEGIN; LOCK TABLE m_locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;`,
      { database: db },
    );
    for (let i = 0; i < 100; i++) {
      const held = await pg.sql(
        `SELECT count(*) FROM pg_locks WHERE relation = 'm_locked'::regclass
            AND mode = 'AccessExclusiveLock' AND granted`,
        { database: db },
      );
      if (held === "1") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const inSnapshot = await adapter.tableRows(db);
    assertEquals(inSnapshot, {
      "public.a": { rows: 2, exact: true },
      "public.m_locked": { rows: 1, exact: false },
      "public.z": { rows: 1, exact: true },
    });
    // pg_dump imports the snapshot this way; a failed count must not have ended it.
    const imported = await pg.sql(
      `BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '${snapshot.id}';
       SELECT count(*) FROM a; COMMIT;`,
      { database: db },
    );
    assertEquals(imported.split("\n").filter((l) => /^\d+$/.test(l)), ["2"]);
    await snapshot.end();
    await locker;
    const now = await adapter.tableRows(db);
    assertEquals(now["public.a"], { rows: 5, exact: true });
    assertEquals(now["public.z"], { rows: 2, exact: true });
    release();
  } finally {
    await locker?.catch(() => {});
    await adapter.close();
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
  }
});
