/**
 * MariaDB database comments (`CREATE DATABASE … COMMENT`, 10.5+) survive backup and
 * `restore --target` through the CLI, whatever the target server's sql_mode says about
 * backslashes.
 */
import { assertEquals } from "./harness/assert.ts";
import { startMariadb } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { myProps } from "./helpers/compare.ts";
import { openMysql } from "../lib/engines/mysql/driver.ts";

// MariaDB keeps database comments in utf8mb3: an emoji becomes "?" on the server itself
// (CREATE DATABASE … COMMENT '🦆' shows '?'), so the non-ASCII text is from the BMP.
const COMMENT = 'it\'s a \\ back\\slash, a "quote", ★ and é';

Deno.test("MariaDB: a database comment with a quote, a backslash and non-ASCII text is restored", async (t) => {
  const my = await startMariadb();
  let env: TestEnv | undefined;
  try {
    // Created through the driver (utf8mb4), with the literal quoted for the default sql_mode.
    const conn = await openMysql(my.params);
    try {
      await conn.query("CREATE DATABASE noted COMMENT ?", [COMMENT]);
      await conn.query("CREATE TABLE noted.t (id INT PRIMARY KEY)");
    } finally {
      await conn.end();
    }
    assertEquals((await myProps(my, "noted")).comment, COMMENT);
    env = await makeTestEnv([{ id: "m", server: my }]);
    const b = await env.run(["backup", "--instance", "m", "--database", "noted"]);
    assertEquals(b.code, 0, b.stderr);

    const restoreAs = async (target: string) => {
      const r = await env!.run([
        "restore",
        "--instance",
        "m",
        "--database",
        "noted",
        "--latest",
        "--target",
        target,
      ]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertEquals(await myProps(my, target), await myProps(my, "noted"));
    };
    await t.step("default sql_mode", () => restoreAs("noted_copy"));
    await t.step("NO_BACKSLASH_ESCAPES on the server", async () => {
      await my.sql("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')");
      await restoreAs("noted_nbe");
      // The session's mode was put back: the rest of the load ran under the server's mode.
      assertEquals(
        (await my.sql("SELECT @@GLOBAL.sql_mode")).includes("NO_BACKSLASH_ESCAPES"),
        true,
      );
    });
  } finally {
    await env?.cleanup();
    await my.stop();
  }
});
