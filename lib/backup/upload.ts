/**
 * Off-host copies: every backup committed locally is uploaded to `storage.remote` as the same
 * three objects under the same keys (dump, `.sha256`, metadata last), and confirmed before its
 * metadata is written, so a backup exists remotely only once it is whole there.
 *
 * A failed upload never touches the local backup: the item is reported failed (the error names
 * the remote) and the next run finds it again, since what is missing remotely is decided by
 * comparing the local catalog with the bucket's own listing ({@linkcode uploadPending}), never by
 * local state of what was sent.
 *
 * With `keep_local: false` nothing is uploaded after the fact: {@linkcode backupTargets} points
 * the run at the remote itself, and the backup writer streams each dump there (the upload
 * completes only once the dump is known good; the metadata, written last, makes it a backup).
 *
 * @module
 */
import type { StorageConfig } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { type CatalogEntry, listCatalog } from "../storage/catalog.ts";
import type { BackupPaths } from "../storage/layout.ts";
import { readMetadata } from "../storage/metadata.ts";
import { openRemoteStorage, openStorage, type RemoteCredentials } from "../storage/open.ts";
import { RemoteError, type S3Storage } from "../storage/s3.ts";
import type { Storage } from "../storage/storage.ts";
import { sha256Readable, Sha256Stream } from "../stream/sha256.ts";
import type { RetentionPolicy } from "../storage/retention.ts";
import { dueForUpload, policyGroup } from "../prune/pending.ts";
import type { BackupRequest, ItemResult } from "./run.ts";

/** The three keys of a backup (the same locally and remotely). */
export type BackupKeys = Pick<BackupPaths, "dump" | "sha256" | "metadata">;

/** How uploads behave. */
export interface UploadOptions {
  /** false: remove the local copy once the remote one is confirmed. */
  keepLocal: boolean;
  /** Logger. */
  log: Logger;
  /** Interrupts the upload: the multipart upload is aborted on the server. */
  signal?: AbortSignal;
}

/**
 * Uploads one committed local backup: the dump (streamed, hashed on the way and compared with
 * the recorded SHA-256), its `.sha256`, a HEAD confirming the size (and, before a local copy is
 * removed with `keepLocal` false, the whole object read back and re-hashed), then the metadata.
 * On failure the objects written are removed again where the remote still answers (a dump
 * without metadata is never a backup there) and a {@linkcode RemoteError} naming the remote is
 * thrown; the local files are never changed, except removed after success with `keepLocal`
 * false.
 */
export async function uploadBackup(
  local: Storage,
  remote: S3Storage,
  keys: BackupKeys,
  options: UploadOptions,
): Promise<void> {
  const meta = await readMetadata(local, keys.metadata);
  if (!meta || meta.status !== "ok" || !meta.file) {
    throw new Error(`${local.locate(keys.metadata)} is not the metadata of a good backup`);
  }
  const { bytes, sha256 } = meta.file;
  try {
    await sendDump(local, remote, keys.dump, { bytes, sha256 }, options.signal);
    await remote.writeAtomic(keys.sha256, await readAll(local, keys.sha256));
    // The HEAD confirms the size; its sha256 header is only what this upload stamped on it.
    const head = await remote.head(keys.dump);
    if (head?.size !== bytes || head.sha256 !== sha256) {
      throw new Error(
        `${remote.locate(keys.dump)} is not what was sent (size ${head?.size ?? "none"} of ` +
          `${bytes}, sha256 ${head?.sha256 ?? "none"})`,
      );
    }
    // Before the local copy goes, the remote one must prove itself byte for byte: read back.
    if (!options.keepLocal) {
      const stored = await sha256Readable(await remote.open(keys.dump));
      if (stored !== sha256) {
        throw new Error(
          `${remote.locate(keys.dump)} reads back with sha256 ${stored}, not ${sha256}: the ` +
            `remote copy is damaged`,
        );
      }
    }
    await remote.writeAtomic(keys.metadata, await readAll(local, keys.metadata));
  } catch (e) {
    await remote.remove(keys.sha256).catch(() => {});
    await remote.remove(keys.dump).catch(() => {});
    throw offHostError(remote, local.locate(keys.dump), e);
  }
  options.log.info(`uploaded ${remote.locate(keys.dump)}`);
  if (!options.keepLocal) {
    for (const key of [keys.dump, keys.sha256, keys.metadata]) await local.remove(key);
  }
}

async function sendDump(
  local: Storage,
  remote: S3Storage,
  key: string,
  { bytes, sha256 }: { bytes: number; sha256: string },
  signal?: AbortSignal,
): Promise<void> {
  const hash = new Sha256Stream();
  const writer = await remote.create(key, { expectedBytes: bytes, sha256 });
  try {
    await (await local.open(key)).pipeThrough(hash).pipeTo(writer.writable, { signal });
    // The local file is read once: what was sent is what was hashed.
    if ((await hash.digest) !== sha256) {
      throw new Error(`${local.locate(key)} no longer matches its recorded SHA-256`);
    }
    await writer.commit();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

async function readAll(storage: Storage, key: string): Promise<Uint8Array> {
  const data = await storage.readSmall(key);
  if (!data) throw new Error(`${storage.locate(key)} is missing`);
  return data;
}

/** The error of a failed off-host copy: names the remote and says the local copy is kept. */
function offHostError(remote: S3Storage, localPath: string, e: unknown): RemoteError {
  const reason = e instanceof Error ? e.message : String(e);
  return new RemoteError(
    redact(
      `off-host copy to ${remote.location} failed: ${reason}; the local backup ${localPath} ` +
        `is kept and will be uploaded by the next run`,
    ),
    e instanceof RemoteError ? e.status : undefined,
    { cause: e },
  );
}

/** A backup whose catch-up upload failed. */
export interface UploadFailure {
  /** The local catalog entry. */
  entry: CatalogEntry;
  /** Why (redacted, names the remote). */
  error: string;
}

/** The remote's policy of a database (without one: of an instance's users backups). */
export type RemotePolicyOf = (instance: string, database?: string) => RetentionPolicy | undefined;

/**
 * Uploads every good local backup of the instances that is still due on the remote (oldest
 * first, {@linkcode dueForUpload}): not good there, and kept by the remote's policy (`policy`)
 * applied to the remote's good backups plus these, so what a remote prune removed is not sent
 * again; without a policy, every one missing there. Compares the local catalog with the
 * remote's own listing. Returns the failures; throws nothing for a single backup.
 */
export async function uploadPending(
  local: Storage,
  remote: S3Storage,
  scope: { hostname: string; instances: string[]; policy?: RemotePolicyOf },
  options: UploadOptions,
): Promise<UploadFailure[]> {
  const failures: UploadFailure[] = [];
  const now = new Date();
  for (const instance of scope.instances) {
    const query = { hostname: scope.hostname, instance };
    const mine = (await listCatalog(local, query)).filter((e) => e.state === "good");
    if (mine.length === 0) continue;
    let theirs: CatalogEntry[];
    try {
      theirs = (await listCatalog(remote, query)).filter((e) => e.state === "good");
    } catch (e) {
      // One failure for the instance (its newest backup), not one per backup it holds.
      const error = offHostError(remote, local.locate(mine[0].keys.dump!), e).message;
      options.log.error(error, { instance });
      failures.push({ entry: mine[0], error });
      continue;
    }
    const due = new Set<CatalogEntry>();
    for (const [group, entries] of groupBy(mine, policyGroup)) {
      const database = entries[0].kind === "users" ? undefined : entries[0].database;
      const there = theirs.filter((e) => policyGroup(e) === group);
      const policy = scope.policy?.(instance, database);
      for (const e of dueForUpload(entries, there, policy, now)) due.add(e);
    }
    for (const entry of mine.reverse()) {
      if (!due.has(entry)) continue;
      const keys = {
        dump: entry.keys.dump!,
        sha256: entry.keys.sha256!,
        metadata: entry.keys.metadata!,
      };
      try {
        await uploadBackup(local, remote, keys, options);
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        options.log.error(error, { instance });
        failures.push({ entry, error });
      }
    }
  }
  return failures;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) out.set(key(t), [...(out.get(key(t)) ?? []), t]);
  return out;
}

/** The off-host copy of a backup run, as cmd/backup.ts wires it ({@linkcode backupTargets}). */
export interface OffHostCopies {
  /** The remote. */
  remote: S3Storage;
  /**
   * `keep_local: false`: each backup is streamed straight to the remote (dump → compression →
   * encryption → SHA-256 → multipart upload), with no local dump file; `afterCommit` is then
   * not used.
   */
  streamed: boolean;
  /** The hook of runBackup: uploads a database's backup right after its local commit. */
  afterCommit(keys: BackupKeys, signal?: AbortSignal): Promise<void>;
  /**
   * After the run: uploads what is still due remotely (users backups, and earlier runs'
   * failed uploads the remote's policy would keep; {@linkcode uploadPending}) and records each failure in `results` (the item of this run that made the
   * backup, else a new failed item).
   */
  catchUp(results: ItemResult[], hostname: string, instances: string[]): Promise<void>;
}

/** The off-host copies of `config.storage.remote`, or undefined when none is configured. */
export function offHostCopies(
  storage: Pick<StorageConfig, "path" | "remote" | "keep_local">,
  credentials: RemoteCredentials,
  log: Logger,
  policy?: RemotePolicyOf,
): OffHostCopies | undefined {
  const remote = openRemoteStorage(storage, credentials);
  if (!remote) return undefined;
  const local = openStorage(storage);
  const options = { keepLocal: storage.keep_local, log };
  return {
    remote,
    streamed: !storage.keep_local,
    afterCommit: (keys, signal) => uploadBackup(local, remote, keys, { ...options, signal }),
    async catchUp(results, hostname, instances) {
      const failures = await uploadPending(
        local,
        remote,
        { hostname, instances, policy },
        options,
      );
      for (const { entry, error } of failures) {
        const path = local.locate(entry.keys.dump!);
        const item = results.find((r) => r.path === path);
        if (item?.status === "failed") continue;
        if (item) Object.assign(item, { status: "failed", error });
        else {
          results.push({
            instance: entry.instance,
            database: entry.database ?? "(users)",
            status: "failed",
            path,
            error,
          });
        }
      }
    },
  };
}

/**
 * Where a backup run writes: the local folder, each backup uploaded after its local commit; or,
 * streamed (`keep_local: false`), the remote itself. Streamed, the local folder keeps the lock
 * (S3's lock object is best effort, and backups only add keys) and takes a failure record the
 * remote refuses, so a night whose remote was down is still on record.
 */
export function backupTargets(
  local: Storage,
  offHost?: OffHostCopies,
): Pick<BackupRequest, "storage" | "lockStorage" | "failureFallback" | "afterCommit"> {
  if (!offHost?.streamed) return { storage: local, afterCommit: offHost?.afterCommit };
  return { storage: offHost.remote, lockStorage: local, failureFallback: local };
}
