/**
 * What prune does with each catalog entry of one database (or one instance's users backups):
 * the retention policy ({@linkcode applyRetention}) decides over the good backups and the
 * failure records; the leftovers of interrupted writes and deletes have their own rule; and the
 * whole plan is checked against the invariants before anything is deleted.
 *
 * - good and failed entries: {@linkcode applyRetention} (good = catalog state good; pinned and
 *   time from the metadata).
 * - orphans (sidecars without their dump) and partials: removed when older than the newest good
 *   backup, kept otherwise (they are what someone diagnosing the last nights reads). A pinned
 *   orphan stays.
 * - bad entries (a dump is there, but its metadata, checksum file or size is wrong): always
 *   kept, never counted as good. The tool cannot vouch for such a file, so it cannot fill a
 *   keep slot; but it may be the only copy of a backup whose metadata was damaged, and deleting
 *   a dump nobody can judge is the wrong way to err. prune names it so a person looks.
 *
 * @module
 */
import { VyaError } from "../errors.ts";
import type { CatalogEntry } from "../storage/catalog.ts";
import { applyRetention, type RetentionPolicy } from "../storage/retention.ts";

/** The verdict on one entry. */
export interface PruneDecision {
  /** The entry as the catalog listed it. */
  entry: CatalogEntry;
  /** What prune does with it. */
  action: "keep" | "remove";
  /** Why (retention's reasons, or the leftover rule's). */
  reasons: string[];
}

/** Reason of a removed orphan / partial. */
export const ORPHAN_REASON = "orphan older than newest good";
/** Reason of a removed partial. */
export const PARTIAL_REASON = "partial older than newest good";

/**
 * Decides every entry of one database (or users backups of one instance) as of `now`, newest
 * first. Throws a ConfigError for a policy that keeps nothing.
 */
export function planPrune(
  entries: readonly CatalogEntry[],
  policy: RetentionPolicy,
  now: Date,
): PruneDecision[] {
  const candidates = entries
    .filter((e) => e.state === "good" || e.state === "failed")
    .map((entry) => ({
      id: entry.stem,
      startedAt: entry.started_at,
      good: entry.state === "good",
      pinned: entry.pinned,
      entry,
    }));
  const decisions: PruneDecision[] = applyRetention(candidates, policy, now).map((d) => ({
    entry: d.backup.entry,
    action: d.action,
    reasons: d.reasons,
  }));
  const newest = newestGoodTime(entries, now);
  for (const entry of entries) {
    if (entry.state === "good" || entry.state === "failed") continue;
    decisions.push(leftoverDecision(entry, newest));
  }
  return decisions.sort((a, b) =>
    b.entry.started_at.getTime() - a.entry.started_at.getTime() ||
    (a.entry.stem < b.entry.stem ? 1 : a.entry.stem > b.entry.stem ? -1 : 0)
  );
}

/** Start of the newest good entry not dated after `now` (-Infinity when there is none). */
export function newestGoodTime(entries: readonly CatalogEntry[], now: Date): number {
  let newest = -Infinity;
  for (const e of entries) {
    const t = e.started_at.getTime();
    if (e.state === "good" && t <= now.getTime() && t > newest) newest = t;
  }
  return newest;
}

function leftoverDecision(entry: CatalogEntry, newestGood: number): PruneDecision {
  if (entry.state === "bad") {
    return {
      entry,
      action: "keep",
      reasons: [`bad: ${entry.problems[0] ?? "not a good backup"} (not counted as good)`],
    };
  }
  const what = entry.state === "partial" ? "partial" : "orphan";
  if (entry.pinned) return { entry, action: "keep", reasons: ["pinned"] };
  if (entry.started_at.getTime() < newestGood) {
    return {
      entry,
      action: "remove",
      reasons: [entry.state === "partial" ? PARTIAL_REASON : ORPHAN_REASON],
    };
  }
  return { entry, action: "keep", reasons: [`${what} not older than newest good`] };
}

/**
 * Checks a plan against the invariants, whatever produced it: nothing pinned, dated after
 * `now`, bad, or the newest good backup is removed, and at least `min_keep` good backups (or
 * all there are) stay. Throws (kind `failed`) naming the first violation; nothing is deleted
 * then.
 */
export function assertPlanSafe(
  plan: readonly PruneDecision[],
  policy: RetentionPolicy,
  now: Date,
): void {
  const entries = plan.map((d) => d.entry);
  const newest = newestGoodTime(entries, now);
  for (const d of plan) {
    if (d.action !== "remove") continue;
    const why = removalRefusal(d.entry, newest, now);
    if (why) throw unsafe(d.entry, why);
  }
  const good = plan.filter((d) => d.entry.state === "good");
  const keptGood = good.filter((d) => d.action === "keep").length;
  if (keptGood < Math.min(policy.min_keep, good.length)) {
    throw new VyaError(
      `refusing to prune: the plan keeps ${keptGood} good backup(s), min_keep is ` +
        `${policy.min_keep}`,
      "failed",
    );
  }
}

/**
 * Why `entry` must not be removed (undefined when it may be): pinned, dated after `now`, bad,
 * or the newest good backup (`newestGood` its start).
 */
export function removalRefusal(
  entry: CatalogEntry,
  newestGood: number,
  now: Date,
): string | undefined {
  if (entry.pinned || entry.metadata?.pinned === true) return "it is pinned";
  if (entry.started_at.getTime() > now.getTime()) return "it is dated in the future";
  if (entry.state === "bad") return "it is a dump the tool cannot judge (bad)";
  if (entry.state === "good" && entry.started_at.getTime() >= newestGood) {
    return "it is the newest good backup";
  }
  return undefined;
}

function unsafe(entry: CatalogEntry, why: string): VyaError {
  return new VyaError(`refusing to remove ${entry.stem}: ${why}`, "failed");
}
