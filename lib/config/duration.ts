/**
 * Durations as the configuration writes them (`90`, `"10m"`, `"36h"`, `"7d"`, `"2w"`).
 *
 * @module
 */

/**
 * Parses `90`, `"90s"`, `"10m"`, `"1h30m"`, `"36h"`, `"7d"`, `"2w"` as seconds; undefined when
 * it is none of those. `d` is 24 hours and `w` 7 days; there is no month unit, since `m` is
 * minutes.
 */
export function parseDurationSeconds(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?\s*$/.exec(value);
  if (!m || value.trim() === "" || m.slice(1).every((g) => g === undefined)) return undefined;
  const [w, d, h, min, s] = m.slice(1).map((g) => Number(g ?? 0));
  return (((w * 7 + d) * 24 + h) * 60 + min) * 60 + s;
}
