/**
 * `info`: the state of every configured database's backups (and each instance's users backups),
 * read from the storage catalog alone: no server, no network, no credential. The report is the
 * documented JSON shape of `info --json` (README "Info"); {@linkcode INFO_FORMAT_VERSION} changes
 * only when a key changes meaning or goes away.
 *
 * @module
 */
import type { Config, InstanceConfig } from "../config/types.ts";
import { type CatalogEntry, listCatalog } from "../storage/catalog.ts";
import type { Storage } from "../storage/storage.ts";
import { configuredDatabases, type Freshness, judgeFreshness } from "./freshness.ts";

/** Version of the `info --json` shape. */
export const INFO_FORMAT_VERSION = 1;

/** A backup named in the report. */
export interface InfoBackupRef {
  /** ISO-8601 UTC (the metadata's `started_at`). */
  started_at: string;
  /** The dump (or, without one, the metadata) as the storage names it; null when neither. */
  file: string | null;
}

/** The newest good backup of an item. */
export interface InfoNewestGood extends InfoBackupRef {
  /** Whole seconds since it started. */
  age_seconds: number;
  /** Bytes of the file. */
  bytes: number | null;
  /** Bytes of uncompressed dump. */
  raw_bytes: number | null;
  /** Compression of the file. */
  compression: "gzip" | "zstd" | "none";
  /** How long the backup took. */
  duration_ms: number | null;
  /** The last verification recorded in its metadata; null when never verified. */
  verify: {
    result: "ok" | "failed";
    kind: "checksum" | "restore";
    verified_at: string;
    error: string | null;
  } | null;
}

/** A failure or something wrong in the storage. */
export interface InfoProblem extends InfoBackupRef {
  /** The catalog's classification. */
  state: "failed" | "bad" | "orphan" | "partial";
  /** Why (a failure record's recorded error, or what is wrong with the files). */
  error: string;
}

/** One database of an instance, or the instance's users backups. */
export interface InfoItem {
  /** A database's backups, or the instance's users backups. */
  kind: "database" | "users";
  /** The database; null for users backups. */
  database: string | null;
  /** How it stands against `alerts.max_age` (see README "Info"). */
  status: Freshness;
  /** The newest good backup; null when there is none. */
  newest_good: InfoNewestGood | null;
  /** The oldest good backup kept; null when there is none. */
  oldest_good: InfoBackupRef | null;
  /** How many good backups are kept. */
  good_count: number;
  /** The newest failed attempt, only when it is newer than the newest good backup. */
  newest_failure: InfoProblem | null;
  /** Pinned backups, newest first. */
  pinned: InfoBackupRef[];
  /** Bad entries, orphaned sidecars and unfinished writes, newest first. */
  problems: InfoProblem[];
}

/** One instance. */
export interface InfoInstance {
  /** Instance id. */
  instance: string;
  /** Engine type from the configuration. */
  type: string;
  /** The worst status of its items; `never` when no database of it is known at all. */
  status: Freshness;
  /** Its databases (sorted by name), then its users backups. */
  items: InfoItem[];
}

/** The whole `info` report. */
export interface InfoReport {
  /** {@linkcode INFO_FORMAT_VERSION}. */
  format_version: number;
  /** When the report was made (ISO-8601 UTC): ages are counted from here. */
  generated_at: string;
  /** The host folders read. */
  hosts: string[];
  /** `alerts.max_age` in seconds. */
  max_age_seconds: number;
  /** The instances asked for. */
  instances: InfoInstance[];
}

/** What to report on. */
export interface InfoRequest {
  /** The effective configuration. */
  config: Config;
  /** The storage. */
  storage: Storage;
  /** The host folders to read (the machine's own, or every one found). */
  hosts: string[];
  /** The instances (enabled ones, or the one asked for). */
  instances: InstanceConfig[];
  /** Only this database (and no users backups). */
  database?: string;
  /** Ages are counted from here. */
  now?: Date;
}

const ORDER: readonly Freshness[] = ["fresh", "failed", "stale", "never"];

/** The worse of statuses (`fresh` for none). */
export function worstFreshness(all: Iterable<Freshness>): Freshness {
  let worst: Freshness = "fresh";
  for (const f of all) if (ORDER.indexOf(f) > ORDER.indexOf(worst)) worst = f;
  return worst;
}

/** Builds the report from the storage catalog. Reads files only. */
export async function buildInfo(req: InfoRequest): Promise<InfoReport> {
  const now = req.now ?? new Date();
  const instances: InfoInstance[] = [];
  for (const inst of req.instances) {
    const entries: CatalogEntry[] = [];
    for (const hostname of req.hosts) {
      entries.push(
        ...await listCatalog(req.storage, {
          hostname,
          instance: inst.id,
          database: req.database,
        }),
      );
    }
    entries.sort((a, b) => b.started_at.getTime() - a.started_at.getTime());
    instances.push(instanceInfo(req, inst, entries, now));
  }
  return {
    format_version: INFO_FORMAT_VERSION,
    generated_at: now.toISOString(),
    hosts: req.hosts,
    max_age_seconds: req.config.alerts.max_age,
    instances,
  };
}

function instanceInfo(
  req: InfoRequest,
  inst: InstanceConfig,
  entries: CatalogEntry[],
  now: Date,
): InfoInstance {
  const byDatabase = new Map<string, CatalogEntry[]>();
  const users: CatalogEntry[] = [];
  for (const e of entries) {
    if (e.kind === "users") users.push(e);
    else if (e.database !== undefined) {
      byDatabase.set(e.database, [...(byDatabase.get(e.database) ?? []), e]);
    }
  }
  // --database asks about that one name whatever the selection says; otherwise the
  // configured ones (see configuredDatabases).
  const names = req.database !== undefined
    ? [req.database]
    : configuredDatabases(inst, byDatabase.keys());
  const max = req.config.alerts.max_age;
  const items = names.map((name) =>
    itemInfo("database", name, byDatabase.get(name) ?? [], now, max)
  );
  const databasesKnown = items.length > 0;
  if (req.database === undefined && inst.users.backup) {
    items.push(itemInfo("users", null, users, now, max));
  }
  return {
    instance: inst.id,
    type: inst.type,
    status: databasesKnown ? worstFreshness(items.map((i) => i.status)) : "never",
    items,
  };
}

const ref = (e: CatalogEntry): InfoBackupRef => ({
  started_at: e.started_at.toISOString(),
  file: e.paths.dump ?? e.paths.metadata ?? e.paths.partial ?? e.paths.sha256 ?? null,
});

const problemOf = (e: CatalogEntry): InfoProblem => ({
  ...ref(e),
  state: e.state as InfoProblem["state"],
  error: e.state === "failed"
    ? (e.metadata?.error ?? "no reason recorded")
    : (e.problems[0] ?? e.state),
});

/** One item from its entries (newest first). */
function itemInfo(
  kind: "database" | "users",
  database: string | null,
  entries: CatalogEntry[],
  now: Date,
  maxAge: number,
): InfoItem {
  const good = entries.filter((e) => e.state === "good");
  // Orphans and partials are no attempt of their own (as for the alerts' history).
  const attempt = entries.find((e) =>
    e.state === "good" || e.state === "failed" || e.state === "bad"
  );
  const newest = good[0];
  const verdict = judgeFreshness(
    {
      newestGoodAt: newest?.started_at,
      newestAttemptAt: attempt?.started_at,
      newestAttemptOk: attempt ? attempt.state === "good" : undefined,
    },
    now,
    maxAge,
  );
  const failure = attempt && attempt.state !== "good" &&
      (!newest || attempt.started_at.getTime() > newest.started_at.getTime())
    ? problemOf(attempt)
    : null;
  return {
    kind,
    database,
    status: verdict.freshness,
    newest_good: newest ? newestGoodInfo(newest, verdict.age_seconds!) : null,
    oldest_good: good.length ? ref(good[good.length - 1]) : null,
    good_count: good.length,
    newest_failure: failure,
    pinned: entries.filter((e) => e.pinned).map(ref),
    problems: entries.filter((e) => e.state !== "good" && e.state !== "failed").map(problemOf),
  };
}

function newestGoodInfo(e: CatalogEntry, age: number): InfoNewestGood {
  const m = e.metadata!;
  return {
    ...ref(e),
    age_seconds: age,
    bytes: e.bytes ?? null,
    raw_bytes: m.raw_bytes ?? null,
    compression: e.compression,
    duration_ms: m.duration_ms ?? null,
    verify: m.verify && m.verified_at
      ? {
        result: m.verify.result,
        kind: m.verify.kind,
        verified_at: m.verified_at,
        error: m.verify.error ?? null,
      }
      : null,
  };
}
