/**
 * What the alerts and the metrics need to know about earlier runs, behind one small interface:
 * the newest (good) backup of a database and how many are kept. Implemented here over the
 * storage listing of lib/restore/catalog.ts; a storage catalog can implement the same
 * interface and be passed instead.
 *
 * @module
 */
import { join } from "node:path";
import { instanceDir, parseStem } from "../backup/layout.ts";
import { type BackupMetadata, readMetadata } from "../backup/metadata.ts";
import { listBackups } from "../restore/catalog.ts";
import { USERS_ITEM } from "../users/backup.ts";

/** One recorded backup of a database (or of an instance's users). */
export interface HistoryEntry {
  /** When it started. */
  at: Date;
  /** ok only when the metadata says so and the dump file is there. */
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

/** Reads the optional verify fields whatever shape the verifier settles on. */
function verifyOf(
  meta: BackupMetadata | undefined,
): Pick<HistoryEntry, "verified_at" | "verify_ok"> {
  const at = meta?.verified_at;
  if (typeof at !== "string" || Number.isNaN(Date.parse(at))) return {};
  const v = meta!.verify as unknown;
  const status = typeof v === "object" && v !== null
    ? (v as { status?: unknown; ok?: unknown }).status ?? (v as { ok?: unknown }).ok
    : v;
  return { verified_at: new Date(at), verify_ok: status === true || status === "ok" };
}

function entryOf(
  at: Date,
  meta: BackupMetadata | undefined,
  dumpPresent: boolean,
  bytes?: number,
): HistoryEntry {
  return {
    at,
    status: meta?.status === "ok" && dumpPresent ? "ok" : "failed",
    bytes: bytes ?? meta?.file?.bytes,
    raw_bytes: meta?.raw_bytes,
    duration_ms: meta?.duration_ms,
    ...verifyOf(meta),
  };
}

/** {@linkcode BackupHistory} over the storage layout (no checksum is computed). */
export function catalogHistory(storage: string, hostname: string): BackupHistory {
  const cache = new Map<string, Promise<Map<string, HistoryEntry[]>>>();
  const load = (instance: string) => {
    let found = cache.get(instance);
    if (!found) {
      found = readInstance(storage, hostname, instance);
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

/** Every backup of an instance by database name, newest first. */
async function readInstance(
  storage: string,
  hostname: string,
  instance: string,
): Promise<Map<string, HistoryEntry[]>> {
  const out = new Map<string, HistoryEntry[]>();
  const add = (name: string, e: HistoryEntry) => out.set(name, [...(out.get(name) ?? []), e]);
  for (const b of await listBackups(storage, hostname, instance)) {
    add(b.database, entryOf(b.at, b.metadata, b.dump !== undefined, b.bytes));
  }
  // Users backups lie in the instance folder itself.
  const dir = instanceDir(storage, hostname, instance);
  const users: HistoryEntry[] = [];
  try {
    const names = new Set<string>();
    for await (const f of Deno.readDir(dir)) if (f.isFile) names.add(f.name);
    for (const name of names) {
      const parsed = parseStem(name);
      if (!parsed || parsed.name !== "users" || !name.endsWith(".metadata.json")) continue;
      const meta = await readMetadata(join(dir, name));
      if (meta?.kind !== "users") continue;
      const dump = meta.file?.name;
      users.push(entryOf(parsed.at, meta, dump !== undefined && names.has(dump)));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (users.length) out.set(USERS_ITEM, users.sort((a, b) => b.at.getTime() - a.at.getTime()));
  for (const list of out.values()) list.sort((a, b) => b.at.getTime() - a.at.getTime());
  return out;
}
