/**
 * The shell contenders' command lines: the same dump tool with the same options vya-backupdb
 * passes (lib/dump/*.ts), so only the data path differs.
 *
 * @module
 */
import { MYSQL_DUMP_OPTIONS } from "../../lib/engines/mysql/dump.ts";
import { PG_DUMP_OPTIONS, pgConninfo } from "../../lib/engines/postgres/dump.ts";
import type { BenchServer } from "./data.ts";

/** A codec as the benchmark names it. */
export interface BenchCodec {
  /** Name on the command line: gzip1, gzip6, zstd3, none. */
  name: string;
  /** Config format. */
  format: "gzip" | "zstd" | "none";
  /** Config level (0 for none). */
  level: number;
  /** Shell compressor reading stdin, writing stdout (undefined for none). */
  pipe?: string;
  /** Shell command compressing a file in place, its output name being `<file><suffix>`. */
  inPlace?: (file: string) => string;
  /** Suffix of the compressed file. */
  suffix: string;
}

/** Parses `gzip1`, `gzip6`, `zstd3`, `none`. */
export function parseCodec(name: string): BenchCodec {
  const m = /^(gzip|zstd)(\d{1,2})$/.exec(name);
  if (name === "none") return { name, format: "none", level: 0, suffix: "" };
  if (!m) throw new Error(`unknown codec "${name}" (expected gzipN, zstdN or none)`);
  const level = Number(m[2]);
  if (m[1] === "gzip") {
    return {
      name,
      format: "gzip",
      level,
      pipe: `gzip -${level}`,
      inPlace: (f) => `gzip -${level} ${q(f)}`,
      suffix: ".gz",
    };
  }
  // zstd's CLI is single-threaded unless given -T; the in-place form needs --rm to match gzip.
  return {
    name,
    format: "zstd",
    level,
    pipe: `zstd -q -${level}`,
    inPlace: (f) => `zstd -q --rm -${level} ${q(f)}`,
    suffix: ".zst",
  };
}

/** Single-quotes a word for bash. */
export function q(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** How a MariaDB client of the bench reaches the server (the password is in its environment). */
function myConnection(server: BenchServer): string[] {
  return ["--protocol=TCP", "-h", server.host, "-P", String(server.port), "-u", server.user];
}

/** The dump command for bash, and the environment carrying the password. */
export function dumpShell(server: BenchServer, database: string): string {
  if (server.engine === "postgresql") {
    return [
      `${server.bin}/pg_dump`,
      ...PG_DUMP_OPTIONS,
      `--dbname=${pgConninfo(server.params, database)}`,
    ]
      .map(q).join(" ");
  }
  return [
    "mariadb-dump",
    "--no-defaults",
    ...myConnection(server),
    ...MYSQL_DUMP_OPTIONS,
    "--",
    database,
  ].map(q).join(" ");
}

/** Bytes of the uncompressed dump of `database`, measured with the engine's dump tool. */
export async function dumpSize(server: BenchServer, database: string): Promise<number> {
  const out = await new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", `${dumpShell(server, database)} | wc -c`],
    env: clientEnv(server),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return Number(new TextDecoder().decode(out.stdout).trim());
}

/**
 * The client creating `database` (a plain identifier), for bash: a restore into a new database
 * needs one first, and vya's restore time includes its own CREATE DATABASE.
 */
export function createShell(server: BenchServer, database: string): string {
  const sql = `CREATE DATABASE ${database}`;
  if (server.engine === "postgresql") {
    return [
      `${server.bin}/psql`,
      "-X",
      "-q",
      `--dbname=${pgConninfo(server.params, "postgres")}`,
      "-c",
      sql,
    ].map(q).join(" ");
  }
  return [
    "mariadb",
    "--no-defaults",
    ...myConnection(server),
    "-e",
    sql,
  ].map(q).join(" ");
}

/** The client loading SQL from stdin into `database`, for bash. */
export function loadShell(server: BenchServer, database: string): string {
  if (server.engine === "postgresql") {
    // The same flags vya's restore passes to psql (lib/engines/postgres/target.ts).
    return [
      `${server.bin}/psql`,
      "-X",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      "--single-transaction",
      `--dbname=${pgConninfo(server.params, database)}`,
    ].map(q).join(" ");
  }
  return [
    "mariadb",
    "--no-defaults",
    "--default-character-set=utf8mb4",
    ...myConnection(server),
    `--database=${database}`,
  ].map(q).join(" ");
}

/** Environment with the password for the shell's clients. */
export function clientEnv(server: BenchServer): Record<string, string> {
  return { ...server.clientEnv, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
}

/** The server's main process id (postmaster / mariadbd). */
export function serverPid(server: BenchServer): number {
  const file = server.engine === "postgresql"
    ? `${server.dir}/data/postmaster.pid`
    : `${server.dir}/mysqld.pid`;
  return Number(Deno.readTextFileSync(file).split("\n")[0].trim());
}
