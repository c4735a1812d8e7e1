/**
 * Stale backups: a configured database (of an enabled instance) whose newest good backup is
 * older than `alerts.max_age`, or that has backup records but never a good one. The databases
 * are those the history knows for the instance and its selection still matches: a database
 * that is no longer selected stops being reported, one dropped from the server goes on being
 * reported until its backups are removed (someone should decide about it). The selection and the
 * age judgement are `info`'s own (lib/info/freshness.ts), so both always agree.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { isSelected, judgeFreshness } from "../info/freshness.ts";
import { USERS_ITEM } from "../users/backup.ts";
import type { BackupHistory } from "./history.ts";
import type { StaleItem } from "./report.ts";

/** The stale items of every enabled instance, as of `now`. */
export async function findStale(
  config: Config,
  history: BackupHistory,
  now: Date = new Date(),
): Promise<StaleItem[]> {
  const out: StaleItem[] = [];
  for (const inst of config.instances.filter((i) => i.enabled)) {
    for (const name of await history.databases(inst.id)) {
      const users = name === USERS_ITEM;
      if (users ? !inst.users.backup : !isSelected(inst, name)) continue;
      const good = await history.newestGood(inst.id, name);
      const verdict = judgeFreshness({ newestGoodAt: good?.at }, now, config.alerts.max_age);
      if (!verdict.stale) continue;
      out.push({
        instance: inst.id,
        database: users ? undefined : name,
        kind: users ? "users" : "database",
        newest_good_at: good?.at.toISOString(),
        age_seconds: verdict.age_seconds,
      });
    }
  }
  return out;
}
