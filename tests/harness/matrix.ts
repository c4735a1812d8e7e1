/**
 * The server-version test matrix: throwaway PostgreSQL 16/17/18 and MySQL 9 servers from the
 * prefix `scripts/setup-matrix.sh` fills (default /opt/vya-matrix, or `$VYA_MATRIX_PREFIX`),
 * beside Debian's own PostgreSQL 15 and MariaDB 10.11 from {@linkcode startPostgres} /
 * {@linkcode startMariadb}.
 *
 * `VYA_TEST_MATRIX=full` selects every server; `minimal` (the default) only Debian's two, so a
 * machine without the prefix still runs the suite. In `full` mode a missing prefix is an error,
 * not a skip: a CI job that asked for the matrix must not pass without it.
 *
 * Servers live in `/tmp/vyat-XXXXXX` folders with the same `owner`/`pgbin`/pid files as
 * tests/harness/servers.ts, so that module's sweep also cleans up after a killed matrix run.
 *
 * @module
 */
import {
  freePort,
  type MyServer,
  type PgServer,
  startMariadb,
  type StartOptions,
  startPostgres,
  type TestServer,
} from "./servers.ts";

/** Where scripts/setup-matrix.sh installs (its default, or `$VYA_MATRIX_PREFIX`). */
export const MATRIX_PREFIX: string = Deno.env.get("VYA_MATRIX_PREFIX") ?? "/opt/vya-matrix";

/** PostgreSQL majors with a server in the prefix. */
export const MATRIX_PG_MAJORS: readonly number[] = [16, 17, 18];

/** PostgreSQL client majors in the prefix (Debian has no client 16 in any suite). */
export const MATRIX_PG_CLIENTS: readonly number[] = [17, 18];

/** Debian's own PostgreSQL client folder (major 15 on Debian 12). */
const DEBIAN_PG_ROOT = "/usr/lib/postgresql";

/** A throwaway MySQL server. */
export interface MysqlServer extends TestServer {
  /** Engine tag, as in the configuration's `type`. */
  readonly engine: "mysql";
  /** Path of the unix socket. */
  readonly socket: string;
}

/** Any server of the matrix. */
export type MatrixServer = PgServer | MyServer | MysqlServer;

/** One server of the matrix, not started yet. */
export interface MatrixEntry {
  /** Short name used in test names: pg15, pg16, pg17, pg18, mariadb, mysql9. */
  name: string;
  /** Engine as the configuration names it. */
  engine: "postgresql" | "mariadb" | "mysql";
  /** Server major version. */
  major: number;
  /** Whether it is part of the minimal matrix (Debian's own servers). */
  minimal: boolean;
  /** Starts a fresh, empty server of this kind; the caller stops it. */
  start(options?: StartOptions): Promise<MatrixServer>;
}

/** Matrix selection from `VYA_TEST_MATRIX`: `full` or `minimal` (default). */
export function matrixMode(): "full" | "minimal" {
  const mode = Deno.env.get("VYA_TEST_MATRIX") ?? "minimal";
  if (mode !== "full" && mode !== "minimal") {
    throw new Error(`VYA_TEST_MATRIX must be full or minimal, not ${JSON.stringify(mode)}`);
  }
  return mode;
}

/** The servers of a matrix mode, PostgreSQL first, oldest first. */
export function matrixEntries(mode: "full" | "minimal" = matrixMode()): MatrixEntry[] {
  const all: MatrixEntry[] = [
    { name: "pg15", engine: "postgresql", major: 15, minimal: true, start: startPostgres },
    ...MATRIX_PG_MAJORS.map((major): MatrixEntry => ({
      name: `pg${major}`,
      engine: "postgresql",
      major,
      minimal: false,
      start: (options) => startPostgresVersion(major, options),
    })),
    { name: "mariadb", engine: "mariadb", major: 10, minimal: true, start: startMariadb },
    { name: "mysql9", engine: "mysql", major: 9, minimal: false, start: startMysql },
  ];
  return mode === "full" ? all : all.filter((e) => e.minimal);
}

/**
 * Throws when the prefix lacks what the full matrix needs, naming the command that installs it.
 */
export function requireMatrixInstalled(): void {
  const missing = [
    ...MATRIX_PG_MAJORS.map((m) => pgServerBin(m) + "/postgres"),
    ...MATRIX_PG_CLIENTS.map((m) => pgClientBin(m) + "/pg_dump"),
    `${MATRIX_PREFIX}/mysql9/usr/sbin/mysqld`,
    `${MATRIX_PREFIX}/mysql9/bin/mysqldump`,
  ].filter((p) => !exists(p));
  if (missing.length > 0) {
    throw new Error(
      `the server matrix is not installed (missing ${missing.join(", ")}); ` +
        `run: sudo bash scripts/setup-matrix.sh`,
    );
  }
}

/** Folder of initdb/pg_ctl/postgres of a matrix PostgreSQL major. */
export function pgServerBin(major: number): string {
  return `${MATRIX_PREFIX}/pg${major}/server/bin`;
}

/** Folder of psql/pg_dump/pg_dumpall of a client major: Debian's own or the prefix's. */
export function pgClientBin(major: number): string {
  const debian = `${DEBIAN_PG_ROOT}/${major}/bin`;
  if (exists(`${debian}/pg_dump`)) return debian;
  return `${MATRIX_PREFIX}/pg${major}/client/bin`;
}

/**
 * The client folder for a server major: the oldest installed client major at least as new as the
 * server (the rule lib/tools/find.ts applies), e.g. client 17 for a PostgreSQL 16 server.
 */
export function pgClientFor(serverMajor: number): { major: number; bin: string } {
  const majors = [...new Set([...debianPgMajors(), ...MATRIX_PG_CLIENTS])]
    .filter((m) => m >= serverMajor && exists(`${pgClientBin(m)}/pg_dump`))
    .sort((a, b) => a - b);
  if (majors.length === 0) {
    throw new Error(
      `no PostgreSQL client >= ${serverMajor} installed; run: sudo bash scripts/setup-matrix.sh`,
    );
  }
  return { major: majors[0], bin: pgClientBin(majors[0]) };
}

/** Folder of the MySQL 9 client tools (mysql, mysqldump, mysqladmin). */
export function mysqlClientBin(): string {
  return `${MATRIX_PREFIX}/mysql9/bin`;
}

function debianPgMajors(): number[] {
  try {
    return [...Deno.readDirSync(DEBIAN_PG_ROOT)]
      .map((e) => Number(e.name))
      .filter((n) => Number.isInteger(n) && exists(`${DEBIAN_PG_ROOT}/${n}/bin/pg_dump`));
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Process helpers (the same conventions as servers.ts, which keeps its own private)

const isRoot = Deno.uid() === 0;
const decoder = new TextDecoder();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

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

function runSync(cmd: string[]): number {
  try {
    return new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync().code;
  } catch {
    return 127;
  }
}

async function must(cmd: string[], what: string, logFile?: string): Promise<RunResult> {
  const result = await run(cmd);
  if (result.code !== 0) {
    const log = logFile ? readText(logFile) ?? "" : "";
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

function account(name: string): { uid: number; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const f = line.split(":");
    if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`system account ${name} does not exist (run scripts/setup-matrix.sh)`);
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

function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

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
// Folders and cleanup

const live = new Set<string>();
let hooksInstalled = false;

/** A `/tmp/vyat-XXXXXX` folder that servers.ts's sweep recognises (same `owner` file). */
async function makeServerDir(): Promise<string> {
  installHooks();
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "vyat-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/owner`, `${Deno.pid} ${startTime(Deno.pid) ?? ""}\n`);
  live.add(dir);
  await startWatcher(dir);
  return dir;
}

/**
 * A detached shell that stops the server and deletes its folder once the test process is gone
 * (`deno test` exits on Ctrl-C without `unload`; nothing runs after SIGKILL). The same script as
 * servers.ts, which keeps its copy private; it ends by itself when the folder is deleted.
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
  // stdio null: a detached child holding our pipes would keep output() waiting for it.
  const status = await new Deno.Command("setsid", {
    args: ["-f", "sh", "-c", WATCHER, "vya-test-watcher", String(Deno.pid), dir],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) throw new Error(`starting the cleanup watcher failed (${status.code})`);
}

function waitGoneSync(path: string, ms: number): boolean {
  const end = Date.now() + ms;
  const buf = new Int32Array(new SharedArrayBuffer(4));
  while (exists(path)) {
    if (Date.now() > end) return false;
    Atomics.wait(buf, 0, 0, 20);
  }
  return true;
}

function destroyDirSync(dir: string): void {
  const pgPid = readText(`${dir}/data/postmaster.pid`);
  if (pgPid) {
    const pid = Number(pgPid.split("\n")[0]);
    const bin = readText(`${dir}/pgbin`)?.trim();
    const stopped = bin !== undefined &&
      runSync(asUser("postgres", [
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
        ])) === 0;
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

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  globalThis.addEventListener("unload", () => {
    for (const dir of live) destroyDirSync(dir);
    live.clear();
  });
  // servers.ts's signal handler stops every folder this process owns (ours included) and exits;
  // this one covers a run that started only matrix servers.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      for (const dir of live) destroyDirSync(dir);
      live.clear();
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

async function stopDir(dir: string): Promise<void> {
  if (!live.has(dir)) return;
  live.delete(dir);
  await Promise.resolve();
  destroyDirSync(dir);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL 16/17/18

/**
 * Starts a fresh, empty PostgreSQL server of a matrix major (16, 17 or 18) from the prefix, as
 * user `postgres` when root, like {@linkcode startPostgres}. Its `bin` is the client folder the
 * tool would choose for it ({@linkcode pgClientFor}). Major 15 is Debian's own server.
 * The caller must `stop()` it.
 */
export async function startPostgresVersion(
  major: number,
  options: StartOptions = {},
): Promise<PgServer> {
  if (major === 15) return await startPostgres(options);
  const serverBin = pgServerBin(major);
  if (!exists(`${serverBin}/postgres`)) requireMatrixInstalled();
  const client = pgClientFor(major);
  const password = options.password ?? randomPassword();
  const dir = await makeServerDir();
  try {
    const port = options.port ?? freePort();
    // servers.ts's sweep reads `pgbin` to stop a leftover server with the matching pg_ctl.
    await Deno.writeTextFile(`${dir}/pgbin`, serverBin + "\n");
    await Deno.writeTextFile(`${dir}/pwfile`, password + "\n", { mode: 0o600 });
    chownTree(dir, "postgres");
    await must(
      asUser("postgres", [
        `${serverBin}/initdb`,
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
      `initdb ${major}`,
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
        `${serverBin}/pg_ctl`,
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
      `postgres ${major} start`,
      `${dir}/server.log`,
    );
    const clientEnv = { PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" };
    const bin = client.bin;
    return {
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
  } catch (error) {
    await stopDir(dir);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// MySQL 9

function sqlString(value: string): string {
  return "'" + value.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
}

/**
 * Starts a fresh, empty MySQL 9 server from the prefix (root with the given or a random
 * password, `root@%` for TCP). Accounts default to caching_sha2_password. Its `bin` holds
 * mysql, mysqldump and mysqladmin 9. The caller must `stop()` it.
 */
export async function startMysql(options: StartOptions = {}): Promise<MysqlServer> {
  const usr = `${MATRIX_PREFIX}/mysql9/usr`;
  if (!exists(`${usr}/sbin/mysqld`)) requireMatrixInstalled();
  const bin = mysqlClientBin();
  const password = options.password ?? randomPassword();
  const dir = await makeServerDir();
  try {
    const port = options.port ?? freePort();
    const pw = sqlString(password);
    await Deno.writeTextFile(
      `${dir}/init.sql`,
      [
        `ALTER USER 'root'@'localhost' IDENTIFIED BY ${pw};`,
        `CREATE USER 'root'@'%' IDENTIFIED BY ${pw};`,
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    chownTree(dir, "mysql");
    const common = [
      "--no-defaults",
      `--basedir=${usr}`,
      `--lc-messages-dir=${usr}/share/mysql`,
      `--plugin-dir=${usr}/lib/mysql/plugin`,
      `--datadir=${dir}/data`,
      // The 100 MB default redo log is written out at initialize; 8 MB is the minimum.
      "--innodb-redo-log-capacity=8M",
      ...(isRoot ? ["--user=mysql"] : []),
    ];
    await must(
      [
        `${usr}/sbin/mysqld`,
        ...common,
        "--initialize-insecure",
        `--init-file=${dir}/init.sql`,
        `--log-error=${dir}/init.log`,
      ],
      "mysqld --initialize",
      `${dir}/init.log`,
    );
    await Deno.remove(`${dir}/init.sql`);
    // setsid -f: the server is not this process's child (no leak reports, Ctrl-C reaches us).
    await must(
      [
        "setsid",
        "-f",
        `${usr}/sbin/mysqld`,
        ...common,
        "--bind-address=127.0.0.1",
        `--port=${port}`,
        "--mysqlx=OFF",
        `--secure-file-priv=${dir}`,
        `--socket=${dir}/mysqld.sock`,
        `--pid-file=${dir}/mysqld.pid`,
        `--log-error=${dir}/error.log`,
        "--skip-name-resolve",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--innodb-flush-log-at-trx-commit=2",
      ],
      "mysqld start",
    );
    await waitMysqlReady(dir, port);
    const clientEnv = { MYSQL_PWD: password };
    return {
      engine: "mysql",
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
          `${bin}/mysql`,
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
        if (result.code !== 0) throw new Error(`mysql failed: ${result.stderr.trim()}`);
        return result.stdout.replace(/\n$/, "");
      },
      stop: () => stopDir(dir),
    };
  } catch (error) {
    await stopDir(dir);
    throw error;
  }
}

/** mysqld opens its TCP listener only when ready; fails early when the server died. */
async function waitMysqlReady(dir: string, port: number): Promise<void> {
  const end = Date.now() + 60000;
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
    if ((pid && !alive(Number(pid.trim()))) || /\[ERROR\].*Aborting/.test(log)) {
      throw new Error(`mysqld exited:\n${log}`);
    }
    await sleep(20);
  }
  throw new Error(`mysqld not ready after 60 s:\n${readText(`${dir}/error.log`) ?? ""}`);
}
