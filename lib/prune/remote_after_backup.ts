/**
 * `prune: after_backup` on the remote copy (`storage.remote`): once a backup run's uploads are
 * over, each database whose backup AND upload succeeded in this run is pruned on the bucket, by
 * the remote's policy ({@linkcode remoteRetentionFor}), under the remote's lock, from the
 * bucket's own listing (no local state decides what exists remotely). A database whose backup
 * or upload failed tonight keeps everything remotely: the copies there may be all that is left.
 *
 * Run after the uploads rather than beside the local prune (right after each item): the users
 * backups are uploaded only at the end of the run, and one remote lock for the whole step costs
 * a few requests instead of a few per database.
 *
 * @module
 */
import type { ItemResult } from "../backup/run.ts";
import type { Config } from "../config/types.ts";
import { remoteRetentionFor } from "../config/retention.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import type { Storage } from "../storage/storage.ts";
import { USERS_ITEM } from "../users/backup.ts";
import { label, pruneDatabase, type PruneItem, pruneUsers } from "./run.ts";

/** What the remote step needs. */
export interface RemoteAfterBackupOptions {
  /** The effective configuration. */
  config: Config;
  /** The remote storage (its lock is taken here). */
  remote: Storage;
  /** The host folder. */
  hostname: string;
  /** The run's logger. */
  log: Logger;
}

/** What the remote step did. */
export interface RemoteAfterBackupResult {
  /** The prunes made. */
  pruned: PruneItem[];
  /** Lines for the run's report (`skipped`): skipped or failed remote prunes. */
  lines: string[];
}

/**
 * Prunes, on the remote, every database (and users backups) of `results` that succeeded, whose
 * remote policy says `prune: after_backup`. Never throws: a failure is a line of the result.
 */
export async function pruneRemoteAfterBackup(
  o: RemoteAfterBackupOptions,
  results: readonly ItemResult[],
): Promise<RemoteAfterBackupResult> {
  const out: RemoteAfterBackupResult = { pruned: [], lines: [] };
  const due = new Map<string, { instance: string; database?: string }>();
  const failed = new Set<string>();
  for (const r of results) {
    if (r.database === undefined || r.status === "planned") continue;
    const database = r.database === USERS_ITEM ? undefined : r.database;
    if (policyOf(o.config, r.instance, database)?.prune !== "after_backup") continue;
    const id = `${r.instance}\0${r.database}`;
    if (r.status === "failed") failed.add(id);
    else due.set(id, { instance: r.instance, database });
  }
  for (const id of failed) {
    const scope = due.get(id) ?? scopeOf(id);
    due.delete(id);
    const line = `remote retention skipped for ${
      label(scope)
    }: today's backup or its upload failed`;
    o.log.warn(line, { instance: scope.instance });
    out.lines.push(line);
  }
  if (due.size === 0) return out;
  let lock;
  try {
    lock = await o.remote.lock();
  } catch (e) {
    const line = `remote retention skipped: ${redact(e instanceof Error ? e.message : String(e))}`;
    o.log.warn(line);
    out.lines.push(line);
    return out;
  }
  try {
    for (const scope of due.values()) await pruneOne(o, scope, out);
  } finally {
    await lock.release();
  }
  return out;
}

async function pruneOne(
  o: RemoteAfterBackupOptions,
  scope: { instance: string; database?: string },
  out: RemoteAfterBackupResult,
): Promise<void> {
  const ctx = {
    config: o.config,
    storage: o.remote,
    hostname: o.hostname,
    log: o.log,
    policy: remoteRetentionFor,
  };
  try {
    const item = scope.database === undefined
      ? await pruneUsers(ctx, scope.instance)
      : await pruneDatabase(ctx, scope.instance, scope.database);
    out.pruned.push(item);
    if (item.status === "failed") {
      out.lines.push(`remote retention failed for ${label(scope)}: ${item.error}`);
      return;
    }
    const kept = item.decisions.filter((d) => d.action === "keep").length;
    o.log.info(`remote retention ${label(scope)}: ${kept} kept, ${item.removed} removed`, {
      instance: scope.instance,
    });
  } catch (e) {
    const message = redact(e instanceof Error ? e.message : String(e));
    o.log.error(`remote retention of ${label(scope)} failed: ${message}`, {
      instance: scope.instance,
    });
    out.lines.push(`remote retention failed for ${label(scope)}: ${message}`);
  }
}

function policyOf(config: Config, instance: string, database?: string) {
  try {
    return remoteRetentionFor(config, instance, database);
  } catch {
    return undefined; // an instance the configuration does not have: nothing to prune
  }
}

function scopeOf(id: string): { instance: string; database?: string } {
  const [instance, database] = id.split("\0");
  return { instance, database: database === USERS_ITEM ? undefined : database };
}
