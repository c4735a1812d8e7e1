/**
 * The re-run of `users restore --skip-existing` on MySQL 9 (VYA_TEST_MATRIX=full): accounts
 * restored from a backup compare equal to it (caching_sha2 hashes read as hex on both sides, a
 * role granted to a role restored first), and one whose grant was taken back is named.
 */
import { assertEquals, assertStringIncludes } from "./harness/assert.ts";
import { matrixMode, startMysql } from "./harness/matrix.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { latestUsersBackup } from "../lib/users/store.ts";

Deno.test({
  name: "users restore --skip-existing on MySQL 9: same accounts skipped, a changed one named",
  ignore: matrixMode() !== "full",
  async fn() {
    const [a, b] = await Promise.all([startMysql(), startMysql()]);
    let env: TestEnv | undefined;
    try {
      await a.sql(`
        CREATE DATABASE shop; CREATE TABLE shop.t (a INT, b INT);
        CREATE ROLE 'z_base'@'%', 'a_top'@'%';
        GRANT SELECT ON shop.* TO 'z_base'@'%';
        GRANT 'z_base'@'%' TO 'a_top'@'%';
        CREATE USER 'app'@'%' IDENTIFIED BY 'App-pw-1';
        GRANT 'a_top'@'%' TO 'app'@'%';
        SET DEFAULT ROLE 'a_top'@'%' TO 'app'@'%';
        GRANT SELECT (a) ON shop.t TO 'app'@'%';
      `);
      await b.sql("CREATE DATABASE shop; CREATE TABLE shop.t (a INT, b INT);");
      env = await makeTestEnv([{ id: "a", server: a }, { id: "b", server: b }]);
      let r = await env.run(["users", "backup", "--instance", "a"]);
      assertEquals(r.code, 0, r.stderr);
      const file = (await latestUsersBackup(env.storage, Deno.hostname(), "a"))!;
      const restore = ["users", "restore", "--instance", "b", "--all", "--file", file];
      r = await env.run(restore);
      assertEquals(r.code, 0, r.stdout + r.stderr);
      r = await env.run([...restore, "--skip-existing"]);
      assertEquals(r.code, 0, r.stdout + r.stderr);
      assertStringIncludes(r.stdout, "skipped  app@%  (exists, same as the backup");
      await b.sql("REVOKE SELECT (a) ON shop.t FROM 'app'@'%'");
      r = await env.run([...restore, "--skip-existing"]);
      assertEquals(r.code, 1, r.stdout + r.stderr);
      assertStringIncludes(
        r.stdout,
        "differs  app@%  (exists but differs from the backup: missing grants: GRANT SELECT (`a`) ON `shop`.`t` TO `app`@`%`",
      );
    } finally {
      await env?.cleanup();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
});
