/**
 * The benchmark's restore rows: `vya-backupdb restore --jobs N` for N = 1, 2, 4 beside the shell
 * pipeline (`gzip -dc f | psql` / `| mariadb`) and, on PostgreSQL, beside `pg_restore -j N` on a
 * custom-format dump (`pg_dump -Fc`) of the same database, all measured in the same run on the
 * same file's data. Every row restores into a new database, and its CREATE DATABASE is timed
 * with it (vya's restore creates the target itself; the shell runs `psql -c 'CREATE DATABASE …'`
 * or `mariadb -e …` first).
 *
 * While the CLI does not know `--jobs` yet, the jobs-1 row runs plain `restore` (its default is
 * one job) and the other job counts are skipped with a "not available" line.
 *
 * @module
 */
import { join } from "node:path";
import type { BenchServer } from "./data.ts";
import { dropDatabase } from "./data.ts";
import { clientEnv, createShell, loadShell, q, serverPid } from "./commands.ts";
import type { Sample } from "./measure.ts";
import { PG_DUMP_OPTIONS, pgConninfo } from "../../lib/engines/postgres/dump.ts";

/** Job counts the restore rows measure. */
export const RESTORE_JOBS = [1, 2, 4] as const;

/** Row label of `vya-backupdb restore --jobs N`. */
export const vyaRestoreLabel = (jobs: number) => `vya-backupdb restore --jobs ${jobs}`;

/** Row label of `pg_restore -j N`. */
export const pgRestoreLabel = (jobs: number) => `pg_restore -j ${jobs} (pg_dump -Fc file)`;

/** What the restore rows need of the bench driver. */
export interface RestoreRowsContext {
  engine: "postgresql" | "mariadb";
  server: BenchServer;
  /** The source database (for the custom-format dump). */
  database: string;
  /** The database every contender restores into (dropped before each). */
  target: string;
  /** The vya gzip backup every vya and shell row restores. */
  file: string;
  /** Its codec name (the rows' codec column). */
  codec: string;
  /** Work folder (the custom-format dump is written there once). */
  work: string;
  /** argv of the vya CLI with the bench's config. */
  vyaArgv: (rest: string[]) => string[];
  /** Runs and measures a command. */
  timed: (
    argv: string[],
    options: { env?: Record<string, string>; cwd?: string; serverPid: number },
  ) => Promise<Sample>;
  /** Records a sample under a row. */
  record: (
    key: {
      kind: "restore";
      engine: "postgresql" | "mariadb";
      codec: string;
      contender: string;
    },
    sample: Sample,
  ) => void;
  /** Checks the restored target (row counts). */
  check: () => Promise<void>;
  /** Whether this repetition checks the restored data. */
  checkData: boolean;
  /** Progress lines. */
  log: (line: string) => void;
  /** Uncompressed dump bytes (for MB/s in the log). */
  dumpBytes: number;
  /** The repository root (cwd of the vya CLI). */
  cwd: string;
}

let jobsFlagKnown: boolean | undefined;

/** Whether the CLI's `restore` knows `--jobs` (asked once, from its help text). */
async function restoreKnowsJobs(vyaArgv: (rest: string[]) => string[]): Promise<boolean> {
  if (jobsFlagKnown !== undefined) return jobsFlagKnown;
  const [cmd, ...args] = vyaArgv(["restore", "--help"]);
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  jobsFlagKnown = /--jobs\b/.test(text);
  return jobsFlagKnown;
}

const customDumps = new Map<string, string>();

/** The `pg_dump -Fc` file of the source database, made once per run (not measured). */
async function customDump(ctx: RestoreRowsContext): Promise<string> {
  const have = customDumps.get(ctx.engine);
  if (have) return have;
  const server = ctx.server as Extract<BenchServer, { engine: "postgresql" }>;
  const file = join(ctx.work, `custom-${ctx.engine}.dump`);
  // The same options as vya's plain dumps, in the custom format (default compression: zlib).
  const options = PG_DUMP_OPTIONS.filter((o) => !/^--format/.test(o));
  const out = await new Deno.Command(`${server.bin}/pg_dump`, {
    args: [...options, "-Fc", "-f", file, `--dbname=${pgConninfo(server.params, ctx.database)}`],
    env: clientEnv(server),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`pg_dump -Fc: ${new TextDecoder().decode(out.stderr)}`);
  customDumps.set(ctx.engine, file);
  return file;
}

type Contender =
  | { who: "vya"; jobs: number }
  | { who: "shell" }
  | { who: "pg_restore"; jobs: number };

function label(c: Contender, engine: string): string {
  if (c.who === "vya") return vyaRestoreLabel(c.jobs);
  if (c.who === "pg_restore") return pgRestoreLabel(c.jobs);
  return `gzip -dc f | ${engine === "postgresql" ? "psql" : "mariadb"}`;
}

/** One repetition of every restore row, in an order rotated by `rep`. */
export async function restoreRows(ctx: RestoreRowsContext, rep: number): Promise<void> {
  const { server, engine, target } = ctx;
  const pid = serverPid(server);
  const knowsJobs = await restoreKnowsJobs(ctx.vyaArgv);
  if (!knowsJobs && rep === 0) {
    ctx.log(
      `    restore --jobs: not available (this CLI's restore has no --jobs): the jobs-1 row ` +
        `runs plain restore, jobs ${RESTORE_JOBS.slice(1).join(" and ")} are skipped`,
    );
  }
  const contenders: Contender[] = [
    ...RESTORE_JOBS.filter((j) => knowsJobs || j === 1).map((jobs) => ({
      who: "vya" as const,
      jobs,
    })),
    { who: "shell" },
    ...(engine === "postgresql"
      ? RESTORE_JOBS.map((jobs) => ({ who: "pg_restore" as const, jobs }))
      : []),
  ];
  const k = rep % contenders.length;
  for (const c of [...contenders.slice(k), ...contenders.slice(0, k)]) {
    await dropDatabase(server, target);
    // Each restore writes its size in WAL: without this, the server's checkpoints land in
    // whichever rows reach max_wal_size, and one row pays for the others'.
    if (engine === "postgresql") await server.sql("CHECKPOINT");
    let sample: Sample;
    if (c.who === "vya") {
      const jobs = knowsJobs ? ["--jobs", String(c.jobs)] : [];
      sample = await ctx.timed(
        ctx.vyaArgv([
          "restore",
          "--instance",
          engine,
          "--file",
          ctx.file,
          "--target",
          target,
          ...jobs,
        ]),
        { env: { NO_COLOR: "1" }, cwd: ctx.cwd, serverPid: pid },
      );
    } else if (c.who === "shell") {
      // The same job as vya's: into a new database, so CREATE DATABASE is timed too.
      const load = `gzip -dc ${q(ctx.file)} | ${loadShell(server, target)}`;
      sample = await ctx.timed(
        ["bash", "-o", "pipefail", "-c", `${createShell(server, target)} && ${load}`],
        { env: clientEnv(server), serverPid: pid },
      );
    } else {
      const file = await customDump(ctx);
      const pg = server as Extract<BenchServer, { engine: "postgresql" }>;
      // -j 1 is pg_restore's plain serial restore; --exit-on-error like psql's ON_ERROR_STOP.
      const argv = [
        `${pg.bin}/pg_restore`,
        "--exit-on-error",
        "-j",
        String(c.jobs),
        `--dbname=${pgConninfo(pg.params, target)}`,
        file,
      ];
      sample = await ctx.timed(
        ["bash", "-c", `${createShell(server, target)} && ${argv.map(q).join(" ")}`],
        { env: clientEnv(server), serverPid: pid },
      );
    }
    if (ctx.checkData) await ctx.check();
    const name = label(c, engine);
    ctx.record({ kind: "restore", engine, codec: ctx.codec, contender: name }, sample);
    ctx.log(
      `    restore ${name}: ${(ctx.dumpBytes / 1e6 / sample.wall).toFixed(1)} MB/s, ` +
        `cpu ${(sample.user + sample.sys).toFixed(1)} s, server cpu ${
          sample.serverCpu.toFixed(1)
        } s, rss ${sample.rssMiB.toFixed(0)} MiB`,
    );
  }
  await dropDatabase(server, target);
}
