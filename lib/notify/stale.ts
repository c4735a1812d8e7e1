/**
 * Stale backups: a configured database (of an enabled instance) whose newest good backup is
 * older than `alerts.max_age`, or that has backup records but never a good one. The databases
 * are those the history knows for the instance and its selection still matches: a database
 * that is no longer selected stops being reported, one dropped from the server goes on being
 * reported until its backups are removed (someone should decide about it).
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { globMatch, isSystemDatabase } from "../engines/select.ts";
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
    const { include, exclude } = inst.databases;
    for (const name of await history.databases(inst.id)) {
      const users = name === USERS_ITEM;
      if (users && !inst.users.backup) continue;
      if (
        !users && ((include.length && !include.some((g) => globMatch(g, name))) ||
          exclude.some((g) => globMatch(g, name)) || isSystemDatabase(inst.type, name))
      ) continue;
      const good = await history.newestGood(inst.id, name);
      const age = good ? Math.floor((now.getTime() - good.at.getTime()) / 1000) : undefined;
      if (age !== undefined && age <= config.alerts.max_age) continue;
      out.push({
        instance: inst.id,
        database: users ? undefined : name,
        kind: users ? "users" : "database",
        newest_good_at: good?.at.toISOString(),
        age_seconds: age,
      });
    }
  }
  return out;
}
