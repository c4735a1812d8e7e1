/**
 * `backup` when things go wrong, through the CLI against real servers: a database the backup
 * login may not read, a dump tool killed mid-dump, a server stopped mid-dump. Each time the
 * failed database is reported (CLI output and a `failed` metadata record), leaves no dump file
 * and no `.partial`, the others are still backed up, and the exit code says 1 (some failed) or
 * 2 (all failed). The backup login's password never shows in a child's argv, the output or the
 * metadata.
 */
import { basename, dirname, join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import {
  type MyServer,
  type PgServer,
  sharedMariadb,
  sharedPostgres,
  startPostgres,
} from "./harness/servers.ts";
import { type CliResult, makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import type { RunSummary } from "../lib/backup/run.ts";
import {
  alive,
  decompress,
  descendants,
  holdLock,
  instanceRoot,
  listFiles,
  readMeta,
  runWithin,
  startCli,
  waitDumpBlocked,
  waitFor,
} from "./backup_support.ts";

/** Distinctive passwords with every character an options file or a shell could trip on. */
const PG_PASS = `Pw-"q#uo'te$ s3cr3t;PG-88421`;
const MY_PASS = `Pw-"q#uo'te$ s3cr3t\\;MY-88421`;
const LOGIN = "bk_backup";

const sqlString = (s: string) => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;

let logins: Promise<{ pg: PgServer; my: MyServer }> | undefined;

/**
 * A non-superuser backup login on each shared server, and databases it can and cannot dump:
 * `fail_bad` holds a table (PostgreSQL) or a view (MariaDB) the login may not read.
 */
function servers(): Promise<{ pg: PgServer; my: MyServer }> {
  logins ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    await pg.sql(`CREATE ROLE ${LOGIN} LOGIN PASSWORD '${PG_PASS.replaceAll("'", "''")}'`);
    await pg.sql(`CREATE DATABASE fail_ok OWNER ${LOGIN}; CREATE DATABASE fail_bad;
                  CREATE DATABASE sec_pg OWNER ${LOGIN}`);
    for (const db of ["fail_ok", "sec_pg"]) {
      await pg.sql(
        `SET ROLE ${LOGIN}; CREATE TABLE t (v text); INSERT INTO t VALUES ('row-of-${db}');`,
        { database: db },
      );
    }
    await pg.sql(
      `CREATE TABLE open_t (v text); GRANT SELECT ON open_t TO ${LOGIN};
       CREATE TABLE secret (v text); INSERT INTO secret VALUES ('hidden');`,
      { database: "fail_bad" },
    );
    await my.sql(`
      CREATE USER '${LOGIN}'@'%' IDENTIFIED BY ${sqlString(MY_PASS)};
      CREATE DATABASE fail_ok; CREATE DATABASE fail_bad; CREATE DATABASE sec_my;
      CREATE TABLE fail_ok.t (v TEXT); INSERT INTO fail_ok.t VALUES ('row-of-fail_ok');
      CREATE TABLE sec_my.t (v TEXT); INSERT INTO sec_my.t VALUES ('row-of-sec_my');
      CREATE TABLE fail_bad.t (v TEXT); CREATE VIEW fail_bad.v AS SELECT * FROM fail_bad.t;
      GRANT ALL PRIVILEGES ON fail_ok.* TO '${LOGIN}'@'%';
      GRANT ALL PRIVILEGES ON sec_my.* TO '${LOGIN}'@'%';
      GRANT SELECT ON fail_bad.* TO '${LOGIN}'@'%';`);
    return { pg, my };
  })();
  return logins;
}

function loginEnv(
  pg: PgServer,
  my: MyServer,
  include: { pg: string[]; my: string[] },
): Promise<TestEnv> {
  return makeTestEnv([
    {
      id: "pg",
      server: pg,
      login: { user: LOGIN, password: PG_PASS },
      extra: { users: { backup: false }, databases: { include: include.pg } },
    },
    {
      id: "my",
      server: my,
      login: { user: LOGIN, password: MY_PASS },
      extra: { users: { backup: false }, databases: { include: include.my } },
    },
  ]);
}

/** Neither password, in any text a user or a log collector sees. */
function assertNoSecret(text: string, where: string): void {
  for (const secret of [PG_PASS, MY_PASS, "s3cr3t"]) {
    assert(!text.includes(secret), `the password appears in ${where}:\n${text}`);
  }
}

/** Every metadata file of the storage, which must not hold a password either. */
async function assertNoSecretInMetadata(env: TestEnv): Promise<void> {
  for (const f of listFiles(env.storage).filter((f) => f.endsWith(".metadata.json"))) {
    assertNoSecret(await Deno.readTextFile(f), f);
  }
}

/**
 * What a failed database must leave: a `failed` metadata record with its reason, no dump,
 * no checksum, no partial file. Returns the recorded error.
 */
async function assertFailedRecord(env: TestEnv, instance: string, db: string): Promise<string> {
  const files = listFiles(join(instanceRoot(env, instance), db));
  assertEquals(
    files.filter((f) => !f.endsWith(".metadata.json")),
    [],
    `only metadata for failed ${instance}/${db}`,
  );
  assertEquals(files.length, 1, `one failure record for ${instance}/${db}: ${files}`);
  const meta = await readMeta(files[0]);
  assertEquals(meta.status, "failed");
  assertEquals(meta.database, db);
  assertEquals(meta.file, null);
  assert(meta.error && meta.error.length > 0, "the failure says why");
  return meta.error;
}

/** An ok backup: dump + checksum + ok metadata naming the dump, and the rows inside. */
async function assertOkBackup(env: TestEnv, instance: string, db: string, row?: string) {
  const files = listFiles(join(instanceRoot(env, instance), db));
  const dumps = files.filter((f) => f.endsWith(".sql.gz"));
  assertEquals(dumps.length, 1, `one dump of ${instance}/${db}: ${files}`);
  const meta = await readMeta(dumps[0].replace(/\.sql\.gz$/, ".metadata.json"));
  assertEquals(meta.status, "ok");
  assertEquals(meta.file?.name, basename(dumps[0]));
  if (row) assertStringIncludes(await decompress(dumps[0]), row);
}

/** No dump anywhere without an ok metadata beside it, and no partial file at all. */
async function assertNoOrphans(env: TestEnv): Promise<void> {
  const files = listFiles(env.storage);
  assertEquals(files.filter((f) => f.endsWith(".partial")), [], "no partial file");
  for (const dump of files.filter((f) => /\.sql(\.gz|\.zst)?$/.test(f))) {
    const meta = await readMeta(dump.replace(/\.sql(\.gz|\.zst)?$/, ".metadata.json"));
    assertEquals(meta.status, "ok", `${dump} has ok metadata`);
    assertEquals(meta.file?.name, basename(dump));
  }
}

const partials = (env: TestEnv) => listFiles(env.storage).filter((f) => f.endsWith(".partial"));

Deno.test("backup failure: a database the login may not read fails alone; exit 1, then 2", async () => {
  const { pg, my } = await servers();
  const env = await loginEnv(pg, my, { pg: ["fail_*"], my: ["fail_*"] });
  try {
    const r = await env.run(["--verbose", "backup", "--all"]);
    assertEquals(r.code, 1, r.stderr + r.stdout);
    assertMatch(r.stdout, /^FAILED {2}pg\/fail_bad: .*permission denied for table secret/m);
    assertMatch(r.stdout, /^FAILED {2}my\/fail_bad: .*SHOW VIEW/m);
    assertMatch(r.stderr, /fail_bad/);
    assertMatch(r.stdout, /^ok {6}pg\/fail_ok /m);
    assertMatch(r.stdout, /^ok {6}my\/fail_ok /m);
    assertStringIncludes(r.stdout, "2 ok, 2 failed");
    assertStringIncludes(await assertFailedRecord(env, "pg", "fail_bad"), "permission denied");
    assertStringIncludes(await assertFailedRecord(env, "my", "fail_bad"), "SHOW VIEW");
    await assertOkBackup(env, "pg", "fail_ok", "row-of-fail_ok");
    await assertOkBackup(env, "my", "fail_ok", "row-of-fail_ok");
    await assertNoOrphans(env);
    assertNoSecret(r.stdout, "stdout (--verbose)");
    assertNoSecret(r.stderr, "stderr (--verbose)");

    // Every selected database failing is exit 2, reported the same way in JSON.
    await env.writeConfig({
      instances: [
        { id: "pg", type: "postgresql", host: pg.host, port: pg.port, credential: "pg" },
        { id: "my", type: "mariadb", host: my.host, port: my.port, credential: "my" },
      ].map((i) => ({ ...i, users: { backup: false }, databases: { include: ["fail_bad"] } })),
    });
    const all = await env.run(["--json", "--verbose", "backup", "--all"]);
    assertEquals(all.code, 2, all.stderr + all.stdout);
    const summary = JSON.parse(all.stdout) as RunSummary;
    assertEquals(summary.results.map((x) => `${x.instance}/${x.database}:${x.status}`).sort(), [
      "my/fail_bad:failed",
      "pg/fail_bad:failed",
    ]);
    for (const x of summary.results) {
      assert(x.error && x.error.length > 0, "error given");
      assertEquals(x.path, undefined);
      assert(typeof x.duration_ms === "number");
    }
    assertNoSecret(all.stdout, "stdout (--json)");
    assertNoSecret(all.stderr, "stderr (--json)");
    await assertNoOrphans(env);
    await assertNoSecretInMetadata(env);
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup secrets: the password is in no child's argv, output or metadata", async () => {
  const { pg, my } = await servers();
  const env = await loginEnv(pg, my, { pg: ["sec_pg"], my: ["sec_my"] });
  const pgLock = await holdLock(pg, "sec_pg", "t");
  const myLock = await holdLock(my, "sec_my", "t");
  let run: ReturnType<typeof startCli> | undefined;
  try {
    run = startCli(env, ["--verbose", "backup", "--all"]);
    const seen: string[] = [];
    const inspect = (tool: string) => {
      const children = descendants(run!.pid);
      for (const c of children) assertNoSecret(c.argv.join(" "), `argv of ${c.comm} (${c.pid})`);
      const dump = children.find((c) => c.comm === tool);
      assert(dump, `${tool} runs under the CLI: ${children.map((c) => c.comm)}`);
      seen.push(tool);
      return dump;
    };

    await waitDumpBlocked(pg, LOGIN, run);
    inspect("pg_dump");
    await pgLock.release();

    await waitDumpBlocked(my, LOGIN, run);
    const mariadbDump = inspect("mariadb-dump");
    // The password reaches mariadb-dump through a named pipe in a private folder, unlinked as
    // soon as the client opened it: while the dump runs, only the folder's owner file is left.
    const optionsFile = mariadbDump.argv.find((a) => a.startsWith("--defaults-file="))!
      .slice("--defaults-file=".length);
    assertEquals(Deno.statSync(dirname(optionsFile)).mode! & 0o777, 0o700);
    assertEquals(listFiles(dirname(optionsFile)).map((f) => basename(f)), ["owner"]);
    await myLock.release();

    const r = await run.done;
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertEquals(seen, ["pg_dump", "mariadb-dump"]);
    assert(!listFiles(dirname(optionsFile)).length, "the options file is removed");
    await assertOkBackup(env, "pg", "sec_pg", "row-of-sec_pg");
    await assertOkBackup(env, "my", "sec_my", "row-of-sec_my");
    assertNoSecret(r.stdout, "stdout (--verbose)");
    assertNoSecret(r.stderr, "stderr (--verbose)");

    const json = await env.run(["--json", "--verbose", "backup", "--all"]);
    assertEquals(json.code, 0, json.stderr);
    assertNoSecret(json.stdout, "stdout (--json)");
    assertNoSecret(json.stderr, "stderr (--json)");
    await assertNoSecretInMetadata(env);
  } finally {
    await pgLock.release();
    await myLock.release();
    if (run) {
      try {
        run.kill("SIGKILL");
      } catch { /* exited */ }
      await run.done;
    }
    await env.cleanup();
  }
});

// ---------------------------------------------------------------------------------------------
// A dump cut short: the child killed, then the server stopped

/** ~50 MB of dump that does not compress away, so the dump takes long enough to interrupt. */
const BIG_ROWS = 450_000;

async function waitPartialOf(env: TestEnv, instance: string, db: string, bytes: number) {
  const dir = join(instanceRoot(env, instance), db);
  return await waitFor(`a growing partial file of ${instance}/${db}`, () => {
    for (const f of listFiles(dir)) {
      if (!f.endsWith(".partial")) continue;
      try {
        if (Deno.statSync(f).size >= bytes) return f;
      } catch { /* renamed or removed meanwhile */ }
    }
    return undefined;
  }, 60_000);
}

function assertCutShort(r: CliResult, what: string): void {
  // The dump must have been interrupted; a run that finished first proves nothing.
  assert(r.code !== 0, `${what}: the dump finished before it could be cut short`);
}

Deno.test("backup failure: a killed dump tool and a stopped server fail their database only", async () => {
  const doomed = await startPostgres();
  const { pg } = await servers();
  await pg.sql(`CREATE DATABASE other_ok`);
  await pg.sql(`CREATE TABLE t (v text); INSERT INTO t VALUES ('row-of-other_ok')`, {
    database: "other_ok",
  });
  const env = await makeTestEnv([
    {
      id: "doomed",
      server: doomed,
      extra: { users: { backup: false }, databases: { include: ["big", "small"] } },
    },
    {
      id: "other",
      server: pg,
      extra: { users: { backup: false }, databases: { include: ["other_ok"] } },
    },
  ]);
  try {
    await doomed.sql(`CREATE DATABASE big; CREATE DATABASE small`);
    await doomed.sql(
      `CREATE TABLE t (v text); INSERT INTO t VALUES ('row-of-small')`,
      { database: "small" },
    );
    await doomed.sql(
      `CREATE TABLE rows (id int, a text, b text);
       INSERT INTO rows SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 3)::text)
         FROM generate_series(1, ${BIG_ROWS}) g;`,
      { database: "big" },
    );

    // (1) pg_dump killed mid-dump: big fails, small (dumped after it) is still backed up.
    const killed = startCli(env, ["backup", "--instance", "doomed", "--jobs", "1"]);
    await waitPartialOf(env, "doomed", "big", 1 << 20);
    const dump = descendants(killed.pid).find((c) => c.comm === "pg_dump");
    assert(dump, "pg_dump runs");
    Deno.kill(dump.pid, "SIGKILL");
    const r1 = await killed.done;
    assertCutShort(r1, "kill");
    assertEquals(r1.code, 1, r1.stderr + r1.stdout);
    assertMatch(r1.stdout, /^FAILED {2}doomed\/big: .*pg_dump was killed by SIGKILL/m);
    assertMatch(r1.stdout, /^ok {6}doomed\/small /m);
    assertStringIncludes(await assertFailedRecord(env, "doomed", "big"), "SIGKILL");
    await assertOkBackup(env, "doomed", "small", "row-of-small");
    await assertNoOrphans(env);

    // (2) The server stops mid-dump: its databases fail, the other instance is backed up.
    await Deno.remove(join(instanceRoot(env, "doomed"), "big"), { recursive: true });
    const stopped = startCli(env, ["backup", "--all", "--jobs", "1"]);
    await waitPartialOf(env, "doomed", "big", 1 << 20);
    await doomed.stop();
    const r2 = await stopped.done;
    assertCutShort(r2, "stop");
    assertEquals(r2.code, 1, r2.stderr + r2.stdout);
    assertMatch(r2.stdout, /^FAILED {2}doomed\/big: .*pg_dump/m);
    assertMatch(r2.stdout, /^ok {6}other\/other_ok /m);
    assertStringIncludes(r2.stdout, "doomed/small");
    await assertFailedRecord(env, "doomed", "big");
    await assertOkBackup(env, "other", "other_ok", "row-of-other_ok");
    await assertNoOrphans(env);

    // (3) Everything fails (the server is gone): exit 2, the instance named.
    const r3 = await env.run(["backup", "--instance", "doomed"]);
    assertEquals(r3.code, 2, r3.stderr + r3.stdout);
    assertMatch(r3.stdout, /^FAILED {2}doomed \(instance\): /m);
    await assertNoOrphans(env);
  } finally {
    await doomed.stop();
    await env.cleanup();
  }
});

// ---------------------------------------------------------------------------------------------
// Concurrency and signals

Deno.test("backup concurrency: a second run exits 4 naming the holder; kill -9 leaves nothing stuck", async () => {
  const { pg } = await servers();
  await pg.sql(`CREATE DATABASE conc`);
  await pg.sql(`CREATE TABLE t (v text); INSERT INTO t VALUES ('row-of-conc')`, {
    database: "conc",
  });
  const env = await makeTestEnv([
    { id: "pg", server: pg, extra: { users: { backup: false }, databases: { include: ["conc"] } } },
  ]);
  let lock = await holdLock(pg, "conc", "t");
  const first = startCli(env, ["backup", "--all"]);
  try {
    await waitDumpBlocked(pg, pg.user, first);
    await waitFor("the partial file", () => partials(env).length > 0);

    const second = await runWithin(env, ["backup", "--all"]);
    assertEquals(second.code, 4, second.stderr + second.stdout);
    assertStringIncludes(second.stderr, `PID ${first.pid}`);

    // kill -9: no cleanup runs; the lock and the partial file stay behind.
    first.kill("SIGKILL");
    await first.done;
    assertEquals(partials(env).length, 1, "kill -9 left its partial file");
    await lock.release();

    const third = await env.run(["backup", "--all"]);
    assertEquals(third.code, 0, third.stderr + third.stdout);
    assertMatch(third.stderr, /removed .*\.partial/);
    await assertOkBackup(env, "pg", "conc", "row-of-conc");
    await assertNoOrphans(env);

    // SIGINT and SIGTERM mid-dump: exit 130, the dump tool stopped, nothing left behind.
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      lock = await holdLock(pg, "conc", "t");
      const run = startCli(env, ["backup", "--all"]);
      await waitDumpBlocked(pg, pg.user, run);
      await waitFor("the partial file", () => partials(env).length > 0);
      const child = descendants(run.pid).find((c) => c.comm === "pg_dump")!;
      run.kill(signal);
      const r = await run.done;
      assertEquals(r.code, 130, `${signal}: ${r.stderr}${r.stdout}`);
      assertMatch(r.stderr, /interrupted/);
      await lock.release();
      await waitFor("pg_dump to be gone", () => !alive(child.pid));
      await assertNoOrphans(env);
      assertEquals(listFiles(env.storage).filter((f) => f.endsWith(".sql.gz")).length, 1);
      assert(!listFiles(env.storage).some((f) => f.endsWith(".lock")), "lock released");
    }
  } finally {
    await lock.release();
    try {
      first.kill("SIGKILL");
    } catch { /* exited */ }
    await first.done;
    await env.cleanup();
  }
});

Deno.test("backup signals: SIGTERM with two MariaDB dumps at once removes both partial files", async () => {
  const { my } = await servers();
  await my.sql(`CREATE DATABASE sig_a; CREATE DATABASE sig_b;
                CREATE TABLE sig_a.t (v TEXT); CREATE TABLE sig_b.t (v TEXT);`);
  const env = await makeTestEnv([
    {
      id: "my",
      server: my,
      extra: { users: { backup: false }, databases: { include: ["sig_*"] } },
    },
  ]);
  const locks = [await holdLock(my, "sig_a", "t"), await holdLock(my, "sig_b", "t")];
  try {
    const run = startCli(env, ["backup", "--all", "--jobs", "2"]);
    await waitFor("both dumps blocked", async () =>
      (await my.sql(
        `SELECT COUNT(*) FROM information_schema.PROCESSLIST
          WHERE USER = 'root' AND STATE LIKE '%metadata lock%'`,
      )) === "2");
    await waitFor("two partial files", () => partials(env).length === 2);
    const dumps = descendants(run.pid).filter((c) => c.comm === "mariadb-dump");
    assertEquals(dumps.length, 2, "two mariadb-dump children");
    run.kill("SIGTERM");
    const r = await run.done;
    assertEquals(r.code, 130, r.stderr + r.stdout);
    for (const d of dumps) {
      await waitFor("mariadb-dump to be gone", () => !alive(d.pid), 5000);
      // Its options file (the password) went with it, even though the run stopped at once.
      const file = d.argv.find((a) => a.startsWith("--defaults-file="))!.split("=")[1];
      assert(!listFiles(dirname(file)).length, `${file} is left behind`);
    }
    await assertNoOrphans(env);
    assertEquals(listFiles(env.storage).filter((f) => /\.sql\.gz|\.metadata\.json/.test(f)), []);
  } finally {
    for (const l of locks) await l.release();
    await env.cleanup();
  }
});
