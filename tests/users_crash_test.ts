/**
 * `users restore` cut short by a server crash (MariaDB SIGKILLed in the middle of 200
 * accounts): every account is restored completely before the next, so after the restart a
 * re-run with `--skip-existing` either finds an account as the backup has it or names it as
 * differing (exit 1), and `--replace` then makes every account whole. The plain re-run refuses,
 * changing nothing.
 */
import type mysql from "mysql2/promise";
import { assert, assertEquals, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, startMariadb } from "./harness/servers.ts";
import { detach, sleep, waitTcpReady } from "./harness/process.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { startCli } from "./backup_support.ts";
import { openMysql } from "../lib/engines/mysql/driver.ts";
import { latestUsersBackup } from "../lib/users/store.ts";

const ACCOUNTS = 200;

/** SIGKILLs the server and starts it again on the same data, port and options. */
async function crashAndRestart(server: MyServer): Promise<void> {
  const pid = Number((await Deno.readTextFile(`${server.dir}/mysqld.pid`)).trim());
  const argv = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0").filter(Boolean);
  Deno.kill(pid, "SIGKILL");
  while (await Deno.stat(`/proc/${pid}`).then(() => true, () => false)) await sleep(20);
  // The dead server's pid file would read as "exited" to the readiness wait.
  await Deno.remove(`${server.dir}/mysqld.pid`).catch(() => {});
  await detach(argv, "mariadbd restart");
  await waitTcpReady(server.dir, server.port, {
    name: "mariadbd",
    seconds: 60,
    aborted: /\[ERROR\] Aborting/,
  });
}

/**
 * Every account but root's with its SHOW CREATE USER and SHOW GRANTS, read through one driver
 * connection (200 accounts through the client would take half a minute). The lines are sorted,
 * and so are column lists: the server prints database-level grants and columns in an order of
 * its own that means nothing.
 */
async function accounts(server: MyServer): Promise<Record<string, string>> {
  const conn = await openMysql(server.params);
  const first = (rows: mysql.RowDataPacket[]) => rows.map((r) => String(Object.values(r)[0]));
  try {
    const [users] = await conn.query<mysql.RowDataPacket[]>(
      "SELECT User AS u, Host AS h, is_role AS r FROM mysql.user WHERE User <> 'root'",
    );
    const out: Record<string, string> = {};
    for (const { u, h, r } of users) {
      const who = r === "Y" ? conn.escapeId(u) : `${conn.escape(u)}@${conn.escape(h)}`;
      const lines = r === "Y" ? [] : first(
        (await conn.query<mysql.RowDataPacket[]>(
          `SHOW CREATE USER ${who}`,
        ))[0],
      );
      lines.push(...first((await conn.query<mysql.RowDataPacket[]>(`SHOW GRANTS FOR ${who}`))[0]));
      out[`${u}@${r === "Y" ? "" : h}`] = lines
        .map((l) =>
          l.replace(/\(([^()]*)\)/g, (_, c: string) => `(${c.split(", ").sort().join(", ")})`)
        )
        .sort().join("\n");
    }
    return out;
  } finally {
    await conn.end();
  }
}

async function countUsers(conn: mysql.Connection): Promise<number> {
  const [[row]] = await conn.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM mysql.user WHERE User LIKE 'u%'",
  );
  return Number(row.n);
}

Deno.test("users restore: a server crash mid-restore leaves no account that looks whole but is not", async (t) => {
  const [a, b] = await Promise.all([startMariadb(), startMariadb()]);
  let env: TestEnv | undefined;
  try {
    // a_mid holds z_base: restored one account at a time, z_base must come first although
    // the file (sorted by name) has a_mid first.
    const script = [
      "CREATE DATABASE shop; CREATE TABLE shop.t (a INT, b INT);",
      "CREATE ROLE z_base; GRANT SELECT ON shop.* TO z_base;",
      "CREATE ROLE a_mid; GRANT z_base TO a_mid; GRANT INSERT ON shop.* TO a_mid;",
    ];
    for (let i = 0; i < ACCOUNTS; i++) {
      const u = `'u${String(i).padStart(3, "0")}'@'%'`;
      script.push(
        `CREATE USER ${u} IDENTIFIED BY 'pw${i}';`,
        `GRANT PROCESS ON *.* TO ${u};`,
        `GRANT UPDATE ON shop.* TO ${u};`,
        `GRANT SELECT (a), UPDATE (b) ON shop.t TO ${u};`,
        `GRANT DELETE ON reports.* TO ${u};`,
        `GRANT a_mid TO ${u};`,
        `SET DEFAULT ROLE a_mid FOR ${u};`,
      );
    }
    await a.sql(script.join("\n"));
    await b.sql("CREATE DATABASE shop; CREATE TABLE shop.t (a INT, b INT);");
    env = await makeTestEnv([{ id: "a", server: a }, { id: "b", server: b }]);
    const backup = await env.run(["users", "backup", "--instance", "a"]);
    assertEquals(backup.code, 0, backup.stderr);
    const file = (await latestUsersBackup(env.storage, Deno.hostname(), "a"))!;
    const restore = ["users", "restore", "--instance", "b", "--all", "--file", file];

    await t.step("the server is killed in the middle of the restore", async () => {
      const watch = await openMysql(b.params);
      const cli = startCli(env!, restore);
      let seen = 0;
      try {
        while (seen < 40 && !cli.result) {
          seen = await countUsers(watch);
          await sleep(2);
        }
      } finally {
        watch.destroy();
      }
      assert(!cli.result, "the restore was still running when the server was killed");
      await crashAndRestart(b);
      const r = await cli.done;
      assertEquals(r.code, 1, r.stdout + r.stderr);
      assertStringIncludes(r.stderr, "connection to the server was lost");
      const conn = await openMysql(b.params);
      try {
        const n = await countUsers(conn);
        assert(n > 0 && n < ACCOUNTS, `some accounts, not all, were created (${n})`);
      } finally {
        await conn.end();
      }
    });

    await t.step("the plain re-run refuses and changes nothing", async () => {
      const before = await accounts(b);
      const r = await env!.run(restore);
      assertEquals(r.code, 3, r.stdout + r.stderr);
      assertStringIncludes(r.stderr, "nothing was changed");
      assertStringIncludes(r.stderr, "--skip-existing");
      assertEquals(await accounts(b), before);
    });

    await t.step("--skip-existing: each account is whole or named as differing", async () => {
      // One more account made incomplete on purpose, whatever point the kill hit.
      await b.sql("REVOKE a_mid FROM 'u000'@'%'");
      const r = await env!.run([...restore, "--skip-existing"]);
      const differing = r.stdout.split("\n").filter((l) => l.startsWith("differs "))
        .map((l) => l.split(/\s+/)[1]);
      assert(differing.includes("u000@%"), r.stdout);
      assertStringIncludes(
        r.stdout,
        "differs  u000@%  (exists but differs from the backup: missing grants: GRANT `a_mid` TO `u000`@`%`",
      );
      assertEquals(r.code, 1, r.stdout + r.stderr);
      assertStringIncludes(r.stdout, "restore them as backed up with --replace");
      const want = await accounts(a);
      const got = await accounts(b);
      for (const [key, text] of Object.entries(want)) {
        const label = key;
        assert(key in got, `${label} exists after the re-run`);
        if (got[key] !== text) {
          assert(
            differing.includes(label),
            `${label} is incomplete and not reported:\n${got[key]}\n--- backup:\n${text}`,
          );
        }
      }
    });

    await t.step("--replace makes every account whole", async () => {
      const r = await env!.run([...restore, "--replace"]);
      assertEquals(r.code, 0, r.stdout + r.stderr);
      assertEquals(await accounts(b), await accounts(a));
      const again = await env!.run([...restore, "--skip-existing"]);
      assertEquals(again.code, 0, again.stdout + again.stderr);
    });
  } finally {
    await env?.cleanup();
    await Promise.all([a.stop(), b.stop()]);
  }
});
