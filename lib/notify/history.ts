/**
 * What the alerts and the metrics need to know about earlier runs, behind one small interface:
 * the newest (good) backup of a database and how many are kept, read from the storage catalog.
 *
 * @module
 */
import { type CatalogEntry, listCatalog } from "../storage/catalog.ts";
import type { Storage } from "../storage/storage.ts";
import { USERS_ITEM } from "../users/backup.ts";

/** One recorded backup of a database (or of an instance's users). */
export interface HistoryEntry {
  /** When it started. */
  at: Date;
  /** ok only for a good catalog entry (metadata ok, dump and checksum there, size right). */
  status: "ok" | "failed";
  /** Bytes of the file. */
  bytes?: number;
  /** Uncompressed bytes. */
  raw_bytes?: number;
  /** Wall time. */
  duration_ms?: number;
  /** When it was last verified, if it ever was (metadata `verified_at`). */
  verified_at?: Date;
  /** Whether that verification passed (metadata `verify`). */
  verify_ok?: boolean;
}

/**
 * The backup history of one host's storage. `database` is a database name, or `(users)` for an
 * instance's users backups.
 */
export interface BackupHistory {
  /** Names with at least one recorded backup (good or failed), `(users)` included. */
  databases(instance: string): Promise<string[]>;
  /** The newest recorded backup, good or failed. */
  newest(instance: string, database: string): Promise<HistoryEntry | undefined>;
  /** The newest good backup. */
  newestGood(instance: string, database: string): Promise<HistoryEntry | undefined>;
  /** How many good backups are kept. */
  count(instance: string, database: string): Promise<number>;
}

function entryOf(e: CatalogEntry): HistoryEntry {
  const meta = e.metadata;
  const verifiedAt = meta?.verified_at ? new Date(meta.verified_at) : undefined;
  return {
    at: e.started_at,
    status: e.state === "good" ? "ok" : "failed",
    bytes: e.bytes ?? meta?.file?.bytes ?? undefined,
    raw_bytes: meta?.raw_bytes,
    duration_ms: meta?.duration_ms,
    ...(verifiedAt && !Number.isNaN(verifiedAt.getTime()) && {
      verified_at: verifiedAt,
      verify_ok: meta?.verify?.result === "ok",
    }),
  };
}

/** Where {@linkcode catalogHistory} reads when its storage cannot be listed. */
export interface HistoryFallback {
  /** The storage read instead (the local tree, which holds the failure records). */
  storage: Storage;
  /** Told once per instance why the first storage was not read. */
  onError(error: unknown, instance: string): void;
}

/**
 * {@linkcode BackupHistory} over the storage catalog (no checksum is computed). With a
 * fallback, a storage that cannot be listed (a remote that is down) is replaced by the
 * fallback's for that instance, so the metrics and alerts of the very night the remote fails
 * are still written.
 */
export function catalogHistory(
  storage: Storage,
  hostname: string,
  fallback?: HistoryFallback,
): BackupHistory {
  const cache = new Map<string, Promise<Map<string, HistoryEntry[]>>>();
  const load = (instance: string) => {
    let found = cache.get(instance);
    if (!found) {
      found = readInstance(storage, hostname, instance);
      if (fallback && fallback.storage !== storage) {
        found = found.catch((e) => {
          fallback.onError(e, instance);
          return readInstance(fallback.storage, hostname, instance);
        });
      }
      cache.set(instance, found);
    }
    return found;
  };
  return {
    async databases(instance) {
      return [...(await load(instance)).keys()];
    },
    async newest(instance, database) {
      return (await load(instance)).get(database)?.[0];
    },
    async newestGood(instance, database) {
      return (await load(instance)).get(database)?.find((e) => e.status === "ok");
    },
    async count(instance, database) {
      return (await load(instance)).get(database)?.filter((e) => e.status === "ok").length ?? 0;
    },
  };
}

/** Every backup of an instance by database name (`(users)` for users backups), newest first. */
async function readInstance(
  storage: Storage,
  hostname: string,
  instance: string,
): Promise<Map<string, HistoryEntry[]>> {
  const out = new Map<string, HistoryEntry[]>();
  for (const e of await listCatalog(storage, { hostname, instance })) {
    // Orphans and partials are no attempt of their own: the failure record or backup they
    // belonged to speaks for them.
    if (e.state === "orphan" || e.state === "partial") continue;
    const name = e.kind === "users" ? USERS_ITEM : e.database;
    if (name === undefined) continue;
    out.set(name, [...(out.get(name) ?? []), entryOf(e)]);
  }
  for (const list of out.values()) list.sort((a, b) => b.at.getTime() - a.at.getTime());
  return out;
}
