/**
 * The tool's own MySQL/MariaDB sessions read backslashes as escapes whatever the server's
 * sql_mode says: mysql2 quotes placeholder values with backslashes, and under a global
 * NO_BACKSLASH_ESCAPES a quote in a database name would end the string and rewrite the query
 * (a hosting server's tenant may name a database so).
 */
import { assertEquals } from "./harness/assert.ts";
import { startMariadb } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { metadataOf, readMeta } from "./backup_support.ts";
import { storageName } from "../lib/storage/layout.ts";

const HOSTILE = "q' OR 1=1 -- x";
const TARGET = "r' OR 1=1 -- y";

Deno.test("MariaDB with NO_BACKSLASH_ESCAPES: a database named with a quote is counted, backed up and restored as itself", async () => {
  const my = await startMariadb();
  let env: TestEnv | undefined;
  try {
    await my.sql(
      "CREATE DATABASE `q' OR 1=1 -- x`; CREATE TABLE `q' OR 1=1 -- x`.t (id INT PRIMARY KEY);" +
        "INSERT INTO `q' OR 1=1 -- x`.t VALUES (1), (2);" +
        "CREATE DATABASE other; CREATE TABLE other.a (id INT); CREATE TABLE other.b (id INT);",
    );
    await my.sql("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')");
    env = await makeTestEnv([{ id: "m", server: my }]);
    const b = await env.run(["backup", "--instance", "m", "--database", HOSTILE]);
    assertEquals(b.code, 0, b.stderr);
    const meta = await readMeta(metadataOf(env, "m", storageName(HOSTILE))[0]);
    // Rewritten, the counts' `TABLE_SCHEMA = ?` matched every table of the server.
    assertEquals(meta.objects?.tables, 1);
    assertEquals(Object.keys(meta.tables ?? {}), ["t"]);
    // Rewritten, the restore's existence check found the new target "existing".
    const r = await env.run([
      "restore",
      "--instance",
      "m",
      "--database",
      HOSTILE,
      "--latest",
      "--target",
      TARGET,
    ]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    // Read by name in backquotes: the helpers' own literals would meet the same trap.
    assertEquals(
      await my.sql("SELECT GROUP_CONCAT(id ORDER BY id) FROM `r' OR 1=1 -- y`.t"),
      "1,2",
    );
    assertEquals(
      (await my.sql("SELECT @@GLOBAL.sql_mode")).includes("NO_BACKSLASH_ESCAPES"),
      true,
    );
  } finally {
    await env?.cleanup();
    await my.stop();
  }
});
