/**
 * The Prometheus textfile: written by every run (failed and interrupted ones too), accepted by
 * `promtool check metrics`, served by a real prometheus-node-exporter reading its folder, and
 * replaced atomically so that a reader never sees half a file.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { sharedPostgres } from "./harness/servers.ts";
import { runTool, startNodeExporter } from "./harness/alerts.ts";
import { makeTestEnv } from "./helpers/cli.ts";
import { holdLock, startCli, waitDumpBlocked } from "./backup_support.ts";
import { acquireLock } from "../lib/storage/lock.ts";
import { type MetricFamily, renderMetrics, writeMetricsFile } from "../lib/metrics/textfile.ts";

const tag = () => crypto.randomUUID().slice(0, 8);

Deno.test("metrics: promtool accepts the file, node_exporter serves it, failed database 0 and the other 1", async () => {
  const pg = await sharedPostgres();
  const t = tag();
  const ok = `mt_ok_${t}`;
  const bad = `mt_bad_${t}`;
  await pg.sql(`CREATE DATABASE ${ok}; CREATE DATABASE ${bad}`);
  const mark = `vya-backupdb: INCOMPLETE RESTORE, do not use; ` +
    JSON.stringify({ run: "r", started_at: new Date().toISOString(), file: "f", created: true });
  await pg.sql(`COMMENT ON DATABASE ${bad} IS '${mark}'`);
  const e = await makeTestEnv([{
    id: "pg",
    server: pg,
    extra: { databases: { include: [ok, bad] } },
  }]);
  const dir = join(e.dir, "textfile");
  await Deno.mkdir(dir);
  const file = join(dir, "vya_backupdb.prom");
  try {
    await e.writeConfig({ metrics: { textfile: file } });
    const r = await e.run(["backup", "--all"]);
    assertEquals(r.code, 1, r.stderr);
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o644);
    const check = await runTool(
      "promtool",
      ["check", "metrics"],
      undefined,
      await Deno.readTextFile(file),
    );
    assertEquals(check.code, 0, check.stdout + check.stderr);
    const exporter = await startNodeExporter(dir);
    try {
      const scraped = await exporter.scrape();
      assertStringIncludes(scraped, "node_textfile_scrape_error 0");
      const status = (db: string) =>
        new RegExp(
          `^vya_backupdb_last_status\\{database="${db}",instance="pg",kind="database"\\} (\\d)$`,
          "m",
        )
          .exec(scraped)?.[1];
      assertEquals(status(bad), "0");
      assertEquals(status(ok), "1");
      // node_exporter gives every series of a family the same label names: users get database="".
      assertMatch(
        scraped,
        /^vya_backupdb_last_status\{database="",instance="pg",kind="users"\} 1$/m,
      );
      assertMatch(scraped, /^vya_backupdb_last_run_exit_code 1$/m);
      assertMatch(
        scraped,
        new RegExp(`^vya_backupdb_backups_kept\\{database="${ok}",.*\\} 1$`, "m"),
      );
      assertMatch(
        scraped,
        new RegExp(
          `^vya_backupdb_last_success_timestamp_seconds\\{database="${bad}",.*\\} 0$`,
          "m",
        ),
      );
      assertMatch(
        scraped,
        new RegExp(`^vya_backupdb_last_success_size_bytes\\{database="${ok}",.*\\} \\d+$`, "m"),
      );
      assertStringIncludes(scraped, "# TYPE vya_backupdb_last_success_timestamp_seconds gauge");
      // No verify series until backups carry verify results.
      assert(!scraped.includes("vya_backupdb_last_verify_"));
    } finally {
      await exporter.stop();
    }
    // A run stopped as a whole (lock held: exit 4) still writes the file, keeping the series.
    const lock = await acquireLock(e.storage);
    try {
      const locked = await e.run(["backup", "--all"]);
      assertEquals(locked.code, 4, locked.stderr);
    } finally {
      await lock.release();
    }
    const after = await Deno.readTextFile(file);
    assertMatch(after, /^vya_backupdb_last_run_exit_code 4$/m);
    assertMatch(
      after,
      new RegExp(
        `^vya_backupdb_last_status\\{instance="pg",database="${ok}",kind="database"\\} 1$`,
        "m",
      ),
    );
  } finally {
    await e.cleanup();
  }
});

Deno.test("metrics: an interrupted run (SIGTERM) writes the file with exit code 130", async () => {
  const pg = await sharedPostgres();
  const db = `mt_int_${tag()}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  await pg.sql(`CREATE TABLE t (v text); INSERT INTO t VALUES ('x')`, { database: db });
  const e = await makeTestEnv([{ id: "pg", server: pg, extra: { databases: { include: [db] } } }]);
  const file = join(e.dir, "vya_backupdb.prom");
  // The dump waits on this lock until the signal comes: no timing guess.
  const lock = await holdLock(pg, db, "t");
  try {
    await e.writeConfig({ metrics: { textfile: file } });
    const run = startCli(e, ["backup", "--all"]);
    await waitDumpBlocked(pg, pg.user, run);
    run.kill("SIGTERM");
    const r = await run.done;
    assertEquals(r.code, 130, r.stderr);
    const text = await Deno.readTextFile(file);
    assertMatch(text, /^vya_backupdb_last_run_exit_code 130$/m);
    assertEquals((await runTool("promtool", ["check", "metrics"], undefined, text)).code, 0);
  } finally {
    await lock.release();
    await e.cleanup();
  }
});

Deno.test("metrics: the file is replaced atomically, a reader never sees half of it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vya-metrics-" });
  const file = join(dir, "vya_backupdb.prom");
  const families = (n: number): MetricFamily[] => [{
    name: "vya_backupdb_test_bytes",
    help: "test",
    type: "gauge",
    samples: Array.from({ length: 5000 }, (_, i) => ({ labels: { database: `db${i}` }, value: n })),
  }];
  try {
    await writeMetricsFile(file, families(0));
    const expectedLength = renderMetrics(families(0)).length;
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const text = await Deno.readTextFile(file);
        reads++;
        assertEquals(text.length, expectedLength, "a reader saw a partial file");
        assert(text.endsWith(`vya_backupdb_test_bytes{database="db4999"} ${text.at(-2)}\n`));
      }
    })();
    for (let n = 1; n <= 9; n++) await writeMetricsFile(file, families(n));
    stop = true;
    await reader;
    assert(reads > 0);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["vya_backupdb.prom"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
