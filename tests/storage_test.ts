/**
 * The storage layer's catalog classifies what real backups leave on disk: good backups (of
 * databases and users), failure records, orphaned sidecars, stale `.partial`s, damaged dumps and
 * metadata, and never lists a file that is not of its own pattern and place. Metadata of files
 * without the newer keys still reads, and `updateMetadata` records pins and verification results.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { backupNow } from "./helpers/restore_support.ts";
import {
  type CatalogEntry,
  listCatalog,
  newestGood,
  pickLatest,
  removeEntryFiles,
} from "../lib/storage/catalog.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { readMetadata, updateMetadata } from "../lib/storage/metadata.ts";

const HOST = Deno.hostname();
const opts = { sanitizeResources: false, sanitizeOps: false };
const MARK = "vya-backupdb: INCOMPLETE RESTORE, do not use; storage test";

let setup: Promise<{ env: TestEnv; pg: PgServer; my: MyServer }> | undefined;

function getSetup() {
  setup ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    await pg.sql("CREATE DATABASE st_pg");
    await pg.sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);", { database: "st_pg" });
    await my.sql("CREATE DATABASE st_my");
    await my.sql("CREATE TABLE t (id INT); INSERT INTO t VALUES (1);", { database: "st_my" });
    const env = await makeTestEnv([{ id: "pg", server: pg }, { id: "my", server: my }]);
    return { env, pg, my };
  })();
  return setup;
}

const stemOf = (path: string) => path.split("/").pop()!.replace(/\.(sql(\.gz|\.zst)?)$/, "");

/** A users backup through the CLI; the path of its dump. */
async function usersBackup(env: TestEnv, instance: string): Promise<string> {
  await new Promise((r) => setTimeout(r, 1100));
  const r = await env.run(["--json", "users", "backup", "--instance", instance]);
  assertEquals(r.code, 0, r.stderr + r.stdout);
  const path = (JSON.parse(r.stdout) as { results: { path?: string }[] }).results[0]?.path;
  assert(path, r.stdout);
  return path;
}

/** state per stem, newest first. */
const states = (entries: CatalogEntry[]) => entries.map((e) => [e.stem, e.state]);

Deno.test(
  "catalog: every state of a real tree is told apart, foreign files are never listed",
  opts,
  async () => {
    const { env, pg } = await getSetup();
    const storage = new LocalStorage(env.storage);
    const expected: [string, string][] = [];

    const good1 = await backupNow(env, "pg", "st_pg");
    expected.push([stemOf(good1.dump), "good"]);

    // A backup that failed for real: the database carries a restore's incomplete mark.
    await pg.sql(`COMMENT ON DATABASE st_pg IS '${MARK}'`);
    await new Promise((r) => setTimeout(r, 1100));
    const failed = await env.run(["--json", "backup", "--instance", "pg", "--database", "st_pg"]);
    await pg.sql("COMMENT ON DATABASE st_pg IS NULL");
    assertEquals(failed.code, 2, failed.stderr);
    const failedEntries = (await listCatalog(storage, { hostname: HOST, instance: "pg" }))
      .filter((e) => e.state === "failed");
    assertEquals(failedEntries.length, 1);
    expected.push([failedEntries[0].stem, "failed"]);

    // Orphaned .sha256: dump and metadata gone.
    const orphanSum = await backupNow(env, "pg", "st_pg");
    await Deno.remove(orphanSum.dump);
    await Deno.remove(orphanSum.metadata);
    expected.push([stemOf(orphanSum.dump), "orphan"]);

    // Orphaned metadata (says ok): dump and .sha256 gone.
    const orphanMeta = await backupNow(env, "pg", "st_pg");
    await Deno.remove(orphanMeta.dump);
    await Deno.remove(orphanMeta.dump.replace(/\.sql\.gz$/, ".sha256"));
    expected.push([stemOf(orphanMeta.dump), "orphan"]);

    // Stale .partial (made below, after the last run: every backup run sweeps them).
    const partial = await backupNow(env, "pg", "st_pg");
    expected.push([stemOf(partial.dump), "partial"]);

    // Size mismatch: the dump cut short, its sidecars intact.
    const cut = await backupNow(env, "pg", "st_pg");
    const bytes = await Deno.readFile(cut.dump);
    await Deno.writeFile(cut.dump, bytes.subarray(0, bytes.length - 10));
    expected.push([stemOf(cut.dump), "bad"]);

    // Old-format metadata: without the keys later versions added (and without the new ones).
    const old = await backupNow(env, "pg", "st_pg");
    const meta = JSON.parse(await Deno.readTextFile(old.metadata));
    for (
      const k of ["objects", "database_properties", "warnings", "pinned", "verify"]
    ) delete meta[k];
    await Deno.writeTextFile(old.metadata, JSON.stringify(meta));
    expected.push([stemOf(old.dump), "good"]);

    // Metadata that is not metadata of this format (a wrong type in a new key): not trusted.
    const invalid = await backupNow(env, "pg", "st_pg");
    const bad = JSON.parse(await Deno.readTextFile(invalid.metadata));
    await Deno.writeTextFile(invalid.metadata, JSON.stringify({ ...bad, pinned: "yes" }));
    expected.push([stemOf(invalid.dump), "bad"]);

    const usersDump = await usersBackup(env, "pg");
    expected.push([stemOf(usersDump), "good"]);
    // What a kill between the sidecars and the rename leaves.
    await Deno.rename(partial.dump, partial.dump + ".partial");

    // Foreign files in the tree, in every place a backup could be, and a symlink to backups
    // outside it: none is listed.
    const instDir = join(env.storage, HOST, "pg");
    const day = join(instDir, "st_pg", good1.startedAt.slice(0, 10));
    const outside = await Deno.makeTempDir({ dir: env.dir });
    // Named as a backup of that day would be: only the symlink keeps it out.
    await Deno.copyFile(good1.dump, join(outside, "st_pg_20010101T000000Z.sql.gz"));
    const foreign = [
      join(day, "notes.txt"),
      join(day, "other_20261101T020000Z.sql.gz"),
      join(day, "st_pg_20261301T020000Z.sql.gz"),
      join(instDir, "st_pg", "1999-01-01", "st_pg_20261101T020000Z.sql.gz"),
      join(instDir, "st_pg", "st_pg_20261101T020000Z.sql.gz"),
      join(instDir, "users_20261101T020000Z.txt"),
      join(instDir, "x.partial"),
    ];
    for (const f of foreign) {
      await Deno.mkdir(join(f, ".."), { recursive: true });
      await Deno.writeTextFile(f, "a user's own file");
    }
    await Deno.symlink(outside, join(instDir, "st_pg", "2001-01-01"));

    const entries = await listCatalog(storage, { hostname: HOST, instance: "pg" });
    const sorted = [...expected].sort((a, b) => (a[0].slice(-16) < b[0].slice(-16) ? 1 : -1));
    assertEquals(states(entries), sorted);
    const listed = entries.flatMap((e) => Object.values(e.paths));
    for (const f of foreign) assert(!listed.includes(f), `${f} is listed`);
    assert(!listed.some((p) => p.includes("2001-01-01")), "a symlinked folder is walked");

    const byStem = new Map(entries.map((e) => [e.stem, e]));
    const e = (dump: string) => byStem.get(stemOf(dump))!;
    assertMatch(e(orphanSum.dump).problems[0], /dump file missing/);
    assertEquals(Object.keys(e(orphanSum.dump).keys), ["sha256"]);
    assertEquals(e(orphanMeta.dump).status, "ok");
    assertEquals(Object.keys(e(orphanMeta.dump).keys), ["metadata"]);
    assertEquals(Object.keys(e(partial.dump).keys).sort(), ["metadata", "partial", "sha256"]);
    assertMatch(e(cut.dump).problems[0], /size mismatch: the file has \d+ bytes/);
    assertMatch(e(invalid.dump).problems[0], /metadata is not valid: pinned/);
    assertEquals(e(invalid.dump).metadata, undefined);
    assertEquals(e(old.dump).pinned, false);
    assertEquals(e(old.dump).database, "st_pg");
    assertEquals(failedEntries[0].status, "failed");
    assertMatch(failedEntries[0].problems[0], /INCOMPLETE RESTORE|restore that never finished/);
    assertEquals(byStem.get(stemOf(usersDump))!.kind, "users");
    // Time is the metadata's, exactly.
    assertEquals(e(old.dump).started_at.toISOString(), old.startedAt);

    // The newest good backup of the database, and of the users.
    const dbEntries = await listCatalog(storage, {
      hostname: HOST,
      instance: "pg",
      database: "st_pg",
    });
    assert(dbEntries.every((x) => x.kind === "database"));
    assertEquals(newestGood(dbEntries)?.stem, stemOf(old.dump));
    const users = await listCatalog(storage, { hostname: HOST, instance: "pg", kind: "users" });
    assertEquals(states(users), [[stemOf(usersDump), "good"]]);
    // restore --latest's pick re-hashes: the old-format one is taken, the newer bad one named.
    const pick = await pickLatest(storage, dbEntries.filter((x) => x.state !== "partial"));
    assertEquals(pick.chosen?.stem, stemOf(old.dump));
    assertEquals(pick.skipped.map((s) => s.entry.stem), [stemOf(invalid.dump)]);

    // The CLI's listing goes through the same catalog: no foreign file, no partial.
    const list = await env.run(["--json", "restore", "--instance", "pg", "--list"]);
    const rows = JSON.parse(list.stdout) as { file: string | null; started_at: string }[];
    assertEquals(rows.length, expected.length - 2, list.stdout);
    for (const f of foreign) assert(!rows.some((r) => r.file === f));

    // The next backup run sweeps the partial through the storage: its ok metadata becomes a
    // failure record and its checksum goes; the user's files stay.
    await backupNow(env, "pg", "st_pg");
    const swept = (await listCatalog(storage, { hostname: HOST, instance: "pg" }))
      .find((x) => x.stem === stemOf(partial.dump))!;
    assertEquals([swept.state, Object.keys(swept.keys)], ["failed", ["metadata"]]);
    assertMatch(swept.metadata!.error!, /interrupted/);
    for (const f of foreign) assert((await Deno.lstat(f)).isFile, `${f} survives`);
  },
);

Deno.test(
  "catalog: a MariaDB backup and a users backup are good; a second dump name is foreign",
  opts,
  async () => {
    const { env } = await getSetup();
    const storage = new LocalStorage(env.storage);
    const good = await backupNow(env, "my", "st_my");
    const users = await usersBackup(env, "my");
    // A zstd file under the same stem is not this backup's dump: ignored, the gzip one counts.
    await Deno.writeTextFile(good.dump.replace(/\.gz$/, ".zst"), "planted");
    const entries = await listCatalog(storage, { hostname: HOST, instance: "my" });
    const mine = entries.filter((e) => [stemOf(good.dump), stemOf(users)].includes(e.stem));
    assertEquals(mine.map((e) => [e.kind, e.state]).sort(), [["database", "good"], [
      "users",
      "good",
    ]]);
    const db = mine.find((e) => e.kind === "database")!;
    assertEquals(db.metadata?.engine, "mariadb");
    assertEquals(db.compression, "gzip");
    assertEquals(db.bytes, db.metadata?.file?.bytes);
    // Removing it takes its three files and nothing else (the planted .zst stays).
    await removeEntryFiles(storage, db);
    for (const p of Object.values(db.paths)) await assertRejects(() => Deno.lstat(p));
    assert((await Deno.lstat(good.dump.replace(/\.gz$/, ".zst"))).isFile);
    assertEquals(
      (await listCatalog(storage, { hostname: HOST, instance: "my", database: "st_my" }))
        .filter((e) => e.stem === db.stem).map((e) => [e.state, e.problems[0]]),
      [["bad", "no metadata beside the file"]],
    );
  },
);

Deno.test(
  "updateMetadata: pin and verification results are written atomically and read back",
  opts,
  async () => {
    const { env } = await getSetup();
    const storage = new LocalStorage(env.storage);
    const b = await backupNow(env, "pg", "st_pg");
    const key = storage.keyOf(b.metadata)!;
    const before = await Deno.readTextFile(b.metadata);
    assert(!before.includes("pinned"), "new backups carry no pin until one is set");
    const at = new Date().toISOString();
    await updateMetadata(storage, key, (m) => {
      m.pinned = true;
      m.verified_at = at;
      m.verify = { result: "ok", kind: "checksum" };
    });
    const after = await readMetadata(storage, key);
    assertEquals([after?.pinned, after?.verified_at, after?.verify], [true, at, {
      result: "ok",
      kind: "checksum",
    }]);
    assertEquals((await Deno.stat(b.metadata)).mode! & 0o777, 0o600);
    // Everything else is as the backup wrote it.
    const { pinned: _p, verified_at: _v, verify: _r, ...rest } = JSON.parse(
      await Deno.readTextFile(b.metadata),
    );
    assertEquals(rest, JSON.parse(before));
    const entry =
      (await listCatalog(storage, { hostname: HOST, instance: "pg", database: "st_pg" }))
        .find((e) => e.stem === stemOf(b.dump))!;
    assertEquals([entry.state, entry.pinned], ["good", true]);
    // An update that would make the record invalid writes nothing.
    await assertRejects(
      () =>
        updateMetadata(storage, key, (m) => {
          (m as Record<string, unknown>).verify = { result: "maybe" };
        }),
      Error,
      "verify",
    );
    assertEquals((await readMetadata(storage, key))?.verify, { result: "ok", kind: "checksum" });
    // No temporary file is left beside it.
    const dir = join(b.metadata, "..");
    const names = [...Deno.readDirSync(dir)].map((d) => d.name);
    assert(!names.some((n) => n.endsWith(".tmp")), names.join(", "));
  },
);

Deno.test(
  "catalog: a dump beside a failure record is kept as bad, never a failure record to clean up",
  opts,
  async () => {
    const { env, my } = await getSetup();
    await my.sql("CREATE DATABASE st_fail_dump; CREATE TABLE st_fail_dump.t (id INT);");
    const storage = new LocalStorage(env.storage);
    const good = await backupNow(env, "my", "st_fail_dump");
    // As if the run failed after the dump's rename (say, the folder's fsync): the metadata is
    // rewritten as a failure record while the dump stays.
    const metaKey = storage.keyOf(good.dump.replace(/\.sql\.gz$/, ".metadata.json"))!;
    await updateMetadata(storage, metaKey, (m) => {
      m.status = "failed";
      m.error = "fsync of the folder failed";
    });
    const [entry] = (await listCatalog(storage, {
      hostname: HOST,
      instance: "my",
      database: "st_fail_dump",
    })).filter((e) => e.stem === stemOf(good.dump));
    assertEquals(entry.state, "bad");
    assertMatch(entry.problems[0], /a dump lies beside a failure record/);
  },
);

Deno.test({
  name: "storage test teardown",
  ...opts,
  fn: async () => {
    if (setup) await (await setup).env.cleanup();
  },
});
