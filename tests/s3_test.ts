/**
 * S3 storage against a real S3 server (npm s3rver on 127.0.0.1, tests/harness/s3.ts), with
 * Debian's boto3 as the independent client that checks what we wrote.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./harness/assert.ts";
import { boto3, listAllKeys, openUploads, S3RVER_KEY, startS3, type TestS3 } from "./harness/s3.ts";
import { partSizeFor, S3_LOCK_KEY, S3Storage } from "../lib/storage/s3.ts";
import { LockError } from "../lib/errors.ts";

function storageOf(s3: TestS3, prefix = "db/"): S3Storage {
  return new S3Storage({
    endpoint: s3.endpoint,
    region: "us-east-1",
    bucket: s3.bucket,
    prefix,
    pathStyle: true,
    credentials: () => Promise.resolve({ accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY }),
  });
}

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
