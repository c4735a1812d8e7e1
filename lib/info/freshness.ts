/**
 * The one judgement of whether a database (or an instance's users) is backed up well enough,
 * shared by `info` and the stale alerts: which names count as configured, and how their newest
 * good backup and newest attempt compare with `alerts.max_age`. Nothing here reads storage or
 * talks to a server: callers pass what the catalog (or the backup history) found.
 *
 * @module
 */
import type { InstanceConfig } from "../config/types.ts";
import { globMatch } from "../engines/select.ts";
import { isSystemDatabase } from "../engines/mod.ts";

/** How an item stands, worst last: the order the exit code follows. */
export type Freshness =
  /** Its newest good backup is within `alerts.max_age` and its newest attempt succeeded. */
  | "fresh"
  /** Its newest good backup is recent enough, but a newer attempt failed. */
  | "failed"
  /** Its newest good backup is older than `alerts.max_age`. */
  | "stale"
  /** It has no good backup at all. */
  | "never";

/** What the judgement needs to know about an item's backups. */
export interface FreshnessInput {
  /** Start of the newest good backup, if any. */
  newestGoodAt?: Date;
  /** Start of the newest attempt (good, failed or bad; orphans and partials are none). */
  newestAttemptAt?: Date;
  /** Whether that newest attempt is the good one. */
  newestAttemptOk?: boolean;
}

/** The verdict on one item. */
export interface FreshnessVerdict {
  /** How it stands. */
  freshness: Freshness;
  /** Whole seconds since the newest good backup started; absent without one. */
  age_seconds?: number;
  /** Whether the newest good backup is missing or older than `alerts.max_age` (alerts' "stale"). */
  stale: boolean;
}

/** Judges an item as of `now` against `maxAgeSeconds` (`alerts.max_age`). */
export function judgeFreshness(
  input: FreshnessInput,
  now: Date,
  maxAgeSeconds: number,
): FreshnessVerdict {
  if (!input.newestGoodAt) return { freshness: "never", stale: true };
  const age = Math.floor((now.getTime() - input.newestGoodAt.getTime()) / 1000);
  if (age > maxAgeSeconds) return { freshness: "stale", age_seconds: age, stale: true };
  const failedSince = input.newestAttemptOk === false && input.newestAttemptAt !== undefined &&
    input.newestAttemptAt.getTime() > input.newestGoodAt.getTime();
  return { freshness: failedSince ? "failed" : "fresh", age_seconds: age, stale: false };
}

/**
 * Whether the instance's `databases:` selection still takes a database name (include globs,
 * all when none; minus exclude globs; never a system database).
 */
export function isSelected(instance: InstanceConfig, name: string): boolean {
  const { include, exclude } = instance.databases;
  return (include.length === 0 || include.some((g) => globMatch(g, name))) &&
    !exclude.some((g) => globMatch(g, name)) && !isSystemDatabase(instance.type, name);
}

const GLOB_CHARS = /[*?[]/;

/**
 * The configured databases of an instance as far as can be told without its server: the names
 * stored for it that the selection still takes, plus the include entries that are plain names
 * (no glob character) and selected, since those must exist on the server. Sorted.
 */
export function configuredDatabases(
  instance: InstanceConfig,
  storedNames: Iterable<string>,
): string[] {
  const names = new Set<string>();
  for (const name of storedNames) if (isSelected(instance, name)) names.add(name);
  for (const name of instance.databases.include) {
    if (!GLOB_CHARS.test(name) && isSelected(instance, name)) names.add(name);
  }
  return [...names].sort();
}
