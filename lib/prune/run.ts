/**
 * Applying retention to the storage: for each database folder (and each instance's users
 * backups) the catalog's entries are decided ({@linkcode planPrune}), the plan is checked
 * against the invariants, and each removed entry is checked once more, right before its files
 * go, against what is on disk then.
 *
 * Only catalog entries are ever removed (names of the layout's own pattern in the place the
 * layout puts them), file by file in the order {@linkcode removeEntryFiles} keeps crash-safe:
 * a kill at any point leaves at most an orphan, which the next prune removes.
 *
 * @module
 */
import type { Config, InstanceConfig, RetentionConfig } from "../config/types.ts";
import { retentionFor } from "../config/retention.ts";
import { type ErrorKind, kindOf, VyaError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { type CatalogEntry, listCatalog, removeEntryFiles } from "../storage/catalog.ts";
import { databaseKey, instanceKey, parseFileName } from "../storage/layout.ts";
import { readMetadata } from "../storage/metadata.ts";
import { keyBase, keyDir, type Storage } from "../storage/storage.ts";
import {
  assertPlanSafe,
  newestGoodTime,
  planPrune,
  type PruneDecision,
  removalRefusal,
} from "./plan.ts";
import { keepNotUploaded } from "./pending.ts";

/** One database's (or one instance's users') prune. */
export interface PruneItem {
  /** Instance id. */
  instance: string;
  /** Database name; absent for users backups. */
  database?: string;
  /** What was pruned. */
  kind: "database" | "users";
  /**
   * `ok` (done, or planned in a dry run), `failed` (nothing more of it removed after the
   * error), `no_policy` (no retention configured: nothing removed).
   */
  status: "ok" | "failed" | "no_policy";
  /** Every entry's verdict, newest first. */
  decisions: PruneDecision[];
  /** Entries whose files were removed (0 in a dry run). */
  removed: number;
  /** The storage pruned (`storage.location`: the folder, or `s3://bucket/prefix`). */
  location: string;
  /** Why it failed (redacted). */
  error?: string;
  /** The failure's kind (exit code). */
  errorKind?: ErrorKind;
}

/** Where and how to prune. */
export interface PruneContext {
  /** The effective configuration (policies). */
  config: Config;
  /** The storage; the caller holds its lock unless `dryRun`. */
  storage: Storage;
  /** The host folder. */
  hostname: string;
  /** Decide only; remove nothing. */
  dryRun?: boolean;
  /** Logger: one line per removed entry (debug) and per failure. */
  log: Logger;
  /** The time "future" is measured against (default: now). */
  now?: Date;
  /** Stops between entries. */
  signal?: AbortSignal;
  /**
   * The policy of a database (users backups: without one). Default {@linkcode retentionFor},
   * the local policy; the remote copy passes remoteRetentionFor.
   */
  policy?: PolicyLookup;
  /**
   * The remote copy of this local storage (`storage.remote` with `keep_local: true`): a good
   * backup still due there is kept, "not uploaded yet" ({@linkcode keepNotUploaded}).
   */
  uploadsTo?: Storage;
}

/** Where a prune finds the policy of a database (or, without one, of an instance's users). */
export type PolicyLookup = (
  config: Config,
  instance: string,
  database?: string,
) => RetentionConfig | undefined;

/** What {@linkcode pruneStorage} prunes. */
export interface PruneRequest extends PruneContext {
  /** These instances: each database folder in the storage, and the users backups. */
  instances: InstanceConfig[];
  /** Only this database (of the one instance; no users backups then). */
  database?: string;
}

/**
 * Prunes every database folder and the users backups of each instance (or one database) as
 * the configured policies say. Takes no lock: the caller holds it (see cmd/prune.ts, and the
 * backup run for after_backup).
 */
export async function pruneStorage(request: PruneRequest): Promise<PruneItem[]> {
  const items: PruneItem[] = [];
  for (const instance of request.instances) {
    if (request.database !== undefined) {
      items.push(await pruneDatabase(request, instance.id, request.database));
      continue;
    }
    const entries = await listCatalog(request.storage, {
      hostname: request.hostname,
      instance: instance.id,
    });
    for (const [database, group] of byDatabase(entries.filter((e) => e.kind === "database"))) {
      request.signal?.throwIfAborted();
      items.push(await pruneEntries(request, { instance: instance.id, database }, group));
    }
    items.push(await pruneUsers(request, instance.id));
  }
  return items;
}

/** Prunes one database of an instance as its policy says. */
export async function pruneDatabase(
  ctx: PruneContext,
  instance: string,
  database: string,
): Promise<PruneItem> {
  const entries = await listCatalog(ctx.storage, { hostname: ctx.hostname, instance, database });
  return await pruneEntries(ctx, { instance, database }, entries);
}

/** Prunes the users backups of an instance as the instance's policy says. */
export async function pruneUsers(ctx: PruneContext, instance: string): Promise<PruneItem> {
  const entries = await listCatalog(ctx.storage, {
    hostname: ctx.hostname,
    instance,
    kind: "users",
  });
  return await pruneEntries(ctx, { instance }, entries);
}

/** The catalog's database entries grouped by database folder, named from their metadata. */
function byDatabase(entries: CatalogEntry[]): Map<string, CatalogEntry[]> {
  const folders = new Map<string, CatalogEntry[]>();
  for (const e of entries) {
    const key = keyDir(keyDir(anyKey(e)));
    folders.set(key, [...(folders.get(key) ?? []), e]);
  }
  const out = new Map<string, CatalogEntry[]>();
  for (const group of folders.values()) {
    const name = group.find((e) => e.metadata?.database !== undefined)?.metadata?.database ??
      group[0].database ?? "";
    out.set(name, [...(out.get(name) ?? []), ...group]);
  }
  return out;
}

function anyKey(e: CatalogEntry): string {
  return (e.keys.dump ?? e.keys.metadata ?? e.keys.sha256 ?? e.keys.partial)!;
}

async function pruneEntries(
  ctx: PruneContext,
  scope: { instance: string; database?: string },
  entries: CatalogEntry[],
): Promise<PruneItem> {
  const item: PruneItem = {
    instance: scope.instance,
    database: scope.database,
    kind: scope.database === undefined ? "users" : "database",
    status: "ok",
    decisions: [],
    removed: 0,
    location: ctx.storage.location,
  };
  const policy = (ctx.policy ?? retentionFor)(ctx.config, scope.instance, scope.database);
  if (!policy) {
    item.status = "no_policy";
    item.decisions = entries.map((entry) => ({
      entry,
      action: "keep",
      reasons: ["no retention policy"],
    }));
    return item;
  }
  const now = ctx.now ?? new Date();
  try {
    item.decisions = planPrune(entries, policy, now);
    if (ctx.uploadsTo) {
      item.decisions = await keepNotUploaded(
        { config: ctx.config, remote: ctx.uploadsTo, hostname: ctx.hostname, log: ctx.log },
        { ...scope, label: label(scope) },
        item.decisions,
        now,
      );
    }
    assertPlanSafe(item.decisions, policy, now);
    if (!ctx.dryRun) await removePlanned(ctx, scope, item, now);
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    item.status = "failed";
    item.error = redact(e instanceof Error ? e.message : String(e));
    item.errorKind = kindOf(e);
    ctx.log.error(`prune of ${label(scope)} stopped: ${item.error}`, {
      instance: scope.instance,
    });
  }
  return item;
}

/** Removes the planned entries, oldest first, each checked again right before. */
async function removePlanned(
  ctx: PruneContext,
  scope: { instance: string; database?: string },
  item: PruneItem,
  now: Date,
): Promise<void> {
  const newest = newestGoodTime(item.decisions.map((d) => d.entry), now);
  const folder = scope.database === undefined
    ? instanceKey(ctx.hostname, scope.instance)
    : databaseKey(ctx.hostname, scope.instance, scope.database);
  for (const d of [...item.decisions].reverse()) {
    if (d.action !== "remove") continue;
    ctx.signal?.throwIfAborted();
    await recheck(ctx.storage, d.entry, folder, newest, now);
    await removeEntryFiles(ctx.storage, d.entry);
    item.removed++;
    ctx.log.debug(`removed ${d.entry.stem} (${d.reasons.join(", ") || "no rule keeps it"})`, {
      instance: scope.instance,
    });
  }
}

/**
 * The last look before an entry's files go: every key is of the layout's pattern, of this
 * entry's stem, in the place the layout puts it for this database (or the instance's users);
 * and its metadata as it is on disk now is not pinned and not dated after `now`.
 */
async function recheck(
  storage: Storage,
  entry: CatalogEntry,
  folder: string,
  newestGood: number,
  now: Date,
): Promise<void> {
  for (const key of Object.values(entry.keys)) {
    const parsed = parseFileName(keyBase(key));
    const dir = keyDir(key);
    const placed = entry.kind === "users"
      ? dir === folder
      : keyDir(dir) === folder && /^\d{4}-\d{2}-\d{2}$/.test(keyBase(dir));
    if (!parsed || parsed.stem !== entry.stem || !placed) {
      throw new VyaError(
        `refusing to remove ${storage.locate(key)}: not a file of this entry`,
        "failed",
      );
    }
  }
  const refusal = removalRefusal(entry, newestGood, now);
  if (refusal) throw new VyaError(`refusing to remove ${entry.stem}: ${refusal}`, "failed");
  if (entry.keys.metadata === undefined) return;
  const current = await readMetadata(storage, entry.keys.metadata);
  if (current?.pinned === true) {
    throw new VyaError(`refusing to remove ${entry.stem}: it was pinned meanwhile`, "failed");
  }
  if (current && Date.parse(current.started_at) > now.getTime()) {
    throw new VyaError(`refusing to remove ${entry.stem}: it is dated in the future`, "failed");
  }
}

/** `inst/db`, or `inst (users)`. */
export function label(scope: { instance: string; database?: string }): string {
  return scope.database === undefined
    ? `${scope.instance} (users)`
    : `${scope.instance}/${scope.database}`;
}
