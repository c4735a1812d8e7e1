/**
 * Database selection: include globs, then exclude globs, and never a system database.
 */
import { assert, assertEquals } from "./harness/assert.ts";
import { globMatch, isSystemDatabase, selectDatabases } from "../lib/engines/mod.ts";
import type { DatabaseInfo } from "../lib/engines/types.ts";

const dbs = (...names: string[]): DatabaseInfo[] => names.map((name) => ({ name, sizeBytes: 1 }));
const names = (list: DatabaseInfo[]) => list.map((d) => d.name);

const PG_ALL = dbs("app", "app_test", "postgres", "reports", "template0", "template1", "App2");
const MY_ALL = dbs(
  "information_schema",
  "mysql",
  "performance_schema",
  "shop",
  "shop_archive",
  "sys",
);

Deno.test("an empty include list selects every user database, never the system ones", () => {
  assertEquals(names(selectDatabases("postgresql", PG_ALL, [], [])), [
    "app",
    "app_test",
    "reports",
    "App2",
  ]);
  assertEquals(names(selectDatabases("mysql", MY_ALL, [], [])), ["shop", "shop_archive"]);
  assertEquals(names(selectDatabases("mariadb", MY_ALL, [], [])), ["shop", "shop_archive"]);
});

Deno.test("system databases stay out even when included by * or by name", () => {
  assertEquals(names(selectDatabases("postgresql", PG_ALL, ["*"], [])), [
    "app",
    "app_test",
    "reports",
    "App2",
  ]);
  assertEquals(
    names(selectDatabases("postgresql", PG_ALL, ["postgres", "template0", "template1"], [])),
    [],
  );
  assertEquals(
    names(selectDatabases("mysql", MY_ALL, ["mysql", "sys", "information_schema", "shop"], [])),
    ["shop"],
  );
  assertEquals(names(selectDatabases("mariadb", MY_ALL, ["performance_schema"], [])), []);
});

Deno.test("include globs then exclude globs", () => {
  assertEquals(names(selectDatabases("postgresql", PG_ALL, ["app*"], [])), ["app", "app_test"]);
  assertEquals(names(selectDatabases("postgresql", PG_ALL, ["app*"], ["*_test"])), ["app"]);
  assertEquals(names(selectDatabases("postgresql", PG_ALL, [], ["app*", "rep?rts"])), ["App2"]);
  assertEquals(names(selectDatabases("mysql", MY_ALL, ["shop", "nomatch"], [])), ["shop"]);
  // An exclude wins over an include of the same name.
  assertEquals(names(selectDatabases("mysql", MY_ALL, ["shop"], ["shop"])), []);
});

Deno.test("engine-specific system names are ordinary databases on the other engine", () => {
  assertEquals(names(selectDatabases("mysql", dbs("postgres", "template1"), [], [])), [
    "postgres",
    "template1",
  ]);
  assertEquals(names(selectDatabases("postgresql", dbs("mysql", "sys"), [], [])), ["mysql", "sys"]);
  assert(isSystemDatabase("postgresql", "template0"));
  assert(!isSystemDatabase("postgresql", "Template0"), "matching is case-sensitive");
});

Deno.test("globs: *, ?, classes, case-sensitive, everything else literal", () => {
  assert(globMatch("*", ""));
  assert(globMatch("a*c", "abbbc") && globMatch("a*c", "ac") && !globMatch("a*c", "acb"));
  assert(globMatch("a?c", "abc") && !globMatch("a?c", "ac") && !globMatch("a?c", "abbc"));
  assert(globMatch("db[0-9]", "db7") && !globMatch("db[0-9]", "dbx"));
  assert(globMatch("db[abc]", "dbb") && !globMatch("db[abc]", "dbd"));
  assert(globMatch("db[!0-9]", "dbx") && !globMatch("db[!0-9]", "db1"));
  assert(globMatch("db[^0-9]", "dbx") && !globMatch("db[^0-9]", "db1"));
  assert(globMatch("[]]x", "]x"), "] first in a class is literal");
  assert(!globMatch("App*", "app") && globMatch("App*", "App2"), "case-sensitive");
  assert(globMatch("a.b", "a.b") && !globMatch("a.b", "axb"), "dot is literal");
  assert(globMatch("a+(b)|c$", "a+(b)|c$"), "regex syntax is literal");
  assert(globMatch("a[b", "a[b"), "an unclosed [ is literal");
  assert(globMatch("a[z-a]", "a[z-a]"), "a reversed range is no class");
  assert(globMatch("café_*", "café_2024") && globMatch("?", "é") && globMatch("?", "😀"));
  assert(!globMatch("app", "app\n"), "anchored at both ends");
});

Deno.test("selection keeps the input order and the sizes", () => {
  const input = [{ name: "b", sizeBytes: 20 }, { name: "a", sizeBytes: 10 }];
  assertEquals(selectDatabases("postgresql", input, [], []), input);
});
