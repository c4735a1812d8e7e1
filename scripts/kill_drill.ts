/**
 * Kill drill: `kill -9` of `restore` at random points of a large load never leaves a target that
 * looks complete, and a re-run always ends with a complete database or a clear refusal.
 *
 *   deno task kill-drill [--size 1GB] [--points 5] [--engines pg,my] [--seed N]
 *
 * Per engine it starts a throwaway server, generates a source database whose dump is about
 * `--size` (the benchmark's realistic rows: two tables, primary keys and an index), backs it up
 * through the CLI and times one complete restore (D). Then it kills `restore --latest --target T`
 * (the deno process, with SIGKILL) the instant T appears and at `--points` instants drawn in
 * [0.05 D, 0.98 D], waits for the client's children and the server's session to be gone, and
 * classifies T from the server itself: absent, marked (PostgreSQL: and no table), unmarked and
 * empty (killed between CREATE DATABASE and the mark), complete (killed after the mark was
 * removed; it must compare equal to the source), or UNMARKED with data — a failure. It also asks
 * `restore --dry-run` what it would do with T. After each kill a coin decides whether the
 * restore is re-run at once (it must exit 0, say it replaced the incomplete copy, and compare
 * equal) or whether the next kill point restores over what this one left.
 *
 * Prints a table and PASS/FAIL, writes the records to `.bench/kill-drill-<stamp>.json`, exits 1
 * on any failure. Servers and temporary folders are removed however it ends.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  type MyServer,
  type PgServer,
  startMariadb,
  startPostgres,
} from "../tests/harness/servers.ts";
import { makeTestEnv, REPO_ROOT, type TestEnv } from "../tests/helpers/cli.ts";
import { backupNow } from "../tests/helpers/restore_support.ts";
import {
  alive,
  type BackgroundRun,
  descendants,
  startCli,
  waitFor,
} from "../tests/backup_support.ts";
import { generateDataset, parseSize } from "./bench/data.ts";
import { dumpSize } from "./bench/commands.ts";
import { type DrillEngine, logTail, myDrill, pgDrill } from "./drill/targets.ts";
import { drawPoints, type KillPoint, seededRandom } from "./drill/plan.ts";
import { type KillRecord, renderTable } from "./drill/report.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1GB" },
    points: { type: "string", default: "5" },
    engines: { type: "string", default: "pg,my" },
    seed: { type: "string" },
  },
});

const sizeBytes = parseSize(args.values.size);
const pointCount = Number(args.values.points);
if (!Number.isInteger(pointCount) || pointCount < 1) {
  throw new Error("--points must be a positive integer");
}
const seed = args.values.seed === undefined
  ? Math.floor(Math.random() * 2 ** 31)
  : Number(args.values.seed);
if (!Number.isInteger(seed)) throw new Error("--seed must be an integer");
const engines = args.values.engines.split(",").map((e) => {
  if (/^(pg|postgres|postgresql)$/.test(e)) return "pg" as const;
  if (/^(my|maria|mariadb|mysql)$/.test(e)) return "my" as const;
  throw new Error(`unknown engine "${e}" (pg, my)`);
});

const SOURCE = "drill_src";
const SCRATCH = "drill_scratch";
const TARGET = "drill_target";
const REPLACED = /left incomplete by an interrupted restore/;
const started = performance.now();
/** Per engine: dump size and the duration of one complete restore. */
const facts: Record<string, { dumpMB: number; wholeSeconds: number; engineSeconds?: number }> = {};

function log(line: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(0).padStart(5);
  console.error(`[${s} s] ${line}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const sameRows = (a: Record<string, string>, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

// ---------------------------------------------------------------------------------------------
// Clean-up however the drill ends: restores still running, temp folders, servers.

const running = new Set<BackgroundRun>();
const cleanups: (() => Promise<void>)[] = [];
let cleaned: Promise<void> | undefined;

function cleanupAll(): Promise<void> {
  cleaned ??= (async () => {
    for (const run of running) {
      for (const c of descendants(run.pid)) {
        try {
          Deno.kill(c.pid, "SIGKILL");
        } catch { /* gone */ }
      }
      try {
        run.kill("SIGKILL");
      } catch { /* gone */ }
    }
    for (const f of cleanups.reverse()) await f().catch((e) => log(`clean-up: ${e}`));
  })();
  return cleaned;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(signal, () => {
    log(`${signal}: cleaning up`);
    cleanupAll().finally(() => Deno.exit(130));
  });
}

/** Starts the CLI in the background, tracked for clean-up. */
function spawnCli(env: TestEnv, cli: string[]): BackgroundRun {
  const run = startCli(env, cli);
  running.add(run);
  run.done.finally(() => running.delete(run));
  return run;
}

/** Runs the CLI to its end, killed (code -1) after `timeoutMs`. */
async function runCli(
  env: TestEnv,
  cli: string[],
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
  const t0 = performance.now();
  const run = spawnCli(env, cli);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), timeoutMs));
  const out = await Promise.race([run.done, timeout]);
  clearTimeout(timer);
  if (!out) {
    for (const c of descendants(run.pid)) Deno.kill(c.pid, "SIGKILL");
    run.kill("SIGKILL");
    const r = await run.done;
    return { ...r, code: -1, seconds: timeoutMs / 1000 };
  }
  return { ...out, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------------

/** What the drill knows of one engine's source. */
interface Source {
  env: TestEnv;
  engine: DrillEngine;
  rows: Record<string, string>;
  /** Seconds of one complete restore. */
  whole: number;
}

const restoreArgs = (e: DrillEngine, target: string, ...more: string[]) => [
  "restore",
  "--instance",
  e.id,
  "--database",
  SOURCE,
  "--latest",
  "--target",
  target,
  ...more,
];

async function prepare(id: "pg" | "my"): Promise<Source> {
  log(`${id}: starting a throwaway server`);
  const server: PgServer | MyServer = id === "pg" ? await startPostgres() : await startMariadb();
  cleanups.push(() => server.stop());
  if (server.engine === "mariadb") {
    // The harness's 64 MB buffer pool makes a 1 GB load crawl; a real server has more.
    await server.sql("SET GLOBAL innodb_buffer_pool_size = 1073741824");
  }
  const engine = id === "pg" ? pgDrill(server as PgServer) : myDrill(server as MyServer);
  log(`${id}: generating ${args.values.size} of dump in ${SOURCE}`);
  const data = await generateDataset(server, SOURCE, sizeBytes, (d) => dumpSize(server, d), log);
  log(`${id}: ${(data.dumpBytes / 1e6).toFixed(0)} MB dump, ${data.rowsPerTable} rows per table`);
  const env = await makeTestEnv([{ id, server, extra: { users: { backup: false } } }]);
  cleanups.push(() => env.cleanup());
  const backup = await backupNow(env, id, SOURCE);
  log(`${id}: backed up to ${backup.dump} (${(await Deno.stat(backup.dump)).size} bytes)`);
  const rows = await engine.rows(SOURCE);
  const r = await runCli(env, restoreArgs(engine, SCRATCH), 3_600_000);
  if (r.code !== 0) throw new Error(`${id}: the complete restore failed (${r.code}): ${r.stderr}`);
  if (!sameRows(await engine.rows(SCRATCH), rows)) {
    throw new Error(`${id}: a complete restore does not compare equal to the source`);
  }
  await engine.drop(SCRATCH);
  log(`${id}: one complete restore takes D = ${r.seconds.toFixed(1)} s`);
  facts[id] = { dumpMB: Math.round(data.dumpBytes / 1e6), wholeSeconds: r.seconds };
  return { env, engine, rows, whole: r.seconds };
}

/** Kills one restore at `point` and records what it left (and the re-run, if any). */
async function killOnce(
  src: Source,
  n: number,
  point: KillPoint,
  before: string,
): Promise<KillRecord> {
  const { env, engine: e, whole } = src;
  const limit = whole * 5000 + 300_000;
  const run = spawnCli(env, restoreArgs(e, TARGET));
  const t0 = performance.now();
  if (point.kind === "appear") {
    await waitFor("the target to appear", async () => run.result || await e.exists(TARGET), limit);
  } else {
    await sleep(whole * 1000 * point.fraction - (performance.now() - t0));
  }
  const children = descendants(run.pid).map((c) => c.pid);
  const finishedFirst = run.result?.code;
  if (!run.result) run.kill("SIGKILL");
  const killedAt = (performance.now() - t0) / 1000;
  const out = await run.done;
  const failures: string[] = [];
  if (finishedFirst !== undefined && finishedFirst !== 0) {
    failures.push(`restore ended by itself with ${finishedFirst}: ${out.stderr.trim()}`);
  }
  // psql and mariadb get PDEATHSIG: they must not go on loading what they had read.
  try {
    await waitFor("the children to die", () => children.every((pid) => !alive(pid)), 10_000);
  } catch {
    failures.push(`client tools outlived the run: ${children.filter(alive).join(",")}`);
    for (const pid of children.filter(alive)) Deno.kill(pid, "SIGKILL");
  }
  await waitFor("the session on the target to end", async () => !await e.sessions(TARGET), limit);

  const marked = await e.state(TARGET);
  const tables = marked === "absent" ? 0 : await e.tables(TARGET);
  const equal = marked !== "absent" && sameRows(await e.rows(TARGET), src.rows);
  let state: string = marked;
  if (marked === "unmarked") {
    state = tables === 0 ? "unmarked-empty" : equal ? "complete" : "UNMARKED";
  }
  if (state === "UNMARKED") {
    failures.push(`unmarked target with ${tables} table(s) of partial data`);
  }
  if (marked === "marked" && e.id === "pg" && tables > 0) {
    failures.push(`marked, but ${tables} table(s) committed outside the load's transaction`);
  }
  if (equal && state !== "complete") {
    failures.push("the comparison takes an incomplete copy for whole");
  }
  if (finishedFirst === 0 && state !== "complete") failures.push(`exit 0 left ${state}`);

  // What restore itself would make of T.
  const dry = await runCli(env, restoreArgs(e, TARGET, "--dry-run"), limit);
  const said = dry.stdout + dry.stderr;
  const restoreView = dry.code === 0
    ? REPLACED.test(said)
      ? "replaces incomplete"
      : marked === "absent"
      ? "creates"
      : "loads into empty"
    : dry.code === 3 && /already exists/.test(said)
    ? "refuses: holds data"
    : `exit ${dry.code}`;
  if (marked === "marked" && restoreView !== "replaces incomplete") {
    failures.push(`dry-run does not recognise the mark: ${said.trim().split("\n").pop()}`);
  }
  if (state === "complete" && restoreView !== "refuses: holds data") {
    failures.push(`dry-run over a complete copy: ${restoreView}`);
  }

  const record: KillRecord = {
    engine: e.id,
    n,
    planned: point.kind === "appear" ? "target appears" : `${(point.fraction * 100).toFixed(0)} %`,
    before,
    killedAt,
    percent: killedAt / whole * 100,
    finishedFirst,
    state,
    tables,
    equal,
    restoreView,
    rerun: "left for the next point",
    failures,
  };
  if (failures.length) {
    log(`${e.id}: FAILURE at point ${n}; server log:\n${await logTail(e)}`);
    log(`${e.id}: the killed restore's stderr:\n${out.stderr.trim()}`);
  }
  if (point.rerun) record.rerun = await rerun(src, state, failures);
  return record;
}

/**
 * Restores into T again and checks the outcome: a marked copy is replaced (saying so) and the
 * result compares equal; a complete copy is refused without --force; then T is dropped.
 */
async function rerun(src: Source, state: string, failures: string[]): Promise<string> {
  const { env, engine: e } = src;
  const r = await runCli(env, restoreArgs(e, TARGET), src.whole * 5000 + 300_000);
  let text: string;
  if (state === "complete") {
    text = `exit ${r.code}, ${r.code === 3 ? "refused: holds data" : "NOT refused"}`;
    if (r.code !== 3) failures.push(`re-run over a complete copy exited ${r.code}`);
  } else {
    const replaced = REPLACED.test(r.stderr);
    const after = await e.state(TARGET);
    const equal = after !== "absent" && sameRows(await e.rows(TARGET), src.rows);
    text =
      `exit ${r.code} in ${r.seconds.toFixed(0)} s${replaced ? ", replaced incomplete" : ""}, ` +
      `${after}, ${equal ? "equal" : "DIFFERS"}`;
    if (r.code !== 0) failures.push(`re-run exited ${r.code}: ${r.stderr.trim()}`);
    if (state === "marked" && !replaced) failures.push("re-run did not say it replaced the copy");
    if (after !== "unmarked" || !equal) failures.push(`re-run left ${after}, rows ${equal}`);
    if (r.code !== 0) log(`${e.id}: re-run failed; server log:\n${await logTail(e)}`);
  }
  await e.drop(TARGET);
  return text;
}

async function drillEngine(id: "pg" | "my", random: () => number): Promise<KillRecord[]> {
  const src = await prepare(id);
  const points = drawPoints(random, pointCount);
  const records: KillRecord[] = [];
  let before = "absent";
  for (const [i, point] of points.entries()) {
    log(
      `${id}: point ${i + 1}/${points.length}: ` +
        `${
          point.kind === "appear"
            ? "when the target appears"
            : `${(point.fraction * 100).toFixed(0)} % of D`
        }` +
        ` over ${before}, re-run ${point.rerun ? "yes" : "no"}`,
    );
    const record = await killOnce(src, i + 1, point, before);
    log(`${id}: -> ${record.state}, ${record.restoreView}, re-run: ${record.rerun}`);
    records.push(record);
    before = point.rerun ? "absent" : record.state;
  }
  if (before !== "absent") {
    const last = records[records.length - 1];
    last.rerun = `left; final re-run: ${await rerun(src, last.state, last.failures)}`;
  }
  await src.engine.drop(SOURCE);
  return records;
}

async function main(): Promise<number> {
  const random = seededRandom(seed);
  log(`kill drill: ${args.values.size}, ${pointCount} points, engines ${engines}, seed ${seed}`);
  const all: KillRecord[] = [];
  try {
    for (const id of engines) {
      const t0 = performance.now();
      all.push(...await drillEngine(id, random));
      facts[id].engineSeconds = Math.round((performance.now() - t0) / 1000);
    }
  } finally {
    await cleanupAll();
  }
  const failed = all.filter((r) => r.failures.length);
  console.log(renderTable(all));
  for (const [id, f] of Object.entries(facts)) {
    console.log(
      `${id}: ${f.dumpMB} MB dump, D = ${f.wholeSeconds.toFixed(1)} s, ${f.engineSeconds} s in all`,
    );
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
  const file = join(REPO_ROOT, ".bench", `kill-drill-${stamp}.json`);
  await Deno.mkdir(join(REPO_ROOT, ".bench"), { recursive: true });
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      { size: args.values.size, points: pointCount, seed, facts, records: all },
      null,
      2,
    ) +
      "\n",
  );
  console.log(
    `\n${
      failed.length ? "FAIL" : "PASS"
    }: ${all.length} kills (${args.values.size}, seed ${seed}), ` +
      `${failed.length} failure(s); records in ${file}`,
  );
  return failed.length ? 1 : 0;
}

Deno.exit(await main());
