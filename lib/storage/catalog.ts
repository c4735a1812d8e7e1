/**
 * The catalog: every backup of an instance (its databases' and its users') as it lies in the
 * storage, read from what is there and nothing else: each stem of the layout with its files,
 * its metadata (validated) and a classification that prune, verify, info and restore share.
 *
 * - `good`: metadata says ok, dump and `.sha256` present, the dump's size the one recorded.
 * - `failed`: a metadata record of a failed backup (normally without a dump).
 * - `bad`: a dump is there but something is wrong (no or invalid metadata, no `.sha256`, a size
 *   that differs, metadata of another file).
 * - `orphan`: a `.sha256` or metadata without its dump (and not a failure record).
 * - `partial`: a `.partial` left by an interrupted write, without a dump.
 *
 * Only names of the layout's own pattern, in the place the layout puts them, are ever listed:
 * a user's file in the tree is invisible here, so nothing built on the catalog can touch it.
 * Time is the metadata's `started_at` (the file name's stamp without metadata), never an mtime.
 *
 * @module
 */
import { sha256Readable } from "../stream/sha256.ts";
import {
  databaseKey,
  decodeName,
  encodeName,
  type FileRole,
  instanceKey,
  parseFileName,
  sidecarNames,
  storageName,
} from "./layout.ts";
import { localFile } from "./local.ts";
import { type BackupMetadata, readMetadata, readMetadataChecked } from "./metadata.ts";
import { joinKey, keyBase, keyDir, type Storage } from "./storage.ts";

/** How a catalog entry stands (see the module documentation). */
export type EntryState = "good" | "failed" | "bad" | "orphan" | "partial";

/** The files of one entry, by role; absent when the file is not there. */
export type EntryFiles = Partial<Record<FileRole, string>>;

/** One backup (or what is left of one) in the storage. */
export interface CatalogEntry {
  /** A database's backup or an instance's users backup. */
  kind: "database" | "users";
  /** The host folder's name, decoded. */
  hostname: string;
  /** The instance id. */
  instance: string;
  /** The database (from the metadata, else decoded from its folder); absent for users. */
  database?: string;
  /** The common stem of its files, `{segment}_{YYYYMMDDTHHMMSSZ}`. */
  stem: string;
  /** When it started: the metadata's `started_at`, else the stamp of the file name. */
  started_at: Date;
  /** Its files as storage keys. */
  keys: EntryFiles;
  /** Its files as the storage names them (locally: absolute paths). */
  paths: EntryFiles;
  /** The metadata, when present and valid. */
  metadata?: BackupMetadata;
  /** Why the metadata file present is not valid metadata. */
  metadataProblem?: string;
  /** The metadata's status; "unknown" without (valid) metadata. */
  status: "ok" | "failed" | "unknown";
  /** The classification. */
  state: EntryState;
  /** Why it is not good (empty when good), first the one that decides. */
  problems: string[];
  /** Bytes of the dump, when there is one. */
  bytes?: number;
  /** Compression, from the metadata or the dump's name. */
  compression: "gzip" | "zstd" | "none";
  /** Whether the dump is age-encrypted (the metadata's `encryption`, else the `.age` name). */
  encrypted: boolean;
  /** Whether the metadata pins it (never removed by retention). */
  pinned: boolean;
}

/** What to list. */
export interface CatalogQuery {
  /** The host folder (the machine's host name). */
  hostname: string;
  /** Instance id. */
  instance: string;
  /** Only this database's backups (and no users backups). */
  database?: string;
  /** Only database or only users backups (default both; `database` implies "database"). */
  kind?: "database" | "users";
}

interface Found {
  kind: "database" | "users";
  folder?: string;
  stem: string;
  at: Date;
  keys: EntryFiles;
  sizes: Partial<Record<FileRole, number>>;
  format?: "gzip" | "zstd" | "none";
  encrypted?: boolean;
  /** Every dump-named file of the stem; the metadata decides which one is the backup's. */
  dumps: { key: string; size: number; format?: "gzip" | "zstd" | "none"; encrypted?: boolean }[];
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Lists the backups of an instance (or one database of it), newest first. Never follows a
 * symlink, never lists a file of another pattern or place.
 */
export async function listCatalog(storage: Storage, query: CatalogQuery): Promise<CatalogEntry[]> {
  const root = instanceKey(query.hostname, query.instance);
  const kind = query.database !== undefined ? "database" : query.kind;
  const prefix = query.database !== undefined
    ? databaseKey(query.hostname, query.instance, query.database)
    : root;
  const found = new Map<string, Found>();
  for await (const object of storage.list(prefix)) {
    const parts = object.key.slice(root.length + 1).split("/");
    const parsed = parseFileName(parts[parts.length - 1]);
    if (!parsed) continue;
    let entryKind: "database" | "users";
    if (parts.length === 1 && parsed.name === "users") entryKind = "users";
    else if (
      parts.length === 3 && parsed.name === parts[0] && DAY.test(parts[1]) &&
      parsed.at.toISOString().slice(0, 10) === parts[1]
    ) entryKind = "database";
    else continue;
    if (kind !== undefined && entryKind !== kind) continue;
    const id = `${parts.slice(0, -1).join("/")}/${parsed.stem}`;
    let entry = found.get(id);
    if (!entry) {
      const folder = parts.length === 3 ? parts[0] : undefined;
      entry = {
        kind: entryKind,
        folder,
        stem: parsed.stem,
        at: parsed.at,
        keys: {},
        sizes: {},
        dumps: [],
      };
      found.set(id, entry);
    }
    if (parsed.role === "dump") {
      entry.dumps.push({
        key: object.key,
        size: object.size,
        format: parsed.format,
        encrypted: parsed.encrypted,
      });
      continue;
    }
    if (entry.keys[parsed.role] !== undefined) continue;
    entry.keys[parsed.role] = object.key;
    entry.sizes[parsed.role] = object.size;
    if (parsed.role === "partial") {
      entry.format = parsed.format;
      entry.encrypted = parsed.encrypted;
    }
  }
  const entries: CatalogEntry[] = [];
  for (const item of found.values()) {
    const entry = await classify(storage, query, item);
    // A shortened folder name is shared only by a hash collision: the metadata decides.
    if (query.database !== undefined && entry.metadata?.database !== undefined) {
      if (entry.metadata.database !== query.database) continue;
    }
    entries.push(entry);
  }
  return entries.sort((a, b) =>
    b.started_at.getTime() - a.started_at.getTime() || (a.stem < b.stem ? 1 : -1)
  );
}

async function classify(storage: Storage, query: CatalogQuery, item: Found): Promise<CatalogEntry> {
  const read = item.keys.metadata
    ? await readMetadataChecked(storage, item.keys.metadata)
    : undefined;
  const metadata = read?.metadata;
  // Two dump names of one stem (.gz and .zst) cannot both be the backup: the one its metadata
  // names is; without that, the first by name, and the entry is not good.
  const dumps = item.dumps.sort((a, b) => (a.key < b.key ? -1 : 1));
  const named = dumps.find((d) => keyBase(d.key) === metadata?.file?.name) ?? dumps[0];
  if (named) {
    item.keys.dump = named.key;
    item.sizes.dump = named.size;
    item.format = named.format;
    item.encrypted = named.encrypted;
  }
  const paths: EntryFiles = {};
  for (const [role, key] of Object.entries(item.keys) as [FileRole, string][]) {
    paths[role] = storage.locate(key);
  }
  const problems: string[] = [];
  const dump = item.keys.dump;
  let state: EntryState;
  if (!dump) {
    if (item.keys.partial) {
      state = "partial";
      problems.push("unfinished write (.partial) left by an interrupted run");
    } else if (metadata?.status === "failed") {
      state = "failed";
      problems.push(`backup failed: ${metadata.error ?? "no reason recorded"}`);
    } else {
      state = "orphan";
      problems.push("dump file missing");
    }
  } else if (dumps.length > 1 && keyBase(named!.key) !== metadata?.file?.name) {
    state = "bad";
    problems.push("more than one dump file under this name");
  } else if (read?.problem) {
    state = "bad";
    problems.push(`metadata is not valid: ${read.problem}`);
  } else if (!metadata) {
    state = "bad";
    problems.push("no metadata beside the file");
  } else if (metadata.status === "failed") {
    // A dump beside a failure record (the run failed after its rename, e.g. on the folder's
    // fsync) is not a failure record to clean up: it is kept as bad, never removed by prune.
    state = "bad";
    problems.push(
      `a dump lies beside a failure record (${metadata.error ?? "no reason recorded"})`,
    );
  } else {
    state = "bad";
    const size = item.sizes.dump!;
    if (metadata.kind !== item.kind) {
      problems.push(`metadata is of a ${metadata.kind} backup`);
    } else if (
      item.kind === "database" && metadata.database !== undefined &&
      storageName(metadata.database) !== item.folder
    ) {
      problems.push(`metadata is of database ${metadata.database}, stored in another's folder`);
    } else if (!metadata.file || metadata.file.name !== keyBase(dump)) {
      problems.push("metadata names another file");
    } else if (metadata.file.bytes !== size) {
      problems.push(
        `size mismatch: the file has ${size} bytes, its metadata says ${metadata.file.bytes} ` +
          `(truncated or replaced)`,
      );
    } else if (!item.keys.sha256) {
      problems.push(".sha256 file missing");
    } else {
      state = "good";
    }
  }
  return {
    kind: item.kind,
    hostname: query.hostname,
    instance: query.instance,
    database: item.kind === "users"
      ? undefined
      : metadata?.database ?? (item.folder !== undefined ? decodeName(item.folder) : undefined),
    stem: item.stem,
    started_at: metadata ? new Date(metadata.started_at) : item.at,
    keys: item.keys,
    paths,
    metadata,
    metadataProblem: read?.problem,
    status: metadata ? metadata.status : "unknown",
    state,
    problems,
    bytes: item.sizes.dump,
    compression: metadata?.compression.format ?? item.format ?? "none",
    encrypted: metadata ? metadata.encryption !== undefined : item.encrypted === true,
    pinned: metadata?.pinned === true,
  };
}

/** The newest good entry (see {@linkcode CatalogEntry.state}); undefined when none is good. */
export function newestGood(entries: readonly CatalogEntry[]): CatalogEntry | undefined {
  let best: CatalogEntry | undefined;
  for (const e of entries) {
    if (e.state !== "good") continue;
    if (!best || e.started_at.getTime() > best.started_at.getTime()) best = e;
  }
  return best;
}

/** The result of checking an entry's file against its recorded checksum. */
export interface EntryCheck {
  /** Whether the backup is usable: good, and its SHA-256 the recorded one. */
  ok: boolean;
  /** "verified", or why not. */
  reason: string;
  /** The file's SHA-256, when it was computed. */
  sha256?: string;
}

/**
 * Checks an entry for restore: it must be good, and the SHA-256 of its dump (streamed through
 * the storage) must be the one in its metadata and in its `.sha256`.
 */
export async function checkEntry(storage: Storage, entry: CatalogEntry): Promise<EntryCheck> {
  if (entry.state !== "good") return { ok: false, reason: entry.problems[0] ?? entry.state };
  const actual = await sha256Readable(await storage.open(entry.keys.dump!));
  if (actual !== entry.metadata!.file!.sha256) {
    return { ok: false, reason: "checksum mismatch (file corrupted or truncated)", sha256: actual };
  }
  const recorded = await recordedSha256(sidecarsOf(storage, entry.keys.dump!)).catch(() =>
    undefined
  );
  if (recorded !== actual) {
    return { ok: false, reason: ".sha256 file disagrees with the metadata", sha256: actual };
  }
  return { ok: true, reason: "verified", sha256: actual };
}

/** The newest entry that checks (see {@linkcode checkEntry}), and the newer ones skipped. */
export async function pickLatest(
  storage: Storage,
  entries: readonly CatalogEntry[],
): Promise<{
  chosen?: CatalogEntry;
  sha256?: string;
  skipped: { entry: CatalogEntry; reason: string }[];
}> {
  const skipped: { entry: CatalogEntry; reason: string }[] = [];
  for (const entry of entries) {
    if (entry.state === "partial") continue;
    const check = await checkEntry(storage, entry);
    if (check.ok) return { chosen: entry, sha256: check.sha256, skipped };
    skipped.push({ entry, reason: check.reason });
  }
  return { skipped };
}

/** The host folders present in the storage (decoded), for listing without the host name. */
export async function listHosts(storage: Storage): Promise<string[]> {
  const hosts = await storage.folders("");
  return hosts.filter((h) => !h.startsWith(".")).map(decodeName).sort();
}

/** The instance folders of a host (decoded). */
export async function listInstances(storage: Storage, hostname: string): Promise<string[]> {
  const folders = await storage.folders(encodeName(hostname));
  return folders.filter((f) => !f.startsWith(".")).map(decodeName).sort();
}

/**
 * The newest users backup of an instance whose metadata says ok and whose dump is there (its
 * checksum is checked when it is read, so a damaged newest one is refused, not passed over).
 */
export async function latestUsersEntry(
  storage: Storage,
  hostname: string,
  instance: string,
): Promise<CatalogEntry | undefined> {
  const entries = await listCatalog(storage, { hostname, instance, kind: "users" });
  return entries.find((e) => e.keys.dump !== undefined && e.metadata?.status === "ok");
}

/** A backup file's sidecars, found by the layout's naming rule beside it. */
export interface Sidecars {
  /** The storage the file is in, and its key. */
  storage: Storage;
  /** The dump's key. */
  key: string;
  /** The `.sha256` key (for a name outside the layout: `<file>.sha256`). */
  sha256: string;
  /** The metadata key; undefined for a name outside the layout. */
  metadata?: string;
}

/** The sidecars of a dump `key` in `storage` (see {@linkcode Sidecars}). */
export function sidecarsOf(storage: Storage, key: string): Sidecars {
  const names = sidecarNames(keyBase(key));
  const dir = keyDir(key);
  return {
    storage,
    key,
    sha256: names ? joinKey(dir, names.sha256) : `${key}.sha256`,
    metadata: names ? joinKey(dir, names.metadata) : undefined,
  };
}

/** The sidecars of a local file the user named, anywhere. */
export function sidecarsOfFile(path: string): Sidecars {
  const { storage, key } = localFile(path);
  return sidecarsOf(storage, key);
}

/** The metadata beside a dump file of this tool's layout, if any (and valid). */
export async function metadataBeside(path: string): Promise<BackupMetadata | undefined> {
  const s = sidecarsOfFile(path);
  return s.metadata ? await readMetadata(s.storage, s.metadata) : undefined;
}

/** The hex digest a `.sha256` sidecar records; undefined when there is none. */
export async function recordedSha256(s: Sidecars): Promise<string | undefined> {
  const bytes = await s.storage.readSmall(s.sha256, 64 * 1024);
  if (bytes === undefined) return undefined;
  return new TextDecoder().decode(bytes).trim().split(/\s+/)[0]?.toLowerCase() ?? "";
}

/**
 * Removes the files of an entry in the order that keeps a crash safe: the `.partial` and the
 * dump first, then the `.sha256`, then the metadata last, so an interruption leaves an orphan the
 * next run finishes, never metadata of a dump that looks good. Only the entry's own keys (files
 * of the layout's pattern that the catalog listed) are removed. The caller holds the lock.
 */
export async function removeEntryFiles(storage: Storage, entry: CatalogEntry): Promise<void> {
  for (const role of ["partial", "dump", "sha256", "metadata"] as const) {
    const key = entry.keys[role];
    if (key !== undefined) await storage.remove(key);
  }
}
