/**
 * The remote copy's life after upload, against a real S3 server (s3rver, tests/harness/s3.ts)
 * and real database servers, through the CLI: remote retention (`prune --from remote`, and
 * `prune: after_backup` on the bucket) to exactly applyRetention's set from the bucket's own
 * listing, foreign objects untouched, a failed night pruning nothing, a SIGKILL mid-prune
 * finished by the next; a local prune keeping what is not uploaded yet, the catch-up uploading
 * only what the remote's policy keeps; `verify --from remote`, `info --from remote`; the
 * waiting grants of a rebuild from S3; encryption and S3 together.
 *
 * Earlier nights are written straight to the bucket through the storage layer (copies of a
 * real dump whose metadata carries past `started_at`), as tests/prune_test.ts does locally.
 *
 * @module
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { boto3, listAllKeys, startS3, type TestS3 } from "./harness/s3.ts";
import { type PgServer, sharedPostgres, startMariadb } from "./harness/servers.ts";
import type { TestEnv } from "./helpers/cli.ts";
import { backupNow } from "./helpers/restore_support.ts";
import { assertNoSecret, remoteOf, s3Env, s3Storage } from "./helpers/s3_env.ts";
import { HOST, listFiles, startCli, tool } from "./backup_support.ts";
import { type CatalogEntry, listCatalog } from "../lib/storage/catalog.ts";
import { databaseBackupKeys, stamp } from "../lib/storage/layout.ts";
import {
  type BackupMetadata,
  readMetadata,
  sha256Line,
  updateMetadata,
  writeMetadata,
} from "../lib/storage/metadata.ts";
import type { S3Storage } from "../lib/storage/s3.ts";
import { openStorage } from "../lib/storage/open.ts";
import { keyBase } from "../lib/storage/storage.ts";
import { applyRetention, type RetentionPolicy } from "../lib/storage/retention.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const DAY = 86_400_000;

/** The remote's own policy (the local folder has none in these tests unless said). */
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

/** Nightly at 02:30 UTC, `daysBack` days before today. */
function night(daysBack: number): Date {
  const today = new Date();
  today.setUTCHours(2, 30, 0, 0);
  return new Date(today.getTime() - daysBack * DAY);
}

/** Databases with a table `t` of `rows` rows on `pg`. */
async function databases(pg: PgServer, dbs: Record<string, number>): Promise<void> {
  for (const [db, rows] of Object.entries(dbs)) {
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
    await pg.sql(`CREATE DATABASE ${db}`);
    await pg.sql(
      `CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, ${rows})`,
      { database: db },
    );
  }
}

/** An env backing up `dbs` of `pg` (no users backups) to local + `s3`, remote retention set. */
async function retentionEnv(
  pg: PgServer,
  s3: TestS3,
  dbs: string[],
  remoteRetention: Record<string, unknown> | null = POLICY,
): Promise<TestEnv> {
  const env = await s3Env(pg, s3, {}, {
    extra: { databases: { include: dbs }, users: { backup: false } },
  });
  await env.writeConfig({
    storage: s3Storage(env, s3, {}, remoteRetention ? { retention: remoteRetention } : {}),
  });
  return env;
}

/** A real backup's bytes and metadata, to copy to other nights. */
interface Source {
  bytes: Uint8Array;
  meta: BackupMetadata;
}

async function sourceOf(b: { dump: string; metadata: string }): Promise<Source> {
  return {
    bytes: await Deno.readFile(b.dump),
    meta: JSON.parse(await Deno.readTextFile(b.metadata)) as BackupMetadata,
  };
}

/** Writes a copy of `src` as the backup of `db` at `at` onto the remote; returns its keys. */
async function seedRemote(remote: S3Storage, src: Source, db: string, at: Date) {
  const keys = databaseBackupKeys(HOST, "pg", db, at, "gzip");
  const name = keyBase(keys.dump);
  await remote.writeAtomic(keys.dump, src.bytes);
  await remote.writeAtomic(keys.sha256, sha256Line(src.meta.file!.sha256, name));
  await writeMetadata(remote, keys.metadata, {
    ...src.meta,
    database: db,
    pinned: undefined,
    started_at: at.toISOString(),
    finished_at: new Date(at.getTime() + 1000).toISOString(),
    file: { ...src.meta.file!, name },
  });
  return keys;
}

/** What applyRetention keeps of the good and failed entries of `db` on the remote. */
async function expectedKept(remote: S3Storage, db: string): Promise<Set<string>> {
  const entries = await listCatalog(remote, { hostname: HOST, instance: "pg", database: db });
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

/** The stems that still have an object in the remote folder of `db` (from boto3's listing). */
async function remoteStems(s3: TestS3, db: string): Promise<Set<string>> {
  return new Set(
    (await listAllKeys(s3))
      .filter((k) => k.startsWith(`db/${HOST}/pg/${db}/`) && !k.includes("/2020-01-01/"))
      .map((k) => /([^/]+_\d{8}T\d{6}Z)\.(sql\.gz|sha256|metadata\.json)$/.exec(k)?.[1])
      .filter((s): s is string => s !== undefined),
  );
}

/**
 * Every remote dump of `db` has both sidecars: nothing looks whole that is not (`except`: the
 * dumps a test planted without them).
 */
async function assertNoHalfBackup(s3: TestS3, db: string, except: string[] = []): Promise<void> {
  const keys = (await listAllKeys(s3)).filter((k) => k.startsWith(`db/${HOST}/pg/${db}/`));
  const dumps = keys.filter((k) => k.endsWith(".sql.gz") && !except.some((e) => k.includes(e)));
  for (const k of dumps) {
    const stem = k.slice(0, -".sql.gz".length);
    assert(keys.includes(`${stem}.sha256`) && keys.includes(`${stem}.metadata.json`), k);
  }
}

Deno.test(
  "s3 prune: the remote keeps exactly applyRetention's set by its own policy; objects outside the prefix and foreign ones inside survive",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3p_shop: 3 });
    const env = await retentionEnv(pg, s3, ["s3p_shop"]);
    try {
      const remote = remoteOf(s3);
      const src = await sourceOf(await backupNow(env, "pg", "s3p_shop"));
      const days = [...Array.from({ length: 40 }, (_, i) => i + 1), 50, 60, 80, 100, 130, 160];
      for (const d of days) await seedRemote(remote, src, "s3p_shop", night(d));
      // A pinned old one, pinned on the remote by its s3:// location.
      const pinned = await seedRemote(remote, src, "s3p_shop", night(150));
      const pin = await env.run(["pin", remote.locate(pinned.dump)]);
      assertEquals(pin.code, 0, pin.stderr);
      assertEquals((await readMetadata(remote, pinned.metadata))?.pinned, true);
      // Failure records: the newer stays for diagnosis, the older goes.
      for (const d of [45, 55]) {
        const keys = databaseBackupKeys(HOST, "pg", "s3p_shop", night(d), "gzip");
        await writeMetadata(remote, keys.metadata, {
          ...src.meta,
          status: "failed",
          error: "simulated",
          file: null,
          started_at: night(d).toISOString(),
        });
      }
      // An orphan (metadata and .sha256 without a dump) and a bad entry (a dump without metadata).
      const orphan = await seedRemote(remote, src, "s3p_shop", night(70));
      await remote.remove(orphan.dump);
      const bad = await seedRemote(remote, src, "s3p_shop", night(90));
      await remote.remove(bad.metadata);
      // Foreign objects: inside the prefix (one with our name in a wrong place), and outside.
      const day3 = night(3).toISOString().slice(0, 10);
      const foreign = [
        `db/${HOST}/pg/s3p_shop/notes.txt`,
        `db/${HOST}/pg/s3p_shop/${day3}/mine.sql.gz`,
        `db/${HOST}/pg/s3p_shop/2020-01-01/s3p_shop_20250101T000000Z.sql.gz`,
        `elsewhere/${HOST}/pg/s3p_shop/${day3}/s3p_shop_${stamp(night(30))}.sql.gz`,
        `dbx/${HOST}/pg/s3p_shop/${day3}/s3p_shop_${stamp(night(30))}.sql.gz`,
      ];
      await boto3(
        s3,
        `for k in ${JSON.stringify(foreign)}: s3.put_object(Bucket=bucket, Key=k, Body=b"x")`,
      );
      const expect = await expectedKept(remote, "s3p_shop");
      assert(expect.size < days.length / 2, `policy keeps ${expect.size}`);
      assert(
        expect.has(`s3p_shop_${stamp(night(150))}`) && expect.has(`s3p_shop_${stamp(night(45))}`),
      );
      const localBefore = listFiles(env.storage);

      const before = await listAllKeys(s3);
      const dry = await env.run(["prune", "--from", "remote", "--dry-run"]);
      assertEquals(dry.code, 0, dry.stderr);
      assertEquals(await listAllKeys(s3), before, "--dry-run removed something");
      assertMatch(dry.stdout, /pg\/s3p_shop on s3:\/\/backups\/db: \d+ kept, \d+ would be removed/);

      // Default: both copies; the local folder has no policy, the remote has its own.
      const real = await env.run(["prune"]);
      assertEquals(real.code, 0, real.stderr + real.stdout);
      assertNoSecret(real.stdout, real.stderr);
      assertMatch(real.stdout, /^pg\/s3p_shop: no retention policy, nothing removed$/m);
      assertMatch(real.stdout, /pg\/s3p_shop on s3:\/\/backups\/db: \d+ kept, \d+ removed/);
      assertMatch(
        real.stdout,
        /remove +pg\/s3p_shop .*s3:\/\/backups.* orphan older than newest good/,
      );
      assertMatch(real.stdout, /keep +pg\/s3p_shop .*s3:\/\/backups.* bad: /);
      assertMatch(real.stdout, /keep +pg\/s3p_shop .*s3:\/\/backups.* pinned/);
      assertEquals(
        await remoteStems(s3, "s3p_shop"),
        new Set([...expect, `s3p_shop_${stamp(night(90))}`]),
      );
      const after = await listAllKeys(s3);
      for (const k of foreign) assert(after.includes(k), `${k} was removed`);
      assertEquals(listFiles(env.storage), localBefore, "the local folder changed");
      await assertNoHalfBackup(s3, "s3p_shop", [
        "/2020-01-01/",
        "/mine.sql.gz",
        keyBase(bad.dump),
      ]);

      const again = await env.run(["--json", "prune", "--from", "remote"]);
      assertEquals(again.code, 0, again.stderr);
      const items = JSON.parse(again.stdout).items as { from: string; removed: number }[];
      assertEquals(items.map((i) => [i.from, i.removed]), [["remote", 0], ["remote", 0]]);

      // Unpinned on the remote, it goes at the next remote prune.
      assertEquals((await env.run(["unpin", remote.locate(pinned.dump)])).code, 0);
      const last = await env.run(["prune", "--from", "remote"]);
      assertEquals(last.code, 0, last.stderr);
      assert(!(await remoteStems(s3, "s3p_shop")).has(`s3p_shop_${stamp(night(150))}`));
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

Deno.test(
  "s3 prune: without storage.remote.retention the local policy applies remotely; --from remote without a remote is a usage error",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3l_db: 2 });
    const env = await retentionEnv(pg, s3, ["s3l_db"], null);
    try {
      const remote = remoteOf(s3);
      const src = await sourceOf(await backupNow(env, "pg", "s3l_db"));
      for (let d = 1; d <= 30; d++) await seedRemote(remote, src, "s3l_db", night(d));
      const none = await env.run(["prune", "--from", "remote"]);
      assertEquals(none.code, 0, none.stderr);
      assertMatch(none.stdout, /pg\/s3l_db on s3:\/\/backups\/db: no retention policy/);
      assertEquals((await remoteStems(s3, "s3l_db")).size, 31);

      await env.writeConfig({ storage: s3Storage(env, s3), retention: POLICY });
      const expect = await expectedKept(remote, "s3l_db");
      const r = await env.run(["prune", "--from", "remote"]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertEquals(await remoteStems(s3, "s3l_db"), expect);

      await env.writeConfig({ storage: { path: env.storage } });
      const usage = await env.run(["prune", "--from", "remote"]);
      assertEquals(usage.code, 64, usage.stderr);
      assertMatch(usage.stderr, /storage\.remote is not configured/);
      // A remote policy that keeps nothing is a configuration error naming its block.
      await env.writeConfig({
        storage: s3Storage(env, s3, {}, { retention: { keep_daily: 0 } }),
      });
      const empty = await env.run(["config", "validate"]);
      assertEquals(empty.code, 3, empty.stdout + empty.stderr);
      assertMatch(
        empty.stdout + empty.stderr,
        /storage\.remote\.retention: this retention keeps nothing/,
      );
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

Deno.test(
  "s3 after_backup: a database whose backup failed tonight keeps everything remotely; the other is pruned on the bucket",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3a_ok: 2 });
    await pg.sql("DROP DATABASE IF EXISTS s3a_gone");
    const env = await retentionEnv(pg, s3, ["s3a_ok", "s3a_gone"], {
      ...POLICY,
      prune: "after_backup",
    });
    try {
      const remote = remoteOf(s3);
      const src = await sourceOf(await backupNow(env, "pg", "s3a_ok"));
      for (let d = 1; d <= 20; d++) {
        await seedRemote(remote, src, "s3a_ok", night(d));
        await seedRemote(remote, src, "s3a_gone", night(d));
      }
      const goneBefore = (await listAllKeys(s3)).filter((k) => k.includes("/s3a_gone/"));
      const r = await env.run([
        "backup",
        "--instance",
        "pg",
        "--database",
        "s3a_ok",
        "--database",
        "s3a_gone",
      ]);
      assertEquals(r.code, 1, r.stderr + r.stdout);
      assertMatch(
        r.stderr,
        /remote retention skipped for pg\/s3a_gone: today's backup or its upload failed/,
      );
      assertMatch(r.stderr, /remote retention pg\/s3a_ok: \d+ kept, \d+ removed/);
      assertEquals(
        (await listAllKeys(s3)).filter((k) => k.includes("/s3a_gone/")),
        goneBefore,
        "a failed night pruned the remote copies",
      );
      const expect = await expectedKept(remote, "s3a_ok");
      assert(expect.size < 20, `${expect.size} kept`);
      assertEquals(await remoteStems(s3, "s3a_ok"), expect);
      assertEquals(await listAllKeys(s3).then((k) => k.includes("db/.vya-backupdb.lock")), false);
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

/** Objects s3rver holds under `db/HOST/pg/DB/` (read from its data folder: fast enough to race). */
function objectCount(s3: TestS3, db: string): number {
  return listFiles(join(s3.dir, s3.bucket, "db", HOST, "pg", db))
    .filter((f) => f.endsWith("._S3rver_object")).length;
}

Deno.test(
  "s3 prune: a remote prune killed with SIGKILL mid-way is finished by the next (its lock taken over); every remaining remote backup verifies",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3k_db: 7 });
    const env = await retentionEnv(pg, s3, ["s3k_db"]);
    try {
      const remote = remoteOf(s3);
      const src = await sourceOf(await backupNow(env, "pg", "s3k_db"));
      for (let d = 1; d <= 60; d++) await seedRemote(remote, src, "s3k_db", night(d));
      const expect = await expectedKept(remote, "s3k_db");
      let killedWithLock = false;
      for (const removedObjects of [1, 5, 20]) {
        const start = objectCount(s3, "s3k_db");
        const run = startCli(env, ["prune", "--from", "remote"]);
        while (run.result === undefined && start - objectCount(s3, "s3k_db") < removedObjects) {
          await new Promise((r) => setTimeout(r, 1));
        }
        run.kill("SIGKILL");
        const res = await run.done;
        assert(res.code !== 0, `prune finished before the kill (${removedObjects} objects)`);
        assert(objectCount(s3, "s3k_db") < start, "nothing removed before the kill");
        await assertNoHalfBackup(s3, "s3k_db");
        killedWithLock ||= (await listAllKeys(s3)).includes("db/.vya-backupdb.lock");
      }
      assert(killedWithLock, "no kill left its lock behind: the takeover is not exercised");
      const last = await env.run(["prune", "--from", "remote"]);
      assertEquals(last.code, 0, last.stderr + last.stdout);
      assertEquals(await remoteStems(s3, "s3k_db"), expect);
      const v = await env.run([
        "verify",
        "--from",
        "remote",
        "--instance",
        "pg",
        "--database",
        "s3k_db",
        "--all",
      ]);
      assertEquals(v.code, 0, v.stderr + v.stdout);
      assertStringIncludes(v.stdout, `${expect.size} verified, 0 not`);
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

Deno.test(
  "s3 verify --from remote: reads the remote copy whole and records the result there; a flipped byte on S3 is found",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3v_db: 50 });
    const env = await retentionEnv(pg, s3, ["s3v_db"], null);
    try {
      const remote = remoteOf(s3);
      const src = await sourceOf(await backupNow(env, "pg", "s3v_db"));
      const older = await seedRemote(remote, src, "s3v_db", night(2));
      const ok = await env.run(["verify", "--from", "remote", "--all"]);
      assertEquals(ok.code, 0, ok.stderr + ok.stdout);
      assertStringIncludes(ok.stdout, "2 verified, 0 not");
      assertStringIncludes(ok.stdout, "s3://backups/db/");
      const recorded = await readMetadata(remote, older.metadata);
      assertEquals(recorded?.verify, { result: "ok", kind: "checksum" });
      // --restore loads the downloaded, checked bytes into a scratch database.
      const restored = await env.run(["--json", "verify", "--from", "remote", "--restore"]);
      assertEquals(restored.code, 0, restored.stderr + restored.stdout);
      const [outcome] = JSON.parse(restored.stdout) as { checked: string[]; scratch: string }[];
      assert(outcome.checked.some((c) => c.startsWith("downloaded from s3://backups/db")));
      assertEquals(
        await pg.sql(`SELECT count(*) FROM pg_database WHERE datname = '${outcome.scratch}'`),
        "0",
      );

      // Someone with write access flips one byte of the newest remote dump.
      const [newest] = (await listCatalog(remote, {
        hostname: HOST,
        instance: "pg",
        database: "s3v_db",
      })) as CatalogEntry[];
      const key = remote.objectKey(newest.keys.dump!);
      await boto3(
        s3,
        `
body = bytearray(s3.get_object(Bucket=bucket, Key=${JSON.stringify(key)})["Body"].read())
body[len(body) // 2] ^= 0x01
s3.put_object(Bucket=bucket, Key=${JSON.stringify(key)}, Body=bytes(body))
`,
      );
      const bad = await env.run(["verify", "--from", "remote"]);
      assertEquals(bad.code, 1, bad.stderr + bad.stdout);
      assertMatch(bad.stdout, /FAILED .*s3:\/\/backups\/db\/.*checksum mismatch/);
      assertEquals((await readMetadata(remote, newest.keys.metadata!))?.verify?.result, "failed");
      // The local copy is not the remote one: it still verifies.
      const local = await env.run(["verify", "--from", "local"]);
      assertEquals(local.code, 0, local.stderr + local.stdout);
      const usage = await env.run(["verify", "--from", "remote", "--file", "x.sql.gz"]);
      assertEquals(usage.code, 64, usage.stderr);
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

Deno.test(
  "s3 info --from remote: 0 fresh, 1 stale, 2 never backed up or the remote unreadable; the default with keep_local: false",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3i_db: 2 });
    const env = await retentionEnv(pg, s3, ["s3i_db", "s3i_never"], null);
    try {
      const remote = remoteOf(s3);
      await backupNow(env, "pg", "s3i_db");
      const one = ["info", "--from", "remote", "--instance", "pg", "--database", "s3i_db"];
      const fresh = await env.run(one);
      assertEquals(fresh.code, 0, fresh.stderr + fresh.stdout);
      assertMatch(fresh.stdout, /s3i_db +fresh/);
      const never = await env.run(["info", "--from", "remote"]);
      assertEquals(never.code, 2, never.stderr + never.stdout);
      assertMatch(never.stdout, /s3i_never +NEVER/);

      // The remote copy ages (its metadata, on S3); the local copy stays fresh.
      const lock = await remote.lock();
      try {
        for (const e of await listCatalog(remote, { hostname: HOST, instance: "pg" })) {
          await updateMetadata(remote, e.keys.metadata!, (m) => {
            m.started_at = new Date(Date.parse(m.started_at) - 48 * 3600_000).toISOString();
          });
        }
      } finally {
        await lock.release();
      }
      const stale = await env.run(one);
      assertEquals(stale.code, 1, stale.stderr + stale.stdout);
      assertMatch(stale.stdout, /s3i_db +STALE/);
      assertEquals((await env.run(["info", "--instance", "pg", "--database", "s3i_db"])).code, 0);
      // With keep_local: false the remote is what info judges by default.
      await env.writeConfig({ storage: s3Storage(env, s3, { keep_local: false }) });
      assertEquals(
        (await env.run(["info", "--instance", "pg", "--database", "s3i_db"])).code,
        1,
      );

      await s3.stop();
      const down = await env.run(one);
      assertEquals(down.code, 2, down.stderr + down.stdout);
      assertStringIncludes(down.stderr, "s3://backups/db");
      assertNoSecret(down.stdout, down.stderr, stale.stdout, stale.stderr);
      // A credential entry that does not exist is the configuration's error, not the remote's.
      await env.writeConfig({ storage: s3Storage(env, s3, {}, { credential: "s3-nope" }) });
      const cred = await env.run(one);
      assertEquals(cred.code, 3, cred.stderr + cred.stdout);
      assertStringIncludes(cred.stderr, "s3-nope");

      await env.writeConfig({ storage: { path: env.storage } });
      const usage = await env.run(["info", "--from", "remote"]);
      assertEquals(usage.code, 64, usage.stderr);
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

Deno.test(
  "s3 rebuild (MariaDB): users restore --latest then restore --latest from S3 with the local tree deleted applies the table grants that waited for the database",
  opts,
  async () => {
    const [my, fresh, s3] = await Promise.all([startMariadb(), startMariadb(), startS3()]);
    const env = await s3Env(my, s3, {}, { extra: { databases: { include: ["s3g_db"] } } });
    try {
      await my.sql(
        `CREATE DATABASE s3g_db; CREATE TABLE s3g_db.t (id INT PRIMARY KEY);
         INSERT INTO s3g_db.t VALUES (1), (2);
         CREATE USER 'tg'@'%' IDENTIFIED BY 'tg-pw';
         GRANT SELECT ON s3g_db.t TO 'tg'@'%';`,
      );
      const b = await env.run(["backup", "--all"]);
      assertEquals(b.code, 0, b.stderr + b.stdout);
      await Deno.remove(env.storage, { recursive: true });
      await env.retarget("pg", fresh);
      const u = await env.run(["users", "restore", "--instance", "pg", "--all", "--latest"]);
      assertEquals(u.code, 0, u.stderr + u.stdout);
      const r = await env.run(["restore", "--instance", "pg", "--database", "s3g_db", "--latest"]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertNoSecret(u.stdout, u.stderr, r.stdout, r.stderr);
      const grants = await fresh.sql("SHOW GRANTS FOR 'tg'@'%'");
      assertMatch(grants, /GRANT SELECT ON `s3g_db`\.`t` TO `tg`@`%`/, r.stderr);

      // A damaged users backup on S3 costs the grants (a warning naming what to run), never the
      // restore that went through: exit 0, the copy is there.
      const users = (await listAllKeys(s3)).find((k) => /\/users_[^/]+\.sql\.gz$/.test(k))!;
      await boto3(
        s3,
        `
body = bytearray(s3.get_object(Bucket=bucket, Key=${JSON.stringify(users)})["Body"].read())
body[len(body) // 2] ^= 0x01
s3.put_object(Bucket=bucket, Key=${JSON.stringify(users)}, Body=bytes(body))
`,
      );
      const copy = await env.run([
        "restore",
        "--instance",
        "pg",
        "--database",
        "s3g_db",
        "--latest",
        "--target",
        "s3g_copy",
      ]);
      assertEquals(copy.code, 0, copy.stderr + copy.stdout);
      assertMatch(
        copy.stderr,
        /s3g_copy is restored, but the grants waiting for it were not applied/,
      );
      assertEquals((await fresh.sql("SELECT COUNT(*) FROM s3g_copy.t")).trim(), "2");
    } finally {
      await env.cleanup();
      await Promise.all([my.stop(), fresh.stop(), s3.close()]);
    }
  },
);

Deno.test(
  "s3 + encryption: the objects on S3 are age files that age -d and zstd -d turn into the SQL; restore --from remote decrypts with the identity and is refused without it before the server is touched",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3e_db: 20 });
    const env = await retentionEnv(pg, s3, ["s3e_db"], null);
    try {
      const keyFile = join(env.dir, "backup-key.txt");
      const gen = await tool("age-keygen", ["-o", keyFile]);
      assertEquals(gen.code, 0, gen.stderr);
      await Deno.chmod(keyFile, 0o600);
      const recipient = /age1[0-9a-z]+/.exec(await Deno.readTextFile(keyFile))![0];
      const encryption = { recipients: [recipient], identity_file: keyFile };
      const storage = (extra: Record<string, unknown>) =>
        s3Storage(env, s3, { compression: { format: "zstd", level: 3 }, ...extra });
      await env.writeConfig({ storage: storage({ encryption }) });
      const b = await env.run(["backup", "--all"]);
      assertEquals(b.code, 0, b.stderr + b.stdout);
      const dumps = (await listAllKeys(s3)).filter((k) => k.includes("/s3e_db/"));
      const dump = dumps.find((k) => k.endsWith(".sql.zst.age"));
      assert(dump !== undefined, dumps.join("\n"));

      // By hand: boto3 downloads, age decrypts with the identity, zstd decompresses.
      const down = join(env.dir, "down.sql.zst.age");
      await boto3(s3, `s3.download_file(bucket, ${JSON.stringify(dump)}, ${JSON.stringify(down)})`);
      const sql = await new Deno.Command("bash", {
        args: ["-o", "pipefail", "-c", `age -d -i '${keyFile}' '${down}' | zstd -d`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(sql.code, 0, new TextDecoder().decode(sql.stderr));
      const text = new TextDecoder().decode(sql.stdout);
      assertStringIncludes(text, "PostgreSQL database dump complete");
      assertStringIncludes(text, "CREATE TABLE public.t");

      await Deno.remove(env.storage, { recursive: true });
      const restore = (target: string) =>
        env.run([
          "restore",
          "--instance",
          "pg",
          "--database",
          "s3e_db",
          "--latest",
          "--target",
          target,
          "--from",
          "remote",
        ]);
      await env.writeConfig({ storage: storage({ encryption: { recipients: [recipient] } }) });
      const refused = await restore("s3e_noid");
      assertEquals(refused.code, 3, refused.stderr + refused.stdout);
      assertMatch(refused.stderr, /storage\.encryption\.identity_file/);
      assertEquals(
        await pg.sql("SELECT count(*) FROM pg_database WHERE datname = 's3e_noid'"),
        "0",
      );
      await env.writeConfig({ storage: storage({ encryption }) });
      const ok = await restore("s3e_back");
      assertEquals(ok.code, 0, ok.stderr + ok.stdout);
      assertEquals(await pg.sql("SELECT count(*) FROM t", { database: "s3e_back" }), "20");
      await pg.sql("DROP DATABASE s3e_back");
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

/** The stems of the good local backups of `db` (instance pg), newest first. */
async function localGood(env: TestEnv, db: string): Promise<string[]> {
  const local = openStorage({ path: env.storage });
  return (await listCatalog(local, { hostname: HOST, instance: "pg", database: db }))
    .filter((e) => e.state === "good").map((e) => e.stem);
}

/** The stems of the good remote backups of `db` (instance pg), newest first. */
async function remoteGood(s3: TestS3, db: string): Promise<string[]> {
  return (await listCatalog(remoteOf(s3), { hostname: HOST, instance: "pg", database: db }))
    .filter((e) => e.state === "good").map((e) => e.stem);
}

/** `backup --all` in a second of its own (two backups in one second share a name). */
async function backupRun(env: TestEnv) {
  await new Promise((r) => setTimeout(r, 1100));
  return await env.run(["backup", "--all"]);
}

Deno.test(
  "s3 local prune: a good local backup not uploaded yet is kept (after_backup and prune --from local, also with the remote down) and goes once uploaded",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3u_db: 4 });
    const env = await retentionEnv(pg, s3, ["s3u_db"], { keep_last: 10 });
    try {
      const storage = s3Storage(env, s3, {}, { retention: { keep_last: 10 } });
      await env.writeConfig({ storage, retention: { keep_last: 1, prune: "after_backup" } });
      // Night 1: the remote is down; the local backup is good, its upload failed.
      await s3.stop();
      const n1 = await backupRun(env);
      assertEquals(n1.code, 2, n1.stderr + n1.stdout);
      const [night1] = await localGood(env, "s3u_db");
      assert(night1 !== undefined, "night 1 left no good local backup");
      // Night 2: the local after_backup prune must not remove night 1 before catch-up uploads it.
      await s3.start();
      const n2 = await backupRun(env);
      assertEquals(n2.code, 0, n2.stderr + n2.stdout);
      const both = await remoteGood(s3, "s3u_db");
      assertEquals(both.length, 2, `the bucket holds ${both.join(", ")}`);
      assert(both.includes(night1), `night 1 never reached the bucket: ${both.join(", ")}`);
      // Uploaded now, night 1 goes at the next local prune.
      const p = await env.run(["prune", "--from", "local"]);
      assertEquals(p.code, 0, p.stderr + p.stdout);
      assertEquals(await localGood(env, "s3u_db"), [both[0]]);
      assertEquals(await remoteGood(s3, "s3u_db"), both);

      // Nights 3 and 4 with the remote down again, then `prune --from local` while it is still
      // down: the remote cannot be listed, so no good local backup goes, and prune says why.
      await s3.stop();
      for (let i = 0; i < 2; i++) {
        const n = await backupRun(env);
        assertEquals(n.code, 2, n.stderr + n.stdout);
      }
      const [, night3] = await localGood(env, "s3u_db");
      const down = await env.run(["prune", "--from", "local"]);
      assertEquals(down.code, 0, down.stderr + down.stdout);
      assertMatch(
        down.stdout,
        /keep +pg\/s3u_db .*not uploaded yet \(the remote could not be listed\)/,
      );
      assertMatch(down.stderr, /s3:\/\/backups\/db could not be listed.*every good local backup/);
      assertNoSecret(down.stdout, down.stderr);
      assertEquals((await localGood(env, "s3u_db")).length, 3);
      // Up again, `prune` (both copies): night 2 (uploaded) goes, night 3 stays until uploaded.
      await s3.start();
      const both2 = await env.run(["prune"]);
      assertEquals(both2.code, 0, both2.stderr + both2.stdout);
      assertMatch(
        both2.stdout,
        new RegExp(`keep +pg/s3u_db .*${night3}\\.sql\\.gz  not uploaded yet\n`),
      );
      assert(!(await localGood(env, "s3u_db")).includes(both[0]), "night 2 was not pruned");
      assertEquals((await localGood(env, "s3u_db")).length, 2);
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);

Deno.test(
  "s3 upload catch-up: what the remote's policy would not keep is not uploaded again after a remote prune",
  opts,
  async () => {
    const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
    await databases(pg, { s3r_db: 3 });
    const env = await retentionEnv(pg, s3, ["s3r_db"], { keep_last: 1, prune: "manual" });
    try {
      for (let i = 0; i < 3; i++) {
        const b = await backupRun(env);
        assertEquals(b.code, 0, b.stderr + b.stdout);
      }
      assertEquals((await remoteGood(s3, "s3r_db")).length, 3);
      const p = await env.run(["prune", "--from", "remote"]);
      assertEquals(p.code, 0, p.stderr + p.stdout);
      const [kept] = await remoteGood(s3, "s3r_db");
      assertEquals(await remoteGood(s3, "s3r_db"), [kept]);
      const next = await backupRun(env);
      assertEquals(next.code, 0, next.stderr + next.stdout);
      const local = await localGood(env, "s3r_db");
      assertEquals(local.length, 4);
      // The new night, and the one the remote prune kept: nothing pruned comes back.
      assertEquals(await remoteGood(s3, "s3r_db"), [local[0], kept]);
    } finally {
      await env.cleanup();
      await s3.close();
    }
  },
);
