/**
 * The metadata JSON written beside every backup, last, once the dump and its checksum are in
 * place: a dump without metadata is never taken for a good backup. Read and written through a
 * {@linkcode Storage} only, and validated on read: a file this tool did not write (or a damaged
 * one) is reported as such, never half-trusted.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Storage } from "./storage.ts";

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
  /**
   * How the file is encrypted: age to these public keys (any one identity decrypts). Absent:
   * not encrypted. Never holds a secret.
   */
  encryption?: EncryptionRecord;
  /** The file itself; null when the backup failed and no file was kept. */
  file: { name: string; bytes: number; sha256: string } | null;
  /** The tool that wrote the dump. */
  dump: { tool: string; path: string; tool_version: string; options: string[] };
  /** Objects counted on the server just before the dump. */
  objects?: Record<string, number>;
  /**
   * Rows of each base table counted on the server just before the dump (PostgreSQL
   * `schema.table`, MySQL/MariaDB `table`): `exact` for a `COUNT(*)`, false for the engine's
   * estimate (tables over 64 MiB). `verify --restore` compares them. Absent before it existed.
   */
  tables?: Record<string, { rows: number; exact: boolean }>;
  /** Properties the database is recreated with. */
  database_properties?: DatabaseProperties;
  /** Anything the user should know about this backup. */
  warnings?: string[];
  /**
   * Kept by retention whatever its policy says (`pin` / `unpin`). Absent in files written before
   * it existed: not pinned.
   */
  pinned?: boolean;
  /** ISO-8601 UTC of the last verification (absent: never verified). */
  verified_at?: string;
  /** The last verification's outcome. */
  verify?: VerifyRecord;
  /** Kind-specific extra data (users backups list accounts here). */
  [extra: string]: unknown;
}

/** The encryption of a backup file, as recorded in its metadata (public keys only). */
export interface EncryptionRecord {
  /** The format: age-encryption.org/v1. */
  format: "age";
  /** The X25519 recipients (`age1…`) it was encrypted to. */
  recipients: string[];
}

/**
 * The record of a file encrypted to `recipients` (public keys only); undefined without any:
 * the file is not encrypted.
 */
export function encryptionRecord(
  recipients: readonly string[] | undefined,
): EncryptionRecord | undefined {
  return recipients?.length ? { format: "age", recipients: [...recipients] } : undefined;
}

/** The outcome of a verification, as recorded in the metadata. */
export interface VerifyRecord {
  /** Whether the backup passed. */
  result: "ok" | "failed";
  /** How it was verified: re-hashed and decompressed, or restored into a scratch database. */
  kind: "checksum" | "restore";
  /** Why it failed (redacted), when it did. */
  error?: string;
}

/** Metadata as read: the parsed record, or why the file is not one. */
export type MetadataRead =
  | { metadata: BackupMetadata; problem?: undefined }
  | { metadata?: undefined; problem: string };

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function isIsoDate(v: unknown): v is string {
  return typeof v === "string" && ISO_DATE.test(v) && Number.isFinite(Date.parse(v));
}

/**
 * Checks parsed JSON against the metadata format: the keys every version wrote must have their
 * types, and the optional ones (`pinned`, `verified_at`, `verify`, …) must have theirs when
 * present, so files of older versions, which lack them, still read. Returns the first problem.
 */
export function validateMetadata(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "not a JSON object";
  }
  const m = value as Record<string, unknown>;
  if (typeof m.format_version !== "number" || !Number.isInteger(m.format_version)) {
    return "format_version: expected an integer";
  }
  if (m.format_version > METADATA_FORMAT_VERSION) {
    return `format_version ${m.format_version} is newer than this tool's (${METADATA_FORMAT_VERSION})`;
  }
  if (m.status !== "ok" && m.status !== "failed") return `status: expected "ok" or "failed"`;
  if (m.kind !== "database" && m.kind !== "users") return `kind: expected "database" or "users"`;
  if (!isIsoDate(m.started_at)) return "started_at: expected an ISO-8601 UTC time";
  if (m.kind === "database" && typeof m.database !== "string") return "database: expected a name";
  if (typeof m.instance !== "string") return "instance: expected an id";
  const c = m.compression as Record<string, unknown> | undefined;
  if (
    typeof c !== "object" || c === null || !["gzip", "zstd", "none"].includes(c.format as string)
  ) {
    return "compression.format: expected gzip, zstd or none";
  }
  const f = m.file as Record<string, unknown> | null | undefined;
  if (f !== null) {
    if (
      typeof f !== "object" || f === undefined || typeof f.name !== "string" ||
      typeof f.bytes !== "number" || typeof f.sha256 !== "string" ||
      !/^[0-9a-f]{64}$/.test(f.sha256)
    ) {
      return "file: expected null or { name, bytes, sha256 }";
    }
  }
  if (m.encryption !== undefined) {
    const e = m.encryption as Record<string, unknown> | null;
    if (
      typeof e !== "object" || e === null || e.format !== "age" || !Array.isArray(e.recipients) ||
      e.recipients.length === 0 || !e.recipients.every((r) => typeof r === "string")
    ) {
      return `encryption: expected { format: "age", recipients: ["age1…", …] }`;
    }
  }
  if (m.pinned !== undefined && typeof m.pinned !== "boolean") return "pinned: expected a boolean";
  if (m.verified_at !== undefined && !isIsoDate(m.verified_at)) {
    return "verified_at: expected an ISO-8601 UTC time";
  }
  if (m.verify !== undefined) {
    const v = m.verify as Record<string, unknown> | null;
    if (
      typeof v !== "object" || v === null || (v.result !== "ok" && v.result !== "failed") ||
      (v.kind !== "checksum" && v.kind !== "restore")
    ) {
      return `verify: expected { result: "ok" | "failed", kind: "checksum" | "restore" }`;
    }
  }
  return undefined;
}

/** Parses metadata text (see {@linkcode validateMetadata}). */
export function parseMetadata(text: string): MetadataRead {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { problem: "not valid JSON" };
  }
  const problem = validateMetadata(parsed);
  return problem ? { problem } : { metadata: parsed as BackupMetadata };
}

/** Reads and validates the metadata under `key`; undefined when there is none. */
export async function readMetadataChecked(
  storage: Storage,
  key: string,
): Promise<MetadataRead | undefined> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await storage.readSmall(key);
  } catch (e) {
    return { problem: `cannot be read: ${(e as Error).message}` };
  }
  if (bytes === undefined) return undefined;
  return parseMetadata(new TextDecoder().decode(bytes));
}

/** Reads metadata; undefined when the file is missing or not valid metadata of this format. */
export async function readMetadata(
  storage: Storage,
  key: string,
): Promise<BackupMetadata | undefined> {
  return (await readMetadataChecked(storage, key))?.metadata;
}

/** Writes metadata atomically (0600, its folder created 0700). */
export async function writeMetadata(
  storage: Storage,
  key: string,
  metadata: BackupMetadata,
): Promise<void> {
  await storage.writeAtomic(key, JSON.stringify(metadata, null, 2) + "\n");
}

/**
 * Changes a metadata file atomically (readers see the old record or the new one, never a part):
 * read, validate, apply `change`, write back. For `pin`/`unpin` and verification results. Run
 * it under the storage lock: two updates at once would each write their own copy.
 *
 * @throws {Error} when the file is missing or is not valid metadata (nothing is written).
 */
export async function updateMetadata(
  storage: Storage,
  key: string,
  change: (metadata: BackupMetadata) => BackupMetadata | void,
): Promise<BackupMetadata> {
  const read = await readMetadataChecked(storage, key);
  if (read === undefined) throw new Error(`${storage.locate(key)}: no such metadata file`);
  if (!read.metadata) throw new Error(`${storage.locate(key)}: ${read.problem}`);
  const current = structuredClone(read.metadata);
  const next = change(current) ?? current;
  const problem = validateMetadata(next);
  if (problem) throw new Error(`${storage.locate(key)}: the update is not valid: ${problem}`);
  await writeMetadata(storage, key, next);
  return next;
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
 * failing to record a failure is logged, and the run goes on with the other items. With
 * `fallback` (a backup streamed to a remote that may be what failed), a record the storage
 * refuses is written there instead, under the same key.
 */
export async function writeFailureMetadata(
  storage: Storage,
  keys: { metadata: string },
  metadata: BackupMetadata,
  log: Logger,
  fallback?: Storage,
): Promise<void> {
  try {
    await writeMetadata(storage, keys.metadata, metadata);
    return;
  } catch (e) {
    const why = `could not record the failure in ${storage.locate(keys.metadata)}: ${
      (e as Error).message
    }`;
    if (!fallback) return log.warn(why);
    try {
      await writeMetadata(fallback, keys.metadata, metadata);
      log.warn(`${why}; recorded in ${fallback.locate(keys.metadata)} instead`);
    } catch (e2) {
      log.warn(`${why}; nor in ${fallback.locate(keys.metadata)}: ${(e2 as Error).message}`);
    }
  }
}

/** What a backup about to start is known by. */
export interface PendingBackup {
  /** Database or users backup. */
  kind: BackupMetadata["kind"];
  /** The server's flavour and version string. */
  server: { flavor: string; full: string };
  /** Machine and instance. */
  hostname: string;
  /** Instance id. */
  instance: string;
  /** Absent for users backups. */
  database?: string;
  /** When it started. */
  started: Date;
  /** How the file is compressed. */
  compression: BackupMetadata["compression"];
  /** age recipients, when the file is encrypted. */
  recipients?: readonly string[];
  /** The dump tool, as far as known before it runs. */
  dump: BackupMetadata["dump"];
  /** The tool version writing the record. */
  toolVersion: string;
}

/**
 * The metadata of a backup about to start: `failed` until the file proves otherwise, so that a
 * record written on any failure path never claims a good backup.
 */
export function pendingMetadata(p: PendingBackup): BackupMetadata {
  return {
    format_version: METADATA_FORMAT_VERSION,
    kind: p.kind,
    tool_version: p.toolVersion,
    status: "failed",
    engine: p.server.flavor,
    server_version: p.server.full,
    hostname: p.hostname,
    instance: p.instance,
    ...(p.database !== undefined && { database: p.database }),
    started_at: p.started.toISOString(),
    finished_at: p.started.toISOString(),
    duration_ms: 0,
    raw_bytes: 0,
    compression: p.compression,
    encryption: encryptionRecord(p.recipients),
    file: null,
    dump: p.dump,
  };
}
