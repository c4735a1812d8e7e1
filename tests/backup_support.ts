/**
 * Shared helpers of the backup tests: a CLI run in the background (so a test can look at its
 * children, signal it or kill it mid-dump), the process tree of a run, the files of a storage
 * folder, table locks that hold a dump still at a known point, and the system tools a user
 * checks a backup with (gzip, zstd, sha256sum).
 *
 * @module
 */
import { join } from "node:path";
import { cliArgs, REPO_ROOT, type TestEnv } from "./helpers/cli.ts";
import type { CliResult } from "./helpers/cli.ts";
import type { MyServer, PgServer } from "./harness/servers.ts";
import type { BackupMetadata } from "../lib/storage/metadata.ts";

const decoder = new TextDecoder();

/** Host name the CLI puts in paths. */
export const HOST: string = Deno.hostname();

/** A CLI run in the background. */
export interface BackgroundRun {
  /** PID of the CLI process. */
  pid: number;
  /** Resolves when the CLI exits. */
  done: Promise<CliResult>;
  /** Sends a signal to the CLI process itself. */
  kill(signal: Deno.Signal): void;
  /** The result once the CLI has exited. */
  result?: CliResult;
}

/** Starts `vya-backupdb --config <env> ARGS…` like `env.run`, without waiting for it. */
export function startCli(
  env: TestEnv,
  args: string[],
  extraEnv: Record<string, string> = {},
): BackgroundRun {
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgs(env.configPath, args),
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...extraEnv },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const clean = (b: Uint8Array) =>
    decoder.decode(b).replace(/^.*Permissions in the config file is an experimental.*\n/gm, "");
  const done = child.output().then((out) => ({
    code: out.code,
    stdout: clean(out.stdout),
    stderr: clean(out.stderr),
  }));
  const run: BackgroundRun = { pid: child.pid, done, kill: (s) => child.kill(s) };
  done.then((r) => run.result = r);
  return run;
}

/** Parent PID and command name of a process, or undefined when it is gone. */
function statOf(pid: number): { ppid: number; comm: string; state: string } | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const close = stat.lastIndexOf(")");
    const rest = stat.slice(close + 2).split(" ");
    return {
      ppid: Number(rest[1]),
      comm: stat.slice(stat.indexOf("(") + 1, close),
      state: rest[0],
    };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid` (children, their children…), with its argv. */
export function descendants(pid: number): { pid: number; comm: string; argv: string[] }[] {
  const parents = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const s = statOf(Number(entry.name));
    if (!s || s.state === "Z") continue;
    const list = parents.get(s.ppid) ?? [];
    list.push(Number(entry.name));
    parents.set(s.ppid, list);
  }
  const out: { pid: number; comm: string; argv: string[] }[] = [];
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      let argv: string[] = [];
      try {
        argv = decoder.decode(Deno.readFileSync(`/proc/${c}/cmdline`)).split("\0");
      } catch { /* exited meanwhile */ }
      out.push({ pid: c, comm: statOf(c)?.comm ?? "?", argv });
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Whether a process is alive (zombies count as dead). */
export function alive(pid: number): boolean {
  const s = statOf(pid);
  return s !== undefined && s.state !== "Z";
}

/** Polls `check` every 20 ms until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 20_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every file below `root` (recursively), as absolute paths; [] when `root` does not exist. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

/** Every folder below `root`, `root` included. */
export function listDirs(root: string): string[] {
  const out = [root];
  for (const e of Deno.readDirSync(root)) {
    if (e.isDirectory) out.push(...listDirs(join(root, e.name)));
  }
  return out;
}

/** The folder of one instance's backups. */
export function instanceRoot(env: TestEnv, instance: string): string {
  return join(env.storage, HOST, instance);
}

/** Dump files (any compression) below `root`. */
export function dumpFiles(root: string): string[] {
  return listFiles(root).filter((f) => /\.sql(\.gz|\.zst)?$/.test(f));
}

/** Reads a metadata file. */
export async function readMeta(path: string): Promise<BackupMetadata> {
  return JSON.parse(await Deno.readTextFile(path)) as BackupMetadata;
}

/** The metadata files of one database's folder below an instance folder. */
export function metadataOf(env: TestEnv, instance: string, dbFolder: string): string[] {
  return listFiles(join(instanceRoot(env, instance), dbFolder))
    .filter((f) => f.endsWith(".metadata.json"));
}

/** Runs a system tool and returns its output as bytes (stderr as text). */
export async function tool(
  cmd: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: out.stdout, stderr: decoder.decode(out.stderr) };
}

/** Decompresses a dump with the system's own tool, by its extension, as a user would. */
export async function decompress(path: string): Promise<string> {
  const [cmd, args] = path.endsWith(".gz")
    ? ["gzip", ["-d", "-c", path]]
    : path.endsWith(".zst")
    ? ["zstd", ["-d", "-c", "-q", path]]
    : ["cat", [path]];
  const out = await tool(cmd as string, args as string[]);
  if (out.code !== 0) throw new Error(`${cmd} failed on ${path}: ${out.stderr}`);
  return decoder.decode(out.stdout);
}

/** Runs `sha256sum -c <stem>.sha256` in the file's folder; returns its exit code and output. */
export async function sha256sumCheck(sha256File: string): Promise<{ code: number; text: string }> {
  const dir = sha256File.slice(0, sha256File.lastIndexOf("/"));
  const name = sha256File.slice(dir.length + 1);
  // No "--": file names never start with "-" (the layout encodes a leading dash).
  const out = await tool("sha256sum", ["-c", name], { cwd: dir });
  return { code: out.code, text: decoder.decode(out.stdout) + out.stderr };
}

/** A held table lock: the dump of that table waits until `release()`. */
export interface HeldLock {
  /** Ends the holding session. */
  release(): Promise<void>;
}

/**
 * Holds a lock on a table from another session, so a dump reaching it waits there: a dump that
 * stays "running" for as long as a test needs, without timing guesses.
 */
export async function holdLock(
  server: PgServer | MyServer,
  database: string,
  table: string,
): Promise<HeldLock> {
  const pg = server.engine === "postgresql";
  const args = pg
    ? ["-X", "-q", "-h", "127.0.0.1", "-p", String(server.port), "-U", server.user, "-d", database]
    : [
      "--no-defaults",
      "--protocol=TCP",
      "-h",
      "127.0.0.1",
      "-P",
      String(server.port),
      "-u",
      server.user,
      "--batch",
      database,
    ];
  const child = new Deno.Command(`${server.bin}/${pg ? "psql" : "mariadb"}`, {
    args,
    env: server.clientEnv,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const statement = pg
    ? `BEGIN; LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE;\n`
    : `LOCK TABLES \`${table}\` WRITE;\n`;
  await writer.write(new TextEncoder().encode(statement));
  // The lock is held once another session cannot read the table without waiting.
  await waitFor(`the lock on ${table}`, async () => {
    try {
      await server.sql(
        pg
          ? `SET lock_timeout = '50ms'; SELECT count(*) FROM "${table}";`
          : `SET SESSION lock_wait_timeout = 1; SELECT COUNT(*) FROM \`${table}\`;`,
        { database },
      );
      return false;
    } catch {
      return true;
    }
  });
  return {
    release: async () => {
      await writer.close().catch(() => {});
      await child.status;
    },
  };
}

/**
 * Waits until a dump by the backup login is blocked on a table lock; fails at once, with the
 * run's output, when the run ends first.
 */
export function waitDumpBlocked(
  server: PgServer | MyServer,
  user: string,
  run?: BackgroundRun,
): Promise<unknown> {
  const query = server.engine === "postgresql"
    ? `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vya-backupdb'
         AND usename = '${user}' AND wait_event_type = 'Lock'`
    : `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '${user}'
         AND STATE LIKE '%metadata lock%'`;
  return waitFor("the dump to block on the lock", async () => {
    if (run?.result) {
      throw new Error(
        `the run ended first (exit ${run.result.code}):\n${run.result.stdout}${run.result.stderr}`,
      );
    }
    return (await server.sql(query)) !== "0";
  });
}

/** Runs the CLI like `env.run`, killing it after `timeoutMs` so a hang fails instead of stalling. */
export async function runWithin(
  env: TestEnv,
  args: string[],
  timeoutMs = 30_000,
  extraEnv: Record<string, string> = {},
): Promise<CliResult> {
  const run = startCli(env, args, extraEnv);
  const timer = setTimeout(() => {
    try {
      run.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    return await run.done;
  } finally {
    clearTimeout(timer);
  }
}
