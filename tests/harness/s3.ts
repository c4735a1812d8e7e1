/**
 * A real S3 server for tests: npm `s3rver` (installed by scripts/setup.sh into a tool folder,
 * never into the project), run by node on 127.0.0.1 on a free port with a private data folder.
 * It checks signatures with its fixed key pair (`S3RVER`/`S3RVER`), speaks path-style only, and
 * implements multipart uploads, HEAD, GET, DELETE and ListObjectsV2. `stop()` then `start()`
 * again serves the same data on the same port (the mid-upload outage test).
 *
 * @module
 */
import { freePort } from "./alerts.ts";
import { sleep } from "./process.ts";

/** Folder scripts/setup.sh installs s3rver into. */
export const S3RVER_DIR: string = Deno.env.get("VYA_S3RVER_DIR") ?? "/opt/vya-tools/s3rver";

/** The access key id and secret s3rver accepts. */
export const S3RVER_KEY = "S3RVER";

/** A running (or stopped, restartable) s3rver. */
export interface TestS3 {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** Its port. */
  port: number;
  /** The bucket created at start. */
  bucket: string;
  /** Its data folder (objects live under `DIR/BUCKET/`). */
  dir: string;
  /** Starts it again on the same port and data (after stop). */
  start(): Promise<void>;
  /** Stops it (SIGKILL: like a server that vanished); the data stays. Returns its stderr. */
  stop(): Promise<string>;
  /** Stops it and deletes its data. */
  close(): Promise<void>;
  /**
   * The requests it answered, as `METHOD /bucket/key?query STATUS` lines (only when started
   * with `{ log: true }`; otherwise empty).
   */
  requests(): Promise<string[]>;
}

const running = new Set<Deno.ChildProcess>();
const dataDirs = new Set<string>();
let hooked = false;

/**
 * Starts s3rver with `bucket` (default "backups") on a free port; with `log`, its request log
 * is kept for {@linkcode TestS3.requests}.
 */
export async function startS3(
  bucket = "backups",
  options: { log?: boolean } = {},
): Promise<TestS3> {
  const bin = `${S3RVER_DIR}/node_modules/.bin/s3rver`;
  try {
    await Deno.stat(bin);
  } catch {
    throw new Error(`s3rver not found at ${bin}: run scripts/setup.sh`);
  }
  if (!hooked) {
    hooked = true;
    globalThis.addEventListener("unload", () => {
      for (const c of running) {
        try {
          c.kill("SIGKILL");
        } catch { /* gone */ }
      }
      // A failed test may not reach close(): its data folder goes with the process.
      for (const d of dataDirs) {
        for (const path of [d, `${d}.log`]) {
          try {
            Deno.removeSync(path, { recursive: true });
          } catch { /* gone */ }
        }
      }
    });
  }
  const dir = await Deno.makeTempDir({ prefix: "vya-s3rver-" });
  dataDirs.add(dir);
  const port = freePort();
  // Beside the data folder, not in it: s3rver's own files stay what the tests read.
  const logFile = `${dir}.log`;
  let child: Deno.ChildProcess | undefined;
  let pump: Promise<void> | undefined;
  const start = async () => {
    child = new Deno.Command("node", {
      args: [bin, "-d", dir, "-a", "127.0.0.1", "-p", String(port)].concat(
        options.log ? [] : ["--silent"],
        ["--configure-bucket", bucket],
      ),
      stdin: "null",
      stdout: options.log ? "piped" : "null",
      stderr: "piped",
      // Its logger cuts the method off each line unless the line is coloured.
      env: options.log ? { FORCE_COLOR: "1" } : undefined,
    }).spawn();
    running.add(child);
    if (options.log) {
      const file = await Deno.open(logFile, { create: true, append: true });
      const out = child.stdout;
      // Chunk by chunk (pipeTo holds back a file's writes): the log is read while it grows.
      pump = (async () => {
        try {
          for await (const chunk of out) await file.write(chunk);
        } catch {
          /* killed */
        } finally {
          file.close();
        }
      })();
    }
    const end = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        await res.body?.cancel();
        return;
      } catch (e) {
        if (Date.now() > end) {
          const stderr = await stop();
          throw new Error(`s3rver did not start: ${e}\n${stderr}`);
        }
        await sleep(50);
      }
    }
  };
  const stop = async (): Promise<string> => {
    const c = child;
    child = undefined;
    if (!c) return "";
    try {
      c.kill("SIGKILL");
    } catch { /* gone */ }
    const stderr = await new Response(c.stderr).text().catch(() => "");
    await c.status;
    await pump;
    running.delete(c);
    return stderr;
  };
  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket,
    dir,
    start,
    stop,
    async close() {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(logFile).catch(() => {});
      dataDirs.delete(dir);
    },
    async requests() {
      // Read while the server runs: what it logged so far (lines end once written).
      const text = await Deno.readTextFile(logFile).catch(() => "");
      // deno-lint-ignore no-control-regex
      const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
      return plain.split("\n").map((l) => l.match(/^info: ([A-Z]+ \/\S+ \d{3})\b/)?.[1])
        .filter((l): l is string => l !== undefined);
    },
  };
}

/**
 * Runs Debian's boto3 (an S3 client independent of ours) against `s3`: `script` is Python that
 * finds `s3` (a client) and `bucket` defined; returns its stdout. Throws on a non-zero exit.
 */
export async function boto3(s3: TestS3, script: string, cwd?: string): Promise<string> {
  const prelude = `
import boto3, sys
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=${JSON.stringify(s3.endpoint)}, region_name="us-east-1",
    aws_access_key_id="${S3RVER_KEY}", aws_secret_access_key="${S3RVER_KEY}",
    config=Config(s3={"addressing_style": "path"}))
bucket = ${JSON.stringify(s3.bucket)}
`;
  const out = await new Deno.Command("/usr/bin/python3", {
    args: ["-c", prelude + script],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // No AWS_* of the user's environment leaks into the oracle.
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", HOME: cwd ?? "/tmp" },
  }).output();
  const text = new TextDecoder();
  if (!out.success) throw new Error(`boto3 failed: ${text.decode(out.stderr)}`);
  return text.decode(out.stdout);
}

/** Every key in the bucket (any prefix), sorted, as boto3 lists them. */
export async function listAllKeys(s3: TestS3): Promise<string[]> {
  const out = await boto3(
    s3,
    `
p = s3.get_paginator("list_objects_v2")
for page in p.paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        print(o["Key"])
`,
  );
  return out.split("\n").filter((l) => l !== "").sort();
}

/**
 * Multipart uploads still open (their ids). s3rver implements neither ListMultipartUploads nor
 * AbortMultipartUpload, so this reads its data folder, where each open upload is a folder
 * under `BUCKET/._S3rver_uploads/`.
 */
export async function openUploads(s3: TestS3): Promise<string[]> {
  try {
    const ids = [];
    for await (const e of Deno.readDir(`${s3.dir}/${s3.bucket}/._S3rver_uploads`)) ids.push(e.name);
    return ids.sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}
