/**
 * `info` through the CLI against real backups of a real PostgreSQL: fresh is 0; backups aged
 * past alerts.max_age (through the storage layer) are 1; a newer failed attempt is 1 with its
 * error; a configured database or instance never backed up is 2; `--json` has the documented
 * shape; pinned and orphaned files are shown; no secret is printed; and it runs with read access
 * to the config and the storage only.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type PgServer, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, runCli, type TestEnv } from "./helpers/cli.ts";
import { ageBackups, editBackups } from "./helpers/catalog_edit.ts";
import { listCatalog } from "../lib/storage/catalog.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import type { InfoReport } from "../lib/info/info.ts";

const tag = () => crypto.randomUUID().slice(0, 8);
const ENV_READS = "--allow-env=PATH,VYA_CONFIG,VYA_ENV,NO_COLOR,TERM,COLUMNS";

function instances(pg: PgServer, include: string[]) {
  return [{
    id: "pg",
    type: "postgresql",
    host: pg.host,
    port: pg.port,
    credential: "pg",
    databases: { include },
    users: { backup: true },
  }];
}

/** The mark of an unfinished restore: a backup of a database carrying it fails. */
async function markIncomplete(pg: PgServer, db: string): Promise<void> {
  const mark = `vya-backupdb: INCOMPLETE RESTORE, do not use; ` +
    JSON.stringify({
      run: "r1",
      started_at: new Date().toISOString(),
      file: "f.sql",
      created: true,
    });
  await pg.sql(`COMMENT ON DATABASE ${db} IS '${mark}'`);
}

async function info(e: TestEnv, ...args: string[]) {
  const r = await e.run(["info", ...args]);
  assert(!/^\s+at /m.test(r.stderr), `no stack trace:\n${r.stderr}`);
  return r;
}

async function infoJson(e: TestEnv, ...args: string[]) {
  const r = await info(e, "--json", ...args);
  return { code: r.code, report: JSON.parse(r.stdout) as InfoReport & { exit_code: number } };
}

Deno.test("info: fresh 0, stale 1, failed attempt 1 with its error, never backed up 2", async () => {
  const pg = await sharedPostgres();
  const t = tag();
  const [a, b, never] = [`info_a_${t}`, `info_b_${t}`, `info_never_${t}`];
  await pg.sql(`CREATE DATABASE ${a}; CREATE DATABASE ${b}`);
  await pg.sql(`CREATE TABLE t (v text); INSERT INTO t VALUES ('x')`, { database: a });
  const e = await makeTestEnv([{ id: "pg", server: pg }]);
  try {
    await e.writeConfig({ instances: instances(pg, [`info_?_${t}`]) });
    const backup = await e.run(["backup", "--all"]);
    assertEquals(backup.code, 0, backup.stdout + backup.stderr);

    // Fresh: every row fresh, exit 0.
    const fresh = await info(e);
    assertEquals(fresh.code, 0, fresh.stdout + fresh.stderr);
    assertMatch(fresh.stdout, /^3 fresh \(alerts\.max_age 26h\)$/m);
    assertMatch(
      fresh.stdout,
      new RegExp(`^${a} +fresh +\\S+ \\S+ +0m +[\\d.]+ \\S+ +gzip +never +1 `, "m"),
    );
    assertMatch(fresh.stdout, new RegExp(`^${b} +fresh `, "m"));
    assertMatch(fresh.stdout, /^\(users\) +fresh /m);

    // Stale: a's backups 30 h old, beyond the default 26 h.
    assertEquals(await ageBackups(e.storage, "pg", a, 30), 1);
    const stale = await info(e);
    assertEquals(stale.code, 1, stale.stdout);
    assertMatch(stale.stdout, new RegExp(`^${a} +STALE +\\S+ \\S+ +30h `, "m"));
    assertMatch(stale.stdout, new RegExp(`^${b} +fresh `, "m"));

    // Within a longer max_age a is fresh again; then b's newest attempt fails: 1, error shown.
    await e.writeConfig({ instances: instances(pg, [`info_?_${t}`]), alerts: { max_age: "2d" } });
    assertEquals((await info(e)).code, 0);
    await markIncomplete(pg, b);
    const failedRun = await e.run(["backup", "--instance", "pg", "--database", b]);
    assert(failedRun.code !== 0, failedRun.stdout);
    const failed = await info(e);
    assertEquals(failed.code, 1, failed.stdout);
    assertMatch(failed.stdout, new RegExp(`^${b} +FAILED `, "m"));
    assertMatch(
      failed.stdout,
      new RegExp(
        `^  ${b}: last attempt failed \\S+ \\S+: .*mark of a restore that never finished`,
        "m",
      ),
    );
    assertMatch(failed.stdout, new RegExp(`^${a} +fresh `, "m"));

    // A plain include name never backed up: 2, shown as NEVER (the others unchanged).
    await e.writeConfig({
      instances: instances(pg, [`info_?_${t}`, never]),
      alerts: { max_age: "2d" },
    });
    const none = await info(e);
    assertEquals(none.code, 2, none.stdout);
    assertMatch(none.stdout, new RegExp(`^${never} +NEVER +- +- +- +- +never +0 +-$`, "m"));
    // One database asked for: its own code.
    assertEquals((await info(e, "--instance", "pg", "--database", a)).code, 0);
    assertEquals((await info(e, "--instance", "pg", "--database", b)).code, 1);
    assertEquals((await info(e, "--instance", "pg", "--database", never)).code, 2);
    // Usage and configuration errors keep their codes.
    assertEquals((await info(e, "--database", a)).code, 64);
    assertEquals((await info(e, "--instance", "nope")).code, 3);
  } finally {
    await e.cleanup();
  }
});

Deno.test("info: an enabled instance with nothing stored is never backed up (2)", async () => {
  const pg = await sharedPostgres();
  const e = await makeTestEnv([{
    id: "pg",
    server: pg,
    extra: { databases: { include: ["info_nothing_*"] }, users: { backup: false } },
  }]);
  try {
    const r = await info(e);
    assertEquals(r.code, 2, r.stdout + r.stderr);
    assertStringIncludes(r.stdout, "pg (postgresql): NEVER");
    assertStringIncludes(r.stdout, "no database backed up yet");
    const { report } = await infoJson(e);
    assertEquals(report.instances[0].status, "never");
    assertEquals(report.instances[0].items, []);
  } finally {
    await e.cleanup();
  }
});

Deno.test("info --json: documented shape; pinned and orphaned backups; no secret; read-only permissions", async () => {
  const pg = await sharedPostgres();
  const db = `info_j_${tag()}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  const e = await makeTestEnv([{
    id: "pg",
    server: pg,
    extra: { databases: { include: [db] }, users: { backup: false } },
  }]);
  try {
    for (let i = 0; i < 2; i++) {
      const r = await e.run(["backup", "--all"]);
      assertEquals(r.code, 0, r.stdout + r.stderr);
    }
    const storage = new LocalStorage(e.storage);
    const [newest, older] = await listCatalog(storage, {
      hostname: Deno.hostname(),
      instance: "pg",
      database: db,
    });
    // Pin the newest; make the older an orphan (its dump gone, its sidecars left).
    await editBackups(e.storage, "pg", db, (m) => {
      if (m.started_at === newest.metadata!.started_at) {
        m.pinned = true;
        m.verified_at = new Date().toISOString();
        m.verify = { result: "ok", kind: "checksum" };
      }
    });
    await Deno.remove(older.paths.dump!);

    const { code, report } = await infoJson(e);
    assertEquals(code, 0);
    assertEquals(report.exit_code, 0);
    assertEquals(report.format_version, 1);
    assertEquals(Object.keys(report).sort(), [
      "exit_code",
      "format_version",
      "generated_at",
      "hosts",
      "instances",
      "max_age_seconds",
    ]);
    assertEquals(report.max_age_seconds, 26 * 3600);
    assertEquals(report.hosts, [Deno.hostname()]);
    const inst = report.instances[0];
    assertEquals([inst.instance, inst.type, inst.status], ["pg", "postgresql", "fresh"]);
    assertEquals(inst.items.length, 1);
    const item = inst.items[0];
    assertEquals(Object.keys(item).sort(), [
      "database",
      "good_count",
      "kind",
      "newest_failure",
      "newest_good",
      "oldest_good",
      "pinned",
      "problems",
      "status",
    ]);
    assertEquals([item.kind, item.database, item.status, item.good_count], [
      "database",
      db,
      "fresh",
      1,
    ]);
    const g = item.newest_good!;
    assertEquals(g.started_at, newest.started_at.toISOString());
    assertEquals(g.file, newest.paths.dump);
    assertEquals(g.bytes, newest.bytes);
    assertEquals(g.compression, "gzip");
    assert(g.age_seconds >= 0 && g.age_seconds < 600);
    assert(typeof g.raw_bytes === "number" && typeof g.duration_ms === "number");
    assertEquals(g.verify?.result, "ok");
    assertEquals(g.verify?.kind, "checksum");
    assertEquals(item.oldest_good, { started_at: g.started_at, file: g.file });
    assertEquals(item.newest_failure, null);
    assertEquals(item.pinned, [{ started_at: g.started_at, file: g.file }]);
    assertEquals(item.problems.length, 1);
    assertEquals(item.problems[0].state, "orphan");
    assertEquals(item.problems[0].error, "dump file missing");
    assertEquals(item.problems[0].started_at, older.started_at.toISOString());

    // The table says the same, and names neither password.
    const human = await info(e);
    assertEquals(human.code, 0);
    assertMatch(human.stdout, new RegExp(`^${db} +fresh .* ok \\(checksum\\) `, "m"));
    assertMatch(human.stdout, new RegExp(`^  ${db}: pinned \\S+ \\S+  ${newest.paths.dump}$`, "m"));
    assertMatch(human.stdout, new RegExp(`^  ${db}: orphan \\S+ \\S+: dump file missing  `, "m"));
    for (const out of [human.stdout + human.stderr, JSON.stringify(report)]) {
      assert(!out.includes(pg.password), "the server's password is printed");
    }

    // Read access to the config and the storage, and the environment reads of the permission
    // set: no net, no write, no run, no sys (every host folder is read instead).
    const narrow = await runCli(["--config", e.configPath, "info", "--json"], {
      permissions: [`--allow-read=${e.configPath},${e.storage}`, ENV_READS],
    });
    assertEquals(narrow.code, 0, narrow.stderr);
    const narrowReport = JSON.parse(narrow.stdout) as InfoReport;
    assertEquals(
      narrowReport.instances,
      report.instances.map((i) => ({
        ...i,
        items: i.items.map((it) => ({
          ...it,
          newest_good: {
            ...it.newest_good!,
            age_seconds: narrowReport.instances[0].items[0].newest_good!.age_seconds,
          },
        })),
      })),
    );
    // With --config given, read access alone is enough.
    const readOnly = await runCli(["--config", e.configPath, "info"], {
      permissions: [`--allow-read=${e.configPath},${e.storage}`],
    });
    assertEquals(readOnly.code, 0, readOnly.stdout + readOnly.stderr);
    assertMatch(readOnly.stdout, new RegExp(`^${db} +fresh `, "m"));
    // Aged past max_age, the read-only check says so too.
    await ageBackups(e.storage, "pg", db, 27);
    const staleNarrow = await runCli(["--config", e.configPath, "info"], {
      permissions: [`--allow-read=${e.configPath},${e.storage}`, ENV_READS],
    });
    assertEquals(staleNarrow.code, 1, staleNarrow.stdout + staleNarrow.stderr);
    assertMatch(staleNarrow.stdout, new RegExp(`^${db} +STALE `, "m"));
  } finally {
    await e.cleanup();
  }
});
