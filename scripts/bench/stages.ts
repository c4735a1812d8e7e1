/**
 * Profiles the backup data path stage by stage, in-process, on an existing uncompressed dump:
 *
 *   deno run -A scripts/bench/stages.ts DUMP.sql [--only gzip6,...]
 *
 * The source is a child process writing the file into a pipe in 8 KiB writes (`dd bs=8k`),
 * as pg_dump's stdio does, so the chunk sizes Deno sees match a real backup. Each line says how
 * fast one combination runs, in MB (10^6 bytes) of uncompressed input per second.
 *
 * @module
 */
import { join } from "node:path";
import process from "node:process";
import { codecFor } from "../../lib/stream/codecs.ts";
import { ByteCounter } from "../../lib/stream/counter.ts";
import { Sha256Stream } from "../../lib/stream/sha256.ts";
import { writeBackupStream } from "../../lib/backup/stream_dump.ts";
import { databaseBackupKeys } from "../../lib/storage/layout.ts";
import { LocalStorage } from "../../lib/storage/local.ts";

const file = Deno.args[0];
if (!file) throw new Error("usage: stages.ts DUMP.sql");
const size = (await Deno.stat(file)).size;

function childSource(): { stream: ReadableStream<Uint8Array>; done: Promise<unknown> } {
  const child = new Deno.Command("dd", {
    args: [`if=${file}`, "bs=8k", "status=none"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  return { stream: child.stdout, done: child.status };
}

async function fileChunks(): Promise<Uint8Array[]> {
  const data = await Deno.readFile(file);
  const chunks = [];
  for (let i = 0; i < data.length; i += 1 << 20) chunks.push(data.subarray(i, i + (1 << 20)));
  return chunks;
}

function fromChunks(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]);
      else c.close();
    },
  });
}

/** Groups small chunks into blocks of about `size` bytes. */
function rechunk(size: number): TransformStream<Uint8Array, Uint8Array> {
  let buf = new Uint8Array(size);
  let used = 0;
  return new TransformStream({
    transform(chunk, c) {
      if (used === 0 && chunk.length >= size) return c.enqueue(chunk);
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(size - used, chunk.length - off);
        buf.set(chunk.subarray(off, off + n), used);
        used += n;
        off += n;
        if (used === size) {
          c.enqueue(buf);
          buf = new Uint8Array(size);
          used = 0;
        }
      }
    },
    flush(c) {
      if (used) c.enqueue(buf.subarray(0, used));
    },
  });
}

const sink = (): WritableStream<Uint8Array> => new WritableStream({ write() {} });

async function measure(name: string, run: () => Promise<unknown>): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const s = (performance.now() - t0) / 1000;
  const cpu1 = process.cpuUsage();
  const cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1e6;
  console.log(
    `| ${name} | ${(size / 1e6 / s).toFixed(1)} | ${s.toFixed(2)} | ${
      cpu ? cpu.toFixed(2) : "?"
    } |`,
  );
}

const only = Deno.args.includes("--only")
  ? Deno.args[Deno.args.indexOf("--only") + 1].split(",")
  : undefined;
const want = (k: string) => !only || only.includes(k);

const codecs = [
  { key: "none", format: "none" as const, level: 0, threads: 1 },
  { key: "gzip1", format: "gzip" as const, level: 1, threads: 1 },
  { key: "gzip1", format: "gzip" as const, level: 1, threads: 2 },
  { key: "gzip6", format: "gzip" as const, level: 6, threads: 1 },
  { key: "gzip6", format: "gzip" as const, level: 6, threads: 2 },
  { key: "zstd3", format: "zstd" as const, level: 3, threads: 1 },
];

console.log(`${(size / 1e6).toFixed(0)} MB input, ${navigator.hardwareConcurrency} cores\n`);
console.log("| stage | MB/s | s | deno CPU s |");
console.log("|---|---:|---:|---:|");

let chunkCount = 0;
await measure("child pipe (dd bs=8k) → discard", async () => {
  const src = childSource();
  await src.stream.pipeTo(new WritableStream({ write: () => void chunkCount++ }));
  await src.done;
});
console.log(
  `| (child stdout chunks: ${chunkCount}, avg ${
    (size / chunkCount / 1024).toFixed(1)
  } KiB) | | | |`,
);
await measure("child pipe → ByteCounter → Sha256 → ByteCounter → discard", async () => {
  const src = childSource();
  await src.stream.pipeThrough(new ByteCounter()).pipeThrough(new Sha256Stream())
    .pipeThrough(new ByteCounter()).pipeTo(sink());
  await src.done;
});
const chunks = await fileChunks();
await measure(
  "memory 1 MiB chunks → Sha256 → discard",
  () => fromChunks(chunks).pipeThrough(new Sha256Stream()).pipeTo(sink()),
);
for (const c of codecs) {
  if (!want(c.key) || c.format === "none") continue;
  await measure(
    `memory 1 MiB chunks → ${c.key} threads=${c.threads} → discard`,
    () =>
      fromChunks(chunks).pipeThrough(codecFor(c.format).compress(c.level, { threads: c.threads }))
        .pipeTo(sink()),
  );
}
const tmp = await Deno.makeTempDir({ dir: join(Deno.cwd(), ".bench"), prefix: "stages-" });
try {
  for (const c of codecs) {
    if (!want(c.key)) continue;
    for (const batch of [0, 1 << 20]) {
      await measure(
        `child pipe → ${
          batch ? "rechunk 1 MiB → " : ""
        }writeBackupStream ${c.key} threads=${c.threads}`,
        async () => {
          const src = childSource();
          const paths = databaseBackupKeys(
            "h",
            "i",
            `d${Math.random()}`,
            new Date(),
            c.format,
          );
          await writeBackupStream(batch ? src.stream.pipeThrough(rechunk(batch)) : src.stream, {
            storage: new LocalStorage(tmp),
            target: paths,
            codec: codecFor(c.format),
            level: c.level,
            threads: c.threads,
          });
          await src.done;
          await Deno.remove(new LocalStorage(tmp).locate(paths.dir), { recursive: true });
        },
      );
    }
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}
