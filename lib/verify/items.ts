/**
 * Which backups a verification reads: per database the newest one that claims to be a backup
 * (`latest`, the default), every one (`all`), or a file the user names. Built on the catalog;
 * users backups are not verified here (they are no database dump).
 *
 * The newest is taken even when it is broken (a dump deleted beside its metadata, a size that
 * differs): that is the backup a restore would want, and its failure is the finding, so it is
 * never passed over for an older one that verifies.
 *
 * @module
 */
import { resolve } from "node:path";
import { type CatalogEntry, listCatalog, sidecarsOf } from "../storage/catalog.ts";
import { localFile, LocalStorage } from "../storage/local.ts";
import { type BackupMetadata, readMetadataChecked } from "../storage/metadata.ts";
import type { Storage } from "../storage/storage.ts";
import { parseStem } from "../storage/layout.ts";

/** One backup to verify, wherever it came from. */
export interface VerifyItem {
  /** Instance id (from the metadata or the catalog; the --instance given for a bare file). */
  instance?: string;
  /** Database backed up. */
  database?: string;
  /** When the backup started. */
  startedAt?: Date;
  /** `YYYYMMDDTHHMMSSZ` of its file name. */
  stamp?: string;
  /** The storage holding its files. */
  storage: Storage;
  /** The dump's key; undefined when the dump is missing. */
  dumpKey?: string;
  /** What the file is called for the user (path of the dump, else of the metadata). */
  label: string;
  /** The `.sha256` key. */
  sha256Key: string;
  /** The metadata key, when there is (or should be) metadata. */
  metadataKey?: string;
  /** The valid metadata. */
  metadata?: BackupMetadata;
  /** Why the metadata file present is not valid. */
  metadataProblem?: string;
  /** Whether its result may be recorded in its metadata (a file in the configured storage). */
  recordable: boolean;
  /** The catalog entry it was made of (what a remote backup is downloaded by). */
  entry?: CatalogEntry;
}

/** Whether a catalog entry is a backup attempt worth verifying (not a failure record). */
function claimsBackup(e: CatalogEntry): boolean {
  if (e.state === "partial" || e.status === "failed") return false;
  return e.metadata !== undefined || e.keys.dump !== undefined;
}

/** A catalog entry as an item. */
export function itemOfEntry(storage: Storage, e: CatalogEntry): VerifyItem {
  const anyKey = e.keys.dump ?? e.keys.metadata ?? e.keys.sha256!;
  const side = sidecarsOf(storage, e.keys.dump ?? anyKey);
  return {
    instance: e.instance,
    database: e.database,
    startedAt: e.started_at,
    stamp: e.stem.slice(-16),
    storage,
    dumpKey: e.keys.dump,
    label: e.paths.dump ?? e.paths.metadata ?? e.paths.sha256 ?? anyKey,
    sha256Key: e.keys.sha256 ?? side.sha256,
    metadataKey: e.keys.metadata ?? side.metadata,
    metadata: e.metadata,
    metadataProblem: e.metadataProblem,
    recordable: true,
    entry: e,
  };
}

/** What to select from the storage. */
export interface Selection {
  /** Host folder. */
  hostname: string;
  /** Instances. */
  instances: string[];
  /** Only this database. */
  database?: string;
  /** Every backup, not only each database's newest. */
  all?: boolean;
}

/** The backups to verify, per instance and database, newest first. */
export async function selectItems(storage: Storage, s: Selection): Promise<VerifyItem[]> {
  const items: VerifyItem[] = [];
  for (const instance of s.instances) {
    const entries = (await listCatalog(storage, {
      hostname: s.hostname,
      instance,
      database: s.database,
      kind: "database",
    })).filter(claimsBackup);
    const seen = new Set<string>();
    for (const e of entries) {
      const db = e.database ?? "";
      if (!s.all && seen.has(db)) continue;
      seen.add(db);
      items.push(itemOfEntry(storage, e));
    }
  }
  return items;
}

/**
 * A file the user names. Inside the configured (local) storage its result is recorded beside
 * it; elsewhere it is verified but nothing is written.
 */
export async function itemOfFile(path: string, configured: Storage): Promise<VerifyItem> {
  const abs = resolve(path);
  const key = configured instanceof LocalStorage ? configured.keyOf(abs) : undefined;
  const where = key !== undefined ? { storage: configured, key } : localFile(abs);
  const side = sidecarsOf(where.storage, where.key);
  const read = side.metadata ? await readMetadataChecked(where.storage, side.metadata) : undefined;
  const parsed = parseStem(where.key.split("/").pop()!);
  return {
    instance: read?.metadata?.instance,
    database: read?.metadata?.database,
    startedAt: read?.metadata ? new Date(read.metadata.started_at) : parsed?.at,
    stamp: parsed?.stem.slice(-16),
    storage: where.storage,
    dumpKey: where.key,
    label: abs,
    sha256Key: side.sha256,
    metadataKey: read ? side.metadata : undefined,
    metadata: read?.metadata,
    metadataProblem: read?.problem,
    recordable: key !== undefined && read?.metadata !== undefined,
  };
}
