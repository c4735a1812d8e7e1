/**
 * `prune`, `pin`/`unpin` and `prune: after_backup` through the CLI against a real PostgreSQL:
 * real backups, then months of earlier ones written through the storage layer (copies of the
 * real dump whose metadata carries past `started_at`), pruned to exactly what applyRetention
 * says for the same dates; leftovers, foreign files and a SIGKILL mid-prune.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { join } from "node:path";
import { type PgServer, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { backupNow } from "./helpers/restore_support.ts";
import { HOST, listFiles, startCli } from "./backup_support.ts";
import { acquireLock } from "../lib/storage/lock.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { databaseBackupKeys, stamp } from "../lib/storage/layout.ts";
import { type BackupMetadata, writeMetadata } from "../lib/storage/metadata.ts";
import { createBackupWriter } from "../lib/storage/writer.ts";
import { listCatalog } from "../lib/storage/catalog.ts";
import { applyRetention, type RetentionPolicy } from "../lib/storage/retention.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const DAY = 86_400_000;

const POLICY = {
  keep_daily: 5,
  keep_weekly: 3,
  keep_monthly: 3,
  timezone: "UTC",
  prune: "manual",
};
const FULL_POLICY: RetentionPolicy = {
  keep_last: 0,
  keep_daily: 5,
  keep_weekly: 3,
  keep_monthly: 3,
  keep_yearly: 0,
  keep_within: 0,
  min_keep: 1,
  timezone: "UTC",
};

async function setUp(pg: PgServer, dbs: Record<string, number>): Promise<TestEnv> {
  for (const [db, rows] of Object.entries(dbs)) {
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
    await pg.sql(`CREATE DATABASE ${db}`);
    await pg.sql(
      `CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, ${rows})`,
      { database: db },
    );
  }
  const env = await makeTestEnv([{
    id: "pg",
    server: pg,
    extra: { databases: { include: Object.keys(dbs) }, users: { backup: false } },
  }]);
  await env.writeConfig({ retention: POLICY });
  return env;
}

/** Copies a real backup to `at`: same dump bytes, metadata with the past times. */
async function seed(
  env: TestEnv,
  source: { dump: string; metadata: string },
  db: string,
  at: Date,
) {
  const storage = new LocalStorage(env.storage);
  const meta = JSON.parse(await Deno.readTextFile(source.metadata)) as BackupMetadata;
  const keys = databaseBackupKeys(HOST, "pg", db, at, "gzip");
  const writer = await createBackupWriter(storage, keys);
  const w = writer.writable.getWriter();
  await w.write(await Deno.readFile(source.dump));
  await w.close();
  await writer.commit(meta.file!.sha256, async () => {
    await writeMetadata(storage, keys.metadata, {
      ...meta,
      database: db,
      pinned: undefined,
      started_at: at.toISOString(),
      finished_at: new Date(at.getTime() + 1000).toISOString(),
      file: { ...meta.file!, name: keys.dump.slice(keys.dump.lastIndexOf("/") + 1) },
    });
  });
  return storage.locate(keys.dump);
}

/** Nightly at 02:30 UTC, `daysBack` days before today. */
function night(daysBack: number): Date {
  const today = new Date();
  today.setUTCHours(2, 30, 0, 0);
  return new Date(today.getTime() - daysBack * DAY);
}

/** What applyRetention keeps of the good (and failed) entries in the catalog of `db`. */
async function expectedKept(env: TestEnv, db: string): Promise<Set<string>> {
  const entries = await listCatalog(new LocalStorage(env.storage), {
    hostname: HOST,
    instance: "pg",
    database: db,
  });
  const candidates = entries.filter((e) => e.state === "good" || e.state === "failed").map((e) => ({
    id: e.stem,
    startedAt: e.started_at,
    good: e.state === "good",
    pinned: e.pinned,
  }));
  return new Set(
    applyRetention(candidates, FULL_POLICY, new Date())
      .filter((d) => d.action === "keep").map((d) => d.backup.id),
  );
}

/** The stems that still have any file in the folder of `db`. */
function stemsOf(env: TestEnv, db: string): Set<string> {
  return new Set(
    listFiles(join(env.storage, HOST, "pg", db))
      // The decoy with our name in a wrong day folder is checked on its own.
      .filter((f) => !f.includes("/2020-01-01/"))
      .map((f) => /([^/]+_\d{8}T\d{6}Z)\.(sql\.gz|sha256|metadata\.json)/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined),
  );
}

const decisionLines = (out: string) =>
  out.split("\n").filter((l) => /^(keep|remove) /.test(l)).sort();

Deno.test("prune keeps exactly applyRetention's set and touches nothing else", opts, async () => {
  const pg = await sharedPostgres();
  const env = await setUp(pg, { prune_shop: 3, prune_crm: 2 });
  try {
    const shop = await backupNow(env, "pg", "prune_shop");
    const crm = await backupNow(env, "pg", "prune_crm");
    const days = [...Array.from({ length: 40 }, (_, i) => i + 1), 50, 60, 80, 100, 130, 160, 200];
    for (const d of days) {
      await seed(env, shop, "prune_shop", night(d));
      await seed(env, crm, "prune_crm", night(d));
    }
    const storage = new LocalStorage(env.storage);
    const shopDir = join(env.storage, HOST, "pg", "prune_shop");
    // A pinned old one, via the CLI.
    const pinned = await seed(env, shop, "prune_shop", night(150));
    const pin = await env.run(["pin", pinned]);
    assertEquals(pin.code, 0, pin.stderr);
    assertMatch(pin.stdout, /^pinned /);
    // Two failure records: the newer stays for diagnosis, the older goes.
    for (const d of [45, 55]) {
      const keys = databaseBackupKeys(HOST, "pg", "prune_shop", night(d), "gzip");
      const meta = JSON.parse(await Deno.readTextFile(shop.metadata)) as BackupMetadata;
      await writeMetadata(storage, keys.metadata, {
        ...meta,
        status: "failed",
        error: "simulated",
        file: null,
        started_at: night(d).toISOString(),
      });
    }
    // An orphan (a prune killed after the dump), a stale partial, a bad (truncated) dump.
    const orphan = await seed(env, shop, "prune_shop", night(70));
    await Deno.remove(orphan);
    const partialKeys = databaseBackupKeys(HOST, "pg", "prune_shop", night(75), "gzip");
    await storage.writeAtomic(partialKeys.dump + ".partial", "half");
    const bad = await seed(env, shop, "prune_shop", night(90));
    await Deno.truncate(bad, 10);
    // Foreign files: in the tree (one with our name in the wrong place) and outside it.
    const foreign = [
      join(shopDir, "notes.txt"),
      join(shopDir, night(3).toISOString().slice(0, 10), "mine.sql.gz"),
      join(shopDir, "2020-01-01", "prune_shop_20250101T000000Z.sql.gz"),
      join(env.storage, HOST, "pg", "README"),
      join(env.dir, "prune_shop_20250101T000000Z.sql.gz"),
    ];
    for (const f of foreign) {
      await Deno.mkdir(join(f, ".."), { recursive: true });
      await Deno.writeTextFile(f, "mine");
    }
    const expectShop = await expectedKept(env, "prune_shop");
    const expectCrm = await expectedKept(env, "prune_crm");
    assert(expectShop.size < days.length / 2, `policy keeps ${expectShop.size}`);

    const before = listFiles(env.dir);
    const dry = await env.run(["prune", "--dry-run"]);
    assertEquals(dry.code, 0, dry.stderr);
    assertEquals(listFiles(env.dir), before, "--dry-run removed something");
    assertMatch(dry.stdout, /would be removed \(dry run\)/);

    const real = await env.run(["prune"]);
    assertEquals(real.code, 0, real.stderr + real.stdout);
    assertEquals(decisionLines(real.stdout), decisionLines(dry.stdout));
    assertMatch(real.stdout, /remove +pg\/prune_shop .* orphan older than newest good/);
    assertMatch(real.stdout, /remove +pg\/prune_shop .*\.partial +partial older than newest good/);
    assertMatch(real.stdout, /keep +pg\/prune_shop .* bad: size mismatch/);
    assertMatch(real.stdout, /keep +pg\/prune_shop .* pinned/);
    assertMatch(real.stdout, /keep +pg\/prune_shop .* newest good/);
    assertMatch(real.stdout, /pg \(users\): 0 kept, 0 removed/);

    const badStem = `prune_shop_${stamp(night(90))}`;
    assertEquals(stemsOf(env, "prune_shop"), new Set([...expectShop, badStem]));
    assertEquals(stemsOf(env, "prune_crm"), expectCrm);
    assert(expectShop.has(`prune_shop_${stamp(night(150))}`), "pinned not in the expected set");
    assert(
      expectShop.has(`prune_shop_${stamp(night(45))}`) &&
        !expectShop.has(`prune_shop_${stamp(night(55))}`),
    );
    assert(!listFiles(shopDir).some((f) => f.endsWith(".partial")), "partial left");
    for (const f of foreign) assertEquals(await Deno.readTextFile(f), "mine", f);

    // Done: a second prune removes nothing; its JSON parses.
    const again = await env.run(["--json", "prune"]);
    assertEquals(again.code, 0, again.stderr);
    const json = JSON.parse(again.stdout);
    assertEquals(json.dry_run, false);
    assertEquals(json.items.map((i: { removed: number }) => i.removed), [0, 0, 0]);
    const shopItem = json.items.find((i: { database: string }) => i.database === "prune_shop");
    assertEquals(shopItem.kept, expectShop.size + 1);

    // Unpinned, the pinned one goes at the next prune.
    const unpin = await env.run(["unpin", pinned]);
    assertEquals(unpin.code, 0, unpin.stderr);
    const after = await env.run(["prune", "--instance", "pg", "--database", "prune_shop"]);
    assertEquals(after.code, 0, after.stderr);
    assert(!stemsOf(env, "prune_shop").has(`prune_shop_${stamp(night(150))}`), after.stdout);
  } finally {
    await env.cleanup();
  }
});

Deno.test(
  "pin/unpin refuse what is not a backup of ours; prune and pin exit 4 under a held lock",
  opts,
  async () => {
    const pg = await sharedPostgres();
    const env = await setUp(pg, { prune_pin: 1 });
    try {
      const b = await backupNow(env, "pg", "prune_pin");
      const outside = join(env.dir, "x.sql.gz");
      await Deno.writeTextFile(outside, "x");
      const foreign = join(env.storage, HOST, "pg", "prune_pin", "notes.txt");
      await Deno.writeTextFile(foreign, "x");
      for (
        const [file, says] of [
          [join(env.storage, "nope.sql.gz"), /no such file/],
          [outside, /not inside the storage/],
          [foreign, /not a backup file of vya-backupdb/],
        ] as const
      ) {
        const r = await env.run(["pin", file]);
        assertEquals(r.code, 3, r.stderr);
        assertMatch(r.stderr, says);
        assert(!/at .*\.ts:\d+/.test(r.stderr), "stack trace");
      }
      const byMeta = await env.run(["pin", b.metadata]);
      assertEquals(byMeta.code, 0, byMeta.stderr);
      assertEquals(JSON.parse(await Deno.readTextFile(b.metadata)).pinned, true);
      assertMatch((await env.run(["pin", b.dump])).stdout, /already pinned/);
      assertEquals((await env.run(["unpin", b.dump])).code, 0);
      assertEquals(JSON.parse(await Deno.readTextFile(b.metadata)).pinned, undefined);

      const lock = await acquireLock(env.storage);
      try {
        const before = listFiles(env.storage);
        for (const args of [["prune"], ["pin", b.dump]]) {
          const r = await env.run(args);
          assertEquals(r.code, 4, r.stderr);
          assertMatch(r.stderr, /holds the lock/);
        }
        assertEquals(listFiles(env.storage), before);
      } finally {
        await lock.release();
      }
      const usage = await env.run(["prune", "--database", "prune_pin"]);
      assertEquals(usage.code, 64, usage.stderr);
    } finally {
      await env.cleanup();
    }
  },
);

Deno.test(
  "after_backup: a failed database keeps everything, the other is pruned",
  opts,
  async () => {
    const pg = await sharedPostgres();
    const env = await setUp(pg, { prune_ok: 2 });
    try {
      const ok = await backupNow(env, "pg", "prune_ok");
      // prune_gone's backups are from before it was dropped: tonight its backup fails.
      for (let d = 1; d <= 20; d++) {
        await seed(env, ok, "prune_ok", night(d));
        await seed(env, ok, "prune_gone", night(d));
      }
      await env.writeConfig({ retention: { ...POLICY, prune: "after_backup" } });
      const goneBefore = listFiles(join(env.storage, HOST, "pg", "prune_gone"));
      const r = await env.run([
        "backup",
        "--instance",
        "pg",
        "--database",
        "prune_ok",
        "--database",
        "prune_gone",
      ]);
      assertEquals(r.code, 1, r.stderr + r.stdout);
      assertMatch(r.stderr, /retention skipped for prune_gone: today's backup failed/);
      assertMatch(r.stderr, /retention pg\/prune_ok: \d+ kept, \d+ removed/);
      assertEquals(listFiles(join(env.storage, HOST, "pg", "prune_gone")), goneBefore);
      const expect = await expectedKept(env, "prune_ok");
      assertEquals(stemsOf(env, "prune_ok"), expect);
      assert(expect.size < 20, `${expect.size} kept`);
    } finally {
      await env.cleanup();
    }
  },
);

Deno.test(
  "a prune killed with SIGKILL mid-way is finished by the next; what stays restores",
  opts,
  async () => {
    const pg = await sharedPostgres();
    const env = await setUp(pg, { prune_kill: 7 });
    try {
      const src = await backupNow(env, "pg", "prune_kill");
      for (let d = 1; d <= 60; d++) await seed(env, src, "prune_kill", night(d));
      const dir = join(env.storage, HOST, "pg", "prune_kill");
      const expect = await expectedKept(env, "prune_kill");
      for (const removedFiles of [1, 5, 20]) {
        const start = listFiles(dir).length;
        const run = startCli(env, ["prune"]);
        while (run.result === undefined && start - listFiles(dir).length < removedFiles) {
          await new Promise((r) => setTimeout(r, 1));
        }
        run.kill("SIGKILL");
        const res = await run.done;
        assert(res.code !== 0, `prune finished before the kill (${removedFiles} files)`);
        // No entry looks good without being whole: a dump always has both sidecars.
        const files = listFiles(dir);
        for (const f of files.filter((f) => f.endsWith(".sql.gz"))) {
          const stem = f.replace(/\.sql\.gz$/, "");
          assert(files.includes(`${stem}.sha256`) && files.includes(`${stem}.metadata.json`), f);
        }
        assert(files.length < start, "nothing removed before the kill");
      }
      const last = await env.run(["prune"]);
      assertEquals(last.code, 0, last.stderr + last.stdout);
      assertEquals(stemsOf(env, "prune_kill"), expect);
      const dumps = listFiles(dir).filter((f) => f.endsWith(".sql.gz"));
      assertEquals(dumps.length, expect.size);
      for (const [i, dump] of dumps.entries()) {
        const target = `prune_kill_r${i}`;
        const r = await env.run([
          "restore",
          "--instance",
          "pg",
          "--file",
          dump,
          "--target",
          target,
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals((await pg.sql("SELECT count(*) FROM t", { database: target })).trim(), "7");
        await pg.sql(`DROP DATABASE ${target}`);
      }
    } finally {
      await env.cleanup();
    }
  },
);
