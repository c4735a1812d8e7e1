/**
 * A CLI test set-up whose storage has an S3 remote (a real s3rver, tests/harness/s3.ts): the
 * remote's credential stored encrypted as a sysadmin would, with a secret no output may hold.
 *
 * @module
 */
import { assert } from "../harness/assert.ts";
import { S3RVER_KEY, type TestS3 } from "../harness/s3.ts";
import { S3Storage } from "../../lib/storage/s3.ts";
import type { TestInstance } from "./cli.ts";
import { loadKey } from "../../lib/crypto/keys.ts";
import { setEntry } from "../../lib/credentials/store.ts";
import { makeTestEnv, type TestEnv } from "./cli.ts";

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

/**
 * A set-up with instance `pg` on `pg` and `s3` as the remote (credential `s3-backups`);
 * `instance` keys merge into the instance mapping.
 */
export async function s3Env(
  pg: TestInstance["server"],
  s3: TestS3,
  extraStorage: Record<string, unknown> = {},
  instance?: Record<string, unknown>,
): Promise<TestEnv> {
  const env = await makeTestEnv([{ id: "pg", server: pg, extra: instance }]);
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
