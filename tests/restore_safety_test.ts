/**
 * A restore never loses data and never leaves a copy that looks whole but is not, on real
 * PostgreSQL and MariaDB servers through the CLI: names the server would cut short, kill -9 at
 * several points of a load, two restores into one target, a database with more relations than
 * one transaction can lock, views and routines whose DEFINER is missing, and `--force` with
 * other sessions on the target.
 */
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import {
  type MyServer,
  type PgServer,
  sharedMariadb,
  sharedPostgres,
  startMariadb,
  startPostgres,
} from "./harness/servers.ts";
import { join } from "node:path";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { backupNow, pgExists } from "./helpers/restore_support.ts";
import { alive, descendants, startCli, waitFor } from "./backup_support.ts";
import { MARKER_PREFIX, MARKER_TABLE } from "../lib/restore/marker.ts";
import { myTargetView, pgTargetView, type TargetView } from "./helpers/targets.ts";
import { lockKey } from "../lib/restore/target.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** One engine's view of a target, and how to make a source database of a given size. */
interface Engine extends TargetView {
  /** Creates `db` with about `mb` MB of rows in two tables. */
  fill(db: string, mb: number): Promise<void>;
}

function pgEngine(pg: PgServer): Engine {
  return {
    ...pgTargetView(pg),
    async fill(db, mb) {
      const rows = Math.round(mb * 1e6 / 300);
      await pg.sql(`CREATE DATABASE ${db}`);
      await pg.sql(
        `CREATE TABLE first (id int PRIMARY KEY, v text);
         INSERT INTO first SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, ${rows}) g;
         CREATE TABLE second (id int PRIMARY KEY, v text);
         INSERT INTO second SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, ${rows}) g;
         CREATE INDEX second_v ON second (v);`,
        { database: db },
      );
    },
  };
}

function myEngine(my: MyServer): Engine {
  return {
    ...myTargetView(my),
    async fill(db, mb) {
      const rows = Math.round(mb * 1e6 / 300);
      await my.sql(`CREATE DATABASE ${db}`);
      await my.sql(
        `CREATE TABLE first (id INT PRIMARY KEY, v TEXT);
         CREATE TABLE second (id INT PRIMARY KEY, v TEXT);
         INSERT INTO first SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_${rows};
         INSERT INTO second SELECT * FROM first;`,
        { database: db },
      );
    },
  };
}

/** Named points of a restore's load into `target`, each as a check of the server. */
function loadPoints(e: Engine, target: string): [string, () => Promise<boolean>][] {
  const q = async (sql: string) => Number(await e.server.sql(sql)) > 0;
  if (e.id === "pg") {
    const copied = (bytes: number) => () =>
      q(`SELECT count(*) FROM pg_stat_progress_copy WHERE datname = '${target}'
           AND bytes_processed > ${bytes}`);
    return [
      ["target created", () => e.exists(target)],
      ["first COPY under way", copied(0)],
      ["20 MB copied", copied(20e6)],
      [
        "index build",
        () => q(`SELECT count(*) FROM pg_stat_progress_create_index WHERE datname = '${target}'`),
      ],
    ];
  }
  const rows = (table: string) => () =>
    e.exists(target).then((there) =>
      there && q(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${target}'
                   AND TABLE_NAME = '${table}' AND TABLE_ROWS > 0`)
    );
  return [
    ["target created", () => e.exists(target)],
    ["first table loading", rows("first")],
    ["second table loading", rows("second")],
  ];
}

let setup: Promise<{ env: TestEnv; engines: Engine[] }> | undefined;

function getSetup() {
  setup ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    const env = await makeTestEnv([
      { id: "pg", server: pg },
      { id: "my", server: my },
    ]);
    return { env, engines: [pgEngine(pg), myEngine(my)] };
  })();
  return setup;
}

/** Restores the newest backup of `db` into `target` through the CLI. */
function restoreArgs(e: Engine, db: string, target: string, ...more: string[]): string[] {
  return ["restore", "--instance", e.id, "--database", db, "--latest", "--target", target, ...more];
}

Deno.test(
  "a --target the server would cut short is refused and the source kept",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      // PostgreSQL keeps the first 63 bytes of a name: "<63 bytes>_check" names the source.
      const source = e.id === "pg" ? "s".repeat(63) : "m".repeat(64);
      await e.server.sql(
        e.id === "pg"
          ? `CREATE DATABASE ${source}`
          : `CREATE DATABASE ${source}; CREATE TABLE ${source}.t (x INT); INSERT INTO ${source}.t VALUES (7);`,
      );
      if (e.id === "pg") {
        await e.server.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (7);", {
          database: source,
        });
      }
      await backupNow(env, e.id, source);
      const before = await e.rows(source);
      const r = await env.run(restoreArgs(e, source, source + "_check"));
      assertEquals(r.code, 3, r.stderr);
      assertMatch(
        r.stderr,
        e.id === "pg"
          ? /is 69 bytes long; PostgreSQL keeps only the first 63 bytes of a name/
          : /is 70 characters long; MySQL and MariaDB allow at most 64/,
      );
      assert(await e.exists(source), `${e.id}: the source database was dropped`);
      assertEquals(await e.rows(source), before);
      await e.drop(source);
    }
  },
);

Deno.test(
  "kill -9 at any point of a restore never leaves a target that looks complete",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        const src = `kill_src_${e.id}`;
        const target = `kill_dst_${e.id}`;
        await e.fill(src, e.id === "pg" ? 60 : 25);
        await backupNow(env, e.id, src);
        const want = await e.rows(src);
        const seen: string[] = [];
        // Points of the load seen on the server itself, not guessed from the clock: a busy
        // machine makes a restore slower or faster than any earlier run of it.
        for (const [point, reached] of loadPoints(e, target)) {
          const run = startCli(env, restoreArgs(e, src, target));
          await waitFor(
            `the load to reach "${point}"`,
            async () => run.result || await reached(),
            60_000,
          );
          if (run.result) {
            // The load finished first: nothing to kill at this point.
            assertEquals(run.result.code, 0, run.result.stderr);
            seen.push("finished");
            await e.drop(target);
            continue;
          }
          const children = descendants(run.pid).map((c) => c.pid);
          run.kill("SIGKILL");
          await run.done;
          // The client tools die with the run instead of going on with what they had read.
          await waitFor("the children to die", () => children.every((pid) => !alive(pid)), 5000);
          await waitFor("the client's session to end", async () => !await e.sessions(target));
          const state = await e.state(target);
          seen.push(state);
          if (state === "marked" && !seen.slice(0, -1).includes("marked")) {
            // Nobody takes the half-loaded copy for a database: not a backup, not check.
            const backup = await env.run(["backup", "--instance", e.id, "--database", target]);
            assertEquals(backup.code, 2, backup.stdout + backup.stderr);
            assertMatch(backup.stdout, /carries the mark of a restore that never finished/);
            const check = await env.run(["check", "--instance", e.id]);
            assert(check.code !== 0, check.stdout);
            assertMatch(check.stdout, new RegExp(`${target} was left incomplete by a restore`));
          }
          // Unmarked, it may only be the empty database of the instant between CREATE DATABASE
          // and the mark; on PostgreSQL the load's transaction was never committed either way.
          if (state === "unmarked" || (e.id === "pg" && state === "marked")) {
            assertEquals(await e.tables(target), 0, `${e.id} at "${point}": ${state}`);
          }
        }
        assert(
          seen.filter((x) => x === "marked").length >= 2,
          `${e.id}: too few kills landed during the load: ${seen}`,
        );
        // The re-run recognises the half-loaded copy and replaces it, without --force.
        const r = await env.run(restoreArgs(e, src, target));
        assertEquals(r.code, 0, r.stderr);
        if (seen.at(-1) === "marked") {
          assertMatch(r.stderr, /left incomplete by an interrupted restore/);
        }
        assertEquals(await e.state(target), "unmarked");
        assertEquals(await e.rows(target), want);
        await e.drop(target);
        await e.drop(src);
      });
    }
  },
);

Deno.test(
  "a second restore into the same target waits its turn (exit 4) and drops nothing",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        const src = `twice_src_${e.id}`;
        const target = `twice_dst_${e.id}`;
        await e.fill(src, e.id === "pg" ? 40 : 15);
        await backupNow(env, e.id, src);
        // Deterministic: a session holding the restore lock of that name is "another restore".
        const key = await lockKey(`vya-backupdb restore ${target}`);
        const holder = e.server.sql(
          e.id === "pg"
            ? `SELECT pg_advisory_lock(('x' || '${key.slice(0, 16)}')::bit(64)::bigint);
               SELECT pg_sleep(60);`
            : `SELECT GET_LOCK('vya-restore-${key}', 10); SELECT SLEEP(60);`,
        ).catch(() => "");
        await waitFor("the lock holder", async () =>
          await e.server.sql(
            e.id === "pg"
              ? "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
              : `SELECT IS_USED_LOCK('vya-restore-${key}') IS NOT NULL`,
          ) !== "0");
        const refused = await env.run(restoreArgs(e, src, target));
        assertEquals(refused.code, 4, refused.stderr);
        assertMatch(
          refused.stderr,
          new RegExp(`another restore into ${target} on ${e.id} is running; nothing was changed`),
        );
        assert(!await e.exists(target), "a refused restore created its target");
        await e.server.sql(
          e.id === "pg"
            ? "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"
            : "SELECT CONCAT('KILL ', ID, ';') FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(60)%' AND ID <> CONNECTION_ID()",
        ).then((kills) => e.id === "my" && kills ? e.server.sql(kills) : "");
        await holder;
        // Two real restores at once: whichever way the race goes, the first one's database is
        // never dropped by the second (exit 4 while it runs, 3 once it holds the tables).
        const first = startCli(env, restoreArgs(e, src, target));
        await waitFor("the first restore to create the target", async () => {
          if (first.result) throw new Error(`first restore ended early: ${first.result.stderr}`);
          return await e.exists(target);
        });
        const second = await env.run(restoreArgs(e, src, target));
        assert(second.code === 4 || (second.code === 3 && first.result), second.stderr);
        const done = await first.done;
        assertEquals(done.code, 0, done.stderr);
        assertEquals(await e.state(target), "unmarked");
        assertEquals(await e.rows(target), await e.rows(src));
        await e.drop(target);
        await e.drop(src);
      });
    }
  },
);

Deno.test(
  "--force says what it does to other sessions and bounds the wait for their locks",
  opts,
  async (t) => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      await t.step(e.id, async () => {
        const src = `force_src_${e.id}`;
        const target = `force_dst_${e.id}`;
        await e.fill(src, 1);
        await backupNow(env, e.id, src);
        await e.fill(target, 0.1);
        // Another session on the target: a psql in a long sleep, a MariaDB client holding a lock.
        const holder = e.id === "pg"
          ? e.server.sql("SELECT pg_sleep(120)", { database: target }).catch(() => "")
          : e.server.sql("LOCK TABLES first WRITE; SELECT SLEEP(120);", { database: target })
            .catch(() => "");
        await waitFor("the other session", async () => await e.sessions(target) > 0);
        const r = await env.run(restoreArgs(e, src, target, "--force", "--lock-wait", "2"));
        if (e.id === "pg") {
          assertEquals(r.code, 0, r.stderr);
          assertMatch(r.stderr, /the 1 session\(s\) connected to it are terminated/);
          assertEquals(await e.rows(target), await e.rows(src));
        } else {
          assertEquals(r.code, 3, r.stderr);
          assertMatch(r.stderr, /1 session\(s\) are using it: DROP DATABASE waits up to 2 s/);
          assertMatch(r.stderr, /other sessions held locks on it for 2 s; nothing was changed/);
          assertEquals(await e.state(target), "unmarked");
          await e.server.sql(
            `SELECT CONCAT('KILL ', ID) FROM information_schema.PROCESSLIST WHERE DB = '${target}'`,
          ).then((kills) => kills ? e.server.sql(kills.split("\n").join(";\n") + ";") : "");
        }
        await holder;
        await e.drop(target);
        await e.drop(src);
      });
    }
  },
);

Deno.test("missing DEFINER accounts are named, and nothing of the dump is kept", opts, async () => {
  const { env, engines } = await getSetup();
  const my = engines.find((e) => e.id === "my")!;
  await my.server.sql(
    "CREATE USER 'ghost'@'10.9.%' IDENTIFIED BY 'x'; CREATE DATABASE definer_src;",
  );
  await my.server.sql(
    `CREATE TABLE t (id INT, note TEXT);
     INSERT INTO t VALUES (1, 'DEFINER=\`nobody\`@\`nowhere\` in a row is data');
     CREATE DEFINER='ghost'@'10.9.%' SQL SECURITY DEFINER VIEW v AS SELECT x.id FROM t x;
     CREATE DEFINER='ghost'@'10.9.%' PROCEDURE p() SELECT 1;
     DROP USER 'ghost'@'10.9.%';`,
    { database: "definer_src" },
  );
  await backupNow(env, "my", "definer_src");
  let r = await env.run(restoreArgs(my, "definer_src", "definer_dst"));
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /run as account\(s\) missing on my: 'ghost'@'10\.9\.%';/);
  assert(!/nobody/.test(r.stderr), r.stderr);
  assert(!await my.exists("definer_dst"), "refused, yet the target was created");
  r = await env.run(restoreArgs(my, "definer_src", "definer_dst", "--ignore-missing-definers"));
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stderr, /loaded anyway \(--ignore-missing-definers\)/);
  assertEquals(await my.rows("definer_dst"), await my.rows("definer_src"));
  await my.drop("definer_dst");
  await my.drop("definer_src");
});

Deno.test(
  "10,000 tables: backup and check warn, restore refuses one transaction and loads without",
  opts,
  async () => {
    // A server of its own, with PostgreSQL's default lock settings (64 × 100 connections).
    const pg = await startPostgres();
    const env = await makeTestEnv([{ id: "pg", server: pg }]);
    try {
      await pg.sql("CREATE DATABASE many");
      // In batches: creating them all in one transaction would run out of locks too.
      const batches = Array.from(
        { length: 20 },
        (_, b) =>
          `DO $$ BEGIN FOR i IN ${b * 500 + 1}..${b * 500 + 500} LOOP
         EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY)', i); END LOOP; END $$;`,
      );
      await pg.sql(batches.join("\n"), { database: "many" });
      await pg.sql("INSERT INTO t9999 VALUES (42)", { database: "many" });
      const check = await env.run(["check", "--instance", "pg"]);
      assertMatch(check.stdout, /warning: many has 20000 relations; .* --no-single-transaction/);
      const { metadata } = await backupNow(env, "pg", "many");
      const meta = JSON.parse(await Deno.readTextFile(metadata));
      assert(
        (meta.warnings as string[]).some((w) => /many has 20000 relations/.test(w)),
        JSON.stringify(meta.warnings),
      );
      let r = await env.run([
        "restore",
        "--instance",
        "pg",
        "--database",
        "many",
        "--latest",
        "--target",
        "many2",
      ]);
      assertEquals(r.code, 3, r.stderr);
      assertMatch(r.stderr, /creates about 40000 relations .* can lock 6400 at once/);
      assertMatch(r.stderr, /--no-single-transaction/);
      assert(!await pgExists(pg, "many2"), "refused, yet the target was created");
      r = await env.run([
        "restore",
        "--instance",
        "pg",
        "--database",
        "many",
        "--latest",
        "--target",
        "many2",
        "--no-single-transaction",
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        await pg.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", {
          database: "many2",
        }),
        "10000",
      );
      assertEquals(await pg.sql("SELECT id FROM t9999", { database: "many2" }), "42");
      assertEquals(
        await pg.sql(
          "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = 'many2'",
        ),
        "",
      );
    } finally {
      await env.cleanup();
      await pg.stop();
    }
  },
);

Deno.test(
  "a server that stops mid-restore ends the load after backup.stall_timeout",
  opts,
  async () => {
    const my = await startMariadb();
    const env = await makeTestEnv([{ id: "my", server: my }], {
      extra: { backup: { stall_timeout: "2s" } },
    });
    const e = myEngine(my);
    let serverPid = 0;
    try {
      await e.fill("stall_src", 15);
      await backupNow(env, "my", "stall_src");
      serverPid = Number((await Deno.readTextFile(join(my.dir, "mysqld.pid"))).trim());
      const run = startCli(env, restoreArgs(e, "stall_src", "stall_dst"));
      await waitFor(
        "the load to start",
        async () => run.result || await e.tables("stall_dst").catch(() => 0) > 1,
      );
      Deno.kill(serverPid, "SIGSTOP");
      // The run ends while the server is still stopped: the watch, not the server, ended it.
      const r = await Promise.race([
        run.done,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("restore hangs")), 90_000)
        ),
      ]);
      Deno.kill(serverPid, "SIGCONT");
      assertEquals(r.code, 1, r.stderr);
      assertMatch(r.stderr, /made no progress for 2s: restore stalled \(mariadb killed/);
      assertEquals(descendants(run.pid), []);
      // Whatever is left of it carries the mark.
      await waitFor(
        "the client's session to end",
        async () => !await e.sessions("stall_dst"),
      );
      assert(
        (await e.state("stall_dst")) !== "unmarked",
        "a stalled restore left an unmarked target",
      );
    } finally {
      if (serverPid) {
        try {
          Deno.kill(serverPid, "SIGCONT");
        } catch { /* gone */ }
      }
      await env.cleanup();
      await my.stop();
    }
  },
);

Deno.test("large objects restore inside the load's one transaction", opts, async () => {
  const { env, engines } = await getSetup();
  const pg = engines.find((e) => e.id === "pg")!;
  await pg.server.sql("CREATE DATABASE lo_src");
  await pg.server.sql(
    `CREATE TABLE docs (id int PRIMARY KEY, body oid);
     INSERT INTO docs VALUES (1, lo_from_bytea(0, convert_to(repeat('blob ', 1000), 'UTF8')));`,
    { database: "lo_src" },
  );
  await backupNow(env, "pg", "lo_src");
  const r = await env.run(restoreArgs(pg, "lo_src", "lo_dst", "--dry-run"));
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /in one transaction, committed once the whole file has verified/);
  const done = await env.run(restoreArgs(pg, "lo_src", "lo_dst"));
  assertEquals(done.code, 0, done.stderr);
  // pg_dump's own BEGIN/COMMIT around the large objects would have committed early: psql warns
  // "there is already a transaction in progress" when they are sent.
  assert(!/already a transaction in progress/.test(done.stderr), done.stderr);
  const body = "SELECT md5(lo_get(body)) FROM docs WHERE id = 1";
  assertEquals(
    await pg.server.sql(body, { database: "lo_dst" }),
    await pg.server.sql(body, { database: "lo_src" }),
  );
  await pg.drop("lo_dst");
  await pg.drop("lo_src");
});

/** Runs a client tool of a test server and returns its stdout (throws on failure). */
async function dumpWith(server: PgServer | MyServer, args: string[]): Promise<string> {
  const out = await new Deno.Command(args[0], {
    args: args.slice(1),
    env: server.clientEnv,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test(
  "a file that would leave the target (USE, CREATE DATABASE, \\connect, \\!) is refused",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    const dir = await Deno.makeTempDir({ prefix: "vya-foreign-" });
    try {
      for (const e of engines) {
        await e.fill(`live_${e.id}`, 0.05);
        const before = await e.rows(`live_${e.id}`);
        const s = e.server;
        const whole = e.id === "pg"
          ? await dumpWith(s, [
            `${s.bin}/pg_dump`,
            "-C",
            "-c",
            "-h",
            s.host,
            "-p",
            String(s.port),
            "-U",
            s.user,
            `live_${e.id}`,
          ])
          : await dumpWith(s, [
            `${s.bin}/mariadb-dump`,
            "--no-defaults",
            "-h",
            s.host,
            "-P",
            String(s.port),
            "-u",
            s.user,
            `-p${s.password}`,
            "--single-transaction",
            "--databases",
            `live_${e.id}`,
          ]);
        const banner = e.id === "pg" ? "-- PostgreSQL database dump" : "-- MariaDB dump 10.19";
        const marker = e.id === "pg"
          ? "-- PostgreSQL database dump complete"
          : "-- Dump completed on 2026-12-01";
        const files = {
          whole,
          shell: `${banner}\nCREATE TABLE x (id int);\n\\! id > ${dir}/pwned_${e.id}\n${marker}\n`,
        };
        for (const [name, text] of Object.entries(files)) {
          const path = `${dir}/${name}_${e.id}.sql`;
          await Deno.writeTextFile(path, text);
          const r = await env.run([
            "restore",
            "--instance",
            e.id,
            "--file",
            path,
            "--target",
            `copy_${e.id}`,
            ...(e.id === "pg" ? ["--no-single-transaction"] : []),
          ]);
          assertEquals(r.code, 3, `${e.id} ${name}: ${r.stderr}`);
          assertMatch(r.stderr, /would leave the target database/);
          assert(!await e.exists(`copy_${e.id}`), `${e.id} ${name}: the target was created`);
        }
        assertEquals(await e.rows(`live_${e.id}`), before, `${e.id}: the live database changed`);
        let pwned = true;
        await Deno.stat(`${dir}/pwned_${e.id}`).catch(() => pwned = false);
        assert(!pwned, `${e.id}: the dump ran a shell command`);
        await e.drop(`live_${e.id}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "a dump whose last line has no newline is still committed and unmarked",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    const pg = engines.find((e) => e.id === "pg")!;
    const s = pg.server;
    await pg.fill("tail_src", 0.05);
    const dump = (await dumpWith(s, [
      `${s.bin}/pg_dump`,
      "-h",
      s.host,
      "-p",
      String(s.port),
      "-U",
      s.user,
      "tail_src",
    ])).split("\n").filter((l) => !l.startsWith("\\unrestrict") && !l.startsWith("\\restrict"))
      .join("\n").trimEnd();
    assert(dump.endsWith("--"), dump.slice(-80));
    const path = await Deno.makeTempFile({ suffix: ".sql" });
    try {
      await Deno.writeTextFile(path, dump);
      const r = await env.run([
        "restore",
        "--instance",
        "pg",
        "--file",
        path,
        "--target",
        "tail_dst",
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await pg.state("tail_dst"), "unmarked");
      assertEquals(await pg.rows("tail_dst"), await pg.rows("tail_src"));
    } finally {
      await Deno.remove(path);
      await pg.drop("tail_dst");
      await pg.drop("tail_src");
    }
  },
);

Deno.test(
  "a mark on a database that existed before needs --force to be replaced",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    for (const e of engines) {
      const src = `premark_src_${e.id}`;
      const target = `premark_dst_${e.id}`;
      await e.fill(src, 0.05);
      await backupNow(env, e.id, src);
      await e.fill(target, 0.01);
      // What a killed load into an existing database leaves (or anyone who can add a table).
      await e.server.sql(
        e.id === "pg"
          ? `COMMENT ON DATABASE ${target} IS '${MARKER_PREFIX}{"run":"x","started_at":"2026-01-01T00:00:00Z","file":"f","created":false}'`
          : `CREATE TABLE ${target}.${MARKER_TABLE} (id INT)`,
      );
      let r = await env.run(restoreArgs(e, src, target));
      assertEquals(r.code, 3, r.stderr);
      assertMatch(r.stderr, /existed before it; it is left alone/);
      assertEquals(await e.tables(target), 2);
      r = await env.run(restoreArgs(e, src, target, "--force"));
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await e.rows(target), await e.rows(src));
      assertEquals(await e.state(target), "unmarked");
      await e.drop(target);
      await e.drop(src);
    }
  },
);

Deno.test(
  "a PostgreSQL dump given to a MariaDB instance is refused as such, exit 3, before anything is created",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    const pg = engines.find((e) => e.id === "pg")!;
    const my = engines.find((e) => e.id === "my")!;
    await pg.server.sql("CREATE DATABASE crossed");
    await pg.server.sql("CREATE TABLE t (id int)", { database: "crossed" });
    const { dump } = await backupNow(env, "pg", "crossed");
    const r = await env.run(["restore", "--instance", "my", "--file", dump, "--target", "crossed"]);
    assertEquals(r.code, 3, r.stderr);
    assertMatch(
      r.stderr,
      /is a PostgreSQL dump \(-- PostgreSQL database dump\); instance my is mariadb/,
    );
    assert(!await my.exists("crossed"), "refused, yet the target was created");
    await pg.drop("crossed");
  },
);

Deno.test(
  "a property statement that fails after CREATE DATABASE leaves nothing: the new database carries the mark from its first moment and is dropped",
  opts,
  async () => {
    const { env, engines } = await getSetup();
    const pg = engines.find((e) => e.id === "pg")!;
    await pg.server.sql("CREATE DATABASE props_src");
    await pg.server.sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)", {
      database: "props_src",
    });
    const backup = await backupNow(env, "pg", "props_src");
    // As a backup of a newer server's database holds a setting this server does not know.
    const meta = JSON.parse(await Deno.readTextFile(backup.metadata));
    meta.database_properties.settings = [{ role: null, setting: "no_such_setting=1" }];
    await Deno.writeTextFile(backup.metadata, JSON.stringify(meta, null, 2));
    const r = await env.run(restoreArgs(pg, "props_src", "props_dst"));
    assertEquals(r.code, 1, r.stderr);
    assertMatch(r.stderr, /no_such_setting/);
    assertEquals(await pg.state("props_dst"), "absent");
    await pg.drop("props_src");
  },
);
