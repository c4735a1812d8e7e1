/**
 * The retention policy (GFS) as a pure function: which backups of one database to keep and why.
 *
 * The semantics are restic's `forget`: backups are walked newest first; each rule keeps the
 * newest backup of every new bucket (calendar day, ISO week, month, year, or simply "one of the
 * last N") until it has filled its count; periods without a backup do not count; rules overlap
 * (a backup kept by one rule still counts for the others); a rule that still has count left at
 * the oldest backup keeps that one too ("oldest monthly"), which keeps the history as long as
 * the policy allows. `keep_within` is measured from the newest good backup, not from now, so a
 * week of failed nights does not age every backup out.
 *
 * On top of that, the invariants a deleting tool must hold whatever the counts say:
 * only good backups fill keep slots; the newest good backup and at least `min_keep` good ones
 * stay; a backup dated after `now` (a clock that was wrong) and a pinned backup are never
 * removed; failed records newer than the newest good backup and the newest failed record stay
 * (they are what someone diagnosing the failure reads).
 *
 * Nothing here reads files or the clock: the caller passes the backups and `now`.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { RetentionPolicy } from "../config/types.ts";

export type { RetentionPolicy };

/** What the policy needs to know of one backup (database or users backup). */
export interface RetentionCandidate {
  /** Stable identity, used to order backups started at the same instant. */
  id: string;
  /** The metadata's `started_at`: never a file's mtime or name. */
  startedAt: Date;
  /** Status ok, dump and `.sha256` present, size matching the metadata. */
  good: boolean;
  /** Pinned by the user: never removed. */
  pinned: boolean;
}

/** The verdict on one backup. */
export interface RetentionDecision<T extends RetentionCandidate = RetentionCandidate> {
  /** The backup as passed in. */
  backup: T;
  /** What prune does with it. */
  action: "keep" | "remove";
  /**
   * Why, in the order the rules were applied: `last`, `daily 2026-11-30`, `weekly 2026-W48`,
   * `monthly 2026-11`, `yearly 2026`, `oldest monthly`, `within 36h`, `pinned`, `min_keep`,
   * `newest good`, `future`, `failed after newest good`,
   * `failed (newest failure kept for diagnosis)`; `failed` on a removed failed record. A good
   * backup no rule keeps is removed with no reason.
   */
  reasons: string[];
}

/** The keep counts, in the order they are applied; their bucket functions are below. */
const COUNT_RULES = [
  "keep_last",
  "keep_daily",
  "keep_weekly",
  "keep_monthly",
  "keep_yearly",
] as const;

/** True when the policy's rules keep something (min_keep alone does not count, as in restic). */
export function policyKeepsSomething(policy: RetentionPolicy): boolean {
  return COUNT_RULES.some((k) => policy[k] > 0) || policy.keep_within > 0;
}

/**
 * Throws a ConfigError when the policy is unusable: negative or fractional counts, `min_keep`
 * below 1, an unknown time zone, or rules that keep nothing (a policy meant to delete every
 * backup is far more often a typo than a wish).
 */
export function checkPolicy(policy: RetentionPolicy): void {
  for (const key of [...COUNT_RULES, "keep_within"] as const) {
    const n = policy[key];
    if (!Number.isInteger(n) || n < 0) {
      throw new ConfigError(`retention.${key}: expected a whole number >= 0, got ${n}`);
    }
  }
  if (!Number.isInteger(policy.min_keep) || policy.min_keep < 1) {
    throw new ConfigError(
      `retention.min_keep: expected a whole number >= 1, got ${policy.min_keep}`,
    );
  }
  if (!isTimeZone(policy.timezone)) {
    throw new ConfigError(`retention.timezone: unknown time zone "${policy.timezone}"`);
  }
  if (!policyKeepsSomething(policy)) {
    throw new ConfigError(
      "retention keeps nothing: set at least one of keep_last, keep_daily, keep_weekly, " +
        "keep_monthly, keep_yearly, keep_within",
      { hint: "to delete every backup of a database, remove its folder by hand" },
    );
  }
}

/** True when `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  if (typeof zone !== "string" || zone === "") return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Applies `policy` to the backups of one database (or one instance's users backups) as of
 * `now`. Returns one decision per backup, newest first (ties by id, descending). Throws a
 * ConfigError for an unusable policy ({@linkcode checkPolicy}).
 */
export function applyRetention<T extends RetentionCandidate>(
  backups: readonly T[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision<T>[] {
  checkPolicy(policy);
  const decisions: RetentionDecision<T>[] = [...backups]
    .sort(newestFirst)
    .map((backup) => ({ backup, action: "remove", reasons: [] }));

  const keep = (d: RetentionDecision<T>, reason: string) => {
    d.action = "keep";
    d.reasons.push(reason);
  };

  const dated = (d: RetentionDecision<T>) => !Number.isNaN(d.backup.startedAt.getTime());
  const future = (d: RetentionDecision<T>) => d.backup.startedAt.getTime() > now.getTime();
  // A future-dated backup fills no slot: a clock set years ahead would otherwise make one
  // bogus backup the newest of every bucket and age the real ones out.
  const eligible = decisions.filter((d) => d.backup.good && dated(d) && !future(d));

  fillCountRules(eligible, policy, keep);

  const newestGood = eligible[0];
  if (newestGood && policy.keep_within > 0) {
    const from = newestGood.backup.startedAt.getTime() - policy.keep_within * 1000;
    const label = `within ${formatSpan(policy.keep_within)}`;
    for (const d of eligible) if (d.backup.startedAt.getTime() > from) keep(d, label);
  }
  if (newestGood) keep(newestGood, "newest good");

  let kept = eligible.filter((d) => d.action === "keep").length;
  for (const d of eligible) {
    if (kept >= policy.min_keep) break;
    if (d.action === "keep") continue;
    keep(d, "min_keep");
    kept++;
  }

  const newestGoodTime = newestGood?.backup.startedAt.getTime() ?? -Infinity;
  let newestFailureSeen = false;
  for (const d of decisions) {
    if (!dated(d)) keep(d, "unknown time");
    else if (future(d)) keep(d, "future");
    if (d.backup.pinned) keep(d, "pinned");
    if (d.backup.good || !dated(d) || future(d)) continue;
    if (!newestFailureSeen) {
      newestFailureSeen = true;
      keep(d, "failed (newest failure kept for diagnosis)");
    } else if (d.backup.startedAt.getTime() > newestGoodTime) {
      keep(d, "failed after newest good");
    } else if (d.action === "remove") {
      d.reasons.push("failed");
    }
  }
  return decisions;
}

/** Walks the good backups newest first through keep_last/daily/weekly/monthly/yearly. */
function fillCountRules<D extends RetentionDecision>(
  eligible: D[],
  policy: RetentionPolicy,
  keep: (d: D, reason: string) => void,
): void {
  const calendar = calendarOf(policy.timezone);
  const rules = COUNT_RULES.map((key) => ({
    left: policy[key],
    name: key.slice("keep_".length),
    previous: undefined as string | undefined,
  }));
  eligible.forEach((d, index) => {
    const oldest = index === eligible.length - 1;
    const day = calendar(d.backup.startedAt);
    for (const rule of rules) {
      if (rule.left <= 0) continue;
      const bucket = bucketOf(rule.name, day, index);
      if (bucket !== rule.previous) {
        keep(d, rule.name === "last" ? "last" : `${rule.name} ${bucket}`);
      } else if (oldest) {
        keep(d, `oldest ${rule.name}`);
      } else {
        continue;
      }
      rule.previous = bucket;
      rule.left--;
    }
  });
}

/** A calendar date in the policy's zone. */
/** A calendar date in some time zone. */
export interface CivilDate {
  /** Full year. */
  year: number;
  /** 1-12. */
  month: number;
  /** 1-31. */
  day: number;
}

function bucketOf(rule: string, date: CivilDate, index: number): string {
  const mm = String(date.month).padStart(2, "0");
  switch (rule) {
    case "daily":
      return `${date.year}-${mm}-${String(date.day).padStart(2, "0")}`;
    case "weekly": {
      const { year, week } = isoWeek(date);
      return `${year}-W${String(week).padStart(2, "0")}`;
    }
    case "monthly":
      return `${date.year}-${mm}`;
    case "yearly":
      return String(date.year);
    default: // last: every backup is a bucket of its own
      return `#${index}`;
  }
}

/** Returns a function giving the calendar date of an instant in `timeZone`. */
function calendarOf(timeZone: string): (at: Date) => CivilDate {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    year: "numeric",
    month: "numeric",
    day: "numeric",
    // The proleptic Gregorian calendar with plain digits, whatever the runtime's default locale.
    calendar: "gregory",
    numberingSystem: "latn",
  });
  return (at) => {
    const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
    return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
  };
}

/** ISO 8601 week (Monday-Sunday) and its week-year, which differs from the year near 1 January. */
export function isoWeek(date: CivilDate): { year: number; week: number } {
  const dayMs = 86_400_000;
  const t = Date.UTC(date.year, date.month - 1, date.day);
  const weekday = (new Date(t).getUTCDay() + 6) % 7; // Monday = 0
  // The week belongs to the year of its Thursday.
  const thursday = new Date(t + (3 - weekday) * dayMs);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / dayMs / 7) + 1;
  return { year, week };
}

/** Formats seconds in the largest units that divide them: `2w`, `7d`, `36h`, `1h30m`, `90s`. */
export function formatSpan(seconds: number): string {
  const units: [string, number][] = [["w", 604_800], ["d", 86_400], ["h", 3600], ["m", 60]];
  for (const [unit, size] of units.slice(0, 3)) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  let rest = seconds;
  let out = "";
  for (const [unit, size] of units.slice(2)) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return rest > 0 || out === "" ? `${out}${rest}s` : out;
}

function newestFirst(a: RetentionCandidate, b: RetentionCandidate): number {
  const ta = a.startedAt.getTime();
  const tb = b.startedAt.getTime();
  // Undated backups first: they are kept anyway, and must not take the newest-good place.
  if (Number.isNaN(ta) !== Number.isNaN(tb)) return Number.isNaN(ta) ? -1 : 1;
  if (ta !== tb && !Number.isNaN(ta)) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
