/**
 * Throughput benchmark: vya-backupdb against the shell ways of doing the same job.
 *
 *   deno task bench [--size 1GB] [--reps 3] [--engines pg,maria] [--codecs gzip1,gzip6,zstd3,none]
 *                   [--skip-restore] [--jobs-test] [--enc-size 256MB] [--skip-encryption]
 *                   [--skip-s3]
 *                   [--keep] [--fixed-cost-dbs 200] [--skip-fixed-cost] [--fixed-cost-only]
 *
 * Starts its own throwaway PostgreSQL and MariaDB servers, generates a database whose
 * uncompressed dump has the given size, and measures, alternating the contenders each
 * repetition, backups (vya CLI, `dump | gzip`, `dump > f && gzip f`, bare `dump > /dev/null`)
 * and restores (vya CLI, `gzip -dc f | psql`), and what age encryption adds to zstd-3 on a slice of
 * the first engine's dump (scripts/bench/encryption.ts), `backup` to a real s3rver with
 * keep_local true and false on the first engine (scripts/bench/s3.ts), and the fixed cost per run
 * and per database on PostgreSQL (scripts/bench/fixed_cost.ts). Prints a markdown table and
 * writes the numbers
 * to `.bench/results-<stamp>.json` and `.md` (and `.bench/latest.json` / `latest.md`).
 *
 * MB means 10^6 bytes; speeds are uncompressed dump MB per wall second.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { startMariadb, startPostgres } from "../tests/harness/servers.ts";
import { makeTestEnv, REPO_ROOT, type TestEnv } from "../tests/helpers/cli.ts";
import { V8_FLAGS_OPTION } from "../lib/stream/gc.ts";
import {
  cloneDataset,
  type Dataset,
  dropDatabase,
  generateDataset,
  parseSize,
} from "./bench/data.ts";
import type { BenchServer } from "./bench/data.ts";
import {
  type BenchCodec,
  clientEnv,
  dumpShell,
  dumpSize,
  parseCodec,
  q,
  serverPid,
} from "./bench/commands.ts";
import { median, type Sample, timed } from "./bench/measure.ts";
import { machineInfo } from "./bench/machine.ts";
import { restoreRows } from "./bench/restore_rows.ts";
import { type BenchResults, renderMarkdown, type Row } from "./bench/report.ts";
import { S3_CODEC, type S3Bench, s3Round, startS3Bench } from "./bench/s3.ts";
import { fixedCostBench } from "./bench/fixed_cost.ts";
import {
  AGE_CODEC,
  type EncryptionBench,
  encryptionRound,
  prepareEncryption,
} from "./bench/encryption.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1GB" },
    reps: { type: "string", default: "3" },
    engines: { type: "string", default: "pg,maria" },
    codecs: { type: "string", default: "gzip1,gzip6,zstd3,none" },
    "skip-restore": { type: "boolean", default: false },
    "jobs-test": { type: "boolean", default: false },
    "jobs-size": { type: "string", default: "110MB" },
    "enc-size": { type: "string", default: "256MB" },
    "skip-encryption": { type: "boolean", default: false },
    "skip-s3": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "fixed-cost-dbs": { type: "string", default: "200" },
    "skip-fixed-cost": { type: "boolean", default: false },
    "fixed-cost-only": { type: "boolean", default: false },
    render: { type: "string" },
  },
});

const sizeBytes = parseSize(args.values.size);
const reps = Number(args.values.reps);
if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps must be a positive integer");
const engines = args.values.engines.split(",").map((e) => {
  if (/^(pg|postgres|postgresql)$/.test(e)) return "postgresql" as const;
  if (/^(maria|mariadb|my|mysql)$/.test(e)) return "mariadb" as const;
  throw new Error(`unknown engine "${e}" (pg, maria)`);
});
const codecs = args.values.codecs.split(",").map(parseCodec);

const BENCH_DIR = join(REPO_ROOT, ".bench");
const WORK = join(BENCH_DIR, "work");
const TIME_FILE = join(WORK, "time.txt");
const DB = "bench";
const RESTORE_DB = "bench_restore";

const log = (line: string) => console.error(line);
const mb = (bytes: number) => bytes / 1e6;

async function fileSize(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

/** Finds the one dump file vya wrote under a storage folder. */
async function findDump(dir: string): Promise<string> {
  const found: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (/\.sql(\.gz|\.zst)?(\.age)?$/.test(e.name)) found.push(p);
    }
  };
  await walk(dir);
  if (found.length !== 1) throw new Error(`expected one dump under ${dir}, found ${found.length}`);
  return found[0];
}

async function rmrf(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

function vyaArgv(env: TestEnv, rest: string[]): string[] {
  return vyaArgvFor(env.configPath, rest);
}

function vyaArgvFor(configPath: string, rest: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    V8_FLAGS_OPTION,
    "-P=vya",
    join(REPO_ROOT, "main.ts"),
    "--config",
    configPath,
    ...rest,
  ];
}

function rotate<T>(xs: T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

interface EngineCtx {
  engine: "postgresql" | "mariadb";
  server: BenchServer;
  env: TestEnv;
  data: Dataset;
  /** The vya gzip backup restores use (kept from the last vya gzip backup). */
  restoreFile?: string;
  /** Its codec name. */
  restoreCodec?: string;
}

const samples = new Map<string, { row: Omit<Row, "median">; runs: Sample[]; bytes: number[] }>();

function record(
  key: Omit<Row, "median">,
  sample: Sample,
  outBytes: number,
): void {
  const id = `${key.kind}|${key.engine}|${key.codec}|${key.contender}`;
  let entry = samples.get(id);
  if (!entry) samples.set(id, entry = { row: key, runs: [], bytes: [] });
  entry.runs.push(sample);
  entry.bytes.push(outBytes);
}

async function setVyaCompression(ctx: EngineCtx, codec: BenchCodec, storage: string) {
  await ctx.env.writeConfig({
    storage: {
      path: storage,
      compression: {
        format: codec.format,
        ...(codec.level ? { level: codec.level } : {}),
        threads: 0,
      },
    },
  });
}

/**
 * One `zstd3+age` row through the real backup path (dump → zstd-3 → age → SHA-256 → file) on the
 * whole dump, beside the slice rows of scripts/bench/encryption.ts.
 */
async function encryptedBackupRow(ctx: EngineCtx, recipient: string): Promise<void> {
  const storage = join(WORK, `vya-${ctx.engine}-zstd3-age`);
  await rmrf(storage);
  await ctx.env.writeConfig({
    storage: {
      path: storage,
      compression: { format: "zstd", level: 3, threads: 0 },
      encryption: { recipients: [recipient] },
    },
  });
  const sample = await timed(
    vyaArgv(ctx.env, ["backup", "--instance", ctx.engine, "--database", DB]),
    {
      env: { NO_COLOR: "1" },
      cwd: REPO_ROOT,
      serverPid: serverPid(ctx.server),
      timeFile: TIME_FILE,
    },
  );
  const bytes = await fileSize(await findDump(storage));
  await rmrf(storage);
  const contender = "vya-backupdb backup (whole dump)";
  record({ kind: "backup", engine: ctx.engine, codec: AGE_CODEC, contender }, sample, bytes);
  log(
    `    ${AGE_CODEC} ${contender}: ${(mb(ctx.data.dumpBytes) / sample.wall).toFixed(1)} MB/s, ` +
      `cpu ${(sample.user + sample.sys).toFixed(1)} s, rss ${sample.rssMiB.toFixed(0)} MiB`,
  );
}

/** The `zstd3+s3` rows: backup to s3rver, keep_local true and false, and the shell reference. */
async function s3Rows(s3: S3Bench, ctx: EngineCtx, rep: number): Promise<void> {
  const pid = serverPid(ctx.server);
  await s3Round(s3, {
    env: ctx.env,
    instance: ctx.engine,
    database: DB,
    dumpShell: dumpShell(ctx.server, DB),
    dumpEnv: clientEnv(ctx.server),
    work: WORK,
    vyaArgv: (rest) => vyaArgv(ctx.env, rest),
    timed: (argv, env) => timed(argv, { env, cwd: REPO_ROOT, serverPid: pid, timeFile: TIME_FILE }),
    record: (contender, sample, bytes) =>
      record({ kind: "backup", engine: ctx.engine, codec: S3_CODEC, contender }, sample, bytes),
    log,
  }, rep);
}

async function backupRound(ctx: EngineCtx, rep: number): Promise<void> {
  const { server, engine } = ctx;
  const pid = serverPid(server);
  const env = clientEnv(server);
  const dump = dumpShell(server, DB);
  const base = { kind: "backup" as const, engine };
  const shell = (script: string) => ["bash", "-o", "pipefail", "-c", script];

  {
    const s = await timed(shell(`${dump} > /dev/null`), {
      env,
      serverPid: pid,
      timeFile: TIME_FILE,
    });
    record({ ...base, codec: "-", contender: "bare dump > /dev/null" }, s, 0);
    log(`    bare dump: ${(mb(ctx.data.dumpBytes) / s.wall).toFixed(1)} MB/s`);
  }
  for (const [ci, codec] of codecs.entries()) {
    const contenders = codec.format === "none" ? ["vya", "pipe"] : ["vya", "pipe", "two-pass"];
    for (const who of rotate(contenders, rep + ci)) {
      const out = join(WORK, `out-${engine}.sql`);
      let sample: Sample;
      let bytes: number;
      if (who === "vya") {
        const storage = join(WORK, `vya-${engine}-${codec.name}`);
        await rmrf(storage);
        await setVyaCompression(ctx, codec, storage);
        sample = await timed(
          vyaArgv(ctx.env, ["backup", "--instance", engine, "--database", DB]),
          { env: { NO_COLOR: "1" }, cwd: REPO_ROOT, serverPid: pid, timeFile: TIME_FILE },
        );
        const file = await findDump(storage);
        bytes = await fileSize(file);
        const keepIt = codec.format === "gzip" &&
          (codec.level === 6 || !ctx.restoreFile || ctx.restoreCodec === codec.name);
        if (keepIt) {
          const keep = join(WORK, `restore-src-${engine}`);
          await rmrf(keep);
          await Deno.rename(storage, keep);
          ctx.restoreFile = await findDump(keep);
          ctx.restoreCodec = codec.name;
        } else {
          await rmrf(storage);
        }
      } else if (who === "pipe") {
        const target = out + codec.suffix;
        const script = codec.pipe
          ? `${dump} | ${codec.pipe} > ${q(target)}`
          : `${dump} > ${q(target)}`;
        sample = await timed(shell(script), { env, serverPid: pid, timeFile: TIME_FILE });
        bytes = await fileSize(target);
        await rmrf(target);
      } else {
        const script = `${dump} > ${q(out)} && ${codec.inPlace!(out)}`;
        sample = await timed(shell(script), { env, serverPid: pid, timeFile: TIME_FILE });
        bytes = await fileSize(out + codec.suffix);
        await rmrf(out + codec.suffix);
      }
      const label = who === "vya"
        ? "vya-backupdb"
        : who === "pipe"
        ? (codec.pipe ? `dump | ${codec.pipe.replace(" -q", "")} > f` : "dump > f")
        : `dump > f && ${codec.pipe!.split(" ")[0]} -${codec.level} f`;
      record({ ...base, codec: codec.name, contender: label }, sample, bytes);
      log(
        `    ${codec.name} ${label}: ${(mb(ctx.data.dumpBytes) / sample.wall).toFixed(1)} MB/s, ` +
          `cpu ${(sample.user + sample.sys).toFixed(1)} s, rss ${sample.rssMiB.toFixed(0)} MiB`,
      );
    }
  }
}

async function checkRestored(server: BenchServer, rows: number): Promise<void> {
  const got = await server.sql("SELECT count(*) FROM orders", { database: RESTORE_DB });
  if (Number(got) !== rows) throw new Error(`restored ${got} orders rows, expected ${rows}`);
}

async function restoreRound(ctx: EngineCtx, rep: number): Promise<void> {
  if (!ctx.restoreFile) throw new Error("no vya gzip backup to restore (add a gzip codec)");
  await restoreRows({
    engine: ctx.engine,
    server: ctx.server,
    database: DB,
    target: RESTORE_DB,
    file: ctx.restoreFile,
    codec: ctx.restoreCodec!,
    work: WORK,
    vyaArgv: (rest) => vyaArgv(ctx.env, rest),
    timed: (argv, o) => timed(argv, { ...o, timeFile: TIME_FILE }),
    record: (key, sample) => record(key, sample, 0),
    check: () => checkRestored(ctx.server, ctx.data.rowsPerTable),
    checkData: rep === 0,
    log,
    dumpBytes: ctx.data.dumpBytes,
    cwd: REPO_ROOT,
  }, rep);
}

async function jobsTest(ctx: EngineCtx): Promise<BenchResults["jobs"][number][]> {
  const { server, engine } = ctx;
  const target = parseSize(args.values["jobs-size"]);
  log(`  jobs test on ${engine}: 8 databases of ${args.values["jobs-size"]}`);
  const first = await generateDataset(server, "jobs_1", target, (d) => dumpSize(server, d), log);
  for (let i = 2; i <= 8; i++) await cloneDataset(server, "jobs_1", `jobs_${i}`);
  const env = await makeTestEnv([{
    id: engine,
    server: server as never,
    extra: { databases: { include: ["jobs_*"] }, users: { backup: false } },
  }]);
  const out = [];
  try {
    for (const jobs of [1, 2]) {
      const storage = join(WORK, `jobs-${engine}`);
      await rmrf(storage);
      await env.writeConfig({
        storage: { path: storage, compression: { format: "gzip", level: 6, threads: 0 } },
        backup: { jobs },
      });
      const s = await timed(vyaArgv(env, ["backup", "--all"]), {
        env: { NO_COLOR: "1" },
        cwd: REPO_ROOT,
        serverPid: serverPid(server),
        timeFile: TIME_FILE,
      });
      await rmrf(storage);
      out.push({
        engine,
        databases: 8,
        dumpBytesEach: first.dumpBytes,
        jobs,
        codec: "gzip6 threads=0",
        wall: s.wall,
        cpu: s.user + s.sys,
        serverCpu: s.serverCpu,
        rssMiB: s.rssMiB,
      });
      log(`    jobs=${jobs}: ${s.wall.toFixed(1)} s, rss ${s.rssMiB.toFixed(0)} MiB`);
    }
  } finally {
    await env.cleanup();
    for (let i = 1; i <= 8; i++) await dropDatabase(server, `jobs_${i}`);
  }
  return out;
}

async function main(): Promise<void> {
  if (args.values.render) {
    // Re-renders the tables of a results file (e.g. a partial one).
    const results = JSON.parse(await Deno.readTextFile(args.values.render)) as BenchResults;
    console.log(renderMarkdown(results));
    return;
  }
  await Deno.mkdir(WORK, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
  const machine = await machineInfo(
    (await import("../tests/harness/servers.ts")).findPgBin(),
  );
  log(`machine: ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB`);
  const ctxs: EngineCtx[] = [];
  let enc: EncryptionBench | undefined;
  let s3: S3Bench | undefined;
  const started: BenchServer[] = [];
  const results: BenchResults = {
    started: new Date().toISOString(),
    machine,
    params: {
      sizeBytes,
      reps,
      engines,
      codecs: codecs.map((c) => c.name),
      restore: !args.values["skip-restore"],
    },
    data: [],
    rows: [],
    jobs: [],
  };
  const fixedOnly = args.values["fixed-cost-only"];
  try {
    for (const engine of fixedOnly ? [] : engines) {
      log(`starting ${engine} and generating ${args.values.size} of dump…`);
      const server: BenchServer = engine === "postgresql"
        ? await startPostgres()
        : await startMariadb();
      started.push(server);
      if (engine === "mariadb") {
        // The harness starts MariaDB with a 64 MB buffer pool; the dataset should be cached
        // like PostgreSQL's (which reads through the OS page cache) for a fair comparison.
        await server.sql("SET GLOBAL innodb_buffer_pool_size = 2147483648");
      }
      const t0 = performance.now();
      const data = await generateDataset(server, DB, sizeBytes, (d) => dumpSize(server, d), log);
      log(
        `  ${engine}: ${mb(data.dumpBytes).toFixed(0)} MB dump, generated in ` +
          `${((performance.now() - t0) / 1000).toFixed(0)} s`,
      );
      // Users/roles backups are switched off: the contenders dump one database only.
      const env = await makeTestEnv([{
        id: engine,
        server: server as never,
        extra: { users: { backup: false } },
      }]);
      ctxs.push({ engine, server, env, data });
    }
    if (!args.values["skip-encryption"] && !fixedOnly) {
      const c = ctxs[0];
      enc = await prepareEncryption(
        c.engine,
        dumpShell(c.server, DB),
        clientEnv(c.server),
        parseSize(args.values["enc-size"]),
        WORK,
      );
    }
    if (!args.values["skip-s3"]) s3 = await startS3Bench();
    for (let rep = 0; rep < reps; rep++) {
      for (const ctx of rotate(ctxs, rep)) {
        log(`rep ${rep + 1}/${reps} ${ctx.engine}: backup`);
        await backupRound(ctx, rep);
        if (enc && ctx.engine === enc.engine) await encryptedBackupRow(ctx, enc.recipient);
        if (s3 && ctx === ctxs[0]) await s3Rows(s3, ctx, rep);
        if (!args.values["skip-restore"]) {
          log(`rep ${rep + 1}/${reps} ${ctx.engine}: restore`);
          await restoreRound(ctx, rep);
        }
      }
      if (enc) {
        const e = enc;
        log(`rep ${rep + 1}/${reps}: ${AGE_CODEC} on ${(e.bytes / 1e6).toFixed(0)} MB`);
        const pid = serverPid(ctxs[0].server);
        await encryptionRound(
          e,
          rep,
          (argv) => timed(argv, { cwd: REPO_ROOT, serverPid: pid, timeFile: TIME_FILE }),
          (kind, contender, s, out) =>
            record(
              { kind, engine: e.engine, codec: AGE_CODEC, contender, inputBytes: e.bytes },
              s,
              out,
            ),
          log,
        );
      }
      // Partial results survive an interrupted long run.
      summarize(results, ctxs);
      await Deno.writeTextFile(
        join(BENCH_DIR, `partial-${stamp}.json`),
        JSON.stringify(results, null, 2) + "\n",
      );
    }
    if ((fixedOnly || !args.values["skip-fixed-cost"]) && engines.includes("postgresql")) {
      await fixedCost(results, started);
    }
    if (args.values["jobs-test"]) {
      for (const ctx of ctxs) results.jobs.push(...await jobsTest(ctx));
    }
    summarize(results, ctxs);
  } finally {
    await s3?.close();
    for (const ctx of ctxs) await ctx.env.cleanup();
    for (const s of started) await s.stop();
    if (!args.values.keep) await rmrf(WORK);
  }
  results.finished = new Date().toISOString();
  await writeResults(results, stamp);
}

/**
 * The fixed-cost rows, on a PostgreSQL server of their own: hundreds of databases would slow
 * the throughput server's catalog for nothing.
 */
async function fixedCost(results: BenchResults, started: BenchServer[]): Promise<void> {
  const server = await startPostgres();
  started.push(server);
  results.fixedCost = await fixedCostBench(server, {
    count: Number(args.values["fixed-cost-dbs"]),
    reps,
    work: WORK,
    timed: (argv, o) => timed(argv, { ...o, timeFile: TIME_FILE }),
    vyaArgv: vyaArgvFor,
    log,
  });
}

/** Fills the dataset facts and the medians from the samples so far. */
function summarize(results: BenchResults, ctxs: EngineCtx[]): void {
  results.data = [];
  results.rows = [];
  for (const ctx of ctxs) {
    const gz6 = [...samples.values()].find((s) =>
      s.row.kind === "backup" && s.row.engine === ctx.engine && s.row.codec === "gzip6" &&
      s.row.contender.startsWith("dump |")
    );
    results.data.push({
      engine: ctx.engine,
      database: ctx.data.database,
      rowsPerTable: ctx.data.rowsPerTable,
      dumpBytes: ctx.data.dumpBytes,
      gzip6Ratio: gz6 ? ctx.data.dumpBytes / median(gz6.bytes) : undefined,
    });
  }
  for (const { row, runs, bytes } of samples.values()) {
    const dumpBytes = row.inputBytes ?? ctxs.find((c) => c.engine === row.engine)!.data.dumpBytes;
    const wall = median(runs.map((r) => r.wall));
    results.rows.push({
      ...row,
      runs,
      median: {
        wall,
        mbps: mb(dumpBytes) / wall,
        cpu: median(runs.map((r) => r.user + r.sys)),
        serverCpu: median(runs.map((r) => r.serverCpu)),
        otherCpu: median(runs.map((r) => r.otherCpu)),
        rssMiB: Math.max(...runs.map((r) => r.rssMiB)),
        outBytes: median(bytes),
      },
    });
  }
}

/** Writes the JSON and markdown files and prints the markdown. */
async function writeResults(results: BenchResults, stamp: string): Promise<void> {
  const md = renderMarkdown(results);
  const jsonPath = join(BENCH_DIR, `results-${stamp}.json`);
  const mdPath = join(BENCH_DIR, `results-${stamp}.md`);
  await Deno.writeTextFile(jsonPath, JSON.stringify(results, null, 2) + "\n");
  await Deno.writeTextFile(mdPath, md);
  await Deno.copyFile(jsonPath, join(BENCH_DIR, "latest.json"));
  await Deno.copyFile(mdPath, join(BENCH_DIR, "latest.md"));
  console.log(md);
  console.log(`JSON: ${jsonPath}\nMarkdown: ${mdPath}`);
}

await main();
