/**
 * `restore` against real PostgreSQL and MariaDB servers, through the CLI as a sysadmin runs it:
 * a database full of awkward content is backed up, restored under a new name and compared
 * (schema, every table's rows, database properties); bad files and unsafe targets are refused
 * with the server untouched; a load that fails part-way leaves nothing behind.
 */
import { join } from "node:path";
import { deflateRawSync, gzipSync } from "node:zlib";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { backupNow, literal, myExists, pgExists } from "./helpers/restore_support.ts";
import { myProps, myRows, mySchema, pgProps, pgRows, pgSchema } from "./helpers/compare.ts";
import { databaseBackupPaths } from "../lib/storage/layout.ts";
import {
  type BackupMetadata,
  type DatabaseProperties,
  writeMetadata,
} from "../lib/storage/metadata.ts";
import { localFile } from "../lib/storage/local.ts";

const HOST = Deno.hostname();

// ---------------------------------------------------------------------------------------------
// Fixtures

const PG_FIXTURE = `
CREATE TABLE "Mixed ""Case"" Table" (
  id serial PRIMARY KEY,
  "quoted ""col""" text,
  maybe text,
  bin bytea,
  big text,
  at timestamptz,
  doubled int GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO "Mixed ""Case"" Table" ("quoted ""col""", maybe, bin, big, at) VALUES
  ('null below', NULL, '\\x00ff0a0d5c27'::bytea, repeat('large text é ', 20000), '2024-03-10 02:30:00+05:30'),
  ('empty below', '', ''::bytea, '', '1999-12-31 23:59:59.123456-08'),
  (E'tab\\there\\nnewline', 'x', NULL, NULL, NULL);
CREATE TABLE child (id int PRIMARY KEY, parent int NOT NULL REFERENCES "Mixed ""Case"" Table"(id));
INSERT INTO child VALUES (10, 1), (11, 2);
CREATE VIEW child_view AS SELECT c.id, p."quoted ""col""" FROM child c JOIN "Mixed ""Case"" Table" p ON p.id = c.parent;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  NEW.id := NEW.id; -- a ';' and 'OWNER TO nobody;' inside a body
  RETURN NEW;
END;
$body$;
CREATE TRIGGER child_touch BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION touch();
CREATE SEQUENCE counter START 5;
SELECT setval('counter', 42);
COMMENT ON SEQUENCE counter IS 'a sequence''s comment';
ALTER TABLE child OWNER TO restore_owner;
ALTER VIEW child_view OWNER TO restore_owner;
GRANT SELECT ON child TO restore_reader;
`;

const MY_FIXTURE = `
CREATE TABLE \`weird\`\`name\` (
  id INT AUTO_INCREMENT PRIMARY KEY,
  maybe VARCHAR(20) NULL,
  bin BLOB,
  big LONGTEXT,
  at TIMESTAMP NULL,
  dt DATETIME(6) NULL,
  n INT,
  doubled INT AS (n * 2) STORED,
  emoji VARCHAR(10) CHARACTER SET utf8mb4
) DEFAULT CHARSET=utf8mb4;
INSERT INTO \`weird\`\`name\` (maybe, bin, big, at, dt, emoji, n) VALUES
  (NULL, 0x00FF0A0D5C27, REPEAT('large text é ', 20000), '2024-03-10 02:30:00', '1999-12-31 23:59:59.123456', '🦆', 1),
  ('', '', '', NULL, NULL, '', 2),
  ('x', NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE child (id INT PRIMARY KEY, parent INT NOT NULL,
  FOREIGN KEY (parent) REFERENCES \`weird\`\`name\`(id)) ENGINE=InnoDB;
INSERT INTO child VALUES (10, 1), (11, 2);
CREATE VIEW child_view AS SELECT c.id, p.maybe FROM child c JOIN \`weird\`\`name\` p ON p.id = c.parent;
CREATE PROCEDURE count_children(OUT n INT) SELECT COUNT(*) INTO n FROM child;
CREATE TRIGGER child_touch BEFORE INSERT ON child FOR EACH ROW SET NEW.id = NEW.id;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM child WHERE id < 0;
`;

// ---------------------------------------------------------------------------------------------
// Set-up shared by the tests of this file

let setup: Promise<{ env: TestEnv; pg: PgServer; my: MyServer }> | undefined;

function getSetup() {
  setup ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    await pg.sql(`
      CREATE ROLE restore_owner;
      CREATE ROLE restore_reader;
      CREATE DATABASE src_pg OWNER restore_owner TEMPLATE template0 ENCODING 'UTF8'
        LC_COLLATE 'C' LC_CTYPE 'C' CONNECTION LIMIT 7;
      COMMENT ON DATABASE src_pg IS 'the source''s comment';
      REVOKE ALL ON DATABASE src_pg FROM PUBLIC;
      GRANT CONNECT ON DATABASE src_pg TO restore_reader;
      ALTER DATABASE src_pg SET work_mem = '8MB';
      ALTER DATABASE src_pg SET search_path = public, "$user";
      ALTER ROLE restore_reader IN DATABASE src_pg SET statement_timeout = '5s';`);
    await pg.sql(PG_FIXTURE, { database: "src_pg" });
    await my.sql(
      "CREATE DATABASE src_my CHARACTER SET latin1 COLLATE latin1_general_cs;",
    );
    await my.sql(MY_FIXTURE, { database: "src_my" });
    const env = await makeTestEnv([{ id: "pg", server: pg }, { id: "my", server: my }]);
    return { env, pg, my };
  })();
  return setup;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

// ---------------------------------------------------------------------------------------------

type Setup = Awaited<ReturnType<typeof getSetup>>;

/** One engine's round trip through `restore --target`: the comparisons are the engine's own. */
interface RenameRow {
  /** Engine label, part of the test name. */
  name: string;
  /** Instance id in the test config. */
  instance: "pg" | "my";
  /** The fixture database and the new name it is restored under. */
  source: string;
  target: string;
  /** The engine's schema, rows and properties of a database, read from the live server. */
  schema: (s: Setup, db: string) => Promise<string>;
  rows: (s: Setup, db: string) => Promise<Record<string, string>>;
  props: (s: Setup, db: string) => Promise<DatabaseProperties>;
  /** Engine-specific checks after the comparisons. */
  extraChecks: (s: Setup, source: DatabaseProperties) => Promise<void>;
}

const RENAME_ROWS: RenameRow[] = [
  {
    name: "PostgreSQL",
    instance: "pg",
    source: "src_pg",
    target: "copy_pg",
    schema: (s, db) => pgSchema(s.pg, db),
    rows: (s, db) => pgRows(s.pg, db),
    props: (s, db) => pgProps(s.pg, db),
    // The fixture's properties really are non-default, so the comparison above means something.
    extraChecks: (_s, source) => {
      assertEquals(source.owner, "restore_owner");
      assertEquals(source.connection_limit, 7);
      return Promise.resolve();
    },
  },
  {
    name: "MariaDB",
    instance: "my",
    source: "src_my",
    target: "copy_my",
    schema: (s, db) => mySchema(s.my, db),
    rows: (s, db) => myRows(s.my, db),
    props: (s, db) => myProps(s.my, db),
    extraChecks: async (s) => {
      assertEquals(
        await s.my.sql("SELECT emoji FROM `weird``name` WHERE id = 1", { database: "copy_my" }),
        "🦆",
      );
    },
  },
];

for (const row of RENAME_ROWS) {
  Deno.test(`${row.name}: backup restored under a new name is identical`, opts, async () => {
    const s = await getSetup();
    await backupNow(s.env, row.instance, row.source);
    const r = await s.env.run([
      "restore",
      "--instance",
      row.instance,
      "--database",
      row.source,
      "--latest",
      "--target",
      row.target,
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "restored");
    assertEquals(await row.schema(s, row.target), await row.schema(s, row.source));
    assertEquals(await row.rows(s, row.target), await row.rows(s, row.source));
    const want = await row.props(s, row.source);
    const got = await row.props(s, row.target);
    assertEquals(got, want);
    await row.extraChecks(s, want);
  });
}

Deno.test("bad files are refused before the server is touched", opts, async () => {
  const { env, pg, my } = await getSetup();
  const { dump } = await backupNow(env, "pg", "src_pg");
  const dir = await Deno.makeTempDir({ dir: env.dir });
  const bytes = await Deno.readFile(dump);
  // Corrupted: one byte flipped in the middle (the metadata beside it is kept).
  const flipped = bytes.slice();
  flipped[Math.floor(flipped.length / 2)] ^= 0xff;
  await Deno.writeFile(dump, flipped);
  let r = await env.run(["restore", "--instance", "pg", "--file", dump, "--target", "bad1"]);
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /does not match its checksum/);
  assert(!(await pgExists(pg, "bad1")));
  // Truncated, with metadata.
  await Deno.writeFile(dump, bytes.subarray(0, bytes.length - 100));
  r = await env.run(["restore", "--instance", "pg", "--file", dump, "--target", "bad2"]);
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /checksum/);
  // Truncated bare .sql.gz (no metadata): decompression fails.
  const bare = join(dir, "bare.sql.gz");
  await Deno.writeFile(bare, bytes.subarray(0, bytes.length - 100));
  r = await env.run(["restore", "--instance", "pg", "--file", bare, "--target", "bad3"]);
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /damaged or truncated|truncated/);
  // Truncated bare .sql: no completion marker.
  const sql = new TextDecoder().decode(
    await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")))
      .bytes(),
  );
  const plain = join(dir, "plain.sql");
  await Deno.writeTextFile(plain, sql.slice(0, sql.length - 200));
  r = await env.run(["restore", "--instance", "pg", "--file", plain, "--target", "bad4"]);
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /completion marker/);
  // A PostgreSQL dump given to a MariaDB instance.
  const good = join(dir, "good.sql");
  await Deno.writeTextFile(good, sql);
  r = await env.run(["restore", "--instance", "my", "--file", good, "--target", "bad5"]);
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /PostgreSQL dump/);
  assert(!(await myExists(my, "bad5")));
  // Missing file.
  r = await env.run([
    "restore",
    "--instance",
    "pg",
    "--file",
    join(dir, "nope.sql.gz"),
    "--target",
    "bad6",
  ]);
  assertEquals(r.code, 3, r.stderr);
  assertStringIncludes(r.stderr, "nope.sql.gz does not exist");
  for (const db of ["bad2", "bad3", "bad4", "bad6"]) assert(!(await pgExists(pg, db)), db);
  await Deno.remove(dump);
});

Deno.test("a non-empty target is refused without --force and replaced with it", opts, async () => {
  const { env, pg } = await getSetup();
  const { dump } = await backupNow(env, "pg", "src_pg");
  await pg.sql("CREATE DATABASE busy; ");
  await pg.sql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1);", {
    database: "busy",
  });
  let r = await env.run(["restore", "--instance", "pg", "--file", dump, "--target", "busy"]);
  assertEquals(r.code, 3, r.stderr);
  assertMatch(r.stderr, /already exists .* holds 1 tables/);
  assertEquals(await pg.sql("SELECT x FROM keep_me", { database: "busy" }), "1");
  // Dry run with --force: says it would drop, changes nothing.
  r = await env.run([
    "restore",
    "--instance",
    "pg",
    "--file",
    dump,
    "--target",
    "busy",
    "--force",
    "--dry-run",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /drop database busy/);
  assertMatch(r.stdout, /CREATE DATABASE "busy"/);
  assertEquals(await pg.sql("SELECT x FROM keep_me", { database: "busy" }), "1");
  r = await env.run(["restore", "--instance", "pg", "--file", dump, "--target", "busy", "--force"]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stderr, /dropping database busy/);
  assertEquals(
    await pg.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'keep_me'", {
      database: "busy",
    }),
    "0",
  );
  assertEquals(await pgRows(pg, "busy"), await pgRows(pg, "src_pg"));
});

Deno.test("--latest skips failed and corrupted backups and says why", opts, async () => {
  const { env, my } = await getSetup();
  const good = await backupNow(env, "my", "src_my");
  // Newer: a backup whose file got corrupted.
  const bad = await backupNow(env, "my", "src_my");
  const b = await Deno.readFile(bad.dump);
  b[100] ^= 1;
  await Deno.writeFile(bad.dump, b);
  // Newest: a failed backup (metadata only).
  const failedAt = new Date((Math.floor(Date.parse(bad.startedAt) / 1000) + 1) * 1000);
  const failedPaths = databaseBackupPaths(env.storage, HOST, "my", "src_my", failedAt, "gzip");
  const failedMeta = JSON.parse(await Deno.readTextFile(good.metadata)) as BackupMetadata;
  await Deno.mkdir(failedPaths.dir, { recursive: true });
  const failedFile = localFile(failedPaths.metadata);
  await writeMetadata(failedFile.storage, failedFile.key, {
    ...failedMeta,
    status: "failed",
    error: "mariadb-dump exited with code 2",
    file: null,
    started_at: failedAt.toISOString(),
  });
  const list = await env.run([
    "--json",
    "restore",
    "--instance",
    "my",
    "--database",
    "src_my",
    "--list",
  ]);
  // The corrupted one makes the listing exit 1: a backup said ok no longer verifies.
  assertEquals(list.code, 1, list.stderr);
  const rows = JSON.parse(list.stdout) as {
    started_at: string;
    status: string;
    checksum: string;
  }[];
  assertEquals(rows.slice(0, 3).map((r) => [r.started_at, r.status, r.checksum]), [
    [failedAt.toISOString(), "failed", "-"],
    [bad.startedAt, "ok", "bad"],
    [good.startedAt, "ok", "ok"],
  ]);
  const r = await env.run([
    "restore",
    "--instance",
    "my",
    "--database",
    "src_my",
    "--latest",
    "--target",
    "latest_my",
    "--dry-run",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(
    r.stderr,
    new RegExp(
      `skipped backup of ${literal(failedAt.toISOString())}.*backup failed: mariadb-dump exited`,
    ),
  );
  assertMatch(
    r.stderr,
    new RegExp(`skipped backup of ${literal(bad.startedAt)}.*checksum mismatch`),
  );
  assertStringIncludes(r.stderr, good.dump.split("/").pop()!);
  assert(!(await myExists(my, "latest_my")), "dry run created nothing");
  await Deno.remove(bad.dump);
  await Deno.remove(good.dump);
});

Deno.test("a load that fails part-way names the line and leaves no database", opts, async () => {
  const { env, pg, my } = await getSetup();
  const dir = await Deno.makeTempDir({ dir: env.dir });
  const pgFile = join(dir, "broken_pg.sql.gz");
  await Deno.writeFile(
    pgFile,
    gzipSync(new TextEncoder().encode(
      "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE ok (x int);\n" +
        "CREATE TABLE broken (x nosuchtype);\n\n--\n-- PostgreSQL database dump complete\n--\n",
    )),
  );
  let r = await env.run(["restore", "--instance", "pg", "--file", pgFile, "--target", "half_pg"]);
  assertEquals(r.code, 1, r.stderr);
  assertMatch(r.stderr, /line 6 of the dump: ERROR: +type "nosuchtype" does not exist/);
  assert(!(await pgExists(pg, "half_pg")));
  const myFile = join(dir, "broken_my.sql");
  await Deno.writeTextFile(
    myFile,
    "-- MariaDB dump 10.19  Distrib 10.11.0-MariaDB\n\nCREATE TABLE ok (x int);\n" +
      "INSERT INTO ok VALUES (1);\nCREATE TABLE broken (x nosuchtype);\n-- Dump completed on 2024-01-01\n",
  );
  r = await env.run(["restore", "--instance", "my", "--file", myFile, "--target", "half_my"]);
  assertEquals(r.code, 1, r.stderr);
  assertMatch(r.stderr, /line 5 of the dump: ERROR 4161: Unknown data type/);
  assert(!(await myExists(my, "half_my")));
});

Deno.test("--no-owner and missing roles", opts, async () => {
  const { env, pg } = await getSetup();
  const { dump } = await backupNow(env, "pg", "src_pg");
  await pg.sql("CREATE ROLE temp_owner; ALTER DATABASE src_pg OWNER TO temp_owner;");
  await pg.sql("ALTER DATABASE src_pg OWNER TO restore_owner; DROP ROLE temp_owner;");
  // Rename the owner role: the backup names a role the server no longer has.
  await pg.sql("ALTER ROLE restore_owner RENAME TO renamed_owner;");
  try {
    let r = await env.run(["restore", "--instance", "pg", "--file", dump, "--target", "noown"]);
    assertEquals(r.code, 3, r.stderr);
    assertMatch(r.stderr, /role\(s\) missing on pg: restore_owner/);
    assertStringIncludes(r.stderr, "users restore");
    assert(!(await pgExists(pg, "noown")));
    r = await env.run([
      "restore",
      "--instance",
      "pg",
      "--file",
      dump,
      "--target",
      "noown",
      "--no-owner",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      await pg.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'noown'"),
      "postgres",
    );
    assertEquals(
      await pg.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'child'", {
        database: "noown",
      }),
      "postgres",
    );
    assertEquals(await pgRows(pg, "noown"), await pgRows(pg, "src_pg"));
  } finally {
    await pg.sql("ALTER ROLE renamed_owner RENAME TO restore_owner;");
  }
});

/** A one-entry zip (deflate) as the original tool wrote; the CRC is not needed by the reader. */
function zipOf(name: string, content: Uint8Array): Uint8Array {
  const data = deflateRawSync(content);
  const nameBytes = new TextEncoder().encode(name);
  const head = new Uint8Array(30);
  const v = new DataView(head.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint16(4, 20, true);
  v.setUint16(8, 8, true);
  v.setUint32(18, data.length, true);
  v.setUint32(22, content.length, true);
  v.setUint16(26, nameBytes.length, true);
  const out = new Uint8Array(30 + nameBytes.length + data.length + 22);
  out.set(head, 0);
  out.set(nameBytes, 30);
  out.set(data, 30 + nameBytes.length);
  new DataView(out.buffer).setUint32(out.length - 22, 0x06054b50, true);
  return out;
}

Deno.test(
  "original tool files: zip and .sql with their header skipped by structure",
  opts,
  async () => {
    const { env, pg, my } = await getSetup();
    const dir = await Deno.makeTempDir({ dir: env.dir });
    // Data that looks like statements the restore leaves out must come back untouched.
    await pg.sql(`CREATE DATABASE orig_src;`);
    await pg.sql(
      `CREATE TABLE t (x text); INSERT INTO t VALUES ('ALTER TABLE t OWNER TO nobody;'), ('\\.x'), ('-- PostgreSQL database dump');
     ALTER TABLE t OWNER TO restore_owner;`,
      { database: "orig_src" },
    );
    const dumped = await new Deno.Command(`${pg.bin}/pg_dump`, {
      args: ["-h", pg.host, "-p", String(pg.port), "-U", pg.user, "-d", "orig_src"],
      env: pg.clientEnv,
      stdout: "piped",
    }).output();
    const header =
      "CREATE DATABASE orig_src;\n\\connect orig_src\nCREATE ROLE someone LOGIN PASSWORD 'x;\n-- PostgreSQL database dump';\n";
    const body = new TextEncoder().encode(header + new TextDecoder().decode(dumped.stdout));
    const zip = join(dir, "20240101_020304_postgresql_orig_src.zip");
    await Deno.writeFile(zip, zipOf("20240101_020304_postgresql_orig_src.sql", body));
    let r = await env.run(["restore", "--instance", "pg", "--file", zip]);
    assertEquals(r.code, 64, "original files need --target");
    r = await env.run([
      "restore",
      "--instance",
      "pg",
      "--file",
      zip,
      "--target",
      "orig_copy",
      "--no-owner",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /header of 3 statement\(s\).*CREATE DATABASE, \\connect, CREATE ROLE/);
    assertEquals(
      await pg.sql("SELECT x FROM t ORDER BY x", { database: "orig_copy" }),
      await pg.sql("SELECT x FROM t ORDER BY x", { database: "orig_src" }),
    );
    assertEquals(await pg.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'someone'"), "0");
    assertEquals(
      await pg.sql("SELECT tableowner FROM pg_tables WHERE tablename = 't'", {
        database: "orig_copy",
      }),
      "postgres",
    );

    // MySQL: header that creates the database and a user and USEs it, then the dump.
    const myDump = await new Deno.Command(`${my.bin}/mariadb-dump`, {
      args: [
        "--no-defaults",
        "--protocol=TCP",
        "-h",
        my.host,
        "-P",
        String(my.port),
        "-u",
        my.user,
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--routines",
        "--triggers",
        "src_my",
      ],
      env: my.clientEnv,
      stdout: "piped",
    }).output();
    const myHeader =
      "CREATE DATABASE IF NOT EXISTS `src_my`;\nCREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'p;w';\nUSE `src_my`;\n";
    const mySql = join(dir, "20240101_020304_mysql_src_my.sql");
    await Deno.writeTextFile(mySql, myHeader + new TextDecoder().decode(myDump.stdout));
    r = await env.run(["restore", "--instance", "my", "--file", mySql, "--target", "orig_my"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await myRows(my, "orig_my"), await myRows(my, "src_my"));
    assertEquals(await my.sql("SELECT count(*) FROM mysql.user WHERE user = 'app'"), "0");
  },
);
