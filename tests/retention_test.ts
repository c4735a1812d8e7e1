/**
 * The retention policy as a pure function: restic's `forget` semantics (newest first, one per
 * bucket, overlapping rules, the oldest kept while a rule has count left) plus the invariants a
 * deleting tool must hold (good-only slots, newest good, min_keep, future, pinned, failures).
 */
import {
  applyRetention,
  formatSpan,
  isoWeek,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionPolicy,
} from "../lib/storage/retention.ts";
import { ConfigError } from "../lib/errors.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./harness/assert.ts";

function policy(p: Partial<RetentionPolicy>): RetentionPolicy {
  return {
    keep_last: 0,
    keep_daily: 0,
    keep_weekly: 0,
    keep_monthly: 0,
    keep_yearly: 0,
    keep_within: 0,
    min_keep: 1,
    timezone: "UTC",
    ...p,
  };
}

function backup(at: string, extra: Partial<RetentionCandidate> = {}): RetentionCandidate {
  return { id: at, startedAt: new Date(at), good: true, pinned: false, ...extra };
}

/** ids kept, newest first. */
function kept(decisions: RetentionDecision[]): string[] {
  return decisions.filter((d) => d.action === "keep").map((d) => d.backup.id);
}

function reasonsOf(decisions: RetentionDecision[], id: string): string[] {
  const d = decisions.find((x) => x.backup.id === id);
  assert(d, `no decision for ${id}`);
  return d.reasons;
}

const NOW = new Date("2026-12-02T03:00:00Z");

Deno.test("restic's documented keep-daily 5 example keeps exactly the five its docs list", () => {
  // doc/060_forget.rst: weekdays of two weeks, an extra Friday backup, no Wednesday 2025-04-30.
  const times = [
    "2025-04-21T11:00",
    "2025-04-22T11:00",
    "2025-04-23T11:00",
    "2025-04-24T11:00",
    "2025-04-25T11:00",
    "2025-04-25T23:00",
    "2025-04-28T11:00",
    "2025-04-29T11:00",
    "2025-05-01T11:00",
    "2025-05-02T11:00",
    "2025-05-02T23:00",
  ].map((t) => `${t}:00Z`);
  const decisions = applyRetention(
    times.map((t) => backup(t)),
    policy({ keep_daily: 5 }),
    new Date("2025-05-03T00:00:00Z"),
  );
  assertEquals(kept(decisions), [
    "2025-05-02T23:00:00Z",
    "2025-05-01T11:00:00Z",
    "2025-04-29T11:00:00Z",
    "2025-04-28T11:00:00Z",
    "2025-04-25T23:00:00Z",
  ]);
  assertEquals(decisions.length, 11);
  assertEquals(decisions.filter((d) => d.action === "remove").length, 6);
  assertEquals(reasonsOf(decisions, "2025-04-25T23:00:00Z"), ["daily 2025-04-25"]);
  assertEquals(reasonsOf(decisions, "2025-05-02T23:00:00Z"), ["daily 2025-05-02", "newest good"]);
  assertEquals(reasonsOf(decisions, "2025-05-02T11:00:00Z"), []);
});

/** Offset of Europe/Paris at 02:30 local on a day of Dec 2025 - Dec 2026 (CEST 03-29..10-24). */
function parisOffset(day: string): string {
  return day >= "2026-03-29" && day < "2026-10-25" ? "+02:00" : "+01:00";
}

function days(from: string, to: string): string[] {
  const out: string[] = [];
  for (
    let t = Date.parse(`${from}T00:00:00Z`);
    t <= Date.parse(`${to}T00:00:00Z`);
    t += 86_400_000
  ) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/** A year of nightly backups at 02:30 Paris time, id = the local date. */
const YEAR = days("2025-12-02", "2026-12-01").map((day) =>
  backup(`${day}T02:30:00${parisOffset(day)}`, { id: day })
);

const GFS = policy({
  keep_last: 3,
  keep_daily: 7,
  keep_weekly: 4,
  keep_monthly: 12,
  keep_yearly: 3,
  timezone: "Europe/Paris",
});

Deno.test("a year of nightly backups under 3/7/4/12/3 keeps 21, and which", () => {
  assertEquals(YEAR.length, 365);
  const decisions = applyRetention(YEAR, GFS, NOW);
  assertEquals(kept(decisions), [
    // last 3 and daily 7: the newest week
    "2026-12-01",
    "2026-11-30",
    "2026-11-29",
    "2026-11-28",
    "2026-11-27",
    "2026-11-26",
    "2026-11-25",
    // weekly 4: W49 (12-01) and W48 (11-29) are kept already; W47, W46 end on Sundays
    "2026-11-22",
    "2026-11-15",
    // monthly 12: the last day of each month, 2026-12 and 2026-11 already kept
    "2026-10-31",
    "2026-09-30",
    "2026-08-31",
    "2026-07-31",
    "2026-06-30",
    "2026-05-31",
    "2026-04-30",
    "2026-03-31",
    "2026-02-28",
    "2026-01-31",
    // yearly 3: 2026 kept already, 2025, and the oldest with the count left
    "2025-12-31",
    "2025-12-02",
  ]);
  assertEquals(reasonsOf(decisions, "2026-12-01"), [
    "last",
    "daily 2026-12-01",
    "weekly 2026-W49",
    "monthly 2026-12",
    "yearly 2026",
    "newest good",
  ]);
  assertEquals(reasonsOf(decisions, "2026-11-29"), ["last", "daily 2026-11-29", "weekly 2026-W48"]);
  assertEquals(reasonsOf(decisions, "2026-11-30"), ["last", "daily 2026-11-30", "monthly 2026-11"]);
  assertEquals(reasonsOf(decisions, "2026-01-31"), ["monthly 2026-01"]);
  assertEquals(reasonsOf(decisions, "2025-12-31"), ["yearly 2025"]);
  assertEquals(reasonsOf(decisions, "2025-12-02"), ["oldest yearly"]);
  assertEquals(reasonsOf(decisions, "2026-11-24"), []);
});

Deno.test("a rule with count left keeps the oldest backup too (oldest monthly)", () => {
  const list = ["2026-09-10", "2026-09-20", "2026-10-05", "2026-11-01", "2026-11-15"].map((d) =>
    backup(`${d}T01:00:00Z`, { id: d })
  );
  const decisions = applyRetention(list, policy({ keep_monthly: 12 }), NOW);
  assertEquals(kept(decisions), ["2026-11-15", "2026-10-05", "2026-09-20", "2026-09-10"]);
  assertEquals(reasonsOf(decisions, "2026-09-10"), ["oldest monthly"]);
  // Without count left, the oldest goes.
  const two = applyRetention(list, policy({ keep_monthly: 2 }), NOW);
  assertEquals(kept(two), ["2026-11-15", "2026-10-05"]);
});

/** Nightly backups at a local time in Paris, given as explicit instants. */
function paris(entries: [string, string][]): RetentionCandidate[] {
  return entries.map(([id, instant]) => backup(instant, { id }));
}

Deno.test("DST in Europe/Paris, March: days and ISO weeks are cut at local midnight", () => {
  // Clocks go from 02:00 CET to 03:00 CEST on Sunday 2026-03-29; 02:30 does not exist that
  // night, cron runs the job at 03:00.
  const at0230 = days("2026-03-23", "2026-04-05").map((day): [string, string] => [
    day,
    day === "2026-03-29"
      ? "2026-03-29T03:00:00+02:00"
      : `${day}T02:30:00${day < "2026-03-29" ? "+01:00" : "+02:00"}`,
  ]);
  const daily = applyRetention(
    paris(at0230),
    policy({ keep_daily: 14, timezone: "Europe/Paris" }),
    NOW,
  );
  assertEquals(kept(daily).length, 14);
  assertEquals(
    daily.map((d) => d.reasons[0]),
    days("2026-03-23", "2026-04-05").reverse().map((d) => `daily ${d}`),
  );
  const weekly = applyRetention(
    paris(at0230),
    policy({ keep_weekly: 2, timezone: "Europe/Paris" }),
    NOW,
  );
  assertEquals(kept(weekly), ["2026-04-05", "2026-03-29"]);
  assertEquals(reasonsOf(weekly, "2026-03-29"), ["weekly 2026-W13"]);

  // Shortly after midnight local is the previous day in UTC: 00:30 CEST on Monday 03-30 is
  // 22:30Z on Sunday. Cut in UTC (or at a fixed +01:00), Monday's backup would count as the
  // newest of the week before.
  const at0030 = days("2026-03-23", "2026-04-05").map((day): [string, string] => [
    day,
    `${day}T00:30:00${day < "2026-03-29" ? "+01:00" : "+02:00"}`,
  ]);
  const opts = policy({ keep_weekly: 2, timezone: "Europe/Paris" });
  assertEquals(kept(applyRetention(paris(at0030), opts, NOW)), ["2026-04-05", "2026-03-29"]);
  // The same instants cut in UTC give other buckets: the zone is what decides.
  const utc = applyRetention(paris(at0030), { ...opts, timezone: "UTC" }, NOW);
  assertEquals(kept(utc), ["2026-04-05", "2026-03-30"]);
});

Deno.test("DST in Europe/Paris, October: 02:30 happens twice, one day still keeps one", () => {
  // Clocks go from 03:00 CEST back to 02:00 CET on Sunday 2026-10-25: 02:30 happens at 00:30Z
  // and again at 01:30Z; a cron that ran at both made two backups that night.
  const entries = days("2026-10-19", "2026-11-01").map((day): [string, string] => [
    day,
    `${day}T02:30:00${day < "2026-10-25" ? "+02:00" : "+01:00"}`,
  ]);
  entries.push(["2026-10-25 first", "2026-10-25T00:30:00Z"]);
  const list = paris(entries);
  const daily = applyRetention(list, policy({ keep_daily: 14, timezone: "Europe/Paris" }), NOW);
  assertEquals(kept(daily).length, 14);
  assertEquals(reasonsOf(daily, "2026-10-25"), ["daily 2026-10-25"]);
  assertEquals(reasonsOf(daily, "2026-10-25 first"), []);
  const weekly = applyRetention(list, policy({ keep_weekly: 2, timezone: "Europe/Paris" }), NOW);
  assertEquals(kept(weekly), ["2026-11-01", "2026-10-25"]);
  assertEquals(reasonsOf(weekly, "2026-10-25"), ["weekly 2026-W43"]);

  // 00:30 CET on Monday 10-26 is 23:30Z on Sunday.
  const at0030 = paris(
    days("2026-10-19", "2026-11-01").map((day): [string, string] => [
      day,
      `${day}T00:30:00${day <= "2026-10-25" ? "+02:00" : "+01:00"}`,
    ]),
  );
  const opts = policy({ keep_weekly: 2, timezone: "Europe/Paris" });
  assertEquals(kept(applyRetention(at0030, opts, NOW)), ["2026-11-01", "2026-10-25"]);
  assertEquals(kept(applyRetention(at0030, { ...opts, timezone: "UTC" }, NOW)), [
    "2026-11-01",
    "2026-10-26",
  ]);
});

Deno.test("ISO weeks use the ISO week-year around 1 January", () => {
  assertEquals(isoWeek({ year: 2026, month: 1, day: 1 }), { year: 2026, week: 1 });
  assertEquals(isoWeek({ year: 2025, month: 12, day: 29 }), { year: 2026, week: 1 });
  assertEquals(isoWeek({ year: 2027, month: 1, day: 3 }), { year: 2026, week: 53 });
  assertEquals(isoWeek({ year: 2021, month: 1, day: 3 }), { year: 2020, week: 53 });
  assertEquals(isoWeek({ year: 2026, month: 11, day: 29 }), { year: 2026, week: 48 });
  assertEquals(isoWeek({ year: 2026, month: 11, day: 30 }), { year: 2026, week: 49 });
});

Deno.test("a backup dated in the future is never removed and fills no slot", () => {
  const list = [
    backup("2026-11-29T02:00:00Z"),
    backup("2026-11-30T02:00:00Z"),
    backup("2026-12-01T02:00:00Z"),
    backup("2031-06-01T02:00:00Z"), // a clock set years ahead
    backup("2027-01-01T00:00:00Z", { good: false }),
  ];
  const decisions = applyRetention(list, policy({ keep_last: 2 }), NOW);
  assertEquals(kept(decisions), [
    "2031-06-01T02:00:00Z",
    "2027-01-01T00:00:00Z",
    "2026-12-01T02:00:00Z",
    "2026-11-30T02:00:00Z",
  ]);
  assertEquals(reasonsOf(decisions, "2031-06-01T02:00:00Z"), ["future"]);
  assertEquals(reasonsOf(decisions, "2027-01-01T00:00:00Z"), ["future"]);
  assertEquals(reasonsOf(decisions, "2026-12-01T02:00:00Z"), ["last", "newest good"]);
});

Deno.test("a pinned backup is never removed; it still counts for the rules", () => {
  const list = [
    backup("2026-01-15T02:00:00Z", { pinned: true }),
    backup("2026-06-15T02:00:00Z"),
    backup("2026-11-30T02:00:00Z", { pinned: true }),
    backup("2026-12-01T02:00:00Z"),
    backup("2026-02-01T02:00:00Z", { good: false, pinned: true }),
  ];
  const decisions = applyRetention(list, policy({ keep_last: 2 }), NOW);
  assertEquals(kept(decisions), [
    "2026-12-01T02:00:00Z",
    "2026-11-30T02:00:00Z",
    "2026-02-01T02:00:00Z",
    "2026-01-15T02:00:00Z",
  ]);
  assertEquals(reasonsOf(decisions, "2026-11-30T02:00:00Z"), ["last", "pinned"]);
  assertEquals(reasonsOf(decisions, "2026-01-15T02:00:00Z"), ["pinned"]);
  // The pinned failure is also the newest failure.
  assertEquals(reasonsOf(decisions, "2026-02-01T02:00:00Z"), [
    "pinned",
    "failed (newest failure kept for diagnosis)",
  ]);
  assertEquals(reasonsOf(decisions, "2026-06-15T02:00:00Z"), []);
});

Deno.test("min_keep tops up with the newest good backups no rule kept", () => {
  const list = days("2026-11-20", "2026-12-01").map((d) => backup(`${d}T02:00:00Z`, { id: d }));
  list.push(backup("2026-11-30T03:00:00Z", { id: "failed", good: false }));
  const decisions = applyRetention(list, policy({ keep_within: 3600, min_keep: 3 }), NOW);
  assertEquals(kept(decisions), ["2026-12-01", "failed", "2026-11-30", "2026-11-29"]);
  assertEquals(reasonsOf(decisions, "2026-12-01"), ["within 1h", "newest good"]);
  assertEquals(reasonsOf(decisions, "2026-11-30"), ["min_keep"]);
  assertEquals(reasonsOf(decisions, "2026-11-29"), ["min_keep"]);
  // More than there are good backups keeps them all.
  const all = applyRetention(list.slice(0, 2), policy({ keep_last: 1, min_keep: 5 }), NOW);
  assertEquals(all.every((d) => d.action === "keep"), true);
});

Deno.test("keep_within is measured from the newest good backup, not from now", () => {
  const good = days("2026-11-11", "2026-11-20").map((d) => backup(`${d}T12:00:00Z`, { id: d }));
  const failed = days("2026-11-21", "2026-11-25").map((d) =>
    backup(`${d}T12:00:00Z`, { id: `failed ${d}`, good: false })
  );
  const decisions = applyRetention(
    [...good, ...failed],
    policy({ keep_within: 36 * 3600 }),
    new Date("2026-11-25T13:00:00Z"),
  );
  // 11-19 is 24h before the newest good one; 11-18T12:00 is exactly 36h before: not within.
  assertEquals(
    kept(decisions).filter((id) => !id.startsWith("failed")),
    ["2026-11-20", "2026-11-19"],
  );
  assertEquals(reasonsOf(decisions, "2026-11-19"), ["within 36h"]);
  assertEquals(reasonsOf(decisions, "2026-11-18"), []);
});

Deno.test("failed records: only good fill slots; older than the newest good go, the newest failure stays", () => {
  const list = [
    backup("2026-11-25T02:00:00Z"),
    backup("2026-11-26T02:00:00Z", { good: false }),
    backup("2026-11-27T02:00:00Z"),
    backup("2026-11-28T02:00:00Z", { good: false }),
    backup("2026-11-29T02:00:00Z"),
    backup("2026-11-30T02:00:00Z", { good: false }),
    backup("2026-12-01T02:00:00Z", { good: false }),
  ];
  const decisions = applyRetention(list, policy({ keep_last: 2 }), NOW);
  assertEquals(decisions.map((d) => [d.backup.id.slice(0, 10), d.action, d.reasons]), [
    ["2026-12-01", "keep", ["failed (newest failure kept for diagnosis)"]],
    ["2026-11-30", "keep", ["failed after newest good"]],
    ["2026-11-29", "keep", ["last", "newest good"]],
    ["2026-11-28", "remove", ["failed"]],
    ["2026-11-27", "keep", ["last"]],
    ["2026-11-26", "remove", ["failed"]],
    ["2026-11-25", "remove", []],
  ]);
  // The newest failure is kept even when it is older than the newest good backup.
  const older = applyRetention(list.slice(0, 5), policy({ keep_last: 1 }), NOW);
  assertEquals(kept(older), ["2026-11-29T02:00:00Z", "2026-11-28T02:00:00Z"]);
  assertEquals(reasonsOf(older, "2026-11-26T02:00:00Z"), ["failed"]);
  // With no good backup at all nothing is removed.
  const none = applyRetention(list.filter((b) => !b.good), policy({ keep_last: 1 }), NOW);
  assertEquals(none.every((d) => d.action === "keep"), true);
});

Deno.test("a policy that keeps nothing, a bad count or an unknown zone is a configuration error", () => {
  const list = [backup("2026-12-01T02:00:00Z")];
  const empty = assertThrows(() => applyRetention(list, policy({}), NOW), ConfigError);
  assertStringIncludes(empty.message, "retention keeps nothing");
  assertEquals(empty.exitCode, 3);
  // min_keep alone is not a policy (restic refuses an empty one too).
  assertThrows(() => applyRetention(list, policy({ min_keep: 5 }), NOW), ConfigError);
  assertThrows(() => applyRetention([], policy({ keep_last: -1 }), NOW), ConfigError);
  assertThrows(() => applyRetention([], policy({ keep_last: 1, min_keep: 0 }), NOW), ConfigError);
  const zone = assertThrows(
    () => applyRetention(list, policy({ keep_last: 1, timezone: "Mars/Olympus" }), NOW),
    ConfigError,
  );
  assertStringIncludes(zone.message, 'unknown time zone "Mars/Olympus"');
  assertEquals(applyRetention([], policy({ keep_last: 1 }), NOW), []);
});

Deno.test("a backup without a usable time is kept and takes no slot", () => {
  const decisions = applyRetention(
    [backup("2026-11-30T02:00:00Z"), backup("not a date", { id: "undated" })],
    policy({ keep_last: 1 }),
    NOW,
  );
  assertEquals(kept(decisions), ["undated", "2026-11-30T02:00:00Z"]);
  assertEquals(reasonsOf(decisions, "undated"), ["unknown time"]);
});

Deno.test("span labels use the largest unit that divides them", () => {
  assertEquals(
    [36 * 3600, 7 * 86400, 14 * 86400, 5400, 90, 86400 + 1].map(formatSpan),
    ["36h", "1w", "2w", "1h30m", "1m30s", "24h1s"],
  );
});

Deno.test("invariants hold for random histories and policies", () => {
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const list: RetentionCandidate[] = [];
    const count = rand(40);
    for (let i = 0; i < count; i++) {
      const at = NOW.getTime() + (rand(400 * 24) - 390 * 24) * 3600_000;
      list.push({
        id: `b${i}`,
        startedAt: new Date(at),
        good: rand(4) !== 0,
        pinned: rand(10) === 0,
      });
    }
    const p = policy({
      keep_last: rand(4),
      keep_daily: rand(8),
      keep_weekly: rand(5),
      keep_monthly: rand(13),
      keep_yearly: rand(3),
      keep_within: rand(3) * 36 * 3600,
      min_keep: 1 + rand(6),
      timezone: ["UTC", "Europe/Paris", "Pacific/Auckland", "America/New_York"][rand(4)],
    });
    if (p.keep_last + p.keep_daily + p.keep_weekly + p.keep_monthly + p.keep_yearly === 0) {
      p.keep_last = 1;
    }
    const out = applyRetention(list, p, NOW);
    const why = JSON.stringify({ round, p });
    assertEquals(out.length, list.length, why);
    const past = (d: RetentionDecision) => d.backup.startedAt <= NOW;
    const good = out.filter((d) => d.backup.good && past(d));
    if (good.length) assertEquals(good[0].action, "keep", why);
    assert(
      good.filter((d) => d.action === "keep").length >= Math.min(p.min_keep, good.length),
      why,
    );
    for (const d of out) {
      if (!past(d) || d.backup.pinned) assertEquals(d.action, "keep", why);
      assertEquals(d.action === "keep", d.reasons.length > 0 && d.reasons[0] !== "failed", why);
    }
    const failures = out.filter((d) => !d.backup.good && past(d));
    if (failures.length) assertEquals(failures[0].action, "keep", why);
    for (let i = 1; i < out.length; i++) {
      assert(out[i - 1].backup.startedAt >= out[i].backup.startedAt, why);
    }
  }
});
