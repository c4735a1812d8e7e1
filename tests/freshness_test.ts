/**
 * The shared judgement of `info` and the stale alerts (lib/info/freshness.ts), as tables: the
 * age boundary, a failure newer or older than the newest good backup, no good backup at all,
 * and which names count as configured without a server; plus the exit code they give.
 */
import { assertEquals } from "./harness/assert.ts";
import type { InstanceConfig } from "../lib/config/types.ts";
import { freshnessExitCode } from "../lib/errors.ts";
import { configuredDatabases, judgeFreshness } from "../lib/info/freshness.ts";

const NOW = new Date("2026-12-02T08:00:00Z");
const ago = (s: number) => new Date(NOW.getTime() - s * 1000);
const MAX = 26 * 3600;

Deno.test("judgeFreshness: age against max_age, newer failures, never", () => {
  const rows: [string, Parameters<typeof judgeFreshness>[0], string, number | undefined][] = [
    ["exactly max_age old is fresh", { newestGoodAt: ago(MAX) }, "fresh", MAX],
    ["one second more is stale", { newestGoodAt: ago(MAX + 1) }, "stale", MAX + 1],
    [
      "a failure after the good one",
      { newestGoodAt: ago(3600), newestAttemptAt: ago(60), newestAttemptOk: false },
      "failed",
      3600,
    ],
    [
      "the newest attempt is the good one",
      { newestGoodAt: ago(60), newestAttemptAt: ago(60), newestAttemptOk: true },
      "fresh",
      60,
    ],
    [
      "stale wins over a newer failure",
      { newestGoodAt: ago(MAX + 10), newestAttemptAt: ago(60), newestAttemptOk: false },
      "stale",
      MAX + 10,
    ],
    ["only failures", { newestAttemptAt: ago(60), newestAttemptOk: false }, "never", undefined],
    ["nothing at all", {}, "never", undefined],
  ];
  for (const [what, input, freshness, age] of rows) {
    const v = judgeFreshness(input, NOW, MAX);
    assertEquals([v.freshness, v.age_seconds], [freshness, age], what);
    assertEquals(v.stale, freshness === "stale" || freshness === "never", what);
  }
});

Deno.test("configuredDatabases: stored names still selected, plus plain include names", () => {
  const inst = (include: string[], exclude: string[] = []) =>
    ({ type: "postgresql", databases: { include, exclude } }) as unknown as InstanceConfig;
  const stored = ["shop", "shop_old", "crm", "postgres", "tmp_x"];
  assertEquals(configuredDatabases(inst([]), stored), ["crm", "shop", "shop_old", "tmp_x"]);
  assertEquals(configuredDatabases(inst([], ["tmp_*"]), stored), ["crm", "shop", "shop_old"]);
  assertEquals(configuredDatabases(inst(["shop*", "blog", "postgres", "[ab]*"]), stored), [
    "blog",
    "shop",
    "shop_old",
  ]);
  assertEquals(configuredDatabases(inst(["blog"], ["blog"]), []), []);
});

Deno.test("freshnessExitCode: never 2, stale or failed 1, all fresh 0", () => {
  assertEquals(freshnessExitCode([]), 0);
  assertEquals(freshnessExitCode(["fresh", "fresh"]), 0);
  assertEquals(freshnessExitCode(["fresh", "failed"]), 1);
  assertEquals(freshnessExitCode(["stale", "fresh"]), 1);
  assertEquals(freshnessExitCode(["fresh", "stale", "never", "failed"]), 2);
});
