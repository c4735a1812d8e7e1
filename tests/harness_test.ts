/**
 * The test servers behave like real, password-protected servers and leave nothing behind.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import {
  type MyServer,
  type PgServer,
  sharedMariadb,
  sharedPostgres,
  startMariadb,
  startPostgres,
  sweepLeftovers,
} from "./harness/servers.ts";

const decoder = new TextDecoder();

async function portOpen(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

async function dirExists(dir: string): Promise<boolean> {
  try {
    await Deno.stat(dir);
    return true;
  } catch {
    return false;
  }
}

/** Logs in over TCP with the given password through the real client; returns exit code + stderr. */
async function login(server: PgServer | MyServer, password: string) {
  const cmd = server.engine === "postgresql"
    ? new Deno.Command(`${server.bin}/psql`, {
      args: [
        "-X",
        "-At",
        "-h",
        "127.0.0.1",
        "-p",
        String(server.port),
        "-U",
        server.user,
        "-c",
        "select 1",
        "postgres",
      ],
      env: { PGPASSWORD: password },
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(`${server.bin}/mariadb`, {
      args: [
        "--no-defaults",
        "-h",
        "127.0.0.1",
        "-P",
        String(server.port),
        "-u",
        server.user,
        "-N",
        "-e",
        "select 1",
      ],
      env: { MYSQL_PWD: password },
      stdout: "piped",
      stderr: "piped",
    });
  const out = await cmd.output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout).trim(),
    stderr: decoder.decode(out.stderr),
  };
}

Deno.test("both servers start quickly, answer SQL and stop without leaving anything", async () => {
  const t0 = performance.now();
  const [pg, my] = await Promise.all([startPostgres(), startMariadb()]);
  const startMs = performance.now() - t0;
  try {
    // About 0.7 s on an idle machine; the bound only catches a start that waits for a timeout,
    // since parallel test modules on 2 cores slow it down several times.
    assert(startMs < 10000, `servers took ${Math.round(startMs)} ms to start`);
    assertEquals(pg.host, "127.0.0.1");
    assertMatch(await pg.sql("select version()"), /^PostgreSQL 15\./);
    assertMatch(await my.sql("select version()"), /^10\.11\..*MariaDB/);
    // Multi-statement scripts with function bodies run through stdin.
    await pg.sql(
      `create table t(a int); create function f() returns int language sql as $$ select 1 $$;
      insert into t values (1),(2);`,
    );
    assertEquals(await pg.sql("select count(*), f() from t"), "2\t1");
    await my.sql("create database d1; create table d1.t(a int); insert into d1.t values (1),(2);");
    assertEquals(await my.sql("select count(*) from t", { database: "d1" }), "2");
    // utf8mb4 survives the client.
    await my.sql(
      "create table d1.e(s varchar(10)) charset utf8mb4; insert into d1.e values ('😀');",
    );
    assertEquals(await my.sql("select s from d1.e"), "😀");
    await assertRejects(() => pg.sql("select nope"), Error, "psql failed");
  } finally {
    await Promise.all([pg.stop(), my.stop()]);
  }
  assert(!(await portOpen(pg.port)), "postgres port still open after stop");
  assert(!(await portOpen(my.port)), "mariadb port still open after stop");
  assert(!(await dirExists(pg.dir)), "postgres folder left behind");
  assert(!(await dirExists(my.dir)), "mariadb folder left behind");
  await pg.stop(); // second stop is harmless
});

Deno.test("a wrong or missing password is refused over TCP", async () => {
  const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
  assertEquals((await login(pg, pg.password)).stdout, "1");
  assertEquals((await login(my, my.password)).stdout, "1");
  const badPg = await login(pg, "wrong-password");
  assert(badPg.code !== 0);
  assertMatch(badPg.stderr, /password authentication failed for user "postgres"/);
  const badMy = await login(my, "wrong-password");
  assert(badMy.code !== 0);
  assertMatch(badMy.stderr, /Access denied for user 'root'@'127\.0\.0\.1'/);
  assert((await login(my, "")).code !== 0, "mariadb accepted an empty password");
  // Only the password-protected root accounts remain (no password-less ::1 / hostname roots).
  assertEquals(
    await my.sql("select concat(user,'@',host) from mysql.user order by 1"),
    "mariadb.sys@localhost\nroot@%\nroot@localhost",
  );
});

Deno.test("shared servers are started once per test module", async () => {
  const a = await sharedPostgres();
  const b = await sharedPostgres();
  assert(a === b);
  assert((await sharedMariadb()) === (await sharedMariadb()));
});

async function spawnServe() {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./harness/serve.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  const info = JSON.parse(text);
  return {
    child,
    pg: info.postgres as { port: number; dir: string },
    my: info.mariadb as { port: number; dir: string },
  };
}

Deno.test("SIGTERM to a test process stops its servers", async () => {
  const { child, pg, my } = await spawnServe();
  assert(await portOpen(pg.port) && await portOpen(my.port));
  child.kill("SIGTERM");
  const status = await child.status;
  assertEquals(status.code, 143);
  assert(!(await dirExists(pg.dir)) && !(await dirExists(my.dir)), "folders left behind");
  assert(!(await portOpen(pg.port)) && !(await portOpen(my.port)), "servers still listening");
});

Deno.test("servers of a SIGKILLed test process are removed by the watcher", async () => {
  const { child, pg, my } = await spawnServe();
  child.kill("SIGKILL");
  await child.status;
  const end = Date.now() + 15000;
  while (Date.now() < end && (await dirExists(pg.dir) || await dirExists(my.dir))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert(!(await dirExists(pg.dir)) && !(await dirExists(my.dir)), "folders left behind");
  assert(!(await portOpen(pg.port)) && !(await portOpen(my.port)), "servers still listening");
});

Deno.test("the sweep removes folders whose owner process is dead, and only those", async () => {
  const dead = await Deno.makeTempDir({ dir: "/tmp", prefix: "vyat-" });
  const alive = await Deno.makeTempDir({ dir: "/tmp", prefix: "vyat-" });
  try {
    // pid 2^22+1 is above Linux's pid_max limit, so it is never a live process.
    await Deno.writeTextFile(`${dead}/owner`, "4194305 1\n");
    await Deno.writeTextFile(`${alive}/owner`, `${Deno.pid} \n`);
    const removed = sweepLeftovers();
    assert(removed.includes(dead), `swept ${removed}`);
    assert(!removed.includes(alive) && await dirExists(alive), "a live owner's folder was swept");
    assert(!(await dirExists(dead)));
  } finally {
    await Deno.remove(alive, { recursive: true }).catch(() => {});
    await Deno.remove(dead, { recursive: true }).catch(() => {});
  }
});
