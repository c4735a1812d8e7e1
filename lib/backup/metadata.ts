/**
 * The metadata JSON written beside every backup, last, once the dump and its checksum are in
 * place: a dump without metadata is never taken for a good backup.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { ensurePrivateDir, writeFileAtomic } from "../secure_fs.ts";

/** Version of the metadata format; bumped on incompatible change. */
export const METADATA_FORMAT_VERSION = 1;

/** Properties a database is recreated with on restore. */
export interface DatabaseProperties {
  /** PostgreSQL: owning role. */
  owner?: string;
  /** PostgreSQL: encoding name (UTF8). */
  encoding?: string;
  /** PostgreSQL: LC_COLLATE. */
  collate?: string;
  /** PostgreSQL: LC_CTYPE. */
  ctype?: string;
  /** PostgreSQL: locale provider (libc, icu, builtin). */
  locale_provider?: string;
  /** PostgreSQL: ICU locale, when the provider is icu. */
  icu_locale?: string | null;
  /** PostgreSQL: connection limit (-1 = none). */
  connection_limit?: number;
  /** PostgreSQL: COMMENT ON DATABASE; MariaDB 10.5+: CREATE DATABASE … COMMENT (absent: none). */
  comment?: string | null;
  /** PostgreSQL: database-level privileges. */
  grants?: { grantee: string; privilege: string; grantable: boolean }[];
  /** PostgreSQL: `ALTER DATABASE … SET` (role null) and `ALTER ROLE … IN DATABASE … SET`. */
  settings?: { role: string | null; setting: string }[];
  /** MySQL/MariaDB: default character set. */
  character_set?: string;
  /** MySQL/MariaDB: default collation. */
  collation?: string;
}

/** The metadata of one backup file (a database's or an instance's users). */
export interface BackupMetadata {
  /** {@linkcode METADATA_FORMAT_VERSION}. */
  format_version: number;
  /** What the file holds. */
  kind: "database" | "users";
  /** vya-backupdb version that wrote it. */
  tool_version: string;
  /** "ok" only when the dump tool succeeded, printed its completion marker and the file is synced. */
  status: "ok" | "failed";
  /** Why it failed (redacted). */
  error?: string;
  /** postgresql, mysql or mariadb (as detected on the server). */
  engine: string;
  /** The server's version string. */
  server_version: string;
  /** Host name of the machine that ran the backup. */
  hostname: string;
  /** Instance id from the configuration. */
  instance: string;
  /** Database name (absent for users backups). */
  database?: string;
  /** ISO-8601 UTC. */
  started_at: string;
  /** ISO-8601 UTC. */
  finished_at: string;
  /** Wall time. */
  duration_ms: number;
  /** Bytes of uncompressed dump. */
  raw_bytes: number;
  /** How the file is compressed. */
  compression: { format: "gzip" | "zstd" | "none"; level: number };
  /** The file itself; null when the backup failed and no file was kept. */
  file: { name: string; bytes: number; sha256: string } | null;
  /** The tool that wrote the dump. */
  dump: { tool: string; path: string; tool_version: string; options: string[] };
  /** Objects counted on the server just before the dump. */
  objects?: Record<string, number>;
  /** Properties the database is recreated with. */
  database_properties?: DatabaseProperties;
  /** Anything the user should know about this backup. */
  warnings?: string[];
  /** Kind-specific extra data (users backups list accounts here). */
  [extra: string]: unknown;
}

/** Writes metadata atomically (0600). */
export async function writeMetadata(path: string, metadata: BackupMetadata): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(metadata, null, 2) + "\n", { mode: 0o600 });
}

/** Reads metadata; undefined when the file is missing or not valid JSON of this format. */
export async function readMetadata(path: string): Promise<BackupMetadata | undefined> {
  try {
    const parsed = JSON.parse(await Deno.readTextFile(path));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    if (typeof parsed.format_version !== "number" || typeof parsed.status !== "string") {
      return undefined;
    }
    return parsed as BackupMetadata;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return undefined;
    throw e;
  }
}

/** The `.sha256` file's content, in `sha256sum` format so `sha256sum -c` works. */
export function sha256Line(hex: string, fileName: string): string {
  return `${hex}  ${fileName}\n`;
}

/** The end time and duration of a backup that started at `started`, as of now. */
export function finishedFields(started: Date): Pick<BackupMetadata, "finished_at" | "duration_ms"> {
  const now = new Date();
  return { finished_at: now.toISOString(), duration_ms: now.getTime() - started.getTime() };
}

/**
 * Records a failed backup: its metadata (status failed, no file) in its folder. Never throws:
 * failing to record a failure is logged, and the run goes on with the other items.
 */
export async function writeFailureMetadata(
  path: { dir: string; metadata: string },
  metadata: BackupMetadata,
  log: Logger,
): Promise<void> {
  try {
    await ensurePrivateDir(path.dir);
    await writeMetadata(path.metadata, metadata);
  } catch (e) {
    log.warn(`could not record the failure in ${path.metadata}: ${(e as Error).message}`);
  }
}
