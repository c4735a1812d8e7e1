/**
 * `backup` against real PostgreSQL and MariaDB servers, through the CLI as a sysadmin runs it:
 * every compression gives a file the system's gzip/zstd read back, that `sha256sum -c` accepts,
 * with metadata matching both the file and the server; folders 0700, files 0600. Selection by
 * include/exclude globs and `--database` picks exactly the right databases and never a system
 * one; `--dry-run` writes nothing; `--json` prints one summary object.
 */
import { basename, dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import type { RunSummary } from "../lib/backup/run.ts";
import { databaseBackupPaths } from "../lib/storage/layout.ts";
import {
  decompress,
  dumpFiles,
  instanceRoot,
  listDirs,
  listFiles,
  readMeta,
  sha256sumCheck,
} from "./backup_support.ts";

const PG_DB = "bk_main";
const MY_DB = "bk_my";

const PG_OBJECTS = {
  tables: 3,
  views: 2,
  sequences: 1,
  routines: 3,
  triggers: 1,
  large_objects: 0,
};
const MY_OBJECTS = { tables: 2, views: 1, sequences: 1, routines: 2, triggers: 1, events: 1 };

let fixtures: Promise<{ pg: PgServer; my: MyServer }> | undefined;

/** One database per engine with known numbers of every kind of object. */
function servers(): Promise<{ pg: PgServer; my: MyServer }> {
  fixtures ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    await pg.sql(`CREATE ROLE bk_owner NOLOGIN`);
    await pg.sql(
      `CREATE DATABASE ${PG_DB} OWNER bk_owner ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'
         TEMPLATE template0`,
    );
    await pg.sql(
      `
      CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
      CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers(id), total numeric);
      CREATE TABLE audit (at timestamptz DEFAULT now(), what text);
      CREATE VIEW v_orders AS SELECT * FROM orders;
      CREATE MATERIALIZED VIEW mv_totals AS SELECT customer, sum(total) FROM orders GROUP BY 1;
      CREATE FUNCTION f_add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b';
      CREATE PROCEDURE p_noop() LANGUAGE sql AS 'SELECT 1';
      CREATE FUNCTION f_audit() RETURNS trigger LANGUAGE plpgsql
        AS $$BEGIN INSERT INTO audit(what) VALUES (TG_OP); RETURN NEW; END$$;
      CREATE TRIGGER t_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f_audit();
      INSERT INTO customers (name) VALUES ('marker-alice'), ('marker-bob');
      INSERT INTO orders VALUES (1, 1, 10.5), (2, 2, 99.25);`,
      { database: PG_DB },
    );
    await my.sql(`
      CREATE DATABASE ${MY_DB} CHARACTER SET latin1 COLLATE latin1_german2_ci;
      USE ${MY_DB};
      CREATE TABLE t_customers (id INT PRIMARY KEY, name VARCHAR(40));
      CREATE TABLE t_orders (id INT PRIMARY KEY, customer INT, total DECIMAL(10,2));
      CREATE SEQUENCE s_ids;
      CREATE VIEW v_orders AS SELECT * FROM t_orders;
      CREATE PROCEDURE p_count(OUT n INT) SELECT COUNT(*) INTO n FROM t_orders;
      CREATE FUNCTION f_add(a INT, b INT) RETURNS INT DETERMINISTIC RETURN a + b;
      CREATE TRIGGER trg BEFORE INSERT ON t_orders FOR EACH ROW SET NEW.total = NEW.total;
      CREATE EVENT ev ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t_orders WHERE id < 0;
      INSERT INTO t_customers VALUES (1, 'marker-alice'), (2, 'marker-bob');
      INSERT INTO t_orders VALUES (1, 1, 10.50), (2, 2, 99.25);`);
    return { pg, my };
  })();
  return fixtures;
}

/** A test set-up backing up the fixture databases only, without users backups. */
function envFor(
  pg: PgServer,
  my: MyServer,
  compression?: Record<string, unknown>,
  include: { pg?: string[]; my?: string[] } = {},
): Promise<TestEnv> {
  return makeTestEnv([
    {
      id: "pg",
      server: pg,
      extra: { users: { backup: false }, databases: { include: include.pg ?? [PG_DB] } },
    },
    {
      id: "my",
      server: my,
      extra: { users: { backup: false }, databases: { include: include.my ?? [MY_DB] } },
    },
  ], { compression });
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

/** Everything a user checks on one database's backup, from the file up to the server. */
async function checkBackup(
  env: TestEnv,
  server: PgServer | MyServer,
  instance: string,
  database: string,
  ext: string,
): Promise<void> {
  const files = listFiles(join(instanceRoot(env, instance), database));
  const dumps = files.filter((f) => f.endsWith(ext));
  assertEquals(dumps.length, 1, `one dump of ${database}: ${files.join(", ")}`);
  const dump = dumps[0];
  const stem = basename(dump).slice(0, -ext.length);
  assertEquals(
    files.map((f) => basename(f)).sort(),
    [stem + ".metadata.json", stem + ".sha256", stem + ext].sort(),
    "the dump, its checksum and its metadata, nothing else",
  );
  assertMatch(stem, new RegExp(`^${database}_\\d{8}T\\d{6}Z$`));
  assertMatch(dirname(dump), /\/\d{4}-\d{2}-\d{2}$/);

  const check = await sha256sumCheck(join(dirname(dump), stem + ".sha256"));
  assertEquals(check.code, 0, `sha256sum -c: ${check.text}`);
  assertStringIncludes(check.text, `${basename(dump)}: OK`);

  const bytes = await Deno.readFile(dump);
  const sql = await decompress(dump);
  const meta = await readMeta(join(dirname(dump), stem + ".metadata.json"));
  assertEquals(meta.status, "ok");
  assertEquals(meta.kind, "database");
  assertEquals(meta.instance, instance);
  assertEquals(meta.database, database);
  assertEquals(meta.hostname, Deno.hostname());
  assertEquals(meta.file, {
    name: basename(dump),
    bytes: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  });
  assertEquals(meta.raw_bytes, new TextEncoder().encode(sql).length);
  assertEquals(
    meta.compression.format,
    ext === ".sql.gz" ? "gzip" : ext === ".sql.zst" ? "zstd" : "none",
  );
  assert(meta.error === undefined, `no error on an ok backup: ${meta.error}`);

  if (server.engine === "postgresql") {
    assertEquals(meta.engine, "postgresql");
    assertEquals(meta.server_version, await server.sql("SHOW server_version"));
    assertEquals(meta.dump.tool, "pg_dump");
    assertEquals(meta.objects, PG_OBJECTS);
    assertEquals(meta.database_properties?.owner, "bk_owner");
    assertEquals(meta.database_properties?.encoding, "LATIN1");
    assertEquals(meta.database_properties?.collate, "C");
    assertStringIncludes(sql, "PostgreSQL database dump complete");
    assertMatch(
      sql,
      /COPY public\.customers \(id, name\) FROM stdin;\n1\tmarker-alice\n2\tmarker-bob\n/,
    );
    assertMatch(sql, /CREATE TRIGGER t_audit/);
  } else {
    assertEquals(meta.engine, "mariadb");
    assertEquals(meta.server_version, await server.sql("SELECT VERSION()"));
    assertEquals(meta.dump.tool, "mariadb-dump");
    assertEquals(meta.objects, MY_OBJECTS);
    assertEquals(meta.database_properties?.character_set, "latin1");
    assertEquals(meta.database_properties?.collation, "latin1_german2_ci");
    assertStringIncludes(sql, "-- Dump completed");
    assertMatch(sql, /\(1,'marker-alice'\),\s*\(2,'marker-bob'\)/);
    assertMatch(sql, /CREATE .*PROCEDURE `p_count`/);
    // No CREATE DATABASE / USE: the dump restores under any name.
    assert(!/^(CREATE DATABASE|USE )/m.test(sql), "no CREATE DATABASE or USE in the dump");
  }

  for (const dir of listDirs(env.storage)) assertEquals(mode(dir), 0o700, `mode of ${dir}`);
  for (const file of listFiles(env.storage)) {
    if (basename(file) === ".vya-backupdb.lock") continue;
    assertEquals(mode(file), 0o600, `mode of ${file}`);
  }
}

Deno.test("backup: gzip through --all; the system's gzip, sha256sum and the server agree", async () => {
  const { pg, my } = await servers();
  const env = await envFor(pg, my, { format: "gzip", level: 1 });
  try {
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertMatch(r.stdout, /^ok {6}pg\/bk_main /m);
    assertMatch(r.stdout, /^ok {6}my\/bk_my /m);
    assertStringIncludes(r.stdout, "2 ok, 0 failed");
    await checkBackup(env, pg, "pg", PG_DB, ".sql.gz");
    await checkBackup(env, my, "my", MY_DB, ".sql.gz");
    assertEquals(listFiles(env.storage).filter((f) => f.endsWith(".partial")), []);
    assert(!listFiles(env.storage).some((f) => f.endsWith(".lock")), "the lock is released");
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup: zstd through --instance, one instance at a time", async () => {
  const { pg, my } = await servers();
  const env = await envFor(pg, my, { format: "zstd", level: 1 });
  try {
    const r1 = await env.run(["backup", "--instance", "pg"]);
    assertEquals(r1.code, 0, r1.stderr + r1.stdout);
    assertEquals(dumpFiles(instanceRoot(env, "my")).length, 0, "only the named instance");
    const r2 = await env.run(["backup", "--instance", "my"]);
    assertEquals(r2.code, 0, r2.stderr + r2.stdout);
    await checkBackup(env, pg, "pg", PG_DB, ".sql.zst");
    await checkBackup(env, my, "my", MY_DB, ".sql.zst");
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup: no compression writes plain SQL", async () => {
  const { pg, my } = await servers();
  const env = await envFor(pg, my, { format: "none" });
  try {
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    await checkBackup(env, pg, "pg", PG_DB, ".sql");
    await checkBackup(env, my, "my", MY_DB, ".sql");
  } finally {
    await env.cleanup();
  }
});

// ---------------------------------------------------------------------------------------------
// Selection

let selection: Promise<void> | undefined;

function selectionFixture(pg: PgServer, my: MyServer): Promise<void> {
  selection ??= (async () => {
    for (const db of ["sel_a1", "sel_a2", "sel_b1", "sel_c1"]) {
      await pg.sql(`CREATE DATABASE ${db}`);
      await my.sql(`CREATE DATABASE ${db}`);
    }
  })();
  return selection;
}

/** The databases a JSON dry run plans, per instance. */
async function planned(env: TestEnv, args: string[]): Promise<Record<string, string[]>> {
  const r = await env.run(["--json", "backup", "--dry-run", ...args]);
  assertEquals(r.code, 0, r.stderr + r.stdout);
  const summary = JSON.parse(r.stdout) as RunSummary;
  assertEquals(summary.dry_run, true);
  const out: Record<string, string[]> = {};
  for (const item of summary.results) {
    assertEquals(item.status, "planned");
    (out[item.instance] ??= []).push(item.database!);
  }
  for (const k of Object.keys(out)) out[k].sort();
  return out;
}

Deno.test("backup: include/exclude globs select exactly the right databases", async () => {
  const { pg, my } = await servers();
  await selectionFixture(pg, my);
  const env = await envFor(pg, my, undefined, {
    pg: ["sel_a*", "sel_b?", "postgres", "template1"],
    my: ["sel_a*", "sel_b?", "mysql", "information_schema", "performance_schema", "sys"],
  });
  try {
    await env.writeConfig({
      instances: [
        {
          id: "pg",
          type: "postgresql",
          host: pg.host,
          port: pg.port,
          credential: "pg",
          users: { backup: false },
          databases: {
            include: ["sel_a*", "sel_b?", "postgres", "template1", "template0"],
            exclude: ["*2"],
          },
        },
        {
          id: "my",
          type: "mariadb",
          host: my.host,
          port: my.port,
          credential: "my",
          users: { backup: false },
          databases: {
            include: ["sel_a*", "sel_b?", "mysql", "information_schema", "performance_schema"],
            exclude: ["sel_a2"],
          },
        },
      ],
    });
    assertEquals(await planned(env, ["--all"]), {
      pg: ["sel_a1", "sel_b1"],
      my: ["sel_a1", "sel_b1"],
    });
    // include ["*"]: every user database, never a system one.
    const everything = await makeTestEnv([
      { id: "pg", server: pg, extra: { users: { backup: false }, databases: { include: ["*"] } } },
      { id: "my", server: my, extra: { users: { backup: false }, databases: { include: ["*"] } } },
    ]);
    try {
      const all = await planned(everything, ["--all"]);
      for (const db of ["sel_a1", "sel_a2", "sel_b1", "sel_c1"]) {
        assert(all.pg.includes(db), `pg ${db} in ${all.pg}`);
        assert(all.my.includes(db), `my ${db} in ${all.my}`);
      }
      for (const sys of ["postgres", "template0", "template1"]) {
        assert(!all.pg.includes(sys), `system database ${sys} selected: ${all.pg}`);
      }
      for (const sys of ["mysql", "information_schema", "performance_schema", "sys"]) {
        assert(!all.my.includes(sys), `system database ${sys} selected: ${all.my}`);
      }
      assertEquals(listFiles(everything.storage), [], "a dry run writes nothing");
    } finally {
      await everything.cleanup();
    }
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup: --dry-run lists the targets and writes nothing", async () => {
  const { pg, my } = await servers();
  await selectionFixture(pg, my);
  const env = await envFor(pg, my, undefined, { pg: ["sel_*"], my: ["sel_c1"] });
  try {
    const r = await env.run(["backup", "--all", "--dry-run"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("would back up"));
    assertEquals(lines.length, 5, r.stdout);
    for (const db of ["sel_a1", "sel_a2", "sel_b1", "sel_c1"]) {
      assertMatch(
        r.stdout,
        new RegExp(
          `^would back up pg/${db} \\(.*\\) -> ${env.storage}/[^/]+/pg/${db}/\\d{4}-\\d{2}-\\d{2}/${db}_\\d{8}T\\d{6}Z\\.sql\\.gz$`,
          "m",
        ),
      );
    }
    assertMatch(r.stdout, /^would back up my\/sel_c1 /m);
    // Nothing written: not even the storage folder or its lock.
    assertEquals(listFiles(env.storage), []);
    assertEquals(listFiles(env.dir).filter((f) => f.startsWith(env.storage)), []);
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup: --database picks named databases; a missing or system name fails that name", async () => {
  const { pg, my } = await servers();
  await selectionFixture(pg, my);
  const env = await envFor(pg, my, undefined, { pg: [], my: [] });
  try {
    // Named databases are backed up even if the include globs would not pick them.
    const both = await env.run([
      "backup",
      "--instance",
      "pg",
      "--database",
      "sel_b1",
      "--database",
      "nosuch",
      "--database",
      "sel_b1",
    ]);
    assertEquals(both.code, 1, both.stderr + both.stdout);
    assertStringIncludes(both.stdout, "1 ok, 1 failed", "a name given twice is backed up once");
    assertMatch(both.stdout, /^ok {6}pg\/sel_b1 /m);
    assertMatch(both.stdout, /^FAILED {2}pg\/nosuch: .*"nosuch" does not exist/m);
    assertEquals(
      dumpFiles(instanceRoot(env, "pg")).map((f) => basename(dirname(dirname(f)))),
      ["sel_b1"],
    );

    const alone = await env.run(["backup", "--instance", "pg", "--database", "nosuch"]);
    assertEquals(alone.code, 2, alone.stderr + alone.stdout);
    assertStringIncludes(alone.stdout + alone.stderr, "nosuch");

    for (
      const [instance, sys] of [
        ["pg", "postgres"],
        ["pg", "template1"],
        ["my", "mysql"],
        ["my", "information_schema"],
      ]
    ) {
      const r = await env.run(["backup", "--instance", instance, "--database", sys]);
      assertEquals(r.code, 2, `${sys}: ${r.stderr}${r.stdout}`);
      assertMatch(r.stdout, new RegExp(`^FAILED {2}${instance}/${sys}: `, "m"));
      assertEquals(listFiles(join(instanceRoot(env, instance), sys)), [], `nothing for ${sys}`);
    }
    assertEquals(dumpFiles(instanceRoot(env, "my")), []);

    // A backup from the same second already there (an earlier run) is never overwritten.
    const now = Date.now();
    const planted: string[] = [];
    for (let s = 0; s <= 2; s++) {
      const at = new Date(now + s * 1000);
      const p = databaseBackupPaths(env.storage, Deno.hostname(), "pg", "sel_c1", at, "gzip");
      await Deno.mkdir(p.dir, { recursive: true });
      for (const f of [p.dump, p.metadata]) await Deno.writeTextFile(f, "earlier backup");
      planted.push(p.dump, p.metadata);
    }
    const again = await env.run(["backup", "--instance", "pg", "--database", "sel_c1"]);
    assertEquals(again.code, 0, again.stderr + again.stdout);
    for (const f of planted) assertEquals(await Deno.readTextFile(f), "earlier backup", f);
    const fresh = dumpFiles(join(instanceRoot(env, "pg"), "sel_c1")).filter((f) =>
      !planted.includes(f)
    );
    assertEquals(fresh.length, 1, `a new backup beside the earlier ones: ${fresh}`);
    assertEquals((await readMeta(fresh[0].replace(/\.sql\.gz$/, ".metadata.json"))).status, "ok");

    const usage = await env.run(["backup", "--all", "--database", "sel_b1"]);
    assertEquals(usage.code, 64, usage.stderr);
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup: --json prints one summary object with every database's result", async () => {
  const { pg, my } = await servers();
  await selectionFixture(pg, my);
  const env = await envFor(pg, my, undefined, { pg: ["sel_a1", "sel_b1"], my: ["sel_c1"] });
  try {
    const r = await env.run(["--json", "backup", "--all"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const summary = JSON.parse(r.stdout) as RunSummary; // the whole of stdout is one object
    assertEquals(summary.dry_run, false);
    assert(Date.parse(summary.started_at) <= Date.parse(summary.finished_at));
    const byName = Object.fromEntries(
      summary.results.map((x) => [`${x.instance}/${x.database}`, x]),
    );
    assertEquals(Object.keys(byName).sort(), ["my/sel_c1", "pg/sel_a1", "pg/sel_b1"]);
    for (const item of summary.results) {
      assertEquals(item.status, "ok");
      assert(item.path && item.path.startsWith(env.storage + "/"), `path ${item.path}`);
      const bytes = await Deno.readFile(item.path);
      assertEquals(item.bytes, bytes.length);
      assertEquals(item.sha256, createHash("sha256").update(bytes).digest("hex"));
      assertEquals(item.raw_bytes, new TextEncoder().encode(await decompress(item.path)).length);
      assert(typeof item.duration_ms === "number" && item.duration_ms >= 0, "duration");
      assert(item.error === undefined);
    }

    const failed = await env.run([
      "--json",
      "backup",
      "--instance",
      "pg",
      "--database",
      "sel_a1",
      "--database",
      "nosuch",
    ]);
    assertEquals(failed.code, 1, failed.stderr);
    const s2 = JSON.parse(failed.stdout) as RunSummary;
    const bad = s2.results.find((x) => x.database === "nosuch")!;
    assertEquals(bad.status, "failed");
    assertStringIncludes(bad.error!, "nosuch");
    assertEquals(bad.path, undefined);
    assertEquals(s2.results.find((x) => x.database === "sel_a1")?.status, "ok");
  } finally {
    await env.cleanup();
  }
});
