/**
 * The fixed cost per run and per database (issue 15, item 4): many small PostgreSQL databases in
 * one `backup --all` against the shell loop a sysadmin would write, and one one-row database
 * against one `pg_dump | gzip -6`. Both pairs run in the same bench run, alternating which goes
 * first each repetition, so the ratios survive a shared machine.
 *
 * @module
 */
import { join } from "node:path";
import type { PgServer } from "../../tests/harness/servers.ts";
import { makeTestEnv, REPO_ROOT } from "../../tests/helpers/cli.ts";
import { clientEnv, dumpShell, q, serverPid } from "./commands.ts";
import { median, type Sample } from "./measure.ts";
import type { Target } from "./report.ts";

/** One contender of the fixed-cost rows, over the repetitions. */
export interface FixedCostRow {
  /** `many` (N small databases in one run) or `one` (a single one-row database). */
  case: "many" | "one";
  /** Databases backed up. */
  databases: number;
  /** vya-backupdb, or the shell command. */
  contender: string;
  /** Wall seconds of each repetition. */
  walls: number[];
  /** Client CPU seconds (user+sys) of each repetition. */
  cpus: number[];
  /** Machine CPU seconds used by other work meanwhile, per repetition. */
  others: number[];
}

/** How to run a measured command (the bench's `timed`, bound to its time file). */
export type Timer = (
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string; serverPid: number },
) => Promise<Sample>;

/** The required ratios of vya to the shell (wall time). */
export const FIXED_COST_LIMITS = { many: 1.1, one: 2.5 } as const;

const PREFIX = "fc_";

function names(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${PREFIX}${String(i).padStart(3, "0")}`);
}

/** Creates `count` databases holding one one-row table each (copies of the first). */
async function createSmallDatabases(server: PgServer, count: number): Promise<void> {
  const [first, ...rest] = names(count);
  await server.sql(`DROP DATABASE IF EXISTS ${first}; CREATE DATABASE ${first}`);
  await server.sql(
    "CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'one row');",
    { database: first },
  );
  // One client for all: a psql per database costs minutes on a busy machine.
  await server.sql(
    rest.map((n) => `DROP DATABASE IF EXISTS ${n}; CREATE DATABASE ${n} TEMPLATE ${first};`)
      .join("\n"),
  );
}

/**
 * Measures both pairs `reps` times on `server` (PostgreSQL), `count` databases for the many
 * case, and returns the rows. The databases are dropped afterwards.
 */
export async function fixedCostBench(
  server: PgServer,
  options: {
    count: number;
    reps: number;
    work: string;
    timed: Timer;
    vyaArgv: (configPath: string, rest: string[]) => string[];
    log: (line: string) => void;
  },
): Promise<FixedCostRow[]> {
  const { count, reps, work, timed, log } = options;
  log(`  fixed cost: ${count} one-row PostgreSQL databases`);
  await createSmallDatabases(server, count);
  const storage = join(work, "fixed-cost-vya");
  const shellDir = join(work, "fixed-cost-shell");
  const env = await makeTestEnv([{
    id: "pg",
    server,
    extra: { databases: { include: [`${PREFIX}*`] }, users: { backup: false } },
  }]);
  await env.writeConfig({
    storage: { path: storage, compression: { format: "gzip", level: 6, threads: 0 } },
  });
  const rows = new Map<string, FixedCostRow>();
  const add = (key: Omit<FixedCostRow, "walls" | "cpus" | "others">, s: Sample) => {
    const id = `${key.case}|${key.contender}`;
    let row = rows.get(id);
    if (!row) rows.set(id, row = { ...key, walls: [], cpus: [], others: [] });
    row.walls.push(s.wall);
    row.cpus.push(s.user + s.sys);
    row.others.push(s.otherCpu);
    log(
      `    ${key.case} ${key.contender}: ${s.wall.toFixed(2)} s, cpu ${
        (s.user + s.sys).toFixed(1)
      } s`,
    );
  };
  const pid = serverPid(server);
  const reset = async () => {
    await Deno.remove(storage, { recursive: true }).catch(() => {});
    await Deno.remove(shellDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(shellDir, { recursive: true });
  };
  const all = names(count);
  // The loop of the issue, `for db in …; do pg_dump "$db" | gzip -6 > "$db.sql.gz"; done`, with
  // the options vya passes to pg_dump; unrolled into a script file (the same processes, no
  // command-line length limit).
  const loopFile = join(work, "fixed-cost-loop.sh");
  await Deno.writeTextFile(
    loopFile,
    `set -o pipefail\ncd ${q(shellDir)}\n` +
      all.map((db) => `${dumpShell(server, db)} | gzip -6 > ${q(`${db}.sql.gz`)} || exit 1\n`)
        .join(""),
  );
  const one = `set -o pipefail; ${dumpShell(server, all[0])} | gzip -6 > ${
    q(join(shellDir, "one.sql.gz"))
  }`;
  try {
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 ? ["shell", "vya"] : ["vya", "shell"];
      for (const who of order) {
        await reset();
        if (who === "vya") {
          const s = await timed(options.vyaArgv(env.configPath, ["backup", "--all"]), {
            env: { NO_COLOR: "1" },
            cwd: REPO_ROOT,
            serverPid: pid,
          });
          add({ case: "many", databases: count, contender: "vya-backupdb backup --all" }, s);
        } else {
          const s = await timed(["bash", loopFile], { env: clientEnv(server), serverPid: pid });
          add({
            case: "many",
            databases: count,
            contender: "for db; do pg_dump | gzip -6 > f; done",
          }, s);
        }
      }
      for (const who of order) {
        await reset();
        if (who === "vya") {
          const s = await timed(
            options.vyaArgv(env.configPath, ["backup", "--instance", "pg", "--database", all[0]]),
            { env: { NO_COLOR: "1" }, cwd: REPO_ROOT, serverPid: pid },
          );
          add({ case: "one", databases: 1, contender: "vya-backupdb backup --database" }, s);
        } else {
          const s = await timed(["bash", "-c", one], { env: clientEnv(server), serverPid: pid });
          add({ case: "one", databases: 1, contender: "pg_dump | gzip -6 > f" }, s);
        }
      }
    }
  } finally {
    await reset();
    await env.cleanup();
    await server.sql(all.map((n) => `DROP DATABASE IF EXISTS ${n};`).join("\n")).catch(() => {});
  }
  return [...rows.values()];
}

/** vya's median wall time over the shell's, per case. */
export function fixedCostTargets(rows: FixedCostRow[]): Target[] {
  const out: Target[] = [];
  for (const c of ["many", "one"] as const) {
    const vya = rows.find((r) => r.case === c && r.contender.startsWith("vya"));
    const shell = rows.find((r) => r.case === c && !r.contender.startsWith("vya"));
    if (!vya || !shell) continue;
    const value = median(vya.walls) / median(shell.walls);
    const required = FIXED_COST_LIMITS[c];
    out.push({
      name: c === "many"
        ? `${vya.databases} small databases: vya wall / shell loop wall`
        : "one one-row database: vya wall / `pg_dump | gzip -6` wall",
      engine: "postgresql",
      value,
      required,
      op: "<=",
      pass: value <= required,
    });
  }
  return out;
}

/** The markdown table of the rows. */
export function renderFixedCost(rows: FixedCostRow[]): string[] {
  if (!rows.length) return [];
  const lines = [
    "",
    "| fixed cost (PostgreSQL, gzip -6) | databases | contender | wall s | client CPU s | other CPU s |",
    "|---|---:|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.case === "many" ? "many small databases" : "one one-row database"} | ` +
        `${r.databases} | ${r.contender.replaceAll("|", "\\|")} | ${
          median(r.walls).toFixed(2)
        } | ` +
        `${median(r.cpus).toFixed(2)} | ${median(r.others).toFixed(1)} |`,
    );
  }
  return lines;
}
