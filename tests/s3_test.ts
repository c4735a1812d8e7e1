/**
 * S3 storage against a real S3 server (npm s3rver on 127.0.0.1, tests/harness/s3.ts), with
 * Debian's boto3 as the independent client that checks what we wrote.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "./harness/assert.ts";
import { boto3, listAllKeys, openUploads, startS3, type TestS3 } from "./harness/s3.ts";
import { partSizeFor, S3_LOCK_KEY, S3Storage } from "../lib/storage/s3.ts";
import { LockError } from "../lib/errors.ts";
import { sharedPostgres, startPostgres } from "./harness/servers.ts";
import { parse } from "yaml";
import { cliArgs, makeTestEnv, REPO_ROOT, runCli } from "./helpers/cli.ts";
import { pgLogin, pgRows } from "./helpers/compare.ts";
import {
  assertNoSecret,
  downloadAll,
  HOST,
  remoteOf,
  s3Env,
  sha256sumC,
  waitForPart,
  walk,
} from "./helpers/s3_env.ts";

const storageOf = remoteOf;

/** Objects written by another client (boto3), body "x". */
async function putRaw(s3: TestS3, ...keys: string[]): Promise<void> {
  await boto3(
    s3,
    `for k in ${JSON.stringify(keys)}: s3.put_object(Bucket=bucket, Key=k, Body=b"x")`,
  );
}

Deno.test("s3 storage: objects live under the prefix, listing never leaves it", async () => {
  const s3 = await startS3();
  try {
    const st = storageOf(s3);
    await st.writeAtomic("h/i/d/2026/a.sha256", "abc  a\n");
    await putRaw(s3, "dbx/h/i/outside", "other/h/i/outside", "db/h/i/d/foreign.txt");
    assertEquals(
      await listAllKeys(s3),
      ["db/h/i/d/2026/a.sha256", "db/h/i/d/foreign.txt", "dbx/h/i/outside", "other/h/i/outside"],
    );
    const listed = (await Array.fromAsync(st.list(""))).map((o) => o.key).sort();
    assertEquals(listed, ["h/i/d/2026/a.sha256", "h/i/d/foreign.txt"]);
    assertEquals((await Array.fromAsync(st.list("h/i/d/2026"))).map((o) => o.key), [
      "h/i/d/2026/a.sha256",
    ]);
    assertEquals(await st.folders(""), ["h"]);
    assertEquals(await st.folders("h/i/d"), ["2026"]);
    assertEquals(new TextDecoder().decode(await st.readSmall("h/i/d/2026/a.sha256")), "abc  a\n");
    assertEquals(await st.readSmall("h/missing"), undefined);
    assert(await st.exists("h/i"), "a folder-like prefix takes the name");
    assert(!(await st.exists("h/j")));
    assertEquals(st.locate("h/x"), `s3://${s3.bucket}/db/h/x`);
    await st.remove("h/i/d/2026/a.sha256");
    await st.remove("h/i/d/2026/a.sha256"); // missing is not an error
    assertEquals(await listAllKeys(s3), [
      "db/h/i/d/foreign.txt",
      "dbx/h/i/outside",
      "other/h/i/outside",
    ]);
  } finally {
    await s3.close();
  }
});

Deno.test("s3 storage: multipart upload is invisible until sealed, carries its sha256, abort leaves nothing", async () => {
  const s3 = await startS3();
  try {
    const st = storageOf(s3);
    const data = new Uint8Array(20 * 1024 * 1024).map((_, i) => i % 251);
    const hex = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", data)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const w = await st.create("h/big.sql.gz", { expectedBytes: data.length, sha256: hex });
    const writer = w.writable.getWriter();
    await writer.write(data.subarray(0, 9 * 1024 * 1024)); // more than one part sent
    assertEquals(await st.stat("h/big.sql.gz"), undefined, "visible before completion");
    await writer.write(data.subarray(9 * 1024 * 1024));
    await writer.close();
    await w.seal();
    const head = await st.head("h/big.sql.gz");
    assertEquals([head?.size, head?.sha256], [data.length, hex]);
    const back = new Uint8Array(await new Response(await st.open("h/big.sql.gz")).arrayBuffer());
    assertEquals(back.length, data.length);
    assert(back.every((b, i) => b === data[i]), "content differs");

    const a = await st.create("h/aborted.sql.gz");
    const aw = a.writable.getWriter();
    await aw.write(data.subarray(0, 9 * 1024 * 1024)).catch(() => {});
    aw.releaseLock();
    await a.abort();
    assertEquals(await st.stat("h/aborted.sql.gz"), undefined);
    assertEquals(await listAllKeys(s3), ["db/h/big.sql.gz"]);
    await assertRejects(() => st.open("h/aborted.sql.gz"), Deno.errors.NotFound);
    // s3rver does not implement AbortMultipartUpload: its data folder may keep the parts, but
    // no listing shows them (the README advises a lifecycle rule on real buckets).
    await openUploads(s3);
  } finally {
    await s3.close();
  }
});

Deno.test("s3 storage: part size grows so 5 TiB fits in 10,000 parts", () => {
  assertEquals(partSizeFor(0), 8 * 1024 * 1024);
  assertEquals(partSizeFor(1e9), 8 * 1024 * 1024);
  const fiveTiB = 5 * 1024 ** 4;
  assert(partSizeFor(fiveTiB) * 10_000 >= fiveTiB);
  assert(partSizeFor(fiveTiB) <= 5 * 1024 ** 3, "S3 parts are at most 5 GiB");
});

Deno.test("s3 storage: the lock object names its holder, refuses a second run, stale is taken over", async () => {
  const s3 = await startS3();
  try {
    const st = storageOf(s3);
    const lock = await st.lock();
    assertEquals(lock.location, `s3://${s3.bucket}/db/${S3_LOCK_KEY}`);
    const held = await assertRejects(() => storageOf(s3).lock(), LockError);
    assertStringIncludes(held.message, `PID ${Deno.pid}`);
    await lock.release();
    assertEquals(await listAllKeys(s3), []);
    await st.writeAtomic(
      S3_LOCK_KEY,
      JSON.stringify({ host: "gone", pid: 1, run_id: "old", created_at: "2020-01-01T00:00:00Z" }),
    );
    const taken = await st.lock();
    await taken.release();
    assertEquals(await listAllKeys(s3), []);
  } finally {
    await s3.close();
  }
});

Deno.test("s3 storage: refused credentials and a dead endpoint give clear errors without the secret", async () => {
  const s3 = await startS3();
  try {
    // s3rver checks the access key id (not the signature): a refused login is an unknown key.
    const secret = "wrong-secret-Zq81vX";
    const bad = new S3Storage({
      endpoint: s3.endpoint,
      region: "us-east-1",
      bucket: s3.bucket,
      prefix: "db/",
      pathStyle: true,
      credentials: () => Promise.resolve({ accessKeyId: "AKIAUNKNOWN", secretAccessKey: secret }),
    });
    const e = await assertRejects(() => bad.writeAtomic("h/x", "1"));
    assertStringIncludes(e.message, `s3://${s3.bucket}/db/h/x`);
    assertStringIncludes(e.message, "403");
    assert(!e.message.includes(secret));
    await s3.stop();
    const down = await assertRejects(() => storageOf(s3).stat("h/x"));
    assertStringIncludes(down.message, `s3://${s3.bucket}/db/h/x`);
    assertStringIncludes(down.message, "ECONNREFUSED");
  } finally {
    await s3.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Through the CLI: backup --all to local + S3, restore from S3, outages

const FIXTURE = `
  CREATE ROLE app LOGIN PASSWORD 'app-pw';
  CREATE DATABASE shop OWNER app;
`;
const SHOP = `
  CREATE TABLE items (id int PRIMARY KEY, name text);
  INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 500) i;
  ALTER TABLE items OWNER TO app;
`;

Deno.test("s3 cli: backup --all uploads dump, .sha256 and metadata; boto3's download passes sha256sum -c; restore and users restore from S3 rebuild an empty server", async () => {
  const [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const fresh = await startPostgres();
  const env = await s3Env(pg, s3);
  try {
    await pg.sql(FIXTURE);
    await pg.sql(SHOP, { database: "shop" });
    await boto3(
      s3,
      `for k in ["db/${HOST}/pg/foreign.txt", "elsewhere/x"]: s3.put_object(Bucket=bucket, Key=k, Body=b"x")`,
    );
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertNoSecret(r.stdout, r.stderr);
    const keys = await listAllKeys(s3);
    const day = new Date().toISOString().slice(0, 10);
    const shop = keys.filter((k) => k.startsWith(`db/${HOST}/pg/shop/`));
    assertEquals(shop.length, 3, keys.join("\n"));
    for (const suffix of [".sql.gz", ".sha256", ".metadata.json"]) {
      assert(
        shop.some((k) =>
          new RegExp(
            `^db/${HOST}/pg/shop/${day}/shop_\\d{8}T\\d{6}Z${suffix.replaceAll(".", "\\.")}$`,
          ).test(k)
        ),
        `${suffix} in ${shop}`,
      );
    }
    const users = keys.filter((k) => k.startsWith(`db/${HOST}/pg/users_`));
    assertEquals(users.length, 3, keys.join("\n"));
    assert(keys.includes("elsewhere/x") && keys.includes(`db/${HOST}/pg/foreign.txt`));

    const down = await Deno.makeTempDir();
    try {
      const files = await downloadAll(s3, "db/", down);
      for (const f of files.filter((f) => f.endsWith(".sha256"))) {
        const c = await sha256sumC(f);
        assertEquals(c.code, 0, c.text);
      }
    } finally {
      await Deno.remove(down, { recursive: true });
    }

    // The server and its local backups are gone: rebuild an empty one from S3 alone.
    await Deno.remove(env.storage, { recursive: true });
    await env.retarget("pg", fresh);
    const list = await env.run(["restore", "--instance", "pg", "--list"]);
    assertEquals(list.code, 0, list.stderr + list.stdout);
    assertStringIncludes(list.stdout, `s3://${s3.bucket}/db/${HOST}/pg/shop/`);
    const u = await env.run(["users", "restore", "--instance", "pg", "--all", "--latest"]);
    assertEquals(u.code, 0, u.stderr + u.stdout);
    const rs = await env.run(["restore", "--instance", "pg", "--database", "shop", "--latest"]);
    assertEquals(rs.code, 0, rs.stderr + rs.stdout);
    assertNoSecret(list.stdout, list.stderr, u.stdout, u.stderr, rs.stdout, rs.stderr);
    assertEquals(await pgRows(fresh, "shop"), await pgRows(pg, "shop"));
    assertEquals(await pgLogin(fresh, "app", "app-pw", "shop"), "app");
    // Nothing was left behind: the downloaded copy was private and is gone.
    assert(
      !(await exists(env.storage)) ||
        (await Array.fromAsync(Deno.readDir(env.storage))).length === 0,
    );
    assert(keys.includes("elsewhere/x"));
  } finally {
    await env.cleanup();
    await Promise.all([pg.stop(), fresh.stop(), s3.close()]);
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("s3 cli: the S3 server stopped mid-upload fails the item with the remote named; the local backup stays good; the next run uploads it", async () => {
  const [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const env = await s3Env(pg, s3);
  try {
    await pg.sql("CREATE DATABASE big");
    // About 80 MB of hex text: 40+ MB gzipped, several 8 MiB parts.
    await pg.sql(
      `CREATE TABLE t (v text); INSERT INTO t SELECT md5(i::text) || md5((i * 7)::text)
       FROM generate_series(1, 1200000) i;`,
      { database: "big" },
    );
    const run = new Deno.Command(Deno.execPath(), {
      args: cliArgs(env.configPath, ["backup", "--all"]),
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await waitForPart(s3, 120_000);
    await s3.stop();
    const out = await run.output();
    const text = new TextDecoder();
    const stdout = text.decode(out.stdout), stderr = text.decode(out.stderr);
    assert(out.code === 1 || out.code === 2, `exit ${out.code}\n${stdout}${stderr}`);
    assertMatch(stdout, /FAILED +pg\/big: off-host copy to s3:\/\/backups\/db failed: .*kept/);
    assertNoSecret(stdout, stderr);

    // Locally: a good backup, its checksum verifies.
    const sums: string[] = [];
    for await (
      const e of Deno.readDir(
        `${env.storage}/${HOST}/pg/big/${new Date().toISOString().slice(0, 10)}`,
      )
    ) {
      if (e.name.endsWith(".sha256")) sums.push(e.name);
    }
    assertEquals(sums.length, 1);
    const local = `${env.storage}/${HOST}/pg/big/${new Date().toISOString().slice(0, 10)}/${
      sums[0]
    }`;
    assertEquals((await sha256sumC(local)).code, 0);
    const stem = sums[0].replace(/\.sha256$/, "");

    // Remotely: nothing of it, and no backup listed.
    await s3.start();
    assertEquals((await listAllKeys(s3)).filter((k) => k.includes(stem)), []);
    const list = await env.run([
      "restore",
      "--instance",
      "pg",
      "--database",
      "big",
      "--list",
      "--from",
      "remote",
    ]);
    assertEquals(list.code, 0, list.stderr + list.stdout);
    assertStringIncludes(list.stdout, "no backups found");

    // The next run uploads it (and its own backups).
    const again = await env.run(["backup", "--all"]);
    assertEquals(again.code, 0, again.stderr + again.stdout);
    const keys = await listAllKeys(s3);
    for (const suffix of [".sql.gz", ".sha256", ".metadata.json"]) {
      assert(keys.some((k) => k.endsWith(`/${stem}${suffix}`)), `${stem}${suffix} in ${keys}`);
    }
    const listed = await env.run([
      "restore",
      "--instance",
      "pg",
      "--database",
      "big",
      "--list",
      "--from",
      "remote",
      "--json",
    ]);
    assertEquals(
      (JSON.parse(listed.stdout) as { status: string }[]).filter((r) => r.status === "ok").length,
      2,
    );
  } finally {
    await env.cleanup();
    await Promise.all([pg.stop(), s3.close()]);
  }
});

Deno.test("s3 cli: check reports the remote reachable, authenticated and writable, and says what is wrong", async () => {
  const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
  const env = await s3Env(pg, s3);
  try {
    const ok = await env.run(["check"]);
    assertEquals(ok.code, 0, ok.stderr + ok.stdout);
    assertStringIncludes(ok.stdout, `remote s3://${s3.bucket}/db: ok`);
    assertStringIncludes(ok.stdout, "reachable: yes, authenticated: yes, writable: yes");
    assertEquals(await listAllKeys(s3), [], "the probe object is removed");

    const doc = parse(await Deno.readTextFile(env.configPath)) as {
      storage: { remote: Record<string, unknown> };
    };
    doc.storage.remote.bucket = "no-such-bucket";
    await env.writeConfig({ storage: doc.storage });
    const missing = await env.run(["check"]);
    assertEquals(missing.code, 1, missing.stdout);
    assertMatch(missing.stdout, /remote s3:\/\/no-such-bucket\/db: PROBLEM/);
    assertStringIncludes(missing.stdout, "bucket missing");

    doc.storage.remote.bucket = s3.bucket;
    await env.writeConfig({ storage: doc.storage });
    await s3.stop();
    const down = await env.run(["check"]);
    assertEquals(down.code, 1, down.stdout);
    assertStringIncludes(down.stdout, "reachable: no");
    assertStringIncludes(down.stdout, s3.endpoint.replace("http://", ""));
    assertNoSecret(ok.stdout, ok.stderr, missing.stdout, missing.stderr, down.stdout, down.stderr);
  } finally {
    await env.cleanup();
    await s3.close();
  }
});

Deno.test("s3 config: the remote block is validated with errors naming the field", async () => {
  const pg = await sharedPostgres();
  const env = await makeTestEnv([{ id: "pg", server: pg }]);
  try {
    const remote = {
      type: "s3",
      endpoint: "http://127.0.0.1:9",
      region: "us-east-1",
      bucket: "backups",
      prefix: "db/",
      credential: "s3-backups",
    };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ remote: { ...remote, prefix: "/" } }, /storage\.remote\.prefix: expected a key prefix/],
      [
        { remote: { ...remote, prefix: "a/../b" } },
        /storage\.remote\.prefix: expected a key prefix/,
      ],
      [{ remote: { ...remote, type: "gcs" } }, /storage\.remote\.type: expected one of s3/],
      [{ remote: { ...remote, endpoint: "http://u:p@h" } }, /storage\.remote\.endpoint/],
      [{ remote: { ...remote, access_key: "x" } }, /storage\.remote\.access_key: unknown key/],
      [{ keep_local: false }, /storage\.keep_local: keep_local: false needs storage\.remote/],
    ];
    for (const [storage, error] of cases) {
      await env.writeConfig({ storage: { path: env.storage, ...storage } });
      const r = await env.run(["config", "validate"]);
      assertEquals(r.code, 3, r.stdout + r.stderr);
      assertMatch(r.stdout + r.stderr, error);
    }
    // Without a local copy, info of the local folder would see nothing: refused rather than
    // silently useless.
    await env.writeConfig({ storage: { path: env.storage, remote, keep_local: false } });
    const info = await env.run(["info", "--from", "local"]);
    assertEquals(info.code, 3, info.stdout + info.stderr);
    assertMatch(
      info.stderr,
      /info --from local reads the local storage, which storage\.keep_local: false leaves/,
    );
    await env.writeConfig({ storage: { path: env.storage, remote } });
    const ok = await env.run(["config", "show", "--json"]);
    assertEquals(ok.code, 0, ok.stderr);
    const shown = JSON.parse(ok.stdout).storage;
    assertEquals([shown.keep_local, shown.remote.path_style, shown.remote.prefix], [
      true,
      false,
      "db/",
    ]);
  } finally {
    await env.cleanup();
  }
});

Deno.test("s3 cli: switched to keep_local: false, local backups left from before are uploaded, then removed only once confirmed", async () => {
  const [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const env = await s3Env(pg, s3);
  try {
    await pg.sql("CREATE DATABASE shop");
    await pg.sql(SHOP.replace("ALTER TABLE items OWNER TO app;", ""), { database: "shop" });
    // Made locally while the remote was down: kept, not uploaded.
    await s3.stop();
    const down = await env.run(["backup", "--all"]);
    assert(down.code === 1 || down.code === 2, down.stdout + down.stderr);
    const kept: string[] = [];
    for await (const e of walk(env.storage)) kept.push(e);
    assertEquals(kept.filter((f) => f.endsWith(".sql.gz")).length, 2, kept.join("\n"));
    await s3.start();
    await env.writeConfig({
      storage: {
        ...(parse(await Deno.readTextFile(env.configPath)) as {
          storage: Record<string, unknown>;
        }).storage,
        keep_local: false,
      },
    });
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const keys = await listAllKeys(s3);
    // Two of the earlier run (uploaded), two of this one (streamed).
    assertEquals(keys.filter((k) => k.endsWith(".metadata.json")).length, 4, keys.join("\n"));
    const left: string[] = [];
    for await (const e of walk(env.storage)) left.push(e);
    assertEquals(left.filter((f) => /\.(sql\.gz|sha256|metadata\.json)$/.test(f)), []);
    // Reading defaults to the remote then, although the local folder exists.
    const list = await env.run(["restore", "--instance", "pg", "--list"]);
    assertStringIncludes(list.stdout, `s3://${s3.bucket}/db/${HOST}/pg/shop/`);
  } finally {
    await env.cleanup();
    await Promise.all([pg.stop(), s3.close()]);
  }
});

Deno.test("s3 cli: AWS_* variables and ~/.aws files change nothing, even with every permission", async () => {
  const [pg, s3] = await Promise.all([sharedPostgres(), startS3()]);
  const env = await s3Env(pg, s3);
  try {
    const home = `${env.dir}/home`;
    await Deno.mkdir(`${home}/.aws`, { recursive: true });
    const bogus = "[default]\nregion = xx-bogus-1\nendpoint_url = http://127.0.0.1:1\n" +
      "aws_access_key_id = AKIABOGUS\naws_secret_access_key = bogus\nmax_attempts = nope\n" +
      "s3 =\n  addressing_style = virtual\n";
    await Deno.writeTextFile(`${home}/.aws/config`, bogus);
    await Deno.writeTextFile(`${home}/.aws/credentials`, bogus);
    const r = await runCli(["--config", env.configPath, "check"], {
      permissions: ["-A"],
      env: {
        HOME: home,
        AWS_ACCESS_KEY_ID: "AKIABOGUS",
        AWS_SECRET_ACCESS_KEY: "bogus",
        AWS_ENDPOINT_URL: "http://127.0.0.1:1",
        AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1",
        AWS_REGION: "xx-bogus-1",
        AWS_PROFILE: "missing-profile",
        AWS_MAX_ATTEMPTS: "nope",
        AWS_USE_DUALSTACK_ENDPOINT: "true",
      },
    });
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertStringIncludes(r.stdout, "reachable: yes, authenticated: yes, writable: yes");
  } finally {
    await env.cleanup();
    await s3.close();
  }
});
