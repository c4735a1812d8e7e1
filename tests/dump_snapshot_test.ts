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
import { join } from "node:path";
import { makeTestEnv } from "./helpers/cli.ts";
import { metadataOf, readMeta } from "./backup_support.ts";

/** Waits until another session holds `table` ACCESS EXCLUSIVE-locked (up to 5 s). */
async function waitLocked(
  pg: Awaited<ReturnType<typeof sharedPostgres>>,
  db: string,
  table: string,
): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const held = await pg.sql(
      `SELECT count(*) FROM pg_locks WHERE relation = '${table}'::regclass
          AND mode = 'AccessExclusiveLock' AND granted`,
      { database: db },
    );
    if (held === "1") return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Points the test config's instance `pg` at a pg_dump of the test's own (a wrapper script). */
async function useDumpTool(
  env: Awaited<ReturnType<typeof makeTestEnv>>,
  pg: Awaited<ReturnType<typeof sharedPostgres>>,
  pgDump: string,
): Promise<void> {
  await env.writeConfig({
    instances: [{
      id: "pg",
      type: "postgresql",
      host: pg.host,
      port: pg.port,
      credential: "pg",
      tools: { pg_dump: pgDump },
    }],
  });
}

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
    await waitLocked(pg, db, "m_locked");
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

/** The pid of the adapter's session on `db` that matches `where` (waits up to 5 s for it). */
async function sessionPid(
  pg: Awaited<ReturnType<typeof sharedPostgres>>,
  db: string,
  where: string,
): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const pid = await pg.sql(
      `SELECT pid FROM pg_stat_activity WHERE datname = '${db}'
          AND application_name = 'vya-backupdb' AND ${where} LIMIT 1`,
    );
    if (/^\d+$/.test(pid)) return pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no session on ${db} where ${where}`);
}

Deno.test("dump snapshot: its session terminated, idle or in a count: the counts fail with the server's message, end() returns, nothing crashes", async () => {
  // postgres.js writes a statement queued on a closed connection to a dropped socket and that
  // throws outside any caller (an uncaught TypeError ends the process, and this test with it).
  const pg = await sharedPostgres();
  const db = `snap_${crypto.randomUUID().slice(0, 8)}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  await pg.sql(
    `CREATE TABLE a (id int); INSERT INTO a VALUES (1);
     CREATE TABLE m_locked (id int); INSERT INTO m_locked VALUES (1);`,
    { database: db },
  );
  const adapter = await connectPostgres(pg.params);
  let locker: Promise<string> | undefined;
  try {
    // Idle in the transaction, between the export and the counts.
    let release = adapter.hold!(db);
    let snapshot = await adapter.shareSnapshot!(db);
    assert(snapshot, "no snapshot shared");
    const idle = await sessionPid(pg, db, "state LIKE 'idle in transaction%'");
    await pg.sql(`SELECT pg_terminate_backend(${idle})`);
    await new Promise((r) => setTimeout(r, 200));
    const lost = await adapter.tableRows(db).then(() => "counted", (e) => String(e));
    assert(/cannot count rows in snap_/.test(lost), lost);
    await snapshot.end();
    release();
    // The adapter connects again for the next database (or this one).
    assertEquals((await adapter.tableRows(db))["public.a"], { rows: 1, exact: true });

    // Terminated while a count waits for a lock.
    release = adapter.hold!(db);
    snapshot = await adapter.shareSnapshot!(db);
    assert(snapshot, "no snapshot shared");
    locker = pg.sql(
      `BEGIN; LOCK TABLE m_locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;`,
      { database: db },
    );
    await waitLocked(pg, db, "m_locked");
    const counting = adapter.tableRows(db).then(() => "counted", (e) => String(e));
    const waiting = await sessionPid(pg, db, "wait_event_type = 'Lock'");
    await pg.sql(`SELECT pg_terminate_backend(${waiting})`);
    const failed = await counting;
    assert(/cannot count rows in snap_/.test(failed), failed);
    await snapshot.end();
    release();
  } finally {
    await locker?.catch(() => {});
    await adapter.close();
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
  }
});

Deno.test("a dump that cannot import the shared snapshot runs again in its own: the backup is ok, with a warning", async () => {
  // The exporting session ends before pg_dump imports the snapshot: here the server's
  // idle_in_transaction_session_timeout, shorter than the start of a slow pg_dump.
  const pg = await sharedPostgres();
  const db = `snap_${crypto.randomUUID().slice(0, 8)}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  await pg.sql(`CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 42);`, {
    database: db,
  });
  await pg.sql(`ALTER DATABASE ${db} SET idle_in_transaction_session_timeout = '100ms'`);
  const env = await makeTestEnv([{ id: "pg", server: pg }]);
  const slow = join(env.dir, "slowbin", "pg_dump");
  await Deno.mkdir(join(env.dir, "slowbin"));
  await Deno.writeTextFile(slow, `#!/bin/sh\nsleep 0.6\nexec ${pg.bin}/pg_dump "$@"\n`, {
    mode: 0o755,
  });
  await useDumpTool(env, pg, slow);
  try {
    const r = await env.run(["backup", "--instance", "pg", "--database", db]);
    assertEquals(r.code, 0, r.stderr);
    assert(/dumped again in a snapshot of its own/.test(r.stderr), r.stderr);
    const [file] = metadataOf(env, "pg", db);
    const meta = await readMeta(file);
    assertEquals(meta.status, "ok");
    assert(meta.warnings?.some((w) => /invalid snapshot identifier/.test(w)), "no warning");
    assertEquals(meta.tables?.["public.a"], { rows: 42, exact: true });
  } finally {
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
    await Deno.remove(env.dir, { recursive: true });
  }
});

Deno.test("dump snapshot: a table truncated or dropped since the snapshot gets its estimate, never a count of what the dump did not see", async () => {
  // Once pg_dump has exited its locks are gone, and the counts may still be running: TRUNCATE
  // is not MVCC-safe (the old snapshot would count 0 rows), a dropped table cannot be counted.
  const pg = await sharedPostgres();
  const db = `snap_${crypto.randomUUID().slice(0, 8)}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  const adapter = await connectPostgres(pg.params);
  try {
    await pg.sql(
      `CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 7);
       CREATE TABLE b (id int); INSERT INTO b SELECT generate_series(1, 7);
       CREATE TABLE c (id int); INSERT INTO c SELECT generate_series(1, 7);
       CREATE TABLE s1 (id int); INSERT INTO s1 SELECT generate_series(1, 3);
       CREATE TABLE s2 (id int); INSERT INTO s2 SELECT generate_series(1, 100);
       ANALYZE;`,
      { database: db },
    );
    const release = adapter.hold!(db);
    const snapshot = await adapter.shareSnapshot!(db);
    assert(snapshot, "no snapshot shared");
    // Also a "swap" migration: the names trade tables, the dump holds them under the old ones.
    await pg.sql(
      `TRUNCATE b; DROP TABLE c; INSERT INTO a VALUES (8);
       ALTER TABLE s1 RENAME TO s_tmp; ALTER TABLE s2 RENAME TO s1; ALTER TABLE s_tmp RENAME TO s2;`,
      { database: db },
    );
    assertEquals(await adapter.tableRows(db), {
      "public.a": { rows: 7, exact: true },
      "public.b": { rows: 7, exact: false },
      "public.c": { rows: 7, exact: false },
      "public.s1": { rows: 3, exact: false },
      "public.s2": { rows: 100, exact: false },
    });
    await snapshot.end();
    release();
  } finally {
    await adapter.close();
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
  }
});

Deno.test("object counts are taken again in the dump's snapshot: a large object and a table created after the first count are recorded, and verify passes", async () => {
  // The second database of a run is inspected while the first one dumps: what is created in it
  // meanwhile is in its dump, and must be in its metadata (a restore counts it against them).
  const pg = await sharedPostgres();
  const id = crypto.randomUUID().slice(0, 8);
  const [first, second] = [`lo_${id}_first`, `lo_${id}_second`];
  for (const db of [first, second]) {
    await pg.sql(`CREATE DATABASE ${db}`);
    await pg.sql(`CREATE TABLE a (id int); INSERT INTO a VALUES (1);`, { database: db });
  }
  const env = await makeTestEnv([{ id: "pg", server: pg }]);
  const bin = join(env.dir, "pausebin");
  await Deno.mkdir(bin);
  // The first dump to start says which database is the other one, and waits for a go.
  await Deno.writeTextFile(
    join(bin, "pg_dump"),
    `#!/bin/sh
if mkdir ${bin}/first 2>/dev/null; then
  case "$*" in *${first}*) echo ${second} ;; *) echo ${first} ;; esac > ${bin}/other.tmp
  mv ${bin}/other.tmp ${bin}/other
  while [ ! -e ${bin}/go ]; do sleep 0.05; done
fi
exec ${pg.bin}/pg_dump "$@"
`,
    { mode: 0o755 },
  );
  await useDumpTool(env, pg, join(bin, "pg_dump"));
  try {
    const backup = env.run([
      "backup",
      "--instance",
      "pg",
      "--database",
      first,
      "--database",
      second,
    ]);
    let other = "";
    for (let i = 0; i < 200 && !other; i++) {
      other = await Deno.readTextFile(join(bin, "other")).catch(() => "");
      if (!other) await new Promise((r) => setTimeout(r, 50));
    }
    other = other.trim();
    assert(other, "the first dump never started");
    // Its first counts ran as the first dump was taken; let them finish.
    await new Promise((r) => setTimeout(r, 500));
    await pg.sql(`SELECT lo_from_bytea(0, 'blob'); CREATE TABLE b (id int);`, { database: other });
    await Deno.writeTextFile(join(bin, "go"), "");
    const r = await backup;
    assertEquals(r.code, 0, r.stderr);
    const meta = await readMeta(metadataOf(env, "pg", other)[0]);
    assertEquals(meta.objects?.large_objects, 1);
    assertEquals(meta.objects?.tables, 2);
    const verified = await env.run([
      "verify",
      "--restore",
      "--instance",
      "pg",
      "--database",
      other,
    ]);
    assertEquals(verified.code, 0, verified.stdout + verified.stderr);
  } finally {
    for (const db of [first, second]) await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
    await Deno.remove(env.dir, { recursive: true });
  }
});
