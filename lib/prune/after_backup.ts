/**
 * `prune: after_backup`: inside a backup run, under the lock the run already holds, a database
 * is pruned right after its own backup of this run succeeded, and only then. When it failed,
 * nothing of it is deleted (the backups that exist are all there is until the server is back)
 * and the run says so in its log and its report's `skipped` list. Users backups likewise, per
 * instance.
 *
 * @module
 */
import type { ItemResult } from "../backup/run.ts";
import type { Config } from "../config/types.ts";
import { retentionFor } from "../config/retention.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import type { Storage } from "../storage/storage.ts";
import { USERS_ITEM } from "../users/backup.ts";
import { label, pruneDatabase, type PruneItem, pruneUsers } from "./run.ts";

/** What the hook needs. */
export interface AfterBackupOptions {
  /** The effective configuration. */
  config: Config;
  /** The run's storage (its lock held by the run). */
  storage: Storage;
  /** The host folder. */
  hostname: string;
  /** The run's logger. */
  log: Logger;
  /**
   * The remote copy (`storage.remote` with `keep_local: true`): a good backup not uploaded yet
   * (an earlier night's failed upload, sent only by the catch-up after the run) is kept.
   */
  uploadsTo?: Storage;
}

/** The after_backup hook of one backup run. */
export interface AfterBackupPruner {
  /** Call with each item's result as it is recorded (database or users). Never throws. */
  afterItem(result: ItemResult): Promise<void>;
  /**
   * The report's `skipped` lines, once the run is over: also for items that failed without the
   * hook seeing them (an instance that failed half-way).
   */
  skipped(results: readonly ItemResult[]): string[];
  /** What was pruned. */
  readonly pruned: PruneItem[];
}

/** Creates the hook of a run. */
export function afterBackupPruner(o: AfterBackupOptions): AfterBackupPruner {
  const lines: string[] = [];
  const seen = new Set<string>();
  const pruned: PruneItem[] = [];
  const idOf = (r: ItemResult) => `${r.instance}\0${r.database}`;
  const policyOf = (r: ItemResult) => {
    try {
      const users = r.database === USERS_ITEM;
      return retentionFor(o.config, r.instance, users ? undefined : r.database);
    } catch {
      return undefined; // an instance the configuration does not have: nothing to prune
    }
  };
  const skip = (r: ItemResult) => {
    if (policyOf(r)?.prune !== "after_backup") return;
    const what = r.database === USERS_ITEM ? `users of ${r.instance}` : r.database!;
    const line = `retention skipped for ${what}: today's backup failed`;
    o.log.warn(line, { instance: r.instance });
    lines.push(r.database === USERS_ITEM ? line : `${line} (instance ${r.instance})`);
  };
  return {
    pruned,
    async afterItem(r) {
      if (r.database === undefined || r.status === "planned") return;
      seen.add(idOf(r));
      if (r.status === "failed") return skip(r);
      if (policyOf(r)?.prune !== "after_backup") return;
      const ctx = {
        config: o.config,
        storage: o.storage,
        hostname: o.hostname,
        log: o.log,
        uploadsTo: o.uploadsTo,
      };
      const scope = r.database === USERS_ITEM ? { instance: r.instance } : {
        instance: r.instance,
        database: r.database,
      };
      try {
        const item = scope.database === undefined
          ? await pruneUsers(ctx, scope.instance)
          : await pruneDatabase(ctx, scope.instance, scope.database);
        pruned.push(item);
        if (item.status === "failed") {
          lines.push(`retention failed for ${label(scope)}: ${item.error}`);
          return;
        }
        const kept = item.decisions.filter((d) => d.action === "keep").length;
        o.log.info(`retention ${label(scope)}: ${kept} kept, ${item.removed} removed`, {
          instance: r.instance,
        });
      } catch (e) {
        const message = redact(e instanceof Error ? e.message : String(e));
        o.log.error(`retention of ${label(scope)} failed: ${message}`, { instance: r.instance });
        lines.push(`retention failed for ${label(scope)}: ${message}`);
      }
    },
    skipped(results) {
      for (const r of results) {
        if (r.database === undefined || r.status !== "failed" || seen.has(idOf(r))) continue;
        seen.add(idOf(r));
        skip(r);
      }
      return [...lines];
    },
  };
}
