/**
 * Edits of stored backups for tests, through the storage layer as `pin` and `verify` do: aging
 * a database's backups (their metadata `started_at`), as if the nightly runs had stopped.
 *
 * @module
 */
import { listCatalog } from "../../lib/storage/catalog.ts";
import { LocalStorage } from "../../lib/storage/local.ts";
import { type BackupMetadata, updateMetadata } from "../../lib/storage/metadata.ts";

/**
 * Applies `change` to the metadata of every backup of `database` (users backups when undefined)
 * of `instance` under the storage root, under the storage lock. Returns how many changed.
 */
export async function editBackups(
  root: string,
  instance: string,
  database: string | undefined,
  change: (m: BackupMetadata) => void,
): Promise<number> {
  const storage = new LocalStorage(root);
  const lock = await storage.lock();
  try {
    const entries = await listCatalog(storage, {
      hostname: Deno.hostname(),
      instance,
      ...(database === undefined ? { kind: "users" as const } : { database }),
    });
    let n = 0;
    for (const e of entries) {
      if (!e.keys.metadata) continue;
      await updateMetadata(storage, e.keys.metadata, change);
      n++;
    }
    return n;
  } finally {
    await lock.release();
  }
}

/** Moves every backup of `database` `hours` into the past (started_at and finished_at). */
export function ageBackups(
  root: string,
  instance: string,
  database: string | undefined,
  hours: number,
): Promise<number> {
  return editBackups(root, instance, database, (m) => {
    const shift = hours * 3600_000;
    m.started_at = new Date(Date.parse(m.started_at) - shift).toISOString();
    m.finished_at = new Date(Date.parse(m.finished_at) - shift).toISOString();
  });
}
