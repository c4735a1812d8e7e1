/**
 * MariaDB's PUBLIC (10.11+: `GRANT … TO PUBLIC`) is a pseudo-role, not a role: a users backup
 * keeps its privileges, and `users restore --all` onto an empty server grants them to PUBLIC
 * again (never `CREATE ROLE PUBLIC`), including those that wait for a database restored later.
 */
import { assert, assertEquals, assertStringIncludes } from "./harness/assert.ts";
import { startMariadb } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { latestUsersBackup } from "../lib/users/store.ts";

const sortedLines = (text: string) => text.split("\n").filter(Boolean).sort();

Deno.test("users: MariaDB grants to PUBLIC survive a round trip onto an empty server", async () => {
  const [a, b] = await Promise.all([startMariadb(), startMariadb()]);
  let env: TestEnv | undefined;
  try {
    await a.sql(`
      CREATE DATABASE pub; CREATE TABLE pub.t (a INT, b INT);
      CREATE DATABASE later; CREATE TABLE later.t (a INT);
      GRANT SELECT ON pub.t TO PUBLIC;
      GRANT INSERT ON pub.* TO PUBLIC;
      GRANT UPDATE (b) ON pub.t TO PUBLIC;
      GRANT SELECT ON later.t TO PUBLIC;
      CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';
      GRANT SELECT ON pub.* TO 'app'@'%';
    `);
    const want = await a.sql("SHOW GRANTS FOR PUBLIC");
    env = await makeTestEnv([{ id: "m", server: a }]);
    let r = await env.run(["users", "backup", "--instance", "m"]);
    assertEquals(r.code, 0, r.stderr);
    r = await env.run(["backup", "--instance", "m", "--database", "later"]);
    assertEquals(r.code, 0, r.stderr);
    const file = (await latestUsersBackup(env.storage, Deno.hostname(), "m"))!;
    const meta = JSON.parse(await Deno.readTextFile(file.replace(/\.sql\.gz$/, ".metadata.json")));
    const pub = meta.accounts.find((x: { name: string }) => x.name === "PUBLIC");
    assertEquals(pub.pseudo, true);
    assertEquals(meta.objects.roles, 0);

    // The server is replaced by an empty one at the same address.
    await env.retarget("m", b);
    await b.sql("CREATE DATABASE pub; CREATE TABLE pub.t (a INT, b INT);");
    r = await env.run(["users", "restore", "--instance", "m", "--all"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assert(!/CREATE ROLE/i.test(r.stdout + r.stderr), r.stdout + r.stderr);
    assertStringIncludes(r.stdout, "later: GRANT SELECT ON `later`.`t` TO PUBLIC");
    r = await env.run(["restore", "--instance", "m", "--database", "later", "--latest"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertEquals(sortedLines(await b.sql("SHOW GRANTS FOR PUBLIC")), sortedLines(want));

    // A re-run finds PUBLIC as the backup has it; --replace revokes and grants again.
    r = await env.run(["users", "restore", "--instance", "m", "--all", "--skip-existing"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    await b.sql("REVOKE INSERT ON pub.* FROM PUBLIC; GRANT DELETE ON pub.* TO PUBLIC");
    r = await env.run(["users", "restore", "--instance", "m", "--all", "--skip-existing"]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    assertStringIncludes(r.stdout, "missing grants: GRANT INSERT ON `pub`.* TO PUBLIC");
    r = await env.run(["users", "restore", "--instance", "m", "--user", "PUBLIC", "--replace"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertStringIncludes(r.stdout, "replaced PUBLIC@  (exists: its privileges revoked first)");
    assertEquals(sortedLines(await b.sql("SHOW GRANTS FOR PUBLIC")), sortedLines(want));
  } finally {
    await env?.cleanup();
    await Promise.all([a.stop(), b.stop()]);
  }
});
