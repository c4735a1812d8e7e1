/**
 * The off-host rows of the benchmark: `backup` with `storage.remote` to a real s3rver (started
 * here on 127.0.0.1, tests/harness/s3.ts), zstd-3, as `keep_local: true` (the committed file
 * uploaded after the local commit) and `keep_local: false` (streamed, no local file), beside the
 * shell reference `dump | zstd -3 > f && boto3 upload_file f`. s3rver runs outside the measured
 * process tree: its CPU counts as "other", its memory not at all.
 *
 * @module
 */
import { join } from "node:path";
import { loadKey } from "../../lib/crypto/keys.ts";
import { setEntry } from "../../lib/credentials/store.ts";
import { boto3, listAllKeys, S3RVER_KEY, startS3, type TestS3 } from "../../tests/harness/s3.ts";
import type { TestEnv } from "../../tests/helpers/cli.ts";
import { q } from "./commands.ts";
import type { Sample } from "./measure.ts";

/** The codec column of these rows (kept apart from the local zstd3 rows). */
export const S3_CODEC = "zstd3+s3";

/** What one round needs from the benchmark. */
export interface S3RoundContext {
  /** The engine's test set-up (its credentials file gets the S3 entry). */
  env: TestEnv;
  /** Instance id (= engine) and database. */
  instance: string;
  database: string;
  /** The shell dump command and its environment. */
  dumpShell: string;
  dumpEnv: Record<string, string>;
  /** Scratch folder. */
  work: string;
  /** The vya command line for `rest`. */
  vyaArgv(rest: string[]): string[];
  /** Runs and measures a command. */
  timed(argv: string[], env?: Record<string, string>): Promise<Sample>;
  /** Records a sample of a contender with the bytes it stored. */
  record(contender: string, sample: Sample, outBytes: number): void;
  /** Progress. */
  log(line: string): void;
}

/** The started server, shared by every round. */
export interface S3Bench {
  s3: TestS3;
  close(): Promise<void>;
}

/** Starts s3rver for the benchmark. */
export async function startS3Bench(): Promise<S3Bench> {
  const s3 = await startS3("bench");
  return { s3, close: () => s3.close() };
}

const CONTENDERS = ["keep", "stream", "shell"] as const;

/** One repetition: the three contenders, in an order rotated by `rep`. */
export async function s3Round(bench: S3Bench, ctx: S3RoundContext, rep: number): Promise<void> {
  await setEntry(
    ctx.env.credentialsFile,
    "s3-bench",
    { username: S3RVER_KEY, password: S3RVER_KEY },
    await loadKey({ keyFile: ctx.env.keyFile }),
  );
  const k = rep % CONTENDERS.length;
  for (const who of [...CONTENDERS.slice(k), ...CONTENDERS.slice(0, k)]) {
    const storage = join(ctx.work, `s3-${ctx.instance}-local`);
    await Deno.remove(storage, { recursive: true }).catch(() => {});
    let sample: Sample;
    let label: string;
    if (who === "shell") {
      label = "dump | zstd -3 > f && boto3 upload_file f";
      sample = await ctx.timed(
        ["bash", "-o", "pipefail", "-c", shellScript(bench.s3, ctx)],
        ctx.dumpEnv,
      );
    } else {
      label = who === "keep"
        ? "vya-backupdb → S3, keep_local: true (upload after commit)"
        : "vya-backupdb → S3, keep_local: false (streamed)";
      await ctx.env.writeConfig({
        storage: {
          path: storage,
          compression: { format: "zstd", level: 3, threads: 0 },
          keep_local: who === "keep",
          remote: {
            type: "s3",
            endpoint: bench.s3.endpoint,
            region: "us-east-1",
            bucket: bench.s3.bucket,
            prefix: "db/",
            path_style: true,
            credential: "s3-bench",
          },
        },
      });
      sample = await ctx.timed(
        ctx.vyaArgv(["backup", "--instance", ctx.instance, "--database", ctx.database]),
        { NO_COLOR: "1" },
      );
    }
    const bytes = await storedDumpBytes(bench.s3);
    await emptyBucket(bench.s3);
    await Deno.remove(storage, { recursive: true }).catch(() => {});
    ctx.record(label, sample, bytes);
    ctx.log(
      `    ${S3_CODEC} ${label}: ${sample.wall.toFixed(1)} s, ` +
        `cpu ${(sample.user + sample.sys).toFixed(1)} s, rss ${sample.rssMiB.toFixed(0)} MiB`,
    );
  }
}

/** `dump | zstd -3 > f && python3 (boto3) upload_file f`, then f removed. */
function shellScript(s3: TestS3, ctx: S3RoundContext): string {
  const file = join(ctx.work, "s3-shell.sql.zst");
  const py = `
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="${s3.endpoint}", region_name="us-east-1",
    aws_access_key_id="${S3RVER_KEY}", aws_secret_access_key="${S3RVER_KEY}",
    config=Config(s3={"addressing_style": "path"}))
s3.upload_file("${file}", "${s3.bucket}", "shell/${ctx.database}.sql.zst")
`;
  return `${ctx.dumpShell} | zstd -q -3 > ${q(file)} && /usr/bin/python3 -c ${q(py)} && ` +
    `rm -f ${q(file)}`;
}

/** Size of the one dump object in the bucket (0 when none: the row then failed). */
async function storedDumpBytes(s3: TestS3): Promise<number> {
  const keys = (await listAllKeys(s3)).filter((k) => /\.sql\.zst$/.test(k));
  if (keys.length !== 1) throw new Error(`expected one dump object, found ${keys.join(", ")}`);
  const out = await boto3(
    s3,
    `print(s3.head_object(Bucket=bucket, Key="${keys[0]}")["ContentLength"])`,
  );
  return Number(out.trim());
}

async function emptyBucket(s3: TestS3): Promise<void> {
  await boto3(
    s3,
    `
p = s3.get_paginator("list_objects_v2")
for page in p.paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])
`,
  );
}
