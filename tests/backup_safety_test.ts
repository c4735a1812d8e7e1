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
function optionFolders(): string[] {
  return [...Deno.readDirSync(TMP)]
    .filter((e) => e.isDirectory && e.name.startsWith("vya-opt-"))
    .map((e) => join(TMP, e.name));
}

Deno.test("backup secrets: kill -9 during a MariaDB dump leaves no password in any file, and the next run sweeps the leftover", async () => {
  const my = await sharedMariadb();
  await my.sql("CREATE DATABASE kill_sec; CREATE TABLE kill_sec.t (v TEXT);");
  const env = await makeTestEnv([{
    id: "maria",
    server: my,
    extra: { users: { backup: false }, databases: { include: ["kill_sec"] } },
  }]);
  const before = new Set(optionFolders());
  const lock = await holdLock(my, "kill_sec", "t");
  let orphans: number[] = [];
  try {
    const run = startCli(env, ["backup", "--all"]);
    await waitDumpBlocked(my, my.user, run);
    orphans = descendants(run.pid).map((d) => d.pid);
    run.kill("SIGKILL");
    await run.done;
    for (const pid of orphans) if (alive(pid)) Deno.kill(pid, "SIGKILL");
    const skip = [env.dir, my.dir];
    assertEquals(tmpFilesContaining(my.password, skip), [], "a file holds the password");
    const left = optionFolders().filter((d) => !before.has(d));
    assertEquals(left.length, 1, "the killed run's options folder (an empty pipe) is left");
    await lock.release();
    const again = await runWithin(env, ["backup", "--all"]);
    assertEquals(again.code, 0, again.stdout + again.stderr);
    for (const d of left) {
      assert(!optionFolders().includes(d), `${d} of the dead run was not swept`);
    }
  } finally {
    await lock.release();
    for (const pid of orphans) if (alive(pid)) Deno.kill(pid, "SIGKILL");
    await env.cleanup();
  }
});
