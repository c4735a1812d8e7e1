/**
 * Throwaway PostgreSQL and MariaDB servers for tests: real servers on 127.0.0.1 with real
 * password authentication, started from the Debian packages without Docker or systemd.
 *
 * Two ways to get one:
 * - {@linkcode sharedPostgres} / {@linkcode sharedMariadb}: one server per test module, started
 *   on first use and stopped when the module unloads (or on SIGINT/SIGTERM). Tests must not
 *   assume the shared server is empty: create uniquely named databases.
 * - {@linkcode startPostgres} / {@linkcode startMariadb}: a fresh, empty server the caller stops
 *   itself (`try { ... } finally { await server.stop(); }`).
 *
 * Every server lives in its own short folder `/tmp/vyat-XXXXXX` (unix socket paths are limited
 * to 107 bytes) holding an `owner` file. Cleanup, in order of preference: `stop()`; the module's
 * `unload` event; SIGINT/SIGTERM listeners (under `deno run`); a detached watcher shell that
 * removes the server once the test process is gone (covers Ctrl-C under `deno test` and
 * SIGKILL); and a sweep of folders whose owner died, run before the first start of a process.
 *
 * @module
 */
import type { ConnectionParams } from "../../lib/config/types.ts";

/** Prefix of every server folder under /tmp; the sweep relies on it. */
const DIR_PREFIX = "vyat-";
const TMP = "/tmp";

/** What both kinds of test server offer. */
export interface TestServer {
  /** Always 127.0.0.1 (`localhost` is a different permission in Deno). */
  readonly host: "127.0.0.1";
  /** TCP port. */
  readonly port: number;
  /** Superuser login: `postgres` or `root`. */
  readonly user: string;
  /** Password of {@linkcode user}; required on TCP. */
  readonly password: string;
  /** The server's private folder (data, logs, socket). */
  readonly dir: string;
  /** Folder of the server's client tools (psql, pg_dump / mariadb, mariadb-dump). */
  readonly bin: string;
  /** Parameters for lib/engines `connect()` and the dump tools. */
  readonly params: ConnectionParams;
  /** Environment carrying the password for a client child process (PGPASSWORD / MYSQL_PWD). */
  readonly clientEnv: Record<string, string>;
  /**
   * Runs SQL through the command-line client (statements read from stdin, so scripts with
   * several statements and function bodies work) and returns its output: one row a line,
   * columns separated by tabs, no header. Throws with the client's stderr on failure.
   */
  sql(query: string, options?: { database?: string }): Promise<string>;
  /** Stops the server and deletes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** A throwaway PostgreSQL server. */
export interface PgServer extends TestServer {
  /** Engine tag. */
  readonly engine: "postgresql";
  /** Folder of the unix socket (`psql -h <socketDir>` connects without password). */
  readonly socketDir: string;
}

/** A throwaway MariaDB server. */
export interface MyServer extends TestServer {
  /** Engine tag. */
  readonly engine: "mariadb";
  /** Path of the unix socket. */
  readonly socket: string;
}

/** Options for {@linkcode startPostgres} and {@linkcode startMariadb}. */
export interface StartOptions {
  /** Superuser password; default: a random one. */
  password?: string;
  /** TCP port; default: a free port below the ephemeral range. */
  port?: number;
}

// ---------------------------------------------------------------------------------------------
// Process helpers

const isRoot = Deno.uid() === 0;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Prefixes a command with `runuser -u <user> --` when root, since postgres refuses root. */
function asUser(user: string, cmd: string[]): string[] {
  return isRoot ? ["runuser", "-u", user, "--", ...cmd] : cmd;
}

async function run(
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

function runSync(cmd: string[]): RunResult {
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

async function must(cmd: string[], what: string, logFile?: string): Promise<RunResult> {
  const result = await run(cmd);
  if (result.code !== 0) {
    const log = logFile ? await Deno.readTextFile(logFile).catch(() => "") : "";
    throw new Error(
      `${what} failed (exit ${result.code}):\n${result.stderr}${result.stdout}${log}`,
    );
  }
  return result;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** uid/gid of a system account, for chown when running as root. */
function account(name: string): { uid: number; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const f = line.split(":");
    if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`system account ${name} does not exist (is the server package installed?)`);
}

function chownTree(path: string, user: string): void {
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
function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return rest[19];
}

/** Whether a process is alive; zombies count as dead (they are reaped late here). */
function alive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return false;
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "pw" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------
// Ports

const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 below the kernel's ephemeral range: a client connection's port in
 * that range lingers in TIME_WAIT after a busy test and would block the server's bind although
 * no probe sees it.
 */
export function freePort(): number {
  let hi = 32767;
  const range = readText("/proc/sys/net/ipv4/ip_local_port_range");
  const eph = range ? Number(range.trim().split(/\s+/)[0]) : NaN;
  if (eph > 21000) hi = eph - 1;
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * (hi - 20000));
    if (handedOut.has(port)) continue;
    try {
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      listener.close();
      handedOut.add(port);
      return port;
    } catch {
      // taken; try another
    }
  }
  throw new Error("no free TCP port found");
}

// ---------------------------------------------------------------------------------------------
// Server folders, ownership and cleanup

async function makeServerDir(): Promise<string> {
  sweepOnce();
  const dir = await Deno.makeTempDir({ dir: TMP, prefix: DIR_PREFIX });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/owner`, `${Deno.pid} ${startTime(Deno.pid) ?? ""}\n`);
  await startWatcher(dir);
  return dir;
}

/**
 * A detached shell that stops the server and deletes its folder once the test process is gone.
 * Needed because `deno test` exits on Ctrl-C without running `unload` or our signal listeners,
 * and nothing runs at all after SIGKILL. It also ends by itself when the folder is deleted.
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
  while [ -f "$dir/mysqld.pid" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
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

/**
 * Starts a process detached with `setsid -f`: the test process owns no child (no resource leak
 * reports), and Ctrl-C on the terminal does not reach it. stdio must be null: a detached child
 * holding our pipes would keep `output()` waiting for it to exit.
 */
async function detach(cmd: string[], what: string): Promise<void> {
  const status = await new Deno.Command("setsid", {
    args: ["-f", ...cmd],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) throw new Error(`${what} failed (exit ${status.code})`);
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
    if (!waitGoneSync(`${dir}/mysqld.pid`, 15000) && alive(pid)) {
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

/** Folders started by this module, stopped at unload. */
const live = new Set<string>();
let hooksInstalled = false;

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

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** The newest PostgreSQL bin folder (or `$PGBIN`). */
export function findPgBin(): string {
  const fromEnv = Deno.env.get("PGBIN");
  if (fromEnv) return fromEnv;
  const majors = [...Deno.readDirSync("/usr/lib/postgresql")]
    .map((e) => Number(e.name))
    .filter((n) => Number.isInteger(n) && exists(`/usr/lib/postgresql/${n}/bin/initdb`))
    .sort((a, b) => a - b);
  if (majors.length === 0) throw new Error("no PostgreSQL server under /usr/lib/postgresql");
  return `/usr/lib/postgresql/${majors[majors.length - 1]}/bin`;
}

/** Starts a fresh, empty PostgreSQL server. The caller must `stop()` it. */
export async function startPostgres(options: StartOptions = {}): Promise<PgServer> {
  installHooks();
  const bin = findPgBin();
  const password = options.password ?? randomPassword();
  const dir = await makeServerDir();
  live.add(dir);
  try {
    const port = options.port ?? freePort();
    await Deno.writeTextFile(`${dir}/pgbin`, bin + "\n");
    await Deno.writeTextFile(`${dir}/pwfile`, password + "\n", { mode: 0o600 });
    chownTree(dir, "postgres");
    await must(
      asUser("postgres", [
        `${bin}/initdb`,
        "-D",
        `${dir}/data`,
        "-U",
        "postgres",
        `--pwfile=${dir}/pwfile`,
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "-N",
      ]),
      "initdb",
    );
    await Deno.remove(`${dir}/pwfile`);
    const serverOptions = [
      "-c listen_addresses=127.0.0.1",
      `-p ${port}`,
      `-k ${dir}`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
    ].join(" ");
    await must(
      asUser("postgres", [
        `${bin}/pg_ctl`,
        "-D",
        `${dir}/data`,
        "-l",
        `${dir}/server.log`,
        "-w",
        "-t",
        "60",
        "-s",
        "-o",
        serverOptions,
        "start",
      ]),
      "postgres start",
      `${dir}/server.log`,
    );
    const clientEnv = { PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" };
    const server: PgServer = {
      engine: "postgresql",
      host: "127.0.0.1",
      port,
      user: "postgres",
      password,
      dir,
      bin,
      socketDir: dir,
      params: { host: "127.0.0.1", port, user: "postgres", password, connectTimeout: 10 },
      clientEnv,
      async sql(query, opts = {}) {
        const result = await run([
          `${bin}/psql`,
          "-X",
          "-q",
          "-A",
          "-t",
          "-F",
          "\t",
          "-v",
          "ON_ERROR_STOP=1",
          "-h",
          "127.0.0.1",
          "-p",
          String(port),
          "-U",
          "postgres",
          "-d",
          opts.database ?? "postgres",
          "-f",
          "-",
        ], { env: clientEnv, stdin: query });
        if (result.code !== 0) throw new Error(`psql failed: ${result.stderr.trim()}`);
        return result.stdout.replace(/\n$/, "");
      },
      stop: () => stopDir(dir),
    };
    return server;
  } catch (error) {
    await stopDir(dir);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// MariaDB

function which(name: string, fallbacks: string[] = []): string | undefined {
  for (const d of (Deno.env.get("PATH") ?? "").split(":").concat(fallbacks)) {
    if (d && exists(`${d}/${name}`)) return `${d}/${name}`;
  }
  return undefined;
}

function sqlString(value: string): string {
  return "'" + value.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
}

/** Starts a fresh, empty MariaDB server. The caller must `stop()` it. */
export async function startMariadb(options: StartOptions = {}): Promise<MyServer> {
  installHooks();
  const mariadbd = which("mariadbd", ["/usr/sbin"]) ?? "/usr/sbin/mariadbd";
  const client = which("mariadb") ?? "/usr/bin/mariadb";
  const bin = client.slice(0, client.lastIndexOf("/"));
  const password = options.password ?? randomPassword();
  const dir = await makeServerDir();
  live.add(dir);
  try {
    const port = options.port ?? freePort();
    const pw = sqlString(password);
    // Bootstrap runs with grants off: FLUSH PRIVILEGES turns them on. The bootstrap also makes
    // password-less root accounts for ::1 and the host name; they must go.
    await Deno.writeTextFile(
      `${dir}/init.sql`,
      [
        "FLUSH PRIVILEGES;",
        "DELETE FROM mysql.global_priv WHERE User='root' AND Host<>'localhost';",
        "DELETE FROM mysql.proxies_priv WHERE Host<>'localhost';",
        "FLUSH PRIVILEGES;",
        `ALTER USER 'root'@'localhost' IDENTIFIED BY ${pw};`,
        `CREATE USER 'root'@'%' IDENTIFIED BY ${pw};`,
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    // A private tmpdir: with the shared /tmp, concurrent bootstraps have failed on each other's
    // internal temporary tables ("Can't find file: '/tmp/#sql-temptable-...MAI'").
    await Deno.mkdir(`${dir}/tmp`, { mode: 0o700 });
    chownTree(dir, "mysql");
    const common = [
      "--no-defaults",
      `--datadir=${dir}/data`,
      `--tmpdir=${dir}/tmp`,
      "--innodb-log-file-size=16M",
      ...(isRoot ? ["--user=mysql"] : []),
    ];
    await must(
      [
        which("mariadb-install-db", ["/usr/bin"]) ?? "mariadb-install-db",
        ...common,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--skip-name-resolve",
        `--extra-file=${dir}/init.sql`,
      ],
      "mariadb-install-db",
    );
    await Deno.remove(`${dir}/init.sql`);
    await detach(
      [
        mariadbd,
        ...common,
        "--bind-address=127.0.0.1",
        `--port=${port}`,
        `--socket=${dir}/mysqld.sock`,
        `--pid-file=${dir}/mysqld.pid`,
        `--log-error=${dir}/error.log`,
        "--skip-name-resolve",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--innodb-flush-log-at-trx-commit=2",
        "--character-set-server=utf8mb4",
      ],
      "mariadbd start",
    );
    await waitMariadbReady(dir, port);
    const clientEnv = { MYSQL_PWD: password };
    const server: MyServer = {
      engine: "mariadb",
      host: "127.0.0.1",
      port,
      user: "root",
      password,
      dir,
      bin,
      socket: `${dir}/mysqld.sock`,
      params: { host: "127.0.0.1", port, user: "root", password, connectTimeout: 10 },
      clientEnv,
      async sql(query, opts = {}) {
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
        ], { env: clientEnv, stdin: query });
        if (result.code !== 0) throw new Error(`mariadb failed: ${result.stderr.trim()}`);
        return result.stdout.replace(/\n$/, "");
      },
      stop: () => stopDir(dir),
    };
    return server;
  } catch (error) {
    await stopDir(dir);
    throw error;
  }
}

/**
 * Waits until mariadbd accepts TCP connections: it opens its listener only after recovery and
 * grant loading, so a successful connect means ready. Fails early when the server died.
 */
async function waitMariadbReady(dir: string, port: number): Promise<void> {
  const end = Date.now() + 30000;
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
    if ((pid && !alive(Number(pid.trim()))) || /\[ERROR\] Aborting/.test(log)) {
      throw new Error(`mariadbd exited:\n${log}`);
    }
    await sleep(20);
  }
  throw new Error(`mariadbd not ready after 30 s:\n${readText(`${dir}/error.log`) ?? ""}`);
}

// ---------------------------------------------------------------------------------------------
// Stop and shared servers

async function stopDir(dir: string): Promise<void> {
  if (!live.has(dir)) return;
  live.delete(dir);
  // Async wrapper over the sync path: one code path for tests, unload and signals.
  await Promise.resolve();
  destroyDirSync(dir);
}

let sharedPg: Promise<PgServer> | undefined;
let sharedMy: Promise<MyServer> | undefined;

/**
 * The PostgreSQL server shared by the tests of this module: started on first call, stopped when
 * the module unloads. Do not stop it yourself; create uniquely named databases in it.
 */
export function sharedPostgres(): Promise<PgServer> {
  sharedPg ??= startPostgres().catch((error) => {
    sharedPg = undefined;
    throw error;
  });
  return sharedPg;
}

/**
 * The MariaDB server shared by the tests of this module: started on first call, stopped when
 * the module unloads. Do not stop it yourself; create uniquely named databases in it.
 */
export function sharedMariadb(): Promise<MyServer> {
  sharedMy ??= startMariadb().catch((error) => {
    sharedMy = undefined;
    throw error;
  });
  return sharedMy;
}
