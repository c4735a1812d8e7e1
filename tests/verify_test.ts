/**
 * `verify` against real PostgreSQL and MariaDB servers, through the CLI: a good backup passes
 * and its result is recorded beside it; a flipped byte, a truncated file with a matching
 * .sha256, a dump without its completion marker and a deleted dump are caught; `--restore`
 * passes on good backups of both engines and fails on rows that differ from the metadata, the
 * scratch database gone either way; `backup.verify` runs in the nightly backup.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { freePort, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { startHttp } from "./harness/alerts.ts";
import { type CliResult, makeTestEnv } from "./helpers/cli.ts";
import { backupNow, myExists, pgExists } from "./helpers/restore_support.ts";
import { startCli, waitFor } from "./backup_support.ts";
import type { BackupMetadata } from "../lib/storage/metadata.ts";
import { scratchName } from "../lib/verify/scratch_name.ts";
import { compareRestored } from "../lib/verify/compare.ts";

const PG_FIXTURE = `
CREATE TABLE items (id int PRIMARY KEY, name text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 250) g;
CREATE TABLE empty_one (id int);
CREATE VIEW item_names AS SELECT name FROM items;
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE SEQUENCE seq;
`;
const MY_FIXTURE = `
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40));
INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE TABLE empty_one (id INT);
CREATE VIEW item_names AS SELECT name FROM items;
CREATE PROCEDURE p() SELECT 1;
CREATE TRIGGER t BEFORE INSERT ON items FOR EACH ROW SET NEW.id = NEW.id;
`;

function unique(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().slice(0, 8)}`;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Replaces a dump's bytes and makes its .sha256 and metadata agree with them. */
async function rewriteDump(dump: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(dump, bytes);
  const hex = await sha256Hex(bytes);
  const name = dump.split("/").pop()!;
  await Deno.writeTextFile(dump.replace(/\.sql\.gz$/, ".sha256"), `${hex}  ${name}\n`);
  const metaPath = dump.replace(/\.sql\.gz$/, ".metadata.json");
  const meta = JSON.parse(await Deno.readTextFile(metaPath)) as BackupMetadata;
  meta.file = { ...meta.file!, bytes: bytes.length, sha256: hex };
  await Deno.writeTextFile(metaPath, JSON.stringify(meta, null, 2));
}

async function readMeta(dump: string): Promise<BackupMetadata> {
  return JSON.parse(await Deno.readTextFile(dump.replace(/\.sql\.gz$/, ".metadata.json")));
}

function noSecret(r: CliResult, password: string) {
  assert(!r.stdout.includes(password) && !r.stderr.includes(password), "password in output");
}

async function pgSetup(test: string) {
  const pg = await sharedPostgres();
  const db = unique(test);
  await pg.sql(`CREATE DATABASE ${db}`);
  await pg.sql(PG_FIXTURE, { database: db });
  const env = await makeTestEnv([{ id: "pg", server: pg }]);
  return {
    pg,
    db,
    env,
    async [Symbol.asyncDispose]() {
      await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
      await env.cleanup();
    },
  };
}

Deno.test("verify: a good backup passes, the result and the row counts are in its metadata, --json parses", async () => {
  await using s = await pgSetup("vfy_ok");
  const { dump } = await backupNow(s.env, "pg", s.db);
  const before = await readMeta(dump);
  assertEquals(before.tables?.["public.items"], { rows: 250, exact: true });
  assertEquals(before.tables?.["public.empty_one"], { rows: 0, exact: true });
  const r = await s.env.run(["--json", "verify", "--instance", "pg", "--database", s.db]);
  assertEquals(r.code, 0, r.stderr + r.stdout);
  noSecret(r, s.pg.password);
  const out = JSON.parse(r.stdout);
  assertEquals(out.length, 1);
  assertEquals(out[0].result, "ok");
  assertEquals(out[0].kind, "checksum");
  assertEquals(out[0].recorded, true);
  const after = await readMeta(dump);
  assertEquals(after.verify, { result: "ok", kind: "checksum" });
  assertMatch(after.verified_at!, /^\d{4}-\d\d-\d\dT/);
});

Deno.test("backup row counts on PostgreSQL are taken in the dump's own snapshot: rows written during the dump are neither dumped nor counted", async () => {
  await using s = await pgSetup("vfy_snap");
  // A filler long enough to dump that the writer commits many rows while pg_dump runs.
  await s.pg.sql(
    `CREATE TABLE filler AS SELECT g AS id, repeat('x', 200) AS pad
       FROM generate_series(1, 150000) g;
     CREATE TABLE busy (id serial PRIMARY KEY);
     CREATE TABLE stop (done bool);
     INSERT INTO busy DEFAULT VALUES;`,
    { database: s.db },
  );
  const writer = s.pg.sql(
    `DO $$ BEGIN
       WHILE NOT EXISTS (SELECT FROM stop) LOOP
         INSERT INTO busy DEFAULT VALUES; COMMIT; PERFORM pg_sleep(0.002);
       END LOOP; END $$`,
    { database: s.db },
  );
  try {
    const { dump } = await backupNow(s.env, "pg", s.db);
    const text = new TextDecoder().decode(gunzipSync(await Deno.readFile(dump)));
    const copy = text.slice(text.indexOf("COPY public.busy "));
    const dumped = copy.slice(copy.indexOf("\n") + 1, copy.indexOf("\n\\.\n")).split("\n").length;
    const counted = (await readMeta(dump)).tables?.["public.busy"];
    // Rows did arrive while the backup ran, so counts taken outside the dump would differ.
    const later = Number(await s.pg.sql("SELECT count(*) FROM busy", { database: s.db }));
    assert(later > dumped + 20, `only ${later - dumped} rows written during the backup`);
    assertEquals(counted, { rows: dumped, exact: true });
  } finally {
    await s.pg.sql("INSERT INTO stop VALUES (true)", { database: s.db });
    await writer;
  }
});

Deno.test("verify catches a flipped byte, a truncated file and a missing completion marker with matching .sha256, and a deleted dump", async () => {
  await using s = await pgSetup("vfy_bad");
  const verifyFile = (f: string) => s.env.run(["verify", "--file", f]);

  const flipped = (await backupNow(s.env, "pg", s.db)).dump;
  const bytes = await Deno.readFile(flipped);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  await Deno.writeFile(flipped, bytes);
  let r = await verifyFile(flipped);
  assertEquals(r.code, 1, r.stderr + r.stdout);
  assertStringIncludes(r.stdout, "does not match its checksum");
  assertEquals((await readMeta(flipped)).verify?.result, "failed");

  const truncated = (await backupNow(s.env, "pg", s.db)).dump;
  const whole = await Deno.readFile(truncated);
  await rewriteDump(truncated, whole.subarray(0, Math.floor(whole.length * 0.6)));
  r = await verifyFile(truncated);
  assertEquals(r.code, 1, r.stderr + r.stdout);
  assertStringIncludes(r.stdout, "cannot be decompressed");

  const unmarked = (await backupNow(s.env, "pg", s.db)).dump;
  const sql = new TextDecoder().decode(gunzipSync(await Deno.readFile(unmarked)));
  assertStringIncludes(sql, "-- PostgreSQL database dump complete");
  const cut = sql.replace(/-- PostgreSQL database dump complete[\s\S]*$/, "");
  await rewriteDump(unmarked, gzipSync(new TextEncoder().encode(cut)));
  r = await verifyFile(unmarked);
  assertEquals(r.code, 1, r.stderr + r.stdout);
  assertStringIncludes(r.stdout, "completion marker");
  const meta = await readMeta(unmarked);
  assertEquals(meta.verify?.kind, "checksum");
  assertStringIncludes(meta.verify?.error ?? "", "completion marker");

  const deleted = (await backupNow(s.env, "pg", s.db)).dump;
  await Deno.remove(deleted);
  // The newest backup is the one checked, never passed over for an older one that verifies.
  r = await s.env.run(["verify", "--instance", "pg", "--database", s.db]);
  assertEquals(r.code, 1, r.stderr + r.stdout);
  assertStringIncludes(r.stdout, "the dump file is missing");
  assertEquals(r.stdout.match(/^FAILED/gm)?.length, 1);

  // --all: every backup; the four broken ones fail.
  const first = (await backupNow(s.env, "pg", s.db)).dump;
  r = await s.env.run(["--json", "verify", "--instance", "pg", "--database", s.db, "--all"]);
  assertEquals(r.code, 1, r.stderr + r.stdout);
  const all = JSON.parse(r.stdout) as { file: string; result: string }[];
  assertEquals(all.map((o) => o.result), ["ok", "failed", "failed", "failed", "failed"]);
  assertEquals(all[0].file, first);
});

Deno.test("verify --restore passes on good PostgreSQL and MariaDB backups and drops the scratch database", async () => {
  const pg = await sharedPostgres();
  const my = await sharedMariadb();
  const pdb = unique("vfy_rp");
  const mdb = unique("vfy_rm");
  await pg.sql(`CREATE DATABASE ${pdb}`);
  await pg.sql(PG_FIXTURE, { database: pdb });
  await my.sql(`CREATE DATABASE ${mdb}`);
  await my.sql(MY_FIXTURE, { database: mdb });
  const env = await makeTestEnv([{ id: "pg", server: pg }, { id: "my", server: my }]);
  try {
    const p = await backupNow(env, "pg", pdb);
    const m = await backupNow(env, "my", mdb);
    assertEquals((await readMeta(m.dump)).tables?.items, { rows: 3, exact: true });
    const r = await env.run(["--json", "verify", "--restore"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    noSecret(r, pg.password);
    noSecret(r, my.password);
    const out = JSON.parse(r.stdout) as { scratch: string; result: string; database: string }[];
    assertEquals(out.map((o) => o.result), ["ok", "ok"]);
    for (const o of out) assertMatch(o.scratch, /^vya_verify_vfy_r[pm]_[0-9a-f]{8}_\d{8}t\d{6}z$/);
    assert(!await pgExists(pg, out.find((o) => o.database === pdb)!.scratch));
    assert(!await myExists(my, out.find((o) => o.database === mdb)!.scratch));
    assertEquals((await readMeta(p.dump)).verify, { result: "ok", kind: "restore" });
    assertEquals((await readMeta(m.dump)).verify, { result: "ok", kind: "restore" });
  } finally {
    await pg.sql(`DROP DATABASE IF EXISTS ${pdb}`);
    await my.sql(`DROP DATABASE IF EXISTS ${mdb}`);
    await env.cleanup();
  }
});

Deno.test("verify --restore fails with exit 1 when the restored rows differ from the metadata, and the scratch database is gone", async () => {
  const my = await sharedMariadb();
  const db = unique("vfy_rows");
  await my.sql(`CREATE DATABASE ${db}`);
  await my.sql(MY_FIXTURE, { database: db });
  const env = await makeTestEnv([{ id: "my", server: my }]);
  try {
    const { dump, metadata } = await backupNow(env, "my", db);
    const meta = await readMeta(dump);
    meta.tables!.items.rows = 4;
    await Deno.writeTextFile(metadata, JSON.stringify(meta, null, 2));
    const r = await env.run(["verify", "--restore", "--instance", "my", "--database", db]);
    assertEquals(r.code, 1, r.stderr + r.stdout);
    assertStringIncludes(r.stdout, "table items: 4 rows backed up, 3 restored");
    const scratch = /dropping the scratch database (\S+)/.exec(r.stderr)?.[1];
    assert(scratch?.startsWith("vya_verify_"), r.stderr);
    assert(!await myExists(my, scratch!));
    const after = await readMeta(dump);
    assertEquals(after.verify?.result, "failed");
    assertEquals(after.verify?.kind, "restore");
  } finally {
    await my.sql(`DROP DATABASE IF EXISTS ${db}`);
    await env.cleanup();
  }
});

Deno.test("backup.verify: checksum verifies every new backup; restore test-restores one database a night, rotating", async () => {
  const pg = await sharedPostgres();
  const a = unique("vfy_na");
  const b = unique("vfy_nb");
  for (const db of [a, b]) {
    await pg.sql(`CREATE DATABASE ${db}`);
    await pg.sql(PG_FIXTURE, { database: db });
  }
  const env = await makeTestEnv([{
    id: "pg",
    server: pg,
    extra: { databases: { include: [a, b] }, users: { backup: false } },
  }]);
  try {
    await env.writeConfig({ backup: { verify: "checksum" } });
    let r = await env.run(["backup", "--instance", "pg"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertEquals(r.stdout.match(/^verified pg\/vfy_n[ab]_\w+ \(checksum\)/gm)?.length, 2);
    await env.writeConfig({ backup: { verify: "restore" } });
    const restoredEachNight: string[] = [];
    for (let night = 0; night < 2; night++) {
      await new Promise((res) => setTimeout(res, 1100));
      r = await env.run(["backup", "--instance", "pg"]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      noSecret(r, pg.password);
      const restored = r.stdout.match(/^verified pg\/(\S+) \(restore\)/m);
      assert(restored, r.stdout);
      restoredEachNight.push(restored[1]);
      assertEquals(r.stdout.match(/\(checksum\)/g)?.length, 1);
    }
    assertEquals(restoredEachNight.sort(), [a, b].sort());
  } finally {
    for (const db of [a, b]) await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
    await env.cleanup();
  }
});

Deno.test("verify --restore fails on a PostgreSQL dump whose rows were altered and re-hashed; the scratch database is gone", async () => {
  await using s = await pgSetup("vfy_alt");
  const { dump } = await backupNow(s.env, "pg", s.db);
  const sql = new TextDecoder().decode(gunzipSync(await Deno.readFile(dump)));
  const altered = sql.replace(/^250\titem 250\n/m, "");
  assert(altered !== sql, "the row to remove is in the dump");
  await rewriteDump(dump, gzipSync(new TextEncoder().encode(altered)));
  const checksum = await s.env.run(["verify", "--file", dump]);
  assertEquals(checksum.code, 0, "a consistent file passes the checksum verification");
  const r = await s.env.run(["--json", "verify", "--restore", "--file", dump]);
  assertEquals(r.code, 1, r.stderr + r.stdout);
  const [o] = JSON.parse(r.stdout);
  assertEquals(o.result, "failed");
  assertStringIncludes(o.error, "table public.items: 250 rows backed up, 249 restored");
  assert(!await pgExists(s.pg, o.scratch));
  assertEquals((await readMeta(dump)).verify?.kind, "restore");
});

Deno.test("verify --restore interrupted by SIGINT exits 130 and drops the scratch database", async () => {
  await using s = await pgSetup("vfy_int");
  await s.pg.sql(
    "CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 4) AS pad " +
      "FROM generate_series(1, 400000) g",
    { database: s.db },
  );
  const { dump } = await backupNow(s.env, "pg", s.db);
  const stamp = /_(\d{8}T\d{6}Z)\.sql\.gz$/.exec(dump)![1];
  const scratch = await scratchName(s.db, stamp);
  const run = startCli(s.env, ["verify", "--restore", "--file", dump]);
  await waitFor("the scratch database", () => pgExists(s.pg, scratch), 60_000);
  run.kill("SIGINT");
  const r = await run.done;
  assertEquals(r.code, 130, r.stderr + r.stdout);
  assert(!await pgExists(s.pg, scratch), `${scratch} left behind:\n${r.stderr}`);
  assertEquals(
    (await readMeta(dump)).verify,
    undefined,
    "an interrupted verification is not recorded",
  );
});

Deno.test("backup.verify: a nightly verification that cannot pass fails the run (exit 1) and is in the report", async () => {
  const pg = await sharedPostgres();
  const db = unique("vfy_nf");
  await pg.sql(`CREATE DATABASE ${db}`);
  const http = startHttp();
  const env = await makeTestEnv([
    {
      id: "pg",
      server: pg,
      extra: {
        databases: { include: [db] },
        users: { backup: false },
        verify: { instance: "gone" },
      },
    },
    { id: "gone", server: { ...pg, port: freePort() }, extra: { enabled: false } },
  ]);
  try {
    await env.writeConfig({
      backup: { verify: "restore" },
      notify: { webhooks: [{ url_failure: `${http.url}/failure`, body: "json" }] },
    });
    const r = await env.run(["backup", "--instance", "pg"]);
    assertEquals(r.code, 1, r.stderr + r.stdout);
    noSecret(r, pg.password);
    assertMatch(r.stdout, /^ok +pg\//m);
    assertMatch(
      r.stdout,
      /^verify failed for pg\/vfy_nf_\w+ \(restore, could not verify\): .*refused/mi,
    );
    const call = http.calls.find((c) => c.path === "/failure");
    assert(call, "failure webhook called");
    const report = JSON.parse(call.body);
    assertEquals(report.exit_code, 1);
    assert(report.skipped.some((l: string) => l.startsWith(`verify failed for pg/${db}`)));
  } finally {
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
    await http.stop();
    await env.cleanup();
  }
});

Deno.test("scratch names stay under both engines' limits and never share one between databases", async () => {
  const stamp = "20261126T020000Z";
  assertEquals(await scratchName("shop", stamp), "vya_verify_shop_20261126t020000z");
  const long = "a".repeat(300);
  const names = await Promise.all(
    [long, long + "b", "Shop", "shop", "é-x", "e_x"].map((d) => scratchName(d, stamp)),
  );
  for (const n of names) assert(new TextEncoder().encode(n).length <= 63, n);
  assertEquals(new Set(names).size, names.length);
});

Deno.test("compareRestored: exact counts must match, estimates within half or 1000 rows", () => {
  const meta = {
    objects: { tables: 3, views: 1 },
    tables: {
      small: { rows: 10, exact: true },
      big: { rows: 100_000, exact: false },
      tiny_estimate: { rows: 10, exact: false },
    },
  } as unknown as BackupMetadata;
  const objects = { tables: 3, views: 1, routines: 0, triggers: 0 };
  const rows = (small: number, big: number, tiny = 900) => ({
    small: { rows: small, exact: true },
    big: { rows: big, exact: true },
    tiny_estimate: { rows: tiny, exact: true },
  });
  assertEquals(compareRestored(meta, objects, rows(10, 140_000)).problems, []);
  assertEquals(compareRestored(meta, objects, rows(11, 100_000)).problems, [
    "table small: 10 rows backed up, 11 restored",
  ]);
  assertEquals(compareRestored(meta, objects, rows(10, 40_000, 1011)).problems, [
    "table big: about 100000 rows backed up (estimate), 40000 restored",
    "table tiny_estimate: about 10 rows backed up (estimate), 1011 restored",
  ]);
  const { small: _, ...missing } = rows(10, 100_000);
  assertEquals(compareRestored(meta, { ...objects, tables: 2 }, missing).problems, [
    "the backup recorded 3 tables, the restore holds 2",
    "table small is missing from the restore",
  ]);
  // The MySQL/MariaDB restore mark is a table of the scratch database: not counted.
  const marked = { ...rows(10, 100_000), _vya_restore_incomplete: { rows: 0, exact: true } };
  assertEquals(compareRestored(meta, { ...objects, tables: 4 }, marked).problems, []);
  // A table the backup could not count has no record: not a problem, but said; one table too
  // many is still caught by the object count.
  const uncounted = { ...rows(10, 100_000), never_analyzed: { rows: 5, exact: true } };
  const seen = compareRestored(meta, objects, uncounted);
  assertEquals(seen.problems, []);
  assert(seen.checked.some((c) => /1 not counted at backup time/.test(c)), seen.checked.join());
  assertEquals(compareRestored(meta, { ...objects, tables: 4 }, uncounted).problems, [
    "the backup recorded 3 tables, the restore holds 4",
  ]);
});
