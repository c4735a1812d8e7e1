/**
 * How big are the chunks Deno reads from a real dump tool's stdout, and what does the backup
 * data path cost per GB with them, with and without coalescing them into 1 MiB blocks first?
 *
 *   deno run -A scripts/bench/chunks.ts [--size 100MB]
 *
 * Starts throwaway servers, generates a dataset, runs pg_dump / mariadb-dump into
 * writeBackupStream (codec none and gzip-6, threads 2) and prints Deno's own CPU seconds.
 *
 * @module
 */
import process from "node:process";
import { join } from "node:path";
import { startMariadb, startPostgres } from "../../tests/harness/servers.ts";
import { REPO_ROOT } from "../../tests/helpers/cli.ts";
import { writeBackupStream } from "../../lib/backup/stream_dump.ts";
import { databaseBackupKeys } from "../../lib/storage/layout.ts";
import { LocalStorage } from "../../lib/storage/local.ts";
import { codecFor } from "../../lib/stream/codecs.ts";
import { type BenchServer, generateDataset } from "./data.ts";
import { clientEnv, dumpShell } from "./commands.ts";

const size = Number(/(\d+)MB/.exec(Deno.args.join(" "))?.[1] ?? 100) * 1e6;

function spawnDump(server: BenchServer): Deno.ChildProcess {
  return new Deno.Command("bash", {
    args: ["-c", `exec ${dumpShell(server, "chunks")}`],
    env: clientEnv(server),
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

/** Groups small chunks into blocks of `size` bytes. */
function coalesce(size: number): TransformStream<Uint8Array, Uint8Array> {
  let buf = new Uint8Array(size);
  let used = 0;
  return new TransformStream({
    transform(chunk, c) {
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

async function timedCpu(run: () => Promise<void>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const c1 = process.cpuUsage();
  return [(performance.now() - t0) / 1000, (c1.user - c0.user + c1.system - c0.system) / 1e6];
}

for (const start of [startPostgres, startMariadb]) {
  const server = await start();
  try {
    const data = await generateDataset(server, "chunks", size, async (db) => {
      const out = await new Deno.Command("bash", {
        args: ["-c", `${dumpShell(server, db)} | wc -c`],
        env: clientEnv(server),
        stdout: "piped",
      }).output();
      return Number(new TextDecoder().decode(out.stdout).trim());
    }, console.error);
    const gb = data.dumpBytes / 1e9;
    let chunks = 0;
    const [w0, c0] = await timedCpu(async () => {
      const child = spawnDump(server);
      await child.stdout.pipeTo(new WritableStream({ write: () => void chunks++ }));
      await child.status;
    });
    console.log(
      `${server.engine}: ${(data.dumpBytes / 1e6).toFixed(0)} MB dump, ${chunks} stdout chunks, ` +
        `avg ${(data.dumpBytes / chunks / 1024).toFixed(1)} KiB; read+discard ` +
        `${(c0 / gb).toFixed(2)} deno CPU s/GB, ${(data.dumpBytes / 1e6 / w0).toFixed(0)} MB/s`,
    );
    const dir = await Deno.makeTempDir({ dir: join(REPO_ROOT, ".bench"), prefix: "chunks-" });
    try {
      for (const rep of [1, 2]) {
        for (const [fmt, level] of [["none", 0], ["gzip", 6]] as const) {
          for (const block of [0, 1 << 20]) {
            const [wall, cpu] = await timedCpu(async () => {
              const child = spawnDump(server);
              const paths = databaseBackupKeys("h", "i", `d${rep}${block}`, new Date(), fmt);
              const src = block ? child.stdout.pipeThrough(coalesce(block)) : child.stdout;
              await writeBackupStream(src, {
                storage: new LocalStorage(dir),
                target: paths,
                codec: codecFor(fmt),
                level,
                threads: 2,
              });
              await child.status;
              await Deno.remove(new LocalStorage(dir).locate(paths.dir), { recursive: true });
            });
            console.log(
              `  rep ${rep} ${fmt}${level || ""} ${block ? "coalesce 1 MiB" : "as read      "}: ` +
                `${(data.dumpBytes / 1e6 / wall).toFixed(1)} MB/s, deno CPU ` +
                `${(cpu / gb).toFixed(2)} s/GB`,
            );
          }
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await server.stop();
  }
}
