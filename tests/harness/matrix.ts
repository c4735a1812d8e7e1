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
 * Servers live in `/tmp/vyat-XXXXXX` folders from tests/harness/process.ts, so the same hooks,
 * watcher and sweep clean up after a matrix run.
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
import {
  chownTree,
  exists,
  isRoot,
  makeServerDir,
  must,
  mysqlSql,
  randomPassword,
  sqlString,
  stopDir,
  waitTcpReady,
} from "./process.ts";

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
  return await startPostgres({ ...options, serverBin, clientBin: pgClientFor(major).bin });
}

// ---------------------------------------------------------------------------------------------
// MySQL 9

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
    await waitTcpReady(dir, port, {
      name: "mysqld",
      seconds: 60,
      aborted: /\[ERROR\].*Aborting/,
    });
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
      sql: mysqlSql(`${bin}/mysql`, port, clientEnv),
      stop: () => stopDir(dir),
    };
  } catch (error) {
    await stopDir(dir);
    throw error;
  }
}
