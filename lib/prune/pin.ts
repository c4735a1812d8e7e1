/**
 * `pin` / `unpin`: marks one backup so retention never removes it (metadata `pinned`), or
 * clears the mark. The file must be one of this tool's backups in the configured storage: its
 * dump or one of its sidecars, named by the layout, in the place the layout puts it.
 *
 * @module
 */
import { RefusedError } from "../errors.ts";
import { type CatalogEntry, listCatalog } from "../storage/catalog.ts";
import { decodeName, parseFileName } from "../storage/layout.ts";
import { LocalStorage } from "../storage/local.ts";
import { type BackupMetadata, updateMetadata } from "../storage/metadata.ts";
import type { Storage } from "../storage/storage.ts";

/** What {@linkcode setPinned} did. */
export interface PinResult {
  /** The backup's dump (or, without one, its metadata), as the storage names it. */
  file: string;
  /** The metadata file changed. */
  metadataFile: string;
  /** False when the mark was already as asked (nothing written). */
  changed: boolean;
  /** The metadata as it is now. */
  metadata: BackupMetadata;
}

/**
 * Sets (`pinned` true) or clears the pin of the backup `file` names: a path in a local
 * storage, or a key of any storage. The caller holds the storage lock. Throws RefusedError
 * (exit 3) for anything that is not a backup of ours: a missing file, a file outside the
 * storage or outside the layout, or (to pin) a backup that is not good.
 */
export async function setPinned(
  storage: Storage,
  file: string,
  pinned: boolean,
): Promise<PinResult> {
  const entry = await findEntry(storage, file);
  if (!entry.keys.metadata || !entry.metadata) {
    throw new RefusedError(
      `${file}: ${
        entry.metadataProblem
          ? `its metadata is not valid (${entry.metadataProblem})`
          : "it has no metadata"
      }; only a backup with metadata can be ${pinned ? "pinned" : "unpinned"}`,
    );
  }
  if (pinned && entry.state !== "good") {
    throw new RefusedError(
      `${file}: not a good backup (${
        entry.problems[0] ?? entry.state
      }); only good backups are pinned`,
    );
  }
  const where = storage.locate(entry.keys.dump ?? entry.keys.metadata);
  if ((entry.metadata.pinned === true) === pinned) {
    return {
      file: where,
      metadataFile: storage.locate(entry.keys.metadata),
      changed: false,
      metadata: entry.metadata,
    };
  }
  const metadata = await updateMetadata(storage, entry.keys.metadata, (m) => {
    if (pinned) m.pinned = true;
    else delete m.pinned;
  });
  return {
    file: where,
    metadataFile: storage.locate(entry.keys.metadata),
    changed: true,
    metadata,
  };
}

/** The catalog entry `file` is a file of; RefusedError when there is none. */
async function findEntry(storage: Storage, file: string): Promise<CatalogEntry> {
  const key = storage instanceof LocalStorage
    ? storage.keyOf(file)
    : file.startsWith(`${storage.location}/`)
    ? file.slice(storage.location.length + 1)
    : file.replace(/^\/+/, "");
  if (key === undefined) {
    throw new RefusedError(`${file}: not inside the storage ${storage.location}`);
  }
  if (!(await storage.stat(key))) {
    throw new RefusedError(`${file}: no such file (or not a regular file)`);
  }
  const parsed = parseFileName(key.slice(key.lastIndexOf("/") + 1));
  const parts = key.split("/");
  if (!parsed || parsed.role === "partial" || parts.length < 3) {
    throw new RefusedError(
      `${file}: not a backup file of vya-backupdb (dump, .sha256 or .metadata.json)`,
    );
  }
  const entries = await listCatalog(storage, {
    hostname: decodeName(parts[0]),
    instance: decodeName(parts[1]),
  });
  const entry = entries.find((e) => Object.values(e.keys).includes(key));
  if (!entry) {
    throw new RefusedError(
      `${file}: not a backup of vya-backupdb's layout ({host}/{instance}/{database}/{day}/)`,
    );
  }
  return entry;
}
