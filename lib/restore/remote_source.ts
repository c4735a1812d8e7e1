/**
 * Restoring from a remote storage (S3): the chosen backup is downloaded into a private
 * temporary folder (0700, files 0600), hashed on the way and compared with its recorded SHA-256,
 * and only then handed to the restore as a local file; the folder is removed afterwards.
 *
 * Why a temporary file and not a verifying first pass over the network: the restore reads its
 * file twice (verify, then load; pg_restore needs a seekable file), and two downloads would
 * both double the transfer and leave the second one unverified — what is loaded is exactly the
 * bytes that were checked only if they are the same local bytes. The restore then checks them
 * again while loading. The cost is free space for one dump in the temporary folder ($TMPDIR,
 * else /tmp).
 *
 * @module
 */
import { join } from "node:path";
import { makeRestoreTempDir } from "./temp_dir.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type CatalogEntry, latestUsersEntry, listCatalog } from "../storage/catalog.ts";
import { keyBase, type Storage } from "../storage/storage.ts";
import { Sha256Stream } from "../stream/sha256.ts";
import { BadBackupError } from "./errors.ts";
import type { RestoreSource } from "./restore.ts";

/** A backup downloaded for a restore; dispose removes it. */
export interface DownloadedBackup extends AsyncDisposable {
  /** The local dump file (its `.sha256` and metadata beside it). */
  path: string;
  /** The entry it came from. */
  entry: CatalogEntry;
  /** The SHA-256 of the downloaded bytes (the recorded one). */
  sha256: string;
}

/**
 * Downloads a catalog entry's dump, `.sha256` and metadata into a fresh private folder and
 * verifies the dump against the metadata's SHA-256. Throws BadBackupError (nothing left
 * behind) when it does not match.
 */
export async function downloadEntry(
  storage: Storage,
  entry: CatalogEntry,
  signal?: AbortSignal,
): Promise<DownloadedBackup> {
  const expected = entry.metadata?.file?.sha256;
  if (!entry.keys.dump || !expected) {
    throw new BadBackupError(`${entry.paths.dump ?? entry.stem} is not a complete backup`);
  }
  const dir = await makeRestoreTempDir();
  const dispose = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    const path = join(dir, keyBase(entry.keys.dump));
    const hash = new Sha256Stream();
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    await (await storage.open(entry.keys.dump)).pipeThrough(hash).pipeTo(file.writable, {
      signal,
    });
    const actual = await hash.digest;
    if (actual !== expected) {
      throw new BadBackupError(
        `${entry.paths.dump}: checksum mismatch (metadata ${expected}, download ${actual}); ` +
          `the remote copy is damaged`,
      );
    }
    for (const key of [entry.keys.sha256, entry.keys.metadata]) {
      if (!key) continue;
      const data = await storage.readSmall(key);
      if (data) await Deno.writeFile(join(dir, keyBase(key)), data, { mode: 0o600 });
    }
    return { path, entry, sha256: actual, [Symbol.asyncDispose]: dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/**
 * The newest good backup of a database on a remote storage, downloaded and verified; a newer
 * one whose download does not verify is skipped and named, as `restore --latest` does locally.
 */
export async function downloadLatest(
  storage: Storage,
  query: { hostname: string; instance: string; database: string },
  log: Logger,
  signal?: AbortSignal,
): Promise<{ source: RestoreSource; download: DownloadedBackup }> {
  const entries = await listCatalog(storage, query);
  for (const entry of entries) {
    if (entry.state !== "good") continue;
    try {
      const download = await downloadEntry(storage, entry, signal);
      log.info(`using the backup of ${entry.started_at.toISOString()}: ${entry.paths.dump}`);
      const { path, sha256: verifiedSha256 } = download;
      return { source: { path, metadata: entry.metadata, verifiedSha256 }, download };
    } catch (e) {
      if (!(e instanceof BadBackupError)) throw e;
      log.warn(`skipped backup of ${entry.started_at.toISOString()}: ${e.message}`);
    }
  }
  throw new ConfigError(
    `no usable backup of ${query.database} on instance ${query.instance}` +
      (entries.length ? ` (${entries.length} found, none verifies)` : " (none found)"),
    { hint: `looked under ${storage.location}/${query.hostname}/${query.instance}` },
  );
}

/** The newest users backup of an instance on a remote storage, downloaded; undefined: none. */
export async function downloadLatestUsers(
  storage: Storage,
  hostname: string,
  instance: string,
  signal?: AbortSignal,
): Promise<DownloadedBackup | undefined> {
  const entry = await latestUsersEntry(storage, hostname, instance);
  return entry && await downloadEntry(storage, entry, signal);
}
