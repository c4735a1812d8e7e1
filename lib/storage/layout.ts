/**
 * The storage layout, a contract that restore, users' scripts and retention rely on. Paths here
 * are storage keys (`/`-separated, relative to the storage root; see lib/storage/storage.ts);
 * the `…Paths` functions give the same below a local folder:
 *
 * ```
 * {storage}/{hostname}/{instance}/{database}/{YYYY-MM-DD}/{database}_{YYYYMMDDTHHMMSSZ}.sql.gz
 *                                                           …same stem….sha256
 *                                                           …same stem….metadata.json
 * {storage}/{hostname}/{instance}/users_{YYYYMMDDTHHMMSSZ}.sql.gz (and .sha256, .metadata.json)
 * ```
 *
 * An age-encrypted dump carries `.age` after its compression's extension (`.sql.zst.age`); its
 * `.sha256` covers the encrypted file as stored.
 *
 * Database names become path segments through a reversible encoding: letters and digits of any
 * script, `_`, `-` (not leading) and inner dots stay as they are; every other byte (`/`, space,
 * quotes, `%`, a leading dot or dash…) becomes `%XX` of its UTF-8 encoding, so no name can leave
 * its folder, no file name reads as an option, and every segment decodes back to the exact name.
 *
 * A name whose encoding is longer than {@linkcode MAX_SEGMENT_BYTES} (file names are limited to
 * 255 bytes; 40 `★` encode to 360) is stored as the first bytes of its encoding, `~`, and 16 hex
 * digits of the SHA-256 of the full name ({@linkcode storageName}): bounded, still unique (the
 * encoding never produces `~`, so no plain name meets a shortened one), and reversible through
 * the metadata, which holds the full name.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

const SAFE_CHAR = /^[\p{L}\p{N}_-]$/u;

/** Encodes a database (or instance) name as one safe path segment. */
export function encodeName(name: string): string {
  if (name.length === 0) return "%";
  let out = "";
  const chars = [...name];
  chars.forEach((ch, i) => {
    // A dot is safe only inside the name: "." and ".." and hidden names are encoded. A leading
    // "-" is encoded too, so no file name reads as an option (`sha256sum -c -x.sha256`).
    const inner = i > 0 && i < chars.length - 1;
    if ((SAFE_CHAR.test(ch) && !(ch === "-" && i === 0)) || (ch === "." && inner)) {
      out += ch;
    } else {
      for (const byte of new TextEncoder().encode(ch)) {
        out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
      }
    }
  });
  return out;
}

/** Longest encoded name kept whole: stem + `_` + stamp + `.metadata.json` stay far below 255. */
export const MAX_SEGMENT_BYTES = 128;
/** Bytes of the encoding kept in front of the hash of a shortened name. */
const KEPT_BYTES = 96;

/**
 * The folder and file-stem segment of a database name: {@linkcode encodeName}, or for an
 * encoding over {@linkcode MAX_SEGMENT_BYTES} bytes its first bytes (never splitting a `%XX` or
 * a character) + `~` + 16 hex digits of the SHA-256 of the name's UTF-8 bytes.
 */
export function storageName(name: string): string {
  const encoded = encodeName(name);
  const bytes = new TextEncoder().encode(encoded);
  if (bytes.length <= MAX_SEGMENT_BYTES) return encoded;
  let kept = "";
  let size = 0;
  for (const unit of encoded.match(/%[0-9A-F]{2}|[\s\S]/gu) ?? []) {
    const n = new TextEncoder().encode(unit).length;
    if (size + n > KEPT_BYTES) break;
    kept += unit;
    size += n;
  }
  return `${kept}~${sha256Hex16(name)}`;
}

/** Whether a segment is a shortened name (see {@linkcode storageName}): only its metadata knows it. */
export function isShortened(segment: string): boolean {
  return /~[0-9a-f]{16}$/.test(segment);
}

/**
 * Decodes a segment made by {@linkcode encodeName}. For a shortened segment the result is only
 * the kept prefix with the hash; the full name is in the metadata.
 */
export function decodeName(segment: string): string {
  if (segment === "%") return "";
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function sha256Hex16(name: string): string {
  return createHash("sha256").update(new TextEncoder().encode(name)).digest("hex").slice(0, 16);
}

/** Formats a date as the stem's UTC timestamp, `YYYYMMDDTHHMMSSZ`. */
export function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** Parses a `YYYYMMDDTHHMMSSZ` timestamp. */
export function parseStamp(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

/** The suffix an age-encrypted dump carries after its compression's (`.sql.zst.age`). */
export const ENCRYPTED_SUFFIX = ".age";

/** The file extension of a dump for a compression format (and `.age` when encrypted). */
export function dumpExtension(format: "gzip" | "zstd" | "none", encrypted = false): string {
  const ext = format === "gzip" ? ".sql.gz" : format === "zstd" ? ".sql.zst" : ".sql";
  return encrypted ? ext + ENCRYPTED_SUFFIX : ext;
}

/** The key of the folder that holds every backup of one instance. */
export function instanceKey(hostname: string, instance: string): string {
  return `${encodeName(hostname)}/${encodeName(instance)}`;
}

/** The key of the folder that holds every backup of one database of an instance. */
export function databaseKey(hostname: string, instance: string, database: string): string {
  return `${instanceKey(hostname, instance)}/${storageName(database)}`;
}

/** The folder that holds every backup of one instance, below a local storage folder. */
export function instanceDir(storage: string, hostname: string, instance: string): string {
  return join(storage, encodeName(hostname), encodeName(instance));
}

/** Where the files of one backup are: storage keys, or paths (see {@linkcode localPaths}). */
export interface BackupPaths {
  /** Folder of the day (database) or of the instance (users). */
  dir: string;
  /** Common stem of the three files. */
  stem: string;
  /** The dump. */
  dump: string;
  /** `sha256sum`-format checksum file. */
  sha256: string;
  /** Metadata JSON. */
  metadata: string;
}

/** The keys of a backup of `database` started at `startedAt`. */
export function databaseBackupKeys(
  hostname: string,
  instance: string,
  database: string,
  startedAt: Date,
  format: "gzip" | "zstd" | "none",
  encrypted = false,
): BackupPaths {
  const day = startedAt.toISOString().slice(0, 10);
  const segment = storageName(database);
  const dir = `${instanceKey(hostname, instance)}/${segment}/${day}`;
  return withStem(dir, `${segment}_${stamp(startedAt)}`, format, encrypted);
}

/** The keys of a users backup of an instance started at `startedAt`. */
export function usersBackupKeys(
  hostname: string,
  instance: string,
  startedAt: Date,
  format: "gzip" | "zstd" | "none",
  encrypted = false,
): BackupPaths {
  return withStem(instanceKey(hostname, instance), `users_${stamp(startedAt)}`, format, encrypted);
}

/** Keys made into paths below a local storage folder. */
export function localPaths(storage: string, keys: BackupPaths): BackupPaths {
  const at = (key: string) => join(storage, ...key.split("/"));
  return {
    dir: at(keys.dir),
    stem: keys.stem,
    dump: at(keys.dump),
    sha256: at(keys.sha256),
    metadata: at(keys.metadata),
  };
}

/** Computes where a backup of `database` started at `startedAt` goes, below a local folder. */
export function databaseBackupPaths(
  storage: string,
  hostname: string,
  instance: string,
  database: string,
  startedAt: Date,
  format: "gzip" | "zstd" | "none",
): BackupPaths {
  return localPaths(
    storage,
    databaseBackupKeys(hostname, instance, database, startedAt, format),
  );
}

/** Computes where a users backup of an instance started at `startedAt` goes, below a folder. */
export function usersBackupPaths(
  storage: string,
  hostname: string,
  instance: string,
  startedAt: Date,
  format: "gzip" | "zstd" | "none",
): BackupPaths {
  return localPaths(storage, usersBackupKeys(hostname, instance, startedAt, format));
}

function withStem(
  dir: string,
  stem: string,
  format: "gzip" | "zstd" | "none",
  encrypted: boolean,
): BackupPaths {
  return {
    dir,
    stem,
    dump: `${dir}/${stem}${dumpExtension(format, encrypted)}`,
    sha256: `${dir}/${stem}.sha256`,
    metadata: `${dir}/${stem}.metadata.json`,
  };
}

/** What a file of a backup is, by its name. */
export type FileRole = "dump" | "sha256" | "metadata" | "partial";

/** A file name of this layout, split. */
export interface ParsedFileName {
  /** `{segment}_{stamp}`. */
  stem: string;
  /** The segment before the stamp (`users`, or a database's storage name). */
  name: string;
  /** The stamp's time. */
  at: Date;
  /** Which of a backup's files it is. */
  role: FileRole;
  /** The dump's compression (dump and partial only). */
  format?: "gzip" | "zstd" | "none";
  /** Whether the dump is age-encrypted, by its `.age` suffix (dump and partial only). */
  encrypted?: boolean;
}

const FILE_NAME =
  /^(.*)_(\d{8}T\d{6}Z)(\.sql(?:\.gz|\.zst)?(?:\.age)?(?:\.partial)?|\.sha256|\.metadata\.json)$/;

/**
 * Splits a file name of this layout (dump, `.sha256`, `.metadata.json`, or a dump's `.partial`);
 * undefined for any other name, which the catalog then never lists nor touches.
 */
export function parseFileName(fileName: string): ParsedFileName | undefined {
  const m = FILE_NAME.exec(fileName);
  if (!m || m[1] === "") return undefined;
  const at = parseStamp(m[2]);
  if (!at || stamp(at) !== m[2]) return undefined;
  const ext = m[3];
  const role: FileRole = ext.endsWith(".partial")
    ? "partial"
    : ext === ".sha256"
    ? "sha256"
    : ext === ".metadata.json"
    ? "metadata"
    : "dump";
  const format = ext.startsWith(".sql")
    ? (ext.includes(".gz") ? "gzip" : ext.includes(".zst") ? "zstd" : "none")
    : undefined;
  const encrypted = format ? ext.includes(ENCRYPTED_SUFFIX) : undefined;
  return { stem: `${m[1]}_${m[2]}`, name: m[1], at, role, format, encrypted };
}

/** Splits a file name of this layout into its stem and its timestamp (not `.partial`s). */
export function parseStem(fileName: string): { stem: string; name: string; at: Date } | undefined {
  const parsed = parseFileName(fileName);
  if (!parsed || parsed.role === "partial") return undefined;
  return { stem: parsed.stem, name: parsed.name, at: parsed.at };
}

/** The `.sha256` and metadata file names that go with a dump file name of this layout. */
export function sidecarNames(
  dumpFileName: string,
): { sha256: string; metadata: string } | undefined {
  const parsed = parseStem(dumpFileName);
  if (!parsed) return undefined;
  return { sha256: `${parsed.stem}.sha256`, metadata: `${parsed.stem}.metadata.json` };
}

/**
 * This machine's host name, or undefined when the run may not read it (`--allow-sys=hostname`
 * missing): commands that only read backups then look under every host folder.
 */
export function hostnameIfPermitted(): string | undefined {
  const state = Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state;
  return state === "granted" ? Deno.hostname() : undefined;
}
