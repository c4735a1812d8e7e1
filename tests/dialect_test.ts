/**
 * Each engine's dump dialect (lib/engines/dialect.ts) recognises its own dump tool's banner
 * and no other's, so a file of unknown family is sniffed right; the real tools' output is
 * checked in the "dump" step of tests/engine_suite_test.ts.
 */
import { assert, assertEquals } from "./harness/assert.ts";
import { DIALECTS, engineOf } from "../lib/engines/mod.ts";
import { DumpLineReader } from "../lib/restore/dump_filter.ts";

/** Opening lines as pg_dump 15-18, mysqldump 9 and mariadb-dump 10.11 write them. */
const BANNERS = {
  postgresql: ["-- PostgreSQL database dump"],
  mysql: [
    "-- MySQL dump 10.13  Distrib 9.1.0, for Linux (x86_64)",
    "-- MariaDB dump 10.19  Distrib 10.11.14-MariaDB, for debian-linux-gnu (x86_64)",
  ],
} as const;

/** Lines that look close but open no dump (completion lines, MariaDB's sandbox switch). */
const NOT_BANNERS = [
  "-- PostgreSQL database dump complete",
  "-- Dump completed on 2026-01-01  0:00:00",
  "/*M!999999\\- enable the sandbox mode */",
  "-- MySQL dumper",
  "SELECT '-- PostgreSQL database dump';",
];

Deno.test("each engine's dialect recognises its own dump banner and not the other's", () => {
  for (const type of ["postgresql", "mysql", "mariadb"] as const) {
    const engine = engineOf(type);
    assertEquals(engine.dialect.family, engine.family, type);
    assert(DIALECTS.includes(engine.dialect), `${type}: dialect missing from DIALECTS`);
    for (const [family, banners] of Object.entries(BANNERS)) {
      for (const banner of banners) {
        assertEquals(
          engine.dialect.isBanner(banner),
          family === engine.family,
          `${type}: ${banner}`,
        );
      }
    }
    for (const line of NOT_BANNERS) assert(!engine.dialect.isBanner(line), `${type}: ${line}`);
  }
});

Deno.test("a file of unknown family takes the family of the banner it opens with", () => {
  for (const [family, banners] of Object.entries(BANNERS)) {
    for (const banner of banners) {
      const reader = new DumpLineReader();
      reader.push(new TextEncoder().encode(`${banner}\nSELECT 1;\n`), () => {});
      reader.end(() => {});
      assertEquals(reader.facts.dialect?.family, family, banner);
      assertEquals(reader.facts.banner, banner);
    }
  }
});
