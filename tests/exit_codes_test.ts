/**
 * The exit-code contract: one row per case of README "Exit codes" per command, each run as a
 * sysadmin runs the CLI, against the real servers, asserting the code and the words that say
 * why. 130 (interrupted) is driven by signals in backup_failure_test.ts.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { acquireLock } from "../lib/storage/lock.ts";
import { openMysql } from "../lib/engines/mysql/driver.ts";
import { lockKey } from "../lib/restore/target.ts";
import { latestUsersBackup } from "../lib/users/store.ts";
import { listCatalog, removeEntryFiles } from "../lib/storage/catalog.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { ageBackups } from "./helpers/catalog_edit.ts";

/** What the rows use: the environments and the files the first rows wrote. */
interface Fixture {
  env: TestEnv;
  /** pg's credential id names no entry of the credentials file; pg-ok is fine. */
  bad: TestEnv;
  /** No instance, and its credentials file is not JSON. */
  broken: TestEnv;
  pg: PgServer;
  my: MyServer;
  pgDump: string;
  myDump: string;
  pgUsers: string;
  corruptDump: string;
  corruptUsers: string;
  /** A dump whose load fails at its second statement; it names no database. */
  brokenDump: string;
}

interface Case {
  command: string;
  code: number;
  what: string;
  args: (f: Fixture) => string[];
  /** Runs in this environment (default `env`). */
  in?: "bad" | "broken";
  /** Found in stdout + stderr. */
  says: string | RegExp;
  /** Around the run: returns the undo. */
  around?: (f: Fixture) => Promise<() => Promise<void>>;
}

const holdStorageLock = async (f: Fixture) => (await acquireLock(f.env.storage)).release;

/**
 * A real failed backup of pg/exit_app (it carries the mark of an unfinished restore); the undo
 * removes the mark and the failure record.
 */
async function failOnce(f: Fixture): Promise<() => Promise<void>> {
  const mark = `vya-backupdb: INCOMPLETE RESTORE, do not use; ` +
    JSON.stringify({ run: "r1", started_at: new Date().toISOString(), file: "f", created: true });
  await f.pg.sql(`COMMENT ON DATABASE exit_app IS '${mark}'`);
  const r = await f.env.run(["backup", "--instance", "pg", "--database", "exit_app"]);
  assertEquals(r.code, 2, r.stdout + r.stderr);
  return async () => {
    await f.pg.sql("COMMENT ON DATABASE exit_app IS NULL");
    const storage = new LocalStorage(f.env.storage);
    const entries = await listCatalog(storage, {
      hostname: Deno.hostname(),
      instance: "pg",
      database: "exit_app",
    });
    for (const e of entries.filter((e) => e.state === "failed")) {
      await removeEntryFiles(storage, e);
    }
  };
}

const CASES: Case[] = [
  // backup
  {
    command: "backup",
    code: 0,
    what: "all ok",
    args: () => ["backup", "--instance", "pg"],
    says: /ok +pg\/exit_app/,
  },
  {
    command: "backup",
    code: 1,
    what: "some databases failed",
    args: () => ["backup", "--instance", "pg", "--database", "exit_app", "--database", "exit_nope"],
    says: `database "exit_nope" does not exist on pg`,
  },
  {
    command: "backup",
    code: 2,
    what: "every item failed (server unreachable)",
    args: () => ["backup", "--instance", "pg-closed"],
    says: /connection refused/i,
  },
  {
    command: "backup",
    code: 3,
    what: "bad credential",
    in: "bad",
    args: () => ["backup", "--instance", "pg"],
    says: `"nope"`,
  },
  {
    command: "backup",
    code: 1,
    what: "one instance lacks its credential, the other is backed up",
    in: "bad",
    args: () => ["backup", "--all"],
    says: /ok +pg-ok\/exit_app/,
  },
  {
    command: "backup",
    code: 3,
    what: "nothing to back up",
    in: "broken",
    args: () => ["backup", "--all"],
    says: "nothing to back up",
  },
  {
    command: "backup",
    code: 3,
    what: "unknown instance",
    args: () => ["backup", "--instance", "nope"],
    says: "nope",
  },
  {
    command: "backup",
    code: 4,
    what: "another run holds the lock",
    args: () => ["backup", "--instance", "pg"],
    around: holdStorageLock,
    says: /lock/i,
  },
  {
    command: "backup",
    code: 64,
    what: "options that do not combine",
    args: () => ["backup", "--all", "--database", "exit_app"],
    says: "--database needs --instance",
  },
  // prune, pin, unpin
  {
    command: "prune",
    code: 0,
    what: "no retention policy (nothing removed)",
    args: () => ["prune"],
    says: "no retention policy",
  },
  {
    command: "prune",
    code: 3,
    what: "unknown instance",
    args: () => ["prune", "--instance", "nope"],
    says: `unknown instance "nope"`,
  },
  {
    command: "prune",
    code: 4,
    what: "another run holds the lock",
    args: () => ["prune"],
    around: holdStorageLock,
    says: /holds the lock/,
  },
  {
    command: "prune",
    code: 64,
    what: "--database without --instance",
    args: () => ["prune", "--database", "exit_app"],
    says: "--database needs --instance",
  },
  {
    command: "pin",
    code: 0,
    what: "a backup of ours",
    args: (f) => ["pin", f.pgDump],
    says: /^pinned /m,
  },
  {
    command: "unpin",
    code: 0,
    what: "a backup of ours",
    args: (f) => ["unpin", f.pgDump],
    says: /^unpinned /m,
  },
  {
    command: "pin",
    code: 3,
    what: "a file that is not a backup in the storage",
    args: (f) => ["pin", f.brokenDump],
    says: "not inside the storage",
  },
  {
    command: "pin",
    code: 4,
    what: "another run holds the lock",
    args: (f) => ["pin", f.pgDump],
    around: holdStorageLock,
    says: /holds the lock/,
  },
  // users backup
  {
    command: "users backup",
    code: 0,
    what: "all ok",
    args: () => ["users", "backup", "--instance", "pg"],
    says: /ok +pg users/,
  },
  {
    command: "users backup",
    code: 1,
    what: "some instances failed",
    args: () => ["users", "backup", "--all"],
    says: "FAILED  pg-closed users",
  },
  {
    command: "users backup",
    code: 2,
    what: "every instance failed (server unreachable)",
    args: () => ["users", "backup", "--instance", "pg-closed"],
    says: /connection refused/i,
  },
  {
    command: "users backup",
    code: 3,
    what: "bad credential (was 2)",
    in: "bad",
    args: () => ["users", "backup", "--instance", "pg"],
    says: `"nope"`,
  },
  {
    command: "users backup",
    code: 4,
    what: "another run holds the lock",
    args: () => ["users", "backup", "--instance", "pg"],
    around: holdStorageLock,
    says: /lock/i,
  },
  {
    command: "users backup",
    code: 64,
    what: "options that do not combine",
    args: () => ["users", "backup", "--instance", "pg", "--all"],
    says: "--instance and --all exclude each other",
  },
  // verify
  {
    command: "verify",
    code: 0,
    what: "every backup verified",
    args: (f) => ["verify", "--file", f.pgDump],
    says: /^ok +pg\/exit_app/m,
  },
  {
    command: "verify",
    code: 1,
    what: "a backup failed verification",
    args: (f) => ["verify", "--file", f.corruptDump],
    says: "does not match its checksum",
  },
  {
    command: "verify",
    code: 2,
    what: "--restore: server unreachable",
    args: (f) => ["verify", "--restore", "--instance", "pg-closed", "--file", f.pgDump],
    says: /connection refused/i,
  },
  {
    command: "verify",
    code: 3,
    what: "nothing to verify",
    args: () => ["verify", "--instance", "pg", "--database", "no_such_db"],
    says: "no backups to verify of no_such_db",
  },
  {
    command: "verify",
    code: 64,
    what: "options that do not combine",
    args: () => ["verify", "--all", "--latest"],
    says: "at most one of --latest, --all or --file",
  },
  // restore
  {
    command: "restore",
    code: 0,
    what: "restored",
    args: (f) => ["restore", "--instance", "pg", "--file", f.pgDump, "--target", "exit_copy"],
    says: "restored",
  },
  {
    command: "restore",
    code: 1,
    what: "the load failed",
    args: (f) => ["restore", "--instance", "pg", "--file", f.brokenDump, "--target", "exit_half"],
    says: /type "nosuchtype" does not exist/,
  },
  {
    command: "restore",
    code: 2,
    what: "server unreachable",
    args: (f) => ["restore", "--instance", "pg-closed", "--file", f.pgDump, "--target", "exit_x"],
    says: /connection refused/i,
  },
  {
    command: "restore",
    code: 3,
    what: "file missing",
    args: (f) => ["restore", "--instance", "pg", "--file", join(f.env.dir, "nothing.sql.gz")],
    says: "does not exist",
  },
  {
    command: "restore",
    code: 3,
    what: "file corrupted",
    args: (f) => ["restore", "--instance", "pg", "--file", f.corruptDump, "--target", "exit_x"],
    says: /checksum/i,
  },
  {
    command: "restore",
    code: 3,
    what: "file of another engine",
    args: (f) => ["restore", "--instance", "my", "--file", f.pgDump, "--target", "exit_x"],
    says: "is a PostgreSQL dump",
  },
  {
    command: "restore",
    code: 3,
    what: "non-empty target without --force",
    args: (f) => ["restore", "--instance", "pg", "--file", f.pgDump],
    says: "--force",
  },
  {
    command: "restore",
    code: 3,
    what: "bad credential",
    in: "bad",
    args: (f) => ["restore", "--instance", "pg", "--file", f.pgDump, "--target", "exit_x"],
    says: `"nope"`,
  },
  {
    command: "restore",
    code: 4,
    what: "another restore into the same target",
    args: (f) => ["restore", "--instance", "my", "--file", f.myDump, "--target", "exit_locked"],
    around: async (f) => {
      const conn = await openMysql(f.my.params);
      const key = await lockKey("vya-backupdb restore exit_locked");
      await conn.query("SELECT GET_LOCK(?, 0)", [`vya-restore-${key}`]);
      return () => conn.end();
    },
    says: "another restore into exit_locked",
  },
  {
    command: "restore",
    code: 64,
    what: "no mode",
    args: () => ["restore", "--instance", "pg"],
    says: "exactly one of --list, --latest or --file",
  },
  {
    command: "restore",
    code: 64,
    what: "a file that does not say its database, without --target (lib remedy)",
    args: (f) => ["restore", "--instance", "pg", "--file", f.brokenDump],
    says: "--target NAME: name the database to restore into",
  },
  {
    command: "restore --list",
    code: 0,
    what: "every backup verifies",
    args: () => ["restore", "--instance", "pg", "--list"],
    says: "exit_app",
  },
  // users restore
  {
    command: "users restore",
    code: 0,
    what: "existing account identical to the backup, --skip-existing",
    args: (f) => [
      "users",
      "restore",
      "--instance",
      "pg",
      "--user",
      "exit_web",
      "--file",
      f.pgUsers,
      "--skip-existing",
    ],
    says: /skipped +exit_web/,
  },
  {
    command: "users restore",
    code: 1,
    what: "existing account differs from the backup, --skip-existing",
    args: (f) => [
      "users",
      "restore",
      "--instance",
      "pg",
      "--user",
      "exit_web",
      "--file",
      f.pgUsers,
      "--skip-existing",
    ],
    around: async (f) => {
      await f.pg.sql("ALTER ROLE exit_web CREATEDB");
      return async () => void await f.pg.sql("ALTER ROLE exit_web NOCREATEDB");
    },
    says: /differs +exit_web/,
  },
  {
    command: "users restore",
    code: 2,
    what: "server unreachable",
    args: (f) => ["users", "restore", "--instance", "pg-closed", "--all", "--file", f.pgUsers],
    says: /connection refused/i,
  },
  {
    command: "users restore",
    code: 3,
    what: "accounts exist, no --skip-existing/--replace (was 2)",
    args: (
      f,
    ) => ["users", "restore", "--instance", "pg", "--user", "exit_web", "--file", f.pgUsers],
    says: "already exist on pg: exit_web; nothing was changed",
  },
  {
    command: "users restore",
    code: 3,
    what: "file corrupted (was 2)",
    args: (f) => ["users", "restore", "--instance", "pg", "--all", "--file", f.corruptUsers],
    says: "checksum mismatch",
  },
  {
    command: "users restore",
    code: 3,
    what: "no users backup to restore (was 2)",
    args: () => ["users", "restore", "--instance", "pg-closed", "--all"],
    says: "no users backup of pg-closed",
  },
  {
    command: "users restore",
    code: 3,
    what: "file of another engine (was 64)",
    args: (
      f,
    ) => ["users", "restore", "--instance", "my", "--user", "exit_web", "--file", f.pgUsers],
    says: "this users backup is of a postgresql server; the target is mariadb",
  },
  {
    command: "users restore",
    code: 3,
    what: "bad credential",
    in: "bad",
    args: (f) => ["users", "restore", "--instance", "pg", "--all", "--file", f.pgUsers],
    says: `"nope"`,
  },
  {
    command: "users restore",
    code: 64,
    what: "options that do not combine",
    args: (f) => [
      "users",
      "restore",
      "--instance",
      "pg",
      "--all",
      "--file",
      f.pgUsers,
      "--skip-existing",
      "--replace",
    ],
    says: "--skip-existing and --replace exclude each other",
  },
  {
    command: "users restore",
    code: 64,
    what: "--user naming no account of the file (lib remedy)",
    args: (
      f,
    ) => ["users", "restore", "--instance", "pg", "--user", "exit_nobody", "--file", f.pgUsers],
    says: /no account exit_nobody in this users backup.*--user: name one it holds/,
  },
  // check
  {
    command: "check",
    code: 0,
    what: "the instance is fine",
    args: () => ["check", "--instance", "pg"],
    says: "pg (postgresql at",
  },
  {
    command: "check",
    code: 1,
    what: "some instances have a problem",
    args: () => ["check"],
    says: /pg-closed \(postgresql at .*PROBLEM/,
  },
  {
    command: "check",
    code: 1,
    what: "one instance lacks its credential, the other is fine (was 3; as backup)",
    in: "bad",
    args: () => ["check"],
    says: /pg \(postgresql at .*PROBLEM/,
  },
  {
    command: "check",
    code: 2,
    what: "every instance unreachable",
    args: () => ["check", "--instance", "pg-closed"],
    says: "reachable: no",
  },
  {
    command: "check",
    code: 3,
    what: "bad credential",
    in: "bad",
    args: () => ["check", "--instance", "pg"],
    says: `"nope"`,
  },
  {
    command: "check",
    code: 3,
    what: "unknown instance",
    args: () => ["check", "--instance", "nope"],
    says: "nope",
  },
  {
    command: "check",
    code: 64,
    what: "an option that does not parse",
    args: () => ["check", "--bogus"],
    says: "--bogus",
  },
  // config validate
  {
    command: "config validate",
    code: 0,
    what: "valid",
    args: () => ["config", "validate"],
    says: "",
  },
  {
    command: "config validate",
    code: 3,
    what: "a credential id missing from the credentials file",
    in: "bad",
    args: () => ["config", "validate"],
    says: "nope",
  },
  {
    command: "config validate",
    code: 64,
    what: "an unknown subcommand",
    args: () => ["config", "frobnicate"],
    says: "frobnicate",
  },
  // credentials
  {
    command: "credentials",
    code: 0,
    what: "list",
    args: () => ["credentials", "list"],
    says: /^pg\t/m,
  },
  {
    command: "credentials",
    code: 3,
    what: "a credentials file that is not JSON",
    in: "broken",
    args: () => ["credentials", "list"],
    says: "is not valid JSON",
  },
  {
    command: "credentials",
    code: 64,
    what: "a password prompt without a terminal",
    args: () => ["credentials", "encrypt", "--id", "x", "--username", "u"],
    says: "standard input is not a terminal",
  },
  // info (reads the storage only)
  {
    command: "info",
    code: 0,
    what: "every configured database has a fresh good backup",
    args: () => ["info", "--instance", "pg"],
    says: /^exit_app +fresh /m,
  },
  {
    command: "info",
    code: 1,
    what: "a newest good backup is older than alerts.max_age",
    args: () => ["info", "--instance", "my"],
    around: async (f) => {
      await ageBackups(f.env.storage, "my", "exit_shop", 30);
      return async () => void await ageBackups(f.env.storage, "my", "exit_shop", -30);
    },
    says: /^exit_shop +STALE /m,
  },
  {
    command: "info",
    code: 1,
    what: "the newest attempt failed",
    args: () => ["info", "--instance", "pg"],
    around: failOnce,
    says: /exit_app: last attempt failed .*restore that never finished/,
  },
  {
    command: "info",
    code: 2,
    what: "an enabled instance was never backed up",
    args: () => ["info"],
    says: "pg-closed (postgresql): NEVER",
  },
  {
    command: "info",
    code: 3,
    what: "unknown instance",
    args: () => ["info", "--instance", "nope"],
    says: "nope",
  },
  {
    command: "info",
    code: 64,
    what: "--database without --instance",
    args: () => ["info", "--database", "exit_app"],
    says: "--database needs --instance",
  },
  // Last: it damages a stored backup.
  {
    command: "restore --list",
    code: 1,
    what: "a backup recorded as ok no longer verifies",
    args: () => ["restore", "--instance", "my", "--list"],
    around: async (f) => {
      await Deno.writeTextFile(f.myDump, "x", { append: true });
      return async () => {};
    },
    says: /exit_shop .*bad/,
  },
];

async function findFile(dir: string, pattern: RegExp): Promise<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      const found = await findFile(path, pattern).catch(() => undefined);
      if (found) return found;
    } else if (pattern.test(entry.name)) return path;
  }
  throw new Error(`no ${pattern} under ${dir}`);
}

/** Copies a backup file and its companions into `dir` with one byte of the file changed. */
async function corruptCopy(file: string, dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const source = join(file, "..");
  const stem = file.split("/").pop()!.replace(/\.sql(\.gz|\.zst)?$/, "");
  for await (const entry of Deno.readDir(source)) {
    if (entry.name.startsWith(stem)) {
      await Deno.copyFile(join(source, entry.name), join(dir, entry.name));
    }
  }
  const copy = join(dir, file.split("/").pop()!);
  const bytes = await Deno.readFile(copy);
  bytes[bytes.length - 5] ^= 0xff;
  await Deno.writeFile(copy, bytes);
  return copy;
}

Deno.test("exit codes: one row per README case per command", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
  await pg.sql("CREATE DATABASE exit_app");
  await pg.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", { database: "exit_app" });
  await pg.sql("CREATE ROLE exit_web LOGIN PASSWORD 'exit-web-pw'");
  await my.sql("CREATE DATABASE exit_shop; CREATE TABLE exit_shop.t (x int)");
  const selection = {
    databases: { include: ["exit_*"] },
    users: { backup: true, exclude: [] },
  };
  const env = await makeTestEnv([
    { id: "pg", server: pg, extra: selection },
    { id: "my", server: my, extra: selection },
    { id: "pg-closed", server: { ...pg, port: 1 }, extra: selection },
  ]);
  const bad = await makeTestEnv([
    { id: "pg", server: pg, extra: { credential: "nope" } },
    { id: "pg-ok", server: pg, extra: selection },
  ]);
  const broken = await makeTestEnv([]);
  await Deno.writeTextFile(broken.credentialsFile, "{", { mode: 0o600 });
  try {
    // The backups the restore rows restore.
    for (const id of ["pg", "my"]) {
      for (const args of [["backup", "--instance", id], ["users", "backup", "--instance", id]]) {
        const r = await env.run(args);
        assertEquals(r.code, 0, r.stdout + r.stderr);
      }
    }
    const fix = async (): Promise<Fixture> => {
      const pgDump = await findFile(join(env.storage), /^exit_app_.*\.sql\.gz$/);
      const pgUsers = await latestUsersBackup(env.storage, Deno.hostname(), "pg");
      if (!pgUsers) throw new Error("no users backup of pg was written");
      const brokenDump = join(env.dir, "broken.sql.gz");
      await Deno.writeFile(
        brokenDump,
        gzipSync(new TextEncoder().encode(
          "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE ok (x int);\n" +
            "CREATE TABLE broken (x nosuchtype);\n\n--\n-- PostgreSQL database dump complete\n--\n",
        )),
      );
      return {
        env,
        bad,
        broken,
        pg,
        my,
        pgDump,
        myDump: await findFile(env.storage, /^exit_shop_.*\.sql\.gz$/),
        pgUsers,
        corruptDump: await corruptCopy(pgDump, join(env.dir, "corrupt")),
        corruptUsers: await corruptCopy(pgUsers, join(env.dir, "corrupt-users")),
        brokenDump,
      };
    };
    const f = await fix();
    for (const c of CASES) {
      await t.step(`${c.command}: ${c.code} when ${c.what}`, async () => {
        const undo = await c.around?.(f);
        try {
          const runner = c.in === "bad" ? bad : c.in === "broken" ? broken : env;
          const r = await runner.run(c.args(f));
          const all = r.stdout + r.stderr;
          assertEquals(r.code, c.code, `${c.args(f).join(" ")}:\n${all}`);
          if (typeof c.says === "string") assert(all.includes(c.says), `"${c.says}" in:\n${all}`);
          else assertMatch(all, c.says);
          assert(!/^\s+at /m.test(r.stderr), `no stack trace:\n${r.stderr}`);
        } finally {
          await undo?.();
        }
      });
    }
  } finally {
    await Promise.all([env.cleanup(), bad.cleanup(), broken.cleanup()]);
  }
});
