/**
 * Process and folder helpers shared by the throwaway servers of tests/harness/servers.ts and
 * tests/harness/matrix.ts: running client tools, the `/tmp/vyat-XXXXXX` server folders, and
 * their cleanup.
 *
 * Every server lives in its own short folder (unix socket paths are limited to 107 bytes)
 * holding an `owner` file. Cleanup, in order of preference: `stopDir()`; the module's `unload`
 * event; SIGINT/SIGTERM listeners (under `deno run`); a detached watcher shell that removes the
 * server once the test process is gone (covers Ctrl-C under `deno test` and SIGKILL); and a
 * sweep of folders whose owner died, run before the first start of a process. One module holds
 * all of it so a process has one set of hooks and one list of live folders, whichever kinds of
 * server it started.
 *
 * @module
 */

/** Prefix of every server folder under /tmp; the sweep relies on it. */
const DIR_PREFIX = "vyat-";
const TMP = "/tmp";

/** Whether the tests run as root: servers then run as their system account. */
export const isRoot: boolean = Deno.uid() === 0;

/** Exit code and decoded output of a finished child process. */
export interface RunResult {
  /** Exit code (127 when the program could not be started by {@linkcode runSync}). */
  code: number;
  /** Standard output, decoded as UTF-8. */
  stdout: string;
  /** Standard error, decoded as UTF-8. */
  stderr: string;
}

const decoder = new TextDecoder();

/** Prefixes a command with `runuser -u <user> --` when root, since postgres refuses root. */
export function asUser(user: string, cmd: string[]): string[] {
  return isRoot ? ["runuser", "-u", user, "--", ...cmd] : cmd;
}

/** Runs a command to its end, optionally feeding `stdin`, and returns its output. */
export async function run(
  cmd: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * Runs a command synchronously (for `unload` handlers); a program that cannot start gives code
 * 127 instead of throwing, since cleanup must go on.
 */
export function runSync(cmd: string[]): RunResult {
  try {
    const out = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } catch (error) {
    return { code: 127, stdout: "", stderr: String(error) };
  }
}

/**
 * Runs a command and throws when it fails, with its output and the tail of the server's log
 * file, which usually holds the real reason.
 */
export async function must(cmd: string[], what: string, logFile?: string): Promise<RunResult> {
  const result = await run(cmd);
  if (result.code !== 0) {
    const log = logFile ? readText(logFile) ?? "" : "";
    throw new Error(
      `${what} failed (exit ${result.code}):\n${result.stderr}${result.stdout}${log}`,
    );
  }
  return result;
}

/** A file's text, or undefined when it cannot be read. */
export function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Whether a path exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** uid/gid of a system account, for chown when running as root. */
export function account(name: string): { uid: number; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const f = line.split(":");
    if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(
    `system account ${name} does not exist ` +
      `(is the server package installed? for the matrix: run scripts/setup-matrix.sh)`,
  );
}

/** Gives a folder tree to a system account when root, so the server can write its data. */
export function chownTree(path: string, user: string): void {
  if (!isRoot) return;
  const { uid, gid } = account(user);
  Deno.chownSync(path, uid, gid);
  for (const entry of Deno.readDirSync(path)) {
    const p = `${path}/${entry.name}`;
    if (entry.isDirectory) chownTree(p, user);
    else Deno.chownSync(p, uid, gid);
  }
}

/** Process start time (clock ticks since boot), so a reused pid is not mistaken for its owner. */
export function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return rest[19];
}

/** Whether a process is alive; zombies count as dead (they are reaped late here). */
export function alive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return false;
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random superuser password (hex, so it needs no quoting anywhere). */
export function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "pw" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A MySQL/MariaDB string literal. */
export function sqlString(value: string): string {
  return "'" + value.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
}

/**
 * A MySQL-family server's `sql()`: runs statements through its command-line client over TCP as
 * root (password from `env`, never argv) and returns rows a line, tab-separated, no header.
 */
export function mysqlSql(
  client: string,
  port: number,
  env: Record<string, string>,
): (query: string, opts?: { database?: string }) => Promise<string> {
  const name = client.slice(client.lastIndexOf("/") + 1);
  return async (query, opts = {}) => {
    const result = await run([
      client,
      "--no-defaults",
      "--default-character-set=utf8mb4",
      "--protocol=TCP",
      "-h",
      "127.0.0.1",
      "-P",
      String(port),
      "-u",
      "root",
      "--batch",
      "--skip-column-names",
      ...(opts.database ? [opts.database] : []),
    ], { env, stdin: query });
    if (result.code !== 0) throw new Error(`${name} failed: ${result.stderr.trim()}`);
    return result.stdout.replace(/\n$/, "");
  };
}

/**
 * Starts a process detached with `setsid -f`: the test process owns no child (no resource leak
 * reports), and Ctrl-C on the terminal does not reach it. stdio must be null: a detached child
 * holding our pipes would keep `output()` waiting for it to exit.
 */
export async function detach(cmd: string[], what: string): Promise<void> {
  const status = await new Deno.Command("setsid", {
    args: ["-f", ...cmd],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) throw new Error(`${what} failed (exit ${status.code})`);
}

/**
 * Waits until a MySQL-family server accepts TCP connections: it opens its listener only after
 * recovery and grant loading, so a successful connect means ready. Fails early when the server
 * died (its pid file names a dead process, or its error log says it aborts).
 */
export async function waitTcpReady(
  dir: string,
  port: number,
  opts: { name: string; seconds: number; aborted: RegExp },
): Promise<void> {
  const end = Date.now() + opts.seconds * 1000;
  while (Date.now() < end) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      // not listening yet
    }
    const pid = readText(`${dir}/mysqld.pid`);
    const log = readText(`${dir}/error.log`) ?? "";
    if ((pid && !alive(Number(pid.trim()))) || opts.aborted.test(log)) {
      throw new Error(`${opts.name} exited:\n${log}`);
    }
    await sleep(20);
  }
  throw new Error(
    `${opts.name} not ready after ${opts.seconds} s:\n${readText(`${dir}/error.log`) ?? ""}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Server folders, ownership and cleanup

/** Folders started by this process, stopped at unload. */
const live = new Set<string>();
let hooksInstalled = false;

/**
 * Creates a `/tmp/vyat-XXXXXX` server folder owned by this process, with its cleanup watcher,
 * and registers it for cleanup at unload and on SIGINT/SIGTERM. Sweeps dead owners' folders
 * first (once a process).
 */
export async function makeServerDir(): Promise<string> {
  installHooks();
  sweepOnce();
  const dir = await Deno.makeTempDir({ dir: TMP, prefix: DIR_PREFIX });
  live.add(dir);
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/owner`, `${Deno.pid} ${startTime(Deno.pid) ?? ""}\n`);
  await startWatcher(dir);
  return dir;
}

/**
 * A detached shell that stops the server and deletes its folder once the test process is gone.
 * Needed because `deno test` exits on Ctrl-C without running `unload` or our signal listeners,
 * and nothing runs at all after SIGKILL. It also ends by itself when the folder is deleted.
 * mysqld gets 30 s to exit: MySQL 9 takes longer than MariaDB.
 */
const WATCHER = `
pid=$1 dir=$2
while kill -0 "$pid" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] || exit 0
if [ -f "$dir/data/postmaster.pid" ] && [ -f "$dir/pgbin" ]; then
  bin=$(cat "$dir/pgbin")
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 -s stop
  else
    "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 -s stop
  fi
fi
if [ -f "$dir/mysqld.pid" ]; then
  kill -TERM "$(cat "$dir/mysqld.pid")" 2>/dev/null
  i=0
  while [ -f "$dir/mysqld.pid" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
  [ -f "$dir/mysqld.pid" ] && kill -KILL "$(cat "$dir/mysqld.pid")" 2>/dev/null
fi
rm -rf "$dir"
`;

async function startWatcher(dir: string): Promise<void> {
  await detach(
    ["sh", "-c", WATCHER, "vya-test-watcher", String(Deno.pid), dir],
    "starting the cleanup watcher",
  );
}

/** Waits until a file is gone: the pid file disappears when the server has really exited. */
function waitGoneSync(path: string, ms: number): boolean {
  const end = Date.now() + ms;
  const buf = new Int32Array(new SharedArrayBuffer(4));
  while (exists(path)) {
    if (Date.now() > end) return false;
    Atomics.wait(buf, 0, 0, 20);
  }
  return true;
}

/**
 * Stops whatever server runs in a folder and deletes it. Synchronous so it can run in an
 * `unload` handler; works from the folder alone, so it also cleans up after dead processes.
 */
function destroyDirSync(dir: string): void {
  const pgPid = readText(`${dir}/data/postmaster.pid`);
  if (pgPid) {
    const pid = Number(pgPid.split("\n")[0]);
    const bin = readText(`${dir}/pgbin`)?.trim();
    const stopped = bin &&
      runSync(
          asUser("postgres", [
            `${bin}/pg_ctl`,
            "-D",
            `${dir}/data`,
            "-m",
            "immediate",
            "-w",
            "-t",
            "10",
            "-s",
            "stop",
          ]),
        )
          .code === 0;
    if (!stopped && alive(pid)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  const myPid = readText(`${dir}/mysqld.pid`);
  if (myPid) {
    const pid = Number(myPid.trim());
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
    // 20 s, as MySQL 9 needs more than MariaDB's usual few.
    if (!waitGoneSync(`${dir}/mysqld.pid`, 20000) && alive(pid)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
}

/** Folders of this process (any test module in it), with whether their owner is still alive. */
function serverDirs(): { dir: string; mine: boolean; dead: boolean }[] {
  const me = `${Deno.pid} ${startTime(Deno.pid) ?? ""}`;
  const found = [];
  for (const entry of Deno.readDirSync(TMP)) {
    if (!entry.isDirectory || !entry.name.startsWith(DIR_PREFIX)) continue;
    const dir = `${TMP}/${entry.name}`;
    const owner = readText(`${dir}/owner`)?.trim();
    if (owner === undefined) continue; // being created right now, or not ours
    const [pid, start] = owner.split(" ");
    const dead = !alive(Number(pid)) || (!!start && startTime(Number(pid)) !== start);
    found.push({ dir, mine: owner === me, dead });
  }
  return found;
}

let swept = false;

function sweepOnce(): void {
  if (swept) return;
  swept = true;
  sweepLeftovers();
}

/**
 * Stops and deletes the servers of earlier processes that were killed before they could clean
 * up (runs once automatically before the first start). Returns the folders removed.
 */
export function sweepLeftovers(): string[] {
  const removed = [];
  for (const { dir, dead } of serverDirs()) {
    if (!dead) continue;
    destroyDirSync(dir);
    removed.push(dir);
  }
  return removed;
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  globalThis.addEventListener("unload", () => {
    for (const dir of live) destroyDirSync(dir);
    live.clear();
  });
  // Ctrl-C during a run: another test module of this process may exit first, so each handler
  // cleans every folder this process owns, not only its own.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      for (const { dir, mine } of serverDirs()) if (mine) destroyDirSync(dir);
      live.clear();
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

/** Stops the server of a folder made by {@linkcode makeServerDir} and deletes it; idempotent. */
export async function stopDir(dir: string): Promise<void> {
  if (!live.has(dir)) return;
  live.delete(dir);
  // Async wrapper over the sync path: one code path for tests, unload and signals.
  await Promise.resolve();
  destroyDirSync(dir);
}
