/**
 * Backups that must stay safe when the world misbehaves (issue 14): a kill -9 leaves no
 * password on disk, a stalled server does not hang the run, names that differ only in case or
 * are too long for a file name are each backed up on their own, a run with nothing to do says
 * so, and a failure writing the sidecars leaves no complete-looking dump.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, sharedMariadb, startMariadb } from "./harness/servers.ts";
import { makeTestEnv } from "./helpers/cli.ts";
import {
  alive,
  descendants,
  dumpFiles,
  holdLock,
  instanceRoot,
  listFiles,
  readMeta,
  runWithin,
  startCli,
  waitDumpBlocked,
  waitFor,
} from "./backup_support.ts";

const TMP = Deno.env.get("TMPDIR") ?? "/tmp";

/** Every regular file below the temporary folder's `vya-*` folders (not FIFOs: reading blocks). */
function tmpFilesContaining(needle: string, skip: string[]): string[] {
  const hits: string[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (skip.some((s) => p.startsWith(s))) continue;
      if (e.isDirectory) walk(p);
      else if (e.isFile) {
        try {
          if (new TextDecoder().decode(Deno.readFileSync(p)).includes(needle)) hits.push(p);
        } catch { /* vanished or not ours */ }
      }
    }
  };
  for (const e of Deno.readDirSync(TMP)) {
    if (e.isDirectory && e.name.startsWith("vya-")) walk(join(TMP, e.name));
  }
  return hits;
}

/** `vya-opt-*` folders below the temporary folder. */
function optionFolders(tmp = TMP): string[] {
  return [...Deno.readDirSync(tmp)]
    .filter((e) => e.isDirectory && e.name.startsWith("vya-opt-"))
    .map((e) => join(tmp, e.name));
}

Deno.test("backup secrets: kill -9 during a MariaDB dump leaves no password in any file, and the next run sweeps the leftover", async () => {
  const my = await sharedMariadb();
  await my.sql("CREATE DATABASE kill_sec; CREATE TABLE kill_sec.t (v TEXT);");
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { users: { backup: false }, databases: { include: ["kill_sec"] } },
  }]);
  // A temporary folder of this run's own: other test files' clients make options folders too.
  const tmp = await Deno.makeTempDir({ prefix: "vya-tmpdir-" });
  const before = new Set(optionFolders(tmp));
  const lock = await holdLock(my, "kill_sec", "t");
  let orphans: number[] = [];
  try {
    const run = startCli(env, ["backup", "--all"], { TMPDIR: tmp });
    await waitDumpBlocked(my, my.user, run);
    orphans = descendants(run.pid).map((d) => d.pid);
    run.kill("SIGKILL");
    await run.done;
    for (const pid of orphans) if (alive(pid)) Deno.kill(pid, "SIGKILL");
    const skip = [env.dir, my.dir];
    assertEquals(tmpFilesContaining(my.password, skip), [], "a file holds the password");
    const left = optionFolders(tmp).filter((d) => !before.has(d));
    assertEquals(left.length, 1, "the killed run's options folder (an empty pipe) is left");
    await lock.release();
    const again = await runWithin(env, ["backup", "--all"], 30_000, { TMPDIR: tmp });
    assertEquals(again.code, 0, again.stdout + again.stderr);
    for (const d of left) {
      assert(!optionFolders(tmp).includes(d), `${d} of the dead run was not swept`);
    }
  } finally {
    await lock.release();
    for (const pid of orphans) if (alive(pid)) Deno.kill(pid, "SIGKILL");
    await env.cleanup();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

const myIdent = (n: string) => `\`${n.replaceAll("`", "``")}\``;

/** Creates a MariaDB database with a table `t` holding one marker row. */
async function markedDb(my: MyServer, name: string, marker: string): Promise<void> {
  await my.sql(
    `CREATE DATABASE ${myIdent(name)}; CREATE TABLE ${myIdent(name)}.t (v TEXT);
     INSERT INTO ${myIdent(name)}.t VALUES ('${marker}');`,
  );
}

Deno.test("backup names: MariaDB databases differing only in case are listed, backed up apart and selected exactly", async () => {
  const my = await sharedMariadb();
  assertEquals(await my.sql("SELECT @@lower_case_table_names"), "0");
  await markedDb(my, "CaseShop", "marker-upper");
  await markedDb(my, "caseshop", "marker-lower");
  // Told apart by their properties and contents too, not only by their dumps.
  await my.sql(
    "ALTER DATABASE CaseShop CHARACTER SET latin1 COLLATE latin1_swedish_ci; CREATE TABLE CaseShop.extra (x INT);",
  );
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { users: { backup: false }, databases: { include: ["[Cc]ase[Ss]hop"] } },
  }]);
  try {
    const all = await env.run(["backup", "--all"]);
    assertEquals(all.code, 0, all.stdout + all.stderr);
    assertStringIncludes(all.stdout, "2 ok, 0 failed");
    const root = instanceRoot(env, "maria");
    for (const [name, marker] of [["CaseShop", "marker-upper"], ["caseshop", "marker-lower"]]) {
      const dumps = dumpFiles(join(root, name));
      assertEquals(dumps.length, 1, name);
      const text = new TextDecoder().decode(
        (await new Deno.Command("gzip", { args: ["-dc", dumps[0]], stdout: "piped" }).output())
          .stdout,
      );
      assertStringIncludes(text, marker);
      const meta = await readMeta(dumps[0].replace(/\.sql\.gz$/, ".metadata.json"));
      assertEquals(meta.database, name);
      assertEquals(meta.objects?.tables, name === "CaseShop" ? 2 : 1, name);
      assertEquals(
        meta.database_properties?.character_set,
        name === "CaseShop" ? "latin1" : "utf8mb4",
        name,
      );
    }
    const one = await env.run(["backup", "--instance", "maria", "--database", "CaseShop"]);
    assertEquals(one.code, 0, one.stdout + one.stderr);
    assertMatch(one.stdout, /^ok {6}maria\/CaseShop /m);
    assertEquals(dumpFiles(join(root, "CaseShop")).length, 2);
    assertEquals(dumpFiles(join(root, "caseshop")).length, 1);
  } finally {
    await env.cleanup();
  }
});

const STARS = "★".repeat(40);

Deno.test("backup names: a name too long to encode gets a bounded unique folder and restores with --latest", async () => {
  const my = await sharedMariadb();
  await markedDb(my, STARS, "marker-stars");
  await markedDb(my, "long_neighbour", "marker-neighbour");
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { databases: { include: [STARS, "long_neighbour"] } },
  }]);
  try {
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertStringIncludes(r.stdout, `ok      maria/${STARS} `);
    assertMatch(r.stdout, /^ok {6}maria\/\(users\)/m);
    const root = instanceRoot(env, "maria");
    const folders = [...Deno.readDirSync(root)].filter((e) => e.isDirectory).map((e) => e.name);
    const short = folders.find((f) => f.includes("~"));
    assert(short, `no shortened folder among ${folders.join(", ")}`);
    for (const file of listFiles(join(root, short))) {
      const name = file.slice(file.lastIndexOf("/") + 1);
      assert(new TextEncoder().encode(name).length < 200, `${name} is too long`);
    }
    const [dump] = dumpFiles(join(root, short));
    assertEquals((await readMeta(dump.replace(/\.sql\.gz$/, ".metadata.json"))).database, STARS);

    const list = await env.run(["restore", "--instance", "maria", "--list"]);
    assertEquals(list.code, 0, list.stdout + list.stderr);
    assertStringIncludes(list.stdout, STARS);
    const restored = await env.run([
      "restore",
      "--instance",
      "maria",
      "--database",
      STARS,
      "--latest",
      "--target",
      "stars_copy",
    ]);
    assertEquals(restored.code, 0, restored.stdout + restored.stderr);
    assertEquals(await my.sql("SELECT v FROM stars_copy.t"), "marker-stars");
  } finally {
    await my.sql("DROP DATABASE IF EXISTS stars_copy").catch(() => {});
    await env.cleanup();
  }
});

Deno.test("backup isolation: a database whose storage path is unusable fails alone; the rest and the users are backed up", async () => {
  const my = await sharedMariadb();
  await markedDb(my, "iso_blocked", "x");
  await markedDb(my, "iso_fine", "y");
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { databases: { include: ["iso_*"] } },
  }]);
  try {
    const root = instanceRoot(env, "maria");
    await Deno.mkdir(root, { recursive: true });
    // A file where the database's folder should be: every path below it fails (ENOTDIR).
    await Deno.writeTextFile(join(root, "iso_blocked"), "not a folder");
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    assertMatch(r.stdout, /^FAILED {2}maria\/iso_blocked: /m);
    assertMatch(r.stdout, /^ok {6}maria\/iso_fine /m);
    assertMatch(r.stdout, /^ok {6}maria\/\(users\)/m);
    assertStringIncludes(r.stdout, "2 ok, 1 failed");
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup empty runs: no enabled instance is exit 3 unless --allow-empty; config validate warns; a selection matching nothing fails its instance", async () => {
  const my = await sharedMariadb();
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { users: { backup: false }, databases: { include: ["nothing_matches_*"] } },
  }]);
  try {
    const none = await env.run(["backup", "--all"]);
    assertEquals(none.code, 2, none.stdout + none.stderr);
    assertMatch(
      none.stdout,
      /^FAILED {2}maria \(instance\): no database of instance maria matches/m,
    );
    const allowed = await env.run(["backup", "--all", "--allow-empty"]);
    assertEquals(allowed.code, 0, allowed.stdout + allowed.stderr);
    assertStringIncludes(allowed.stderr, "no database of instance maria matches");

    await env.writeConfig({ instances: [] });
    const validate = await env.run(["config", "validate"]);
    assertEquals(validate.code, 0, validate.stdout + validate.stderr);
    assertStringIncludes(validate.stderr, "no instance is configured");
    const empty = await env.run(["backup", "--all"]);
    assertEquals(empty.code, 3, empty.stdout + empty.stderr);
    assertStringIncludes(empty.stderr, "nothing to back up");
    assertEquals((await env.run(["backup", "--all", "--allow-empty"])).code, 0);

    await env.writeConfig({
      instances: [{
        id: "maria",
        type: "mariadb",
        host: my.host,
        port: my.port,
        credential: "maria",
        enabled: false,
      }],
    });
    const disabled = await env.run(["config", "validate"]);
    assertEquals(disabled.code, 0, disabled.stdout + disabled.stderr);
    assertStringIncludes(disabled.stderr, "every instance is disabled");
    assertEquals((await env.run(["backup", "--all"])).code, 3);
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup stall: a server stopped mid-dump fails that database after backup.stall_timeout and the next one goes on", async () => {
  const my = await startMariadb();
  const env = await makeTestEnv([{
    id: "stalled",
    server: my,
    extra: { users: { backup: false } },
  }], { extra: { backup: { stall_timeout: "2s" } } });
  let lock: Awaited<ReturnType<typeof holdLock>> | undefined;
  let serverPid = 0;
  try {
    // The big one goes first (largest first); the lock holds its dump at a known point.
    await my.sql(
      "CREATE DATABASE a_big; CREATE TABLE a_big.a (v TEXT); CREATE TABLE a_big.z (v TEXT);",
    );
    await my.sql("INSERT INTO a SELECT REPEAT('x', 1000) FROM seq_1_to_2000;", {
      database: "a_big",
    });
    await markedDb(my, "b_small", "marker-small");
    serverPid = Number((await Deno.readTextFile(join(my.dir, "mysqld.pid"))).trim());
    lock = await holdLock(my, "a_big", "z");
    const run = startCli(env, ["backup", "--all"]);
    await waitDumpBlocked(my, my.user, run);
    Deno.kill(serverPid, "SIGSTOP");
    const root = instanceRoot(env, "stalled");
    // The failure is recorded while the server is still stopped: the watchdog, not the server,
    // ended the dump.
    const failed = await waitFor("the stalled dump's failure record", () => {
      for (const f of listFiles(join(root, "a_big"))) {
        if (f.endsWith(".metadata.json")) return f;
      }
      if (run.result) throw new Error(`run ended first: ${run.result.stdout}${run.result.stderr}`);
      return undefined;
    }, 30_000);
    Deno.kill(serverPid, "SIGCONT");
    await lock.release();
    const r = await Promise.race([
      run.done,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("run hangs")), 60_000)),
    ]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    assertMatch(r.stdout, /^FAILED {2}stalled\/a_big: .*no progress for 2s: dump stalled/m);
    assertMatch(r.stdout, /^ok {6}stalled\/b_small /m);
    const meta = await readMeta(failed);
    assertEquals(meta.status, "failed");
    assertStringIncludes(meta.error ?? "", "no progress for 2s");
    assertEquals(dumpFiles(join(root, "a_big")), []);
    assertEquals(listFiles(root).filter((f) => f.endsWith(".partial")), []);
    assertEquals(descendants(run.pid), []);
  } finally {
    if (serverPid) {
      try {
        Deno.kill(serverPid, "SIGCONT");
      } catch { /* gone */ }
    }
    await lock?.release();
    await env.cleanup();
    await my.stop();
  }
});

Deno.test("backup commit order: a failure writing the checksum leaves no complete-looking dump, and a failure record", async () => {
  const my = await sharedMariadb();
  await markedDb(my, "commit_fail", "marker-commit");
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { users: { backup: false }, databases: { include: ["commit_fail"] } },
  }]);
  try {
    // The .sha256 of every stem of the next minute is a folder: its atomic write fails, as on a
    // full disk, after the dump itself was written.
    const now = Date.now();
    for (let s = 0; s < 60; s++) {
      const at = new Date(now + s * 1000);
      const day = at.toISOString().slice(0, 10);
      const stamp = at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
      await Deno.mkdir(
        join(instanceRoot(env, "maria"), "commit_fail", day, `commit_fail_${stamp}.sha256`),
        {
          recursive: true,
        },
      );
    }
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 2, r.stdout + r.stderr);
    assertMatch(r.stdout, /^FAILED {2}maria\/commit_fail: /m);
    const root = join(instanceRoot(env, "maria"), "commit_fail");
    assertEquals(dumpFiles(root), [], "a dump under its final name without its sidecars");
    assertEquals(listFiles(root).filter((f) => f.endsWith(".partial")), []);
    const metas = listFiles(root).filter((f) => f.endsWith(".metadata.json"));
    assertEquals(metas.length, 1);
    const meta = await readMeta(metas[0]);
    assertEquals(meta.status, "failed");
    assertEquals(meta.file, null);
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup commit order: a users backup whose metadata cannot be written leaves no complete-looking file", async () => {
  const my = await sharedMariadb();
  const env = await makeTestEnv([{ id: "maria", server: my }]);
  try {
    // The metadata of every users stem of the next minute is a folder: writing it fails, as on
    // a full disk, after the users file itself was written.
    const now = Date.now();
    for (let s = 0; s < 60; s++) {
      const stamp = new Date(now + s * 1000).toISOString().replace(/[-:]/g, "").replace(
        /\.\d{3}/,
        "",
      );
      await Deno.mkdir(join(instanceRoot(env, "maria"), `users_${stamp}.metadata.json`), {
        recursive: true,
      });
    }
    const r = await env.run(["users", "backup", "--instance", "maria"]);
    assert(r.code !== 0, r.stdout + r.stderr);
    const files = listFiles(instanceRoot(env, "maria"));
    assertEquals(files.filter((f) => /users_\d{8}T\d{6}Z\.sql(\.gz|\.zst)?$/.test(f)), []);
    assertEquals(files.filter((f) => f.endsWith(".sha256") || f.endsWith(".partial")), []);
  } finally {
    await env.cleanup();
  }
});

Deno.test("backup commit order: sidecars a killed run left before renaming its dump are retracted by the next run", async () => {
  const my = await sharedMariadb();
  await markedDb(my, "crash_left", "marker-crash");
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { users: { backup: false }, databases: { include: ["crash_left"] } },
  }]);
  try {
    const first = await env.run(["backup", "--all"]);
    assertEquals(first.code, 0, first.stdout + first.stderr);
    // What a kill -9 between the metadata write and the rename leaves: the dump still .partial.
    const [dump] = dumpFiles(join(instanceRoot(env, "maria"), "crash_left"));
    await Deno.rename(dump, dump + ".partial");
    const stem = dump.replace(/\.sql\.gz$/, "");
    const again = await env.run(["backup", "--all"]);
    assertEquals(again.code, 0, again.stdout + again.stderr);
    const meta = await readMeta(stem + ".metadata.json");
    assertEquals(meta.status, "failed");
    assertEquals(meta.file, null);
    assert(!listFiles(instanceRoot(env, "maria")).includes(stem + ".sha256"));
    const list = await env.run(["restore", "--instance", "maria", "--list"]);
    assertEquals(list.code, 0, list.stdout + list.stderr);
  } finally {
    await env.cleanup();
  }
});
