/**
 * A CLI test set-up whose storage has an S3 remote (a real s3rver, tests/harness/s3.ts): the
 * remote's credential stored encrypted as a sysadmin would, with a secret no output may hold.
 *
 * @module
 */
import { assert } from "../harness/assert.ts";
import { boto3, S3RVER_KEY, type TestS3 } from "../harness/s3.ts";
import { S3Storage } from "../../lib/storage/s3.ts";
import type { TestInstance } from "./cli.ts";
import { loadKey } from "../../lib/crypto/keys.ts";
import { setEntry } from "../../lib/credentials/store.ts";
import { makeTestEnv, type TestEnv } from "./cli.ts";

/** The host name in every backup key. */
export const HOST: string = Deno.hostname();
// s3rver checks the access key id only, so the secret can be one no output may ever contain.
/** The remote's secret key as stored in the credentials file. */
export const S3_SECRET = "s3-secret-Vq7Lm2Xz9Pq4";

/** The `storage:` block of an env with `s3` as its remote (prefix db/), extra keys over it. */
export function s3Storage(
  env: TestEnv,
  s3: TestS3,
  extra: Record<string, unknown> = {},
  remoteExtra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    path: env.storage,
    compression: { format: "gzip", level: 1 },
    remote: {
      type: "s3",
      endpoint: s3.endpoint,
      region: "us-east-1",
      bucket: s3.bucket,
      prefix: "db/",
      path_style: true,
      credential: "s3-backups",
      ...remoteExtra,
    },
    ...extra,
  };
}

/** How {@linkcode s3Env} names and extends its one instance. */
export interface S3EnvInstance {
  /** The instance id (default "pg"). */
  id?: string;
  /** Keys merged into the instance mapping. */
  extra?: Record<string, unknown>;
}

/**
 * A set-up with one instance (`pg` unless named) on `server` and `s3` as the remote
 * (credential `s3-backups`).
 */
export async function s3Env(
  server: TestInstance["server"],
  s3: TestS3,
  extraStorage: Record<string, unknown> = {},
  instance: S3EnvInstance = {},
): Promise<TestEnv> {
  const env = await makeTestEnv([{ id: instance.id ?? "pg", server, extra: instance.extra }]);
  await setEntry(
    env.credentialsFile,
    "s3-backups",
    { username: S3RVER_KEY, password: S3_SECRET },
    await loadKey({ keyFile: env.keyFile }),
  );
  await env.writeConfig({ storage: s3Storage(env, s3, extraStorage) });
  return env;
}

/** Fails when any text holds the remote's secret. */
export function assertNoSecret(...texts: string[]): void {
  for (const t of texts) assert(!t.includes(S3_SECRET), `secret in output:\n${t}`);
}

/** Our S3 storage on `s3` under `prefix` (s3rver's own key), as the tests read and seed it. */
export function remoteOf(s3: TestS3, prefix = "db/"): S3Storage {
  return new S3Storage({
    endpoint: s3.endpoint,
    region: "us-east-1",
    bucket: s3.bucket,
    prefix,
    pathStyle: true,
    credentials: () => Promise.resolve({ accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY }),
  });
}

/** Downloads every object under `prefix` with boto3 into `dir` (keys as paths). */
export async function downloadAll(s3: TestS3, prefix: string, dir: string): Promise<string[]> {
  const out = await boto3(
    s3,
    `
import os
p = s3.get_paginator("list_objects_v2")
for page in p.paginate(Bucket=bucket, Prefix=${JSON.stringify(prefix)}):
    for o in page.get("Contents", []):
        path = os.path.join(${JSON.stringify(dir)}, o["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, o["Key"], path)
        print(path)
`,
  );
  return out.split("\n").filter((l) => l !== "").sort();
}

/** `sha256sum -c FILE` in the file's folder. */
export async function sha256sumC(file: string): Promise<{ code: number; text: string }> {
  const dir = file.slice(0, file.lastIndexOf("/"));
  const out = await new Deno.Command("sha256sum", {
    args: ["-c", file.slice(dir.length + 1)],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, text: text.decode(out.stdout) + text.decode(out.stderr) };
}

/** Waits until s3rver holds an open multipart upload with at least one part, then returns. */
export async function waitForPart(s3: TestS3, ms: number): Promise<void> {
  const end = Date.now() + ms;
  const root = `${s3.dir}/${s3.bucket}/._S3rver_uploads`;
  while (Date.now() < end) {
    try {
      for (const u of Deno.readDirSync(root)) {
        for (const f of Deno.readDirSync(`${root}/${u.name}`)) if (/^\d+$/.test(f.name)) return;
      }
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("no multipart upload started");
}

/** Every file below `dir` (none when it is missing). */
export async function* walk(dir: string): AsyncGenerator<string> {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) yield* walk(`${dir}/${e.name}`);
      else yield `${dir}/${e.name}`;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
