/**
 * `keep_local: false`: backups streamed straight to S3 (dump → compression → SHA-256 →
 * multipart upload, no local dump file), against a real s3rver and real PostgreSQL/MariaDB,
 * with boto3 and `sha256sum -c` as the independent checks, and s3rver's own request log as the
 * proof that an upload given up is aborted on the server.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { boto3, listAllKeys, openUploads, startS3, type TestS3 } from "./harness/s3.ts";
import {
  type MyServer,
  type PgServer,
  sharedMariadb,
  sharedPostgres,
  startPostgres,
} from "./harness/servers.ts";
import { cliArgs, REPO_ROOT, type TestEnv } from "./helpers/cli.ts";
import { myRows, pgRows } from "./helpers/compare.ts";
import {
  assertNoSecret,
  downloadAll,
  HOST,
  s3Env,
  sha256sumC,
  waitForPart,
  walk,
} from "./helpers/s3_env.ts";

/** The backup files (and partial files) left in the local tree. */
async function localBackupFiles(env: TestEnv): Promise<string[]> {
  const files: string[] = [];
  for await (const f of walk(env.storage)) {
    if (/\.(sql\.gz|sha256|metadata\.json|partial)$/.test(f)) files.push(f);
  }
  return files.sort();
}

/** The metadata objects of `database` on the remote, parsed, oldest first. */
async function remoteMetadata(
  s3: TestS3,
  instance: string,
  database: string,
): Promise<
  {
    key: string;
    status: string;
    error?: string;
    file?: { bytes: number };
    verify?: { result: string; kind: string };
  }[]
> {
  const out = await boto3(
    s3,
    `
import json
p = s3.get_paginator("list_objects_v2")
for page in p.paginate(Bucket=bucket, Prefix=${
      JSON.stringify(`db/${HOST}/${instance}/${database}/`)
    }):
    for o in page.get("Contents", []):
        if o["Key"].endswith(".metadata.json"):
            m = json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            m["key"] = o["Key"]
            print(json.dumps(m))
`,
  );
  return out.split("\n").filter((l) => l).map((l) => JSON.parse(l)).sort((a, b) =>
    a.key < b.key ? -1 : 1
  );
}

interface Engine {
  name: string;
  /** Encrypt to a fresh age key (Debian's age-keygen), restored with its identity. */
  encrypt?: boolean;
  server: () => Promise<PgServer | MyServer>;
  create: (s: PgServer | MyServer, db: string) => Promise<void>;
  drop: (s: PgServer | MyServer, db: string) => Promise<void>;
  rows: (s: PgServer | MyServer, db: string) => Promise<Record<string, string>>;
}

const ENGINES: Engine[] = [
  {
    name: "PostgreSQL",
    server: sharedPostgres,
    create: async (s, db) => {
      await s.sql(`CREATE DATABASE ${db}`);
      await s.sql(
        `CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 500) i;`,
        { database: db },
      );
    },
    drop: async (s, db) => void await s.sql(`DROP DATABASE ${db}`),
    rows: (s, db) => pgRows(s as PgServer, db),
  },
  {
    name: "PostgreSQL, age-encrypted",
    encrypt: true,
    server: sharedPostgres,
    create: async (s, db) => {
      await s.sql(`CREATE DATABASE ${db}`);
      await s.sql(
        `CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 500) i;`,
        { database: db },
      );
    },
    drop: async (s, db) => void await s.sql(`DROP DATABASE ${db}`),
    rows: (s, db) => pgRows(s as PgServer, db),
  },
  {
    name: "MariaDB",
    server: sharedMariadb,
    create: async (s, db) => {
      await s.sql(`CREATE DATABASE ${db}`);
      await s.sql(
        `CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_500;`,
        { database: db },
      );
    },
    drop: async (s, db) => void await s.sql(`DROP DATABASE ${db}`),
    rows: (s, db) => myRows(s as MyServer, db),
  },
];

for (const engine of ENGINES) {
  Deno.test(`s3 stream (${engine.name}): keep_local: false streams dump, .sha256 and metadata to S3 with no local file; boto3's download passes sha256sum -c; restore --latest reads it back`, async () => {
    const [server, s3] = await Promise.all([engine.server(), startS3()]);
    const db = `stream_${crypto.randomUUID().slice(0, 8)}`;
    const env = await s3Env(server as PgServer, s3, { keep_local: false }, { id: "src" });
    const storage = await configStorage(env);
    if (engine.encrypt) {
      const keyFile = `${env.dir}/age-key.txt`;
      const gen = await new Deno.Command("age-keygen", { args: ["-o", keyFile], stderr: "piped" })
        .output();
      assert(gen.success, new TextDecoder().decode(gen.stderr));
      const recipient = /age1[0-9a-z]+/.exec(await Deno.readTextFile(keyFile))![0];
      storage.encryption = { recipients: [recipient], identity_file: keyFile };
    }
    const suffix = engine.encrypt ? ".sql.gz.age" : ".sql.gz";
    await env.writeConfig({
      storage,
      instances: [{ ...(await configInstances(env))[0], databases: { include: [db] } }],
      // The nightly verify reads the remote when nothing is kept locally.
      backup: { verify: "checksum" },
    });
    try {
      await engine.create(server, db);
      const before = await engine.rows(server, db);
      const r = await env.run(["backup", "--all"]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertNoSecret(r.stdout, r.stderr);
      assertStringIncludes(r.stdout, `s3://${s3.bucket}/db/${HOST}/src/${db}/`);
      assertEquals(await localBackupFiles(env), [], "a local file was written");
      const keys = (await listAllKeys(s3)).filter((k) => k.startsWith(`db/${HOST}/src/${db}/`));
      assertEquals(keys.length, 3, keys.join("\n"));
      assert(keys.some((k) => k.endsWith(suffix)), keys.join("\n"));
      const [meta] = await remoteMetadata(s3, "src", db);
      assertEquals(meta.status, "ok");
      assertEquals([meta.verify?.result, meta.verify?.kind], ["ok", "checksum"]);
      assertEquals(await openUploads(s3), [], "a multipart upload was left open");

      const down = await Deno.makeTempDir();
      try {
        const files = await downloadAll(s3, `db/${HOST}/src/${db}/`, down);
        assertEquals(files.length, 3);
        const sum = files.find((f) => f.endsWith(".sha256"))!;
        const c = await sha256sumC(sum);
        assertEquals(c.code, 0, c.text);
        assertEquals(
          (await Deno.stat(files.find((f) => f.endsWith(suffix))!)).size,
          meta.file!.bytes,
        );
      } finally {
        await Deno.remove(down, { recursive: true });
      }

      await engine.drop(server, db);
      const rs = await env.run(["restore", "--instance", "src", "--database", db, "--latest"]);
      assertEquals(rs.code, 0, rs.stderr + rs.stdout);
      assertEquals(await engine.rows(server, db), before);
    } finally {
      await engine.drop(server, db).catch(() => {});
      await env.cleanup();
      await s3.close();
    }
  });
}

async function configStorage(env: TestEnv): Promise<Record<string, unknown>> {
  const { parse } = await import("yaml");
  return (parse(await Deno.readTextFile(env.configPath)) as { storage: Record<string, unknown> })
    .storage;
}

async function configInstances(env: TestEnv): Promise<Record<string, unknown>[]> {
  const { parse } = await import("yaml");
  return (parse(await Deno.readTextFile(env.configPath)) as {
    instances: Record<string, unknown>[];
  }).instances;
}

/** `backup --all` started in the background, as cron starts it. */
function spawnBackup(env: TestEnv): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: cliArgs(env.configPath, ["backup", "--all"]),
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function outputOf(child: Deno.ChildProcess): Promise<{ code: number; text: string }> {
  const out = await child.output();
  const t = new TextDecoder();
  return { code: out.code, text: t.decode(out.stdout) + t.decode(out.stderr) };
}

/** About 80 MB of hex text in `big` (40+ MB gzipped: several 8 MiB parts). */
async function makeBig(pg: PgServer): Promise<void> {
  await pg.sql("CREATE DATABASE big");
  await pg.sql(
    `CREATE TABLE t (v text); INSERT INTO t SELECT md5(i::text) || md5((i * 7)::text)
     FROM generate_series(1, 1200000) i;`,
    { database: "big" },
  );
}

const ABORT_LINE =
  /^DELETE \/backups\/db\/.+\/big\/.+\/big_\d{8}T\d{6}Z\.sql\.gz\?uploadId=\S+ \d{3}$/;

Deno.test("s3 stream: a dump failing mid-upload and an interrupted run each send AbortMultipartUpload, leave nothing listed as a backup, and the next run is unaffected", async () => {
  const [pg, s3] = await Promise.all([startPostgres(), startS3("backups", { log: true })]);
  const env = await s3Env(pg, s3, { keep_local: false });
  try {
    await makeBig(pg);

    // 1. The dump tool dies half-way (killed, like the OOM killer does): the item fails, the
    // upload is aborted.
    const failing = spawnBackup(env);
    await waitForPart(s3, 120_000);
    assertEquals(await localBackupFiles(env), [], "streaming wrote a local file");
    await killDescendant(failing.pid, "pg_dump");
    const failed = await outputOf(failing);
    assertEquals(failed.code, 1, failed.text);
    assertMatch(failed.text, /FAILED +pg\/big: /);
    assertNoSecret(failed.text);
    const aborts1 = (await s3.requests()).filter((l) => ABORT_LINE.test(l));
    assertEquals(aborts1.length, 1, (await s3.requests()).join("\n"));
    // The failed night is on record where the backups are: a failure record, no dump.
    const meta1 = await remoteMetadata(s3, "pg", "big");
    assertEquals(meta1.map((m) => m.status), ["failed"]);
    assertEquals((await listAllKeys(s3)).filter((k) => /\/big_.*\.(sql\.gz|sha256)$/.test(k)), []);
    assertEquals(await localBackupFiles(env), []);

    // 2. The run is interrupted (SIGINT, as systemd stops it) mid-upload: exit 130, aborted.
    const interrupted = spawnBackup(env);
    const started = (await s3.requests()).length;
    await waitForNewPart(s3, started);
    interrupted.kill("SIGINT");
    const stopped = await outputOf(interrupted);
    assertEquals(stopped.code, 130, stopped.text);
    const aborts2 = (await s3.requests()).filter((l) => ABORT_LINE.test(l));
    assertEquals(aborts2.length, 2, (await s3.requests()).join("\n"));
    assertEquals((await listAllKeys(s3)).filter((k) => /\/big_.*\.(sql\.gz|sha256)$/.test(k)), []);
    assertEquals(await localBackupFiles(env), []);
    const list = await env.run(["restore", "--instance", "pg", "--database", "big", "--list"]);
    assertEquals(list.code, 0, list.stderr + list.stdout);
    assert(!/\bok\b/.test(list.stdout), list.stdout);

    // 3. The next run is unaffected.
    const again = await env.run(["backup", "--all"]);
    assertEquals(again.code, 0, again.stderr + again.stdout);
    const meta = await remoteMetadata(s3, "pg", "big");
    assertEquals(meta.map((m) => m.status).sort(), ["failed", "ok"]);
    const good = meta.find((m) => m.status === "ok")!;
    const down = await Deno.makeTempDir();
    try {
      const files = await downloadAll(s3, good.key.replace(/[^/]+$/, ""), down);
      const sum = files.find((f) => f.endsWith(".sha256"))!;
      assertEquals((await sha256sumC(sum)).code, 0);
    } finally {
      await Deno.remove(down, { recursive: true });
    }
  } finally {
    await env.cleanup();
    await Promise.all([pg.stop(), s3.close()]);
  }
});

/**
 * SIGKILLs the process named `name` among the descendants of `pid` (found in /proc: only the
 * test's own children are touched).
 */
async function killDescendant(pid: number, name: string): Promise<void> {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${e.name}/stat`);
      const m = stat.match(/^(\d+) \((.*)\) \S+ (\d+)/);
      if (m) {
        parents.set(+m[1], +m[3]);
        names.set(+m[1], m[2]);
      }
    } catch { /* gone */ }
  }
  const isBelow = (p: number): boolean => {
    for (let up = parents.get(p); up !== undefined && up > 1; up = parents.get(up)) {
      if (up === pid) return true;
    }
    return false;
  };
  const victim = [...names].find(([p, n]) => n === name && isBelow(p));
  if (!victim) throw new Error(`no ${name} below PID ${pid}`);
  Deno.kill(victim[0], "SIGKILL");
}

/** Waits until s3rver logs a part upload after the first `seen` requests. */
async function waitForNewPart(s3: TestS3, seen: number): Promise<void> {
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    if ((await s3.requests()).slice(seen).some((l) => /^PUT .*partNumber=\d+.* 200$/.test(l))) {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no part uploaded");
}

Deno.test("s3 stream: the S3 server stopped mid-upload fails the item naming the remote, writes no local dump, records the failure locally; the next run streams it", async () => {
  const [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const env = await s3Env(pg, s3, { keep_local: false });
  try {
    await makeBig(pg);
    const run = spawnBackup(env);
    await waitForPart(s3, 120_000);
    await s3.stop();
    const out = await outputOf(run);
    assertEquals(out.code, 2, out.text);
    assertMatch(out.text, /FAILED +pg\/big: .*s3:\/\/backups\/db\//);
    assertMatch(out.text, /FAILED +pg\/\(users\): .*s3:\/\/backups\/db\//);
    assertNoSecret(out.text);
    // No dump kept locally; the failure records the remote refused are in the local tree.
    const local = await localBackupFiles(env);
    assertEquals(local.filter((f) => !f.endsWith(".metadata.json")), [], local.join("\n"));
    assertEquals(local.length, 2, local.join("\n"));
    for (const f of local) {
      const m = JSON.parse(await Deno.readTextFile(f));
      assertEquals(m.status, "failed");
      assertMatch(m.error, /s3:\/\/backups\/db\//);
    }
    assertMatch(out.text, /recorded in .*\.metadata\.json instead/);

    // Back up: nothing of the interrupted upload lists as an object, let alone a backup.
    await s3.start();
    assertEquals(await listAllKeys(s3), []);
    // s3rver implements no AbortMultipartUpload: the parts it took stay in its data folder.
    const again = await env.run(["backup", "--all"]);
    assertEquals(again.code, 0, again.stderr + again.stdout);
    assertEquals((await remoteMetadata(s3, "pg", "big")).map((m) => m.status), ["ok"]);
  } finally {
    await env.cleanup();
    await Promise.all([pg.stop(), s3.close()]);
  }
});

Deno.test("s3 upload (keep_local: true): a run interrupted while uploading the committed file sends AbortMultipartUpload and exits 130; the local backup verifies; the next run uploads it", async () => {
  const [pg, s3] = await Promise.all([startPostgres(), startS3("backups", { log: true })]);
  const env = await s3Env(pg, s3);
  try {
    await makeBig(pg);
    const run = spawnBackup(env);
    await waitForPart(s3, 120_000);
    run.kill("SIGINT");
    const out = await outputOf(run);
    assertEquals(out.code, 130, out.text);
    assertNoSecret(out.text);
    const aborts = (await s3.requests()).filter((l) => ABORT_LINE.test(l));
    assert(aborts.length >= 1, (await s3.requests()).join("\n"));
    assertEquals((await listAllKeys(s3)).filter((k) => k.includes("/big/")), []);
    // The local backup was committed before the upload began: whole, and it checks.
    const local = await localBackupFiles(env);
    const sums = local.filter((f) => /\/big_.*\.sha256$/.test(f));
    assertEquals(sums.length, 1, local.join("\n"));
    assertEquals((await sha256sumC(sums[0])).code, 0);
    const stem = sums[0].replace(/^.*\//, "").replace(/\.sha256$/, "");

    const again = await env.run(["backup", "--all"]);
    assertEquals(again.code, 0, again.stderr + again.stdout);
    const keys = await listAllKeys(s3);
    for (const suffix of [".sql.gz", ".sha256", ".metadata.json"]) {
      assert(keys.some((k) => k.endsWith(`/${stem}${suffix}`)), `${stem}${suffix} in ${keys}`);
    }
  } finally {
    await env.cleanup();
    await Promise.all([pg.stop(), s3.close()]);
  }
});
