/**
 * The backups of an instance as they lie in the storage layout (see lib/backup/layout.ts):
 * listed newest first with their metadata, checked against their checksums, and the newest
 * good one picked for `--latest`.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { decodeName, instanceDir, parseStem, storageName } from "../backup/layout.ts";
import { type BackupMetadata, readMetadata } from "../backup/metadata.ts";
import { sha256File } from "../stream/sha256.ts";

/** One backup found in storage. */
export interface BackupEntry {
  /** Database name (decoded from its folder). */
  database: string;
  /** When it started (from the file name). */
  at: Date;
  /** The dump file; undefined when only metadata exists (a failed backup). */
  dump?: string;
  /** The metadata file path (may not exist). */
  metadataPath: string;
  /** The metadata, when readable. */
  metadata?: BackupMetadata;
  /** "ok" or "failed" from the metadata; "unknown" without metadata. */
  status: "ok" | "failed" | "unknown";
  /** Bytes of the dump file. */
  bytes?: number;
  /** Compression format, from the metadata or the file name. */
  compression: string;
}

/** The result of checking an entry's file against its recorded checksum. */
export interface EntryCheck {
  /** Whether the backup is usable: status ok, file present, checksum matches. */
  ok: boolean;
  /** "verified", or why not. */
  reason: string;
}

async function dirs(path: string): Promise<string[]> {
  try {
    const out: string[] = [];
    for await (const e of Deno.readDir(path)) if (e.isDirectory) out.push(e.name);
    return out.sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/**
 * Lists the backups of `database` (or of every database) of an instance, newest first.
 */
export async function listBackups(
  storage: string,
  hostname: string,
  instance: string,
  database?: string,
): Promise<BackupEntry[]> {
  const root = instanceDir(storage, hostname, instance);
  const dbDirs = database === undefined ? await dirs(root) : [storageName(database)];
  const entries: BackupEntry[] = [];
  for (const dbDir of dbDirs) {
    const name = decodeName(dbDir);
    for (const day of await dirs(join(root, dbDir))) {
      const folder = join(root, dbDir, day);
      const stems = new Map<string, { at: Date; dump?: string; meta?: string }>();
      for await (const f of Deno.readDir(folder)) {
        if (!f.isFile) continue;
        const parsed = parseStem(f.name);
        if (!parsed) continue;
        const item = stems.get(parsed.stem) ?? { at: parsed.at };
        if (f.name.endsWith(".metadata.json")) item.meta = join(folder, f.name);
        else if (/\.sql(\.gz|\.zst)?$/.test(f.name)) item.dump = join(folder, f.name);
        stems.set(parsed.stem, item);
      }
      for (const [stem, item] of stems) {
        const metadataPath = item.meta ?? join(folder, stem + ".metadata.json");
        const metadata = item.meta ? await readMetadata(item.meta) : undefined;
        // A shortened folder name is shared only by a hash collision: the metadata decides.
        if (database !== undefined && metadata?.database !== undefined) {
          if (metadata.database !== database) continue;
        }
        const bytes = item.dump ? (await Deno.stat(item.dump)).size : undefined;
        entries.push({
          database: metadata?.database ?? name,
          at: metadata?.started_at ? new Date(metadata.started_at) : item.at,
          dump: item.dump,
          metadataPath,
          metadata,
          status: metadata ? (metadata.status === "ok" ? "ok" : "failed") : "unknown",
          bytes,
          compression: metadata?.compression.format ??
            (item.dump?.endsWith(".gz") ? "gzip" : item.dump?.endsWith(".zst") ? "zstd" : "none"),
        });
      }
    }
  }
  return entries.sort((a, b) => b.at.getTime() - a.at.getTime());
}

/** Checks an entry: metadata ok, file present, SHA-256 (streamed) equal to the recorded one. */
export async function checkEntry(entry: BackupEntry): Promise<EntryCheck> {
  if (!entry.metadata) return { ok: false, reason: "no metadata beside the file" };
  if (entry.metadata.status !== "ok") {
    return { ok: false, reason: `backup failed: ${entry.metadata.error ?? "no reason recorded"}` };
  }
  if (!entry.dump || !entry.metadata.file) return { ok: false, reason: "dump file missing" };
  const actual = await sha256File(entry.dump);
  if (actual !== entry.metadata.file.sha256) {
    return { ok: false, reason: "checksum mismatch (file corrupted or truncated)" };
  }
  const line = await Deno.readTextFile(join(
    dirname(entry.dump),
    basename(entry.dump)
      .replace(/\.sql(\.gz|\.zst)?$/, ".sha256"),
  )).catch(() => undefined);
  if (line !== undefined && !line.startsWith(actual)) {
    return { ok: false, reason: ".sha256 file disagrees with the metadata" };
  }
  return { ok: true, reason: "verified" };
}

/** The newest usable backup, and the newer ones skipped with the reason. */
export async function pickLatest(
  entries: BackupEntry[],
): Promise<{ chosen?: BackupEntry; skipped: { entry: BackupEntry; reason: string }[] }> {
  const skipped: { entry: BackupEntry; reason: string }[] = [];
  for (const entry of entries) {
    const check = await checkEntry(entry);
    if (check.ok) return { chosen: entry, skipped };
    skipped.push({ entry, reason: check.reason });
  }
  return { skipped };
}
