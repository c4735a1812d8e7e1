/**
 * The commit protocol of a backup, on any {@linkcode Storage}: the dump is written under a
 * temporary name and made durable; then its `.sha256`, then (through the caller) its metadata;
 * only then does the dump get its final name. A dump under its final name therefore always has
 * both sidecars, and a failure or crash at any point leaves nothing that looks complete (a
 * `.partial` at most, which the catalog reports and {@linkcode sweepPartials} removes).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { BackupPaths } from "./layout.ts";
import { parseFileName } from "./layout.ts";
import { readMetadata, sha256Line, writeMetadata } from "./metadata.ts";
import { type AtomicWriter, type CreateOptions, keyBase, type Storage } from "./storage.ts";

/** A backup's dump being written: fill {@linkcode BackupWriter.writable}, then commit. */
export interface BackupWriter {
  /** The keys of the backup's three files. */
  readonly keys: BackupPaths;
  /** Takes the dump's bytes (compressed as stored). */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Seals the dump, writes its `.sha256` (in `sha256sum` format), runs `beforeRename` (the
   * caller writes the metadata there), then gives the dump its final name. On failure the
   * `.sha256` is removed again and the error rethrown; call {@linkcode BackupWriter.abort}.
   */
  commit(sha256: string, beforeRename?: () => Promise<void>): Promise<void>;
  /** Discards the dump (no-op after commit). */
  abort(): Promise<void>;
}

/** Starts writing the dump of a backup whose files go to `keys`. */
export async function createBackupWriter(
  storage: Storage,
  keys: BackupPaths,
  options?: CreateOptions,
): Promise<BackupWriter> {
  const file: AtomicWriter = await storage.create(keys.dump, options);
  return {
    keys,
    writable: file.writable,
    commit: async (sha256, beforeRename) => {
      await file.seal();
      try {
        await storage.writeAtomic(keys.sha256, sha256Line(sha256, keyBase(keys.dump)));
        await beforeRename?.();
        await file.commit();
      } catch (e) {
        await storage.remove(keys.sha256).catch(() => {});
        throw e;
      }
    },
    abort: () => file.abort(),
  };
}

/**
 * Removes the `.partial` files that crashed runs left below `prefix` (the caller holds the
 * lock), and retracts the sidecars such a run may have written for them (see
 * {@linkcode retractSidecars}). Returns how many partial files were removed.
 */
export async function sweepPartials(
  storage: Storage,
  prefix: string,
  log: Logger,
): Promise<number> {
  let removed = 0;
  const partials: string[] = [];
  for await (const o of storage.list(prefix)) {
    // Only this tool's own partial names: a user's `x.partial` in the tree is not ours to remove.
    if (parseFileName(keyBase(o.key))?.role === "partial") partials.push(o.key);
  }
  for (const key of partials) {
    await storage.remove(key).catch(() => {});
    removed++;
    log.warn(`removed ${storage.locate(key)}, left by an interrupted run`);
    await retractSidecars(storage, key.slice(0, -".partial".length), log);
  }
  return removed;
}

/**
 * A run killed between writing a dump's sidecars and renaming the dump leaves a checksum and an
 * ok metadata without their dump: the metadata is turned into a failure record and the checksum
 * removed, so nothing claims a backup that does not exist.
 */
async function retractSidecars(storage: Storage, dumpKey: string, log: Logger): Promise<void> {
  const parsed = parseFileName(keyBase(dumpKey));
  if (!parsed || parsed.role !== "dump") return;
  if (await storage.exists(dumpKey).catch(() => true)) return;
  const dir = dumpKey.slice(0, dumpKey.length - keyBase(dumpKey).length);
  await storage.remove(`${dir}${parsed.stem}.sha256`).catch(() => {});
  const metaKey = `${dir}${parsed.stem}.metadata.json`;
  const meta = await readMetadata(storage, metaKey).catch(() => undefined);
  if (meta?.status !== "ok") return;
  Object.assign(meta, {
    status: "failed",
    file: null,
    error: "interrupted after its metadata was written, before the dump got its final name",
  });
  await writeMetadata(storage, metaKey, meta).catch((e) =>
    log.warn(`could not mark ${storage.locate(metaKey)} failed: ${(e as Error).message}`)
  );
}
