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
 * Server folders, their cleanup (stop(), unload, SIGINT/SIGTERM, a detached watcher, a sweep of
 * dead owners' folders) and the process helpers live in tests/harness/process.ts.
 *
 * @module
 */
import type { ConnectionParams } from "../../lib/config/types.ts";
import {
  asUser,
  chownTree,
  detach,
  exists,
  isRoot,
  makeServerDir,
  must,
  mysqlSql,
  randomPassword,
  readText,
  run,
  sqlString,
  stopDir,
  waitTcpReady,
} from "./process.ts";

export { sweepLeftovers } from "./process.ts";

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

/** Options for {@linkcode startPostgres}. */
export interface PgStartOptions extends StartOptions {
  /** Folder of initdb/pg_ctl/postgres; default: {@linkcode findPgBin}. */
  serverBin?: string;
  /** Folder of psql/pg_dump, the server's `bin`; default: {@linkcode serverBin}. */
  clientBin?: string;
}

/**
 * Starts a fresh, empty PostgreSQL server, by default Debian's newest; `serverBin`/`clientBin`
 * start another installation (the server matrix). The caller must `stop()` it.
 */
export async function startPostgres(options: PgStartOptions = {}): Promise<PgServer> {
  const serverBin = options.serverBin ?? findPgBin();
  const bin = options.clientBin ?? serverBin;
  const password = options.password ?? randomPassword();
  const dir = await makeServerDir();
  try {
    const port = options.port ?? freePort();
    // The watcher and the sweep read `pgbin` to stop a leftover server with the matching pg_ctl.
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

/** Starts a fresh, empty MariaDB server. The caller must `stop()` it. */
export async function startMariadb(options: StartOptions = {}): Promise<MyServer> {
  const mariadbd = which("mariadbd", ["/usr/sbin"]) ?? "/usr/sbin/mariadbd";
  const client = which("mariadb") ?? "/usr/bin/mariadb";
  const bin = client.slice(0, client.lastIndexOf("/"));
  const password = options.password ?? randomPassword();
  const dir = await makeServerDir();
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
    await waitTcpReady(dir, port, {
      name: "mariadbd",
      seconds: 30,
      aborted: /\[ERROR\] Aborting/,
    });
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
      sql: mysqlSql(client, port, clientEnv),
      stop: () => stopDir(dir),
    };
    return server;
  } catch (error) {
    await stopDir(dir);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Shared servers

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
