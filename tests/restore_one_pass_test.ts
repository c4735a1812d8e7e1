/**
 * A restore into a database it creates reads the backup once, as it loads it (after hashing the
 * compressed file: the checksum still gates), and still refuses every file the verify pass
 * refuses, on real PostgreSQL and MariaDB servers through the CLI: a file whose checksum does not
 * match its metadata, one cut short of its completion marker, one holding a statement that would
 * leave the target (never sent to the server), a role the dump needs that is missing. Each time the exit code and message are the verify pass's, the
 * database the run created is gone, and nothing else on the server changed.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { backupNow } from "./helpers/restore_support.ts";
import { myTargetView, pgTargetView, type TargetView } from "./helpers/targets.ts";
import { sha256File } from "../lib/stream/sha256.ts";
import { sha256Line } from "../lib/storage/metadata.ts";
import { basename } from "node:path";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Engine extends TargetView {
  /** Creates `db` with two tables of `rows` rows. */
  fill(db: string, rows: number): Promise<void>;
}

function pgEngine(pg: PgServer): Engine {
  return {
    ...pgTargetView(pg),
    async fill(db, rows) {
      await pg.sql(`CREATE DATABASE ${db}`);
      await pg.sql(
        `CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, ${rows}) g;
         CREATE TABLE b AS SELECT * FROM a;`,
        { database: db },
      );
    },
  };
}

function myEngine(my: MyServer): Engine {
  return {
    ...myTargetView(my),
    async fill(db, rows) {
      await my.sql(`CREATE DATABASE ${db}`);
      await my.sql(
        `CREATE TABLE a (id INT PRIMARY KEY, v TEXT);
         INSERT INTO a SELECT seq, MD5(seq) FROM seq_1_to_${rows};
         CREATE TABLE b AS SELECT * FROM a;`,
        { database: db },
      );
    },
  };
}

let setup: Promise<{ env: TestEnv; engines: Engine[] }> | undefined;

function getSetup() {
  setup ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    const env = await makeTestEnv([{ id: "pg", server: pg }, { id: "my", server: my }]);
    return { env, engines: [pgEngine(pg), myEngine(my)] };
  })();
  return setup;
}

function restoreArgs(e: Engine, db: string, target: string, ...more: string[]): string[] {
  return ["restore", "--instance", e.id, "--database", db, "--latest", "--target", target, ...more];
}

/**
 * Rewrites a backup's SQL and records the new file in its metadata (checksum and size), as a
 * file that was made that way would be: only the content is wrong.
 */
async function rewriteBackup(
  backup: { dump: string; metadata: string },
  edit: (sql: string) => string,
): Promise<void> {
  const sql = new TextDecoder().decode(gunzipSync(await Deno.readFile(backup.dump)));
  const changed = edit(sql);
  assert(changed !== sql, "the edit changed nothing");
  await Deno.writeFile(backup.dump, gzipSync(new TextEncoder().encode(changed)));
  await record(backup, await sha256File(backup.dump), (await Deno.stat(backup.dump)).size);
}

/** Records `sha256` and `bytes` for a backup's file: in its metadata and its `.sha256` file. */
async function record(
  backup: { dump: string; metadata: string },
  sha256: string,
  bytes: number,
): Promise<void> {
  const meta = JSON.parse(await Deno.readTextFile(backup.metadata));
  meta.file.sha256 = sha256;
  meta.file.bytes = bytes;
  await Deno.writeTextFile(backup.metadata, JSON.stringify(meta, null, 2));
  await Deno.writeTextFile(
    backup.dump.replace(/\.sql\.gz$/, ".sha256"),
    sha256Line(sha256, basename(backup.dump)),
  );
}

/** The engine's completion marker line, which every backup ends with. */
function completionAt(sql: string): number {
  const at = Math.max(
    sql.lastIndexOf("-- PostgreSQL database dump complete"),
    sql.lastIndexOf("-- Dump completed"),
  );
  assert(at > 0, "no completion marker in the dump");
  return sql.lastIndexOf("\n", at) + 1;
}

Deno.test(
  "a restore into a new database reads the file once and equals the source",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        await e.fill("once_src", 3000);
        await backupNow(env, e.id, "once_src");
        const r = await env.run(["--json", ...restoreArgs(e, "once_src", "once_dst")]);
        assertEquals(r.code, 0, r.stderr);
        const result = JSON.parse(r.stdout);
        assertMatch(result.actions[0], /^read .* once, as it is loaded/);
        assertEquals(result.raw_bytes > 0, true, r.stdout);
        assertEquals(await e.state("once_dst"), "unmarked");
        assertEquals(await e.rows("once_dst"), await e.rows("once_src"));
        // Over two sessions too (on PostgreSQL the metadata's count of no large objects lets it).
        await e.drop("once_dst");
        const two = await env.run([
          "--json",
          ...restoreArgs(e, "once_src", "once_dst", "--jobs", "2"),
        ]);
        assertEquals(two.code, 0, two.stderr);
        assertMatch(JSON.parse(two.stdout).actions[0], /^read .* once, as it is loaded/);
        assertMatch(JSON.parse(two.stdout).actions.join("\n"), / over 2 sessions /);
        assertEquals(await e.rows("once_dst"), await e.rows("once_src"));
        // An existing (empty) target is only changed after the whole file verified.
        await e.drop("once_dst");
        await e.server.sql(`CREATE DATABASE once_dst`);
        const into = await env.run(["--json", ...restoreArgs(e, "once_src", "once_dst")]);
        assertEquals(into.code, 0, into.stderr);
        assertMatch(JSON.parse(into.stdout).actions[0], /^verified /);
        assertEquals(await e.rows("once_dst"), await e.rows("once_src"));
        await e.drop("once_dst");
        await e.drop("once_src");
      });
    }
  },
);

Deno.test(
  "a file that does not match its recorded checksum is refused before the server is touched",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        await e.fill("sum_src", 3000);
        const backup = await backupNow(env, e.id, "sum_src");
        await record(backup, "0".repeat(64), (await Deno.stat(backup.dump)).size);
        // --latest would pass over it (its selection hashes the file); a named file is loaded.
        const r = await env.run([
          "restore",
          "--instance",
          e.id,
          "--file",
          backup.dump,
          "--target",
          "sum_dst",
        ]);
        assertEquals(r.code, 3, r.stderr);
        assertMatch(r.stderr, /does not match its checksum \(expected sha256 0{64}, file has/);
        // The checksum still gates a load that reads the file once: nothing was created.
        assert(!/creating database|dropping/.test(r.stderr), r.stderr);
        assertEquals(await e.state("sum_dst"), "absent");
        await e.drop("sum_src");
      });
    }
  },
);

Deno.test(
  "a dump cut short of its completion marker: refused as truncated, the new database dropped",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        await e.fill("cut_src", 3000);
        const backup = await backupNow(env, e.id, "cut_src");
        await rewriteBackup(backup, (sql) => sql.slice(0, completionAt(sql)));
        const r = await env.run(restoreArgs(e, "cut_src", "cut_dst"));
        assertEquals(r.code, 3, r.stderr);
        assertMatch(r.stderr, /is truncated: the dump tool's completion marker .* is missing/);
        assertEquals(await e.state("cut_dst"), "absent");
        await e.drop("cut_src");
      });
    }
  },
);

Deno.test(
  "a statement that would leave the target is never sent: refused, the other database intact",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        await e.fill("victim", 50);
        const before = await e.rows("victim");
        await e.fill("foreign_src", 3000);
        const backup = await backupNow(env, e.id, "foreign_src");
        // Near the end, after every row: the load is far along when it reaches it.
        await rewriteBackup(backup, (sql) => {
          const at = completionAt(sql);
          return sql.slice(0, at) + "DROP DATABASE victim;\n" + sql.slice(at);
        });
        // PostgreSQL would refuse DROP DATABASE inside the load's transaction by itself; a
        // MySQL load over several sessions reads the file once too.
        const ways = e.id === "pg" ? [["--no-single-transaction"]] : [[], ["--jobs", "2"]];
        for (const more of ways) {
          const r = await env.run(restoreArgs(e, "foreign_src", "foreign_dst", ...more));
          assertEquals(r.code, 3, `${more}: ${r.stderr}`);
          assertMatch(
            r.stderr,
            /would leave the target database \(or run a command on this machine\)/,
          );
          assertEquals(await e.state("foreign_dst"), "absent");
          assertEquals(await e.rows("victim"), before);
        }
        await e.drop("victim");
        await e.drop("foreign_src");
      });
    }
  },
);

Deno.test(
  "PostgreSQL: a role the dump needs is missing: the same refusal, nothing left",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    const e = engines.find((x) => x.id === "pg")!;
    await e.fill("role_src", 100);
    await e.server.sql("CREATE ROLE ghost_owner");
    await e.server.sql("ALTER TABLE b OWNER TO ghost_owner", { database: "role_src" });
    await backupNow(env, "pg", "role_src");
    await e.server.sql("ALTER TABLE b OWNER TO CURRENT_USER", { database: "role_src" });
    await e.server.sql("DROP ROLE ghost_owner");
    const r = await env.run(restoreArgs(e, "role_src", "role_dst"));
    assertEquals(r.code, 3, r.stderr);
    assertMatch(r.stderr, /role\(s\) missing on pg: ghost_owner; the backup assigns ownership/);
    assertEquals(await e.state("role_dst"), "absent");
    const skipped = await env.run(restoreArgs(e, "role_src", "role_dst", "--no-owner"));
    assertEquals(skipped.code, 0, skipped.stderr);
    assertEquals(await e.rows("role_dst"), await e.rows("role_src"));
    await e.drop("role_dst");
    await e.drop("role_src");
  },
);

Deno.test(
  "PostgreSQL --jobs: large objects load in one session; a count of none that the dump belies ends the load",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    const e = engines.find((x) => x.id === "pg")!;
    await e.fill("lo_src", 500);
    // A long table comment first: pg_dump writes large objects after the tables and their
    // comments, so the restore's peek at the file's start does not reach them.
    await e.server.sql(
      `DO $$ BEGIN EXECUTE 'COMMENT ON TABLE a IS ' || quote_literal(repeat('x', 600000)); END $$;
       SELECT lo_from_bytea(0, 'the blob');`,
      { database: "lo_src" },
    );
    const backup = await backupNow(env, "pg", "lo_src");
    const meta = JSON.parse(await Deno.readTextFile(backup.metadata));
    assertEquals(meta.objects.large_objects, 1);
    const blobs = (db: string) =>
      e.server.sql(
        "SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',') AS s FROM pg_largeobject_metadata",
        { database: db },
      );
    // The metadata counts one: the whole file is read first, and the load runs in one session.
    const r = await env.run(["--json", ...restoreArgs(e, "lo_src", "lo_dst", "--jobs", "2")]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(JSON.parse(r.stdout).actions[0], /^verified /);
    assertMatch(r.stderr, /using 1 session: the dump holds large objects/);
    assertEquals(await blobs("lo_dst"), await blobs("lo_src"));
    assertEquals(await e.rows("lo_dst"), await e.rows("lo_src"));
    await e.drop("lo_dst");
    // A large object created after the count and before the dump: the metadata says none.
    meta.objects.large_objects = 0;
    await Deno.writeTextFile(backup.metadata, JSON.stringify(meta, null, 2));
    const belied = await env.run(restoreArgs(e, "lo_src", "lo_dst", "--jobs", "2"));
    assertEquals(belied.code, 1, belied.stderr);
    const dumped = new TextDecoder().decode(gunzipSync(await Deno.readFile(backup.dump)));
    const loLine =
      dumped.split("\n").findIndex((l) => l.startsWith("SELECT pg_catalog.lo_create(")) +
      1;
    assertMatch(
      belied.stderr,
      new RegExp(`line ${loLine}: a large object, which the backup's metadata does not count`),
    );
    assertMatch(belied.stderr, /restore it with --jobs 1/);
    assertEquals(await e.state("lo_dst"), "absent");
    const one = await env.run(restoreArgs(e, "lo_src", "lo_dst", "--jobs", "1"));
    assertEquals(one.code, 0, one.stderr);
    assertEquals(await blobs("lo_dst"), await blobs("lo_src"));
    await e.drop("lo_dst");
    await e.drop("lo_src");
  },
);

Deno.test(
  "restore --latest does not hash the file a second time: the checksum of the pick is the gate, a named file is hashed before the load",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        await e.fill("picked_src", 500);
        const backup = await backupNow(env, e.id, "picked_src");
        const reused = /checksum verified as the file was picked/;
        let r = await env.run(["--verbose", ...restoreArgs(e, "picked_src", "picked_dst")]);
        assertEquals(r.code, 0, r.stderr);
        assertMatch(r.stderr, reused);
        assertEquals(await e.rows("picked_dst"), await e.rows("picked_src"));
        await e.drop("picked_dst");
        r = await env.run([
          "--verbose",
          "restore",
          "--instance",
          e.id,
          "--file",
          backup.dump,
          "--target",
          "picked_dst",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assert(!reused.test(r.stderr), r.stderr);
        assertEquals(await e.rows("picked_dst"), await e.rows("picked_src"));
        await e.drop("picked_dst");
        await e.drop("picked_src");
      });
    }
  },
);
