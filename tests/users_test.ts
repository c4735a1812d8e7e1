/**
 * Users and roles: the empty-server drill. Accounts, roles and privileges made on server A are
 * backed up with `users backup`, a fresh empty server B gets `users restore --all`, then the
 * databases, then the privileges that waited for them; every account must log in to B with its
 * original password and hold exactly A's privileges. Also: --user, existing accounts refused /
 * skipped / replaced, --dry-run, and no password hash anywhere it should not be.
 *
 * The databases are moved with the servers' own dump tools here (mariadb-dump / pg_dump
 * --create piped into the client), not with the project's restore command, so this test only
 * depends on the users feature.
 */
import { run } from "./harness/process.ts";
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, startMariadb, startPostgres } from "./harness/servers.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { mariaAccounts, mariaLogin, pgLogin, pgObjectAcls, pgRoles } from "./helpers/compare.ts";
import type { InstanceConfig } from "../lib/config/types.ts";
import { silentLogger } from "../lib/log.ts";
import { applyWaitingGrants } from "../lib/users/restore.ts";
import { latestUsersBackup } from "../lib/users/store.ts";
import { sha256File } from "../lib/stream/sha256.ts";

/** Runs a client tool with the harness's runner (secrets in `env`, SQL on stdin). */
const tool = (cmd: string, args: string[], env: Record<string, string>, stdin?: string) =>
  run([cmd, ...args], { env, stdin });

function instanceOf(id: string, type: "mariadb" | "postgresql"): InstanceConfig {
  return {
    id,
    type,
    host: "127.0.0.1",
    port: 0,
    credential: id,
    enabled: true,
    databases: { include: [], exclude: [] },
    users: { backup: true, exclude: [] },
    tools: { paths: {} },
    connect_timeout: 10,
  };
}

/** Every text a user could see: CLI output and the metadata files. */
async function visibleTexts(env: TestEnv, outputs: string[]): Promise<string> {
  const texts = [...outputs];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".metadata.json")) texts.push(await Deno.readTextFile(p));
    }
  };
  await walk(env.storage);
  return texts.join("\n");
}

function assertNoHash(text: string, hashes: string[]): void {
  for (const h of hashes) assert(!text.includes(h), `a password hash leaked: ${h.slice(0, 12)}…`);
}

/** What every step of a drill works with: the three servers, the CLI and the users file. */
interface Drill<S extends PgServer | MyServer> {
  /** A holds the accounts; B and C start empty. */
  a: S;
  b: S;
  c: S;
  env: TestEnv;
  /** Runs the CLI and keeps its output for the hash-leak check. */
  cli: (args: string[]) => Promise<CliResult>;
  /** The users file written from A (set by the backup step). */
  file: string;
  /** Optional server features the fixture found (e.g. `ed25519`). */
  features: Set<string>;
}

/** One engine's empty-server drill: shared skeleton, the engine's own fixture and checks. */
interface UsersRow<S extends PgServer | MyServer> {
  /** Engine label, part of the test name. */
  name: string;
  /** What the engine calls its accounts, part of the test name. */
  accounts: "accounts" | "roles";
  start: () => Promise<S>;
  /** Creates A's accounts, objects and grants; returns the optional features it could use. */
  fixture: (a: S, b: S, c: S) => Promise<string[]>;
  /** The password hashes stored on A, none of which may ever be shown. */
  hashes: (a: S) => Promise<string[]>;
  /** Name of the backup step and the checks of its metadata. */
  backupStep: string;
  backupChecks: (meta: UsersMeta) => void;
  /** The bootstrap superuser that `users restore --all` skips on B. */
  skippedBootstrap: RegExp;
  /** Checks of `users restore --all`'s report, then the database moved from A to B. */
  restoreChecks?: (stdout: string) => void;
  moveDatabase: (d: Drill<S>) => Promise<void>;
  /** The engine's own steps after the restore: logins, --user, existing, --dry-run. */
  steps: { name: string; fn: (d: Drill<S>) => Promise<void> }[];
}

interface UsersMeta {
  kind: string;
  status: string;
  dump: { tool: string };
  accounts: Account[];
}

interface Account {
  name: string;
  host: string;
  plugin: string;
  has_password: boolean;
  roles: string[];
  default_role: string;
  bootstrap: boolean;
}

type CliResult = Awaited<ReturnType<TestEnv["run"]>>;

async function usersDrill<S extends PgServer | MyServer>(row: UsersRow<S>, t: Deno.TestContext) {
  const [a, b, c] = await Promise.all([row.start(), row.start(), row.start()]);
  let env: TestEnv | undefined;
  try {
    const features = new Set(await row.fixture(a, b, c));
    const hashes = await row.hashes(a);
    assert(hashes.length >= 4, "hashes read from A");
    env = await makeTestEnv([
      { id: "a", server: a },
      { id: "b", server: b },
      { id: "c", server: c },
    ]);
    const outputs: string[] = [];
    const d: Drill<S> = {
      a,
      b,
      c,
      env,
      cli: async (args) => {
        const r = await env!.run(args);
        outputs.push(r.stdout, r.stderr);
        return r;
      },
      file: "",
      features,
    };

    await t.step(row.backupStep, async () => {
      const r = await d.cli(["users", "backup", "--instance", "a"]);
      assertEquals(r.code, 0, r.stderr);
      d.file = (await latestUsersBackup(env!.storage, Deno.hostname(), "a"))!;
      assert(d.file?.endsWith(".sql.gz"), "users file written");
      const stem = d.file.replace(/\.sql\.gz$/, "");
      const sum = await Deno.readTextFile(`${stem}.sha256`);
      assertEquals(sum, `${await sha256File(d.file)}  ${d.file.split("/").pop()}\n`);
      const meta = JSON.parse(await Deno.readTextFile(`${stem}.metadata.json`)) as UsersMeta;
      assertEquals(meta.kind, "users");
      assertEquals(meta.status, "ok");
      row.backupChecks(meta);
    });

    await t.step("users restore --all onto an empty server, then the database", async () => {
      const r = await d.cli(["users", "restore", "--instance", "b", "--all", "--file", d.file]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertMatch(r.stdout, row.skippedBootstrap);
      row.restoreChecks?.(r.stdout);
      await row.moveDatabase(d);
    });

    for (const step of row.steps) await t.step(step.name, () => step.fn(d));

    await t.step("no password hash in output or metadata", async () => {
      assertNoHash(await visibleTexts(env!, outputs), hashes);
    });
  } finally {
    await env?.cleanup();
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }
}

/** A row with its server type erased, so that both engines fit in one table. */
interface UsersCase {
  name: string;
  accounts: string;
  drill: (t: Deno.TestContext) => Promise<void>;
}

function usersCase<S extends PgServer | MyServer>(row: UsersRow<S>): UsersCase {
  return { name: row.name, accounts: row.accounts, drill: (t) => usersDrill(row, t) };
}

// ---------------------------------------------------------------------------------------------
// MariaDB

const MARIADB_USERS: UsersRow<MyServer> = {
  name: "MariaDB",
  accounts: "accounts",
  start: startMariadb,
  fixture: async (a, b, c) => {
    const withEd = await a.sql("INSTALL SONAME 'auth_ed25519'").then(() => true, () => false);
    if (withEd) {
      await b.sql("INSTALL SONAME 'auth_ed25519'");
      await c.sql("INSTALL SONAME 'auth_ed25519'");
    }
    await a.sql(`
      CREATE DATABASE shop;
      CREATE TABLE shop.t (a INT, b INT);
      CREATE PROCEDURE shop.p() SELECT 1;
      CREATE USER 'app'@'10.0.%' IDENTIFIED BY 'app-pw';
      CREATE USER 'web'@'%' IDENTIFIED BY 'web-pw' WITH MAX_QUERIES_PER_HOUR 100
        MAX_USER_CONNECTIONS 3;
      CREATE USER 'locked'@'%' IDENTIFIED BY 'locked-pw' ACCOUNT LOCK;
      CREATE USER 'col'@'%' IDENTIFIED BY 'col-pw';
      ${withEd ? "CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw');" : ""}
      CREATE ROLE reader;
      GRANT SELECT ON shop.* TO reader;
      GRANT reader TO 'web'@'%';
      SET DEFAULT ROLE reader FOR 'web'@'%';
      GRANT SELECT (a), UPDATE (b) ON shop.t TO 'col'@'%';
      GRANT EXECUTE ON PROCEDURE shop.p TO 'col'@'%';
      GRANT SELECT (a) ON shop.t TO 'app'@'10.0.%';
      GRANT RELOAD ON *.* TO 'col'@'%';
    `);
    return withEd ? ["ed25519"] : [];
  },
  hashes: async (a) =>
    (await a.sql(
      "SELECT authentication_string FROM mysql.user WHERE authentication_string <> ''",
    )).split("\n").filter(Boolean),
  backupStep: "users backup writes the file, checksum and metadata",
  backupChecks: (meta) => {
    const names = meta.accounts.map((x) => `${x.name}@${x.host}`);
    for (const n of ["app@10.0.%", "web@%", "locked@%", "col@%", "reader@", "root@localhost"]) {
      assert(names.includes(n), `metadata lists ${n}`);
    }
    assert(!names.includes("mariadb.sys@localhost"), "system account left out");
    const web = meta.accounts.find((x) => x.name === "web")!;
    assertEquals(web.plugin, "mysql_native_password");
    assertEquals(web.has_password, true);
    assertEquals(web.roles, ["reader"]);
    assertEquals(web.default_role, "reader");
  },
  skippedBootstrap: /skipped +root@%/,
  restoreChecks: (stdout) => {
    assertMatch(stdout, /waiting for their database/);
    assertMatch(stdout, /shop: GRANT SELECT \(`a`\), UPDATE \(`b`\) ON `shop`\.`t` TO `col`/);
  },
  moveDatabase: async ({ a, b, env, file }) => {
    // The database, with the server's own tools.
    const dump = await tool(`${a.bin}/mariadb-dump`, [
      "--no-defaults",
      "--protocol=TCP",
      "-h",
      "127.0.0.1",
      "-P",
      String(a.port),
      "-u",
      "root",
      "--routines",
      "--single-transaction",
      "--databases",
      "shop",
    ], a.clientEnv);
    assertEquals(dump.code, 0, dump.stderr);
    await b.sql(dump.stdout);
    const applied = await applyWaitingGrants(
      instanceOf("b", "mariadb"),
      b.params,
      "shop",
      silentLogger,
      { storage: env.storage, hostname: Deno.hostname(), file },
    );
    assertEquals(applied.failed, []);
    assertEquals(applied.applied, 3);
  },
  steps: [
    {
      name: "every account logs in to B and holds A's privileges",
      fn: async ({ a, b, features }) => {
        for (const [user, pw] of [["web", "web-pw"], ["col", "col-pw"]]) {
          const r = await mariaLogin(b, user, pw);
          assertEquals(r.code, 0, `${user}: ${r.stderr}`);
          assertEquals(r.stdout.trim(), `${user}@%`);
          const wrong = await mariaLogin(b, user, "wrong");
          assert(wrong.code !== 0, `${user} refuses a wrong password`);
        }
        if (features.has("ed25519")) {
          const r = await mariaLogin(b, "ed", "ed-pw");
          assertEquals(r.code, 0, `ed25519: ${r.stderr}`);
        }
        const locked = await mariaLogin(b, "locked", "locked-pw");
        assertStringIncludes(locked.stderr, "locked");
        assertEquals(await mariaAccounts(b), await mariaAccounts(a));
      },
    },
    {
      name: "--user creates exactly that account and its grants",
      fn: async ({ a, c, cli, file }) => {
        const before = await c.sql("SELECT CONCAT(User,'@',Host) FROM mysql.user ORDER BY 1");
        let r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--user",
          "reader",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr);
        r = await cli(["users", "restore", "--instance", "c", "--user", "web@%", "--file", file]);
        assertEquals(r.code, 0, r.stderr);
        const after = await c.sql("SELECT CONCAT(User,'@',Host) FROM mysql.user ORDER BY 1");
        assertEquals(
          after.split("\n").sort(),
          [...before.split("\n"), "reader@", "web@%"].sort(),
        );
        assertEquals(
          await c.sql("SHOW CREATE USER 'web'@'%'; SHOW GRANTS FOR 'web'@'%'"),
          await a.sql("SHOW CREATE USER 'web'@'%'; SHOW GRANTS FOR 'web'@'%'"),
        );
      },
    },
    {
      name: "an existing account is refused, skipped or replaced",
      fn: async ({ a, c, cli, file }) => {
        let r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--user",
          "web@%",
          "--file",
          file,
        ]);
        assertEquals(r.code, 3);
        assertStringIncludes(r.stderr, "web@%");
        r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--user",
          "web@%",
          "--skip-existing",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertMatch(r.stdout, /skipped +web@%/);
        await c.sql("ALTER USER 'web'@'%' IDENTIFIED BY 'changed'; REVOKE reader FROM 'web'@'%'");
        assertEquals((await mariaLogin(c, "web", "web-pw")).code !== 0, true);
        r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--user",
          "web",
          "--replace",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(r.stdout.split("\n").filter((l) => l.includes("web@%")), [
          "replaced web@%  (exists: dropped first)",
        ]);
        assertEquals((await mariaLogin(c, "web", "web-pw")).code, 0);
        assertEquals(
          await c.sql("SHOW GRANTS FOR 'web'@'%'"),
          await a.sql("SHOW GRANTS FOR 'web'@'%'"),
        );
      },
    },
    {
      name: "--dry-run prints masked statements and changes nothing",
      fn: async ({ c, cli, file }) => {
        const before = await c.sql("SELECT CONCAT(User,'@',Host) FROM mysql.user ORDER BY 1");
        const r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--all",
          "--dry-run",
          "--file",
          file,
        ]);
        // web and reader exist on c: refused without a policy, even in a dry run.
        assertEquals(r.code, 3);
        const r2 = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--all",
          "--dry-run",
          "--skip-existing",
          "--file",
          file,
        ]);
        assertEquals(r2.code, 0, r2.stderr);
        assertMatch(r2.stdout, /CREATE USER `col`@`%` IDENTIFIED BY PASSWORD '\*{8}'/);
        assertEquals(
          await c.sql("SELECT CONCAT(User,'@',Host) FROM mysql.user ORDER BY 1"),
          before,
        );
      },
    },
  ],
};

// ---------------------------------------------------------------------------------------------
// PostgreSQL

const POSTGRES_USERS: UsersRow<PgServer> = {
  name: "PostgreSQL",
  accounts: "roles",
  start: startPostgres,
  fixture: async (a) => {
    await a.sql(`
      CREATE ROLE grp NOLOGIN;
      CREATE ROLE app LOGIN PASSWORD 'app-pw' CONNECTION LIMIT 5 VALID UNTIL '2099-01-01';
      CREATE ROLE owner LOGIN CREATEDB PASSWORD 'owner-pw';
      CREATE ROLE "Odd ""name""" LOGIN PASSWORD 'odd-pw';
      GRANT grp TO app;
      GRANT grp TO owner WITH ADMIN OPTION;
      ALTER ROLE app SET search_path = 's, public';
      COMMENT ON ROLE app IS 'the application''s login
      (two lines)';
      CREATE DATABASE shop OWNER owner;
      REVOKE CONNECT ON DATABASE shop FROM PUBLIC;
      GRANT CONNECT ON DATABASE shop TO app, grp;
    `);
    await a.sql(
      `
      SET ROLE owner;
      CREATE SCHEMA s;
      CREATE TABLE s.t (id serial PRIMARY KEY, a int, b int);
      CREATE FUNCTION s.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
      REVOKE EXECUTE ON FUNCTION s.f() FROM PUBLIC;
      GRANT USAGE ON SCHEMA s TO grp;
      GRANT SELECT ON s.t TO grp;
      GRANT UPDATE (b) ON s.t TO app;
      GRANT USAGE ON SEQUENCE s.t_id_seq TO app;
      GRANT EXECUTE ON FUNCTION s.f() TO app;
      ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO grp;
    `,
      { database: "shop" },
    );
    return [];
  },
  hashes: async (a) =>
    (await a.sql("SELECT rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL"))
      .split("\n").filter(Boolean),
  backupStep: "users backup: pg_dumpall restructured per role",
  backupChecks: (meta) => {
    assertEquals(meta.dump.tool, "pg_dumpall");
    const app = meta.accounts.find((x) => x.name === "app")!;
    assertEquals(app.plugin, "scram-sha-256");
    assertEquals(app.roles, ["grp"]);
    const pg = meta.accounts.find((x) => x.name === "postgres")!;
    assertEquals(pg.bootstrap, true);
  },
  skippedBootstrap: /skipped +postgres/,
  moveDatabase: async ({ a, b }) => {
    const dump = await tool(`${a.bin}/pg_dump`, [
      "--create",
      `--dbname=host=127.0.0.1 port=${a.port} user=postgres dbname=shop`,
    ], a.clientEnv);
    assertEquals(dump.code, 0, dump.stderr);
    const load = await tool(
      `${b.bin}/psql`,
      [
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        `--dbname=host=127.0.0.1 port=${b.port} user=postgres dbname=postgres`,
      ],
      b.clientEnv,
      dump.stdout,
    );
    assertEquals(load.code, 0, load.stderr);
  },
  steps: [
    {
      name: "roles log in to B; attributes, memberships and ACLs equal A's",
      fn: async ({ a, b }) => {
        assertEquals(await pgLogin(b, "app", "app-pw", "shop"), "app");
        assertEquals(await pgLogin(b, "owner", "owner-pw", "shop"), "owner");
        assertEquals(await pgLogin(b, 'Odd "name"', "odd-pw"), 'Odd "name"');
        assertEquals(await pgRoles(b), await pgRoles(a));
        assertEquals(await pgObjectAcls(b, "shop"), await pgObjectAcls(a, "shop"));
        assertEquals(
          await b.sql("SELECT shobj_description('app'::regrole, 'pg_authid')"),
          await a.sql("SELECT shobj_description('app'::regrole, 'pg_authid')"),
        );
      },
    },
    {
      name: "--user creates exactly that role",
      fn: async ({ c, cli, file }) => {
        const before = await c.sql("SELECT rolname FROM pg_roles ORDER BY 1");
        const r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--user",
          "grp",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const after = await c.sql("SELECT rolname FROM pg_roles ORDER BY 1");
        assertEquals(after.split("\n").sort(), [...before.split("\n"), "grp"].sort());
      },
    },
    {
      name: "existing roles: refused, skipped, replaced in place",
      fn: async ({ a, b, cli, file }) => {
        let r = await cli([
          "users",
          "restore",
          "--instance",
          "b",
          "--user",
          "app",
          "--file",
          file,
        ]);
        assertEquals(r.code, 3);
        assertStringIncludes(r.stderr, "app");
        r = await cli([
          "users",
          "restore",
          "--instance",
          "b",
          "--user",
          "app",
          "--skip-existing",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr);
        await b.sql("ALTER ROLE app PASSWORD 'changed' NOINHERIT; REVOKE grp FROM app");
        r = await cli([
          "users",
          "restore",
          "--instance",
          "b",
          "--user",
          "app",
          "--skip-existing",
          "--file",
          file,
        ]);
        assertEquals(r.code, 1, r.stderr + r.stdout);
        assertStringIncludes(
          r.stdout,
          "differs  app  (exists but differs from the backup: attributes differ (the backup has " +
            "INHERIT); password differs; missing memberships: grp)",
        );
        r = await cli([
          "users",
          "restore",
          "--instance",
          "b",
          "--user",
          "app",
          "--replace",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr + r.stdout);
        assertEquals(await pgLogin(b, "app", "app-pw", "shop"), "app");
        assertEquals(await pgRoles(b), await pgRoles(a));
        assertEquals(await pgObjectAcls(b, "shop"), await pgObjectAcls(a, "shop"));
      },
    },
    {
      name: "--dry-run masks hashes and changes nothing",
      fn: async ({ c, cli, file }) => {
        const before = await c.sql("SELECT rolname FROM pg_roles ORDER BY 1");
        const r = await cli([
          "users",
          "restore",
          "--instance",
          "c",
          "--all",
          "--dry-run",
          "--skip-existing",
          "--file",
          file,
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertMatch(r.stdout, /ALTER ROLE app WITH .* PASSWORD '\*{8}'/);
        assertEquals(await c.sql("SELECT rolname FROM pg_roles ORDER BY 1"), before);
      },
    },
  ],
};

// ---------------------------------------------------------------------------------------------

const USERS_ROWS: UsersCase[] = [usersCase(MARIADB_USERS), usersCase(POSTGRES_USERS)];

for (const row of USERS_ROWS) {
  Deno.test(
    `users: ${row.name} empty-server drill, --user, existing ${row.accounts}, dry-run`,
    (t) => row.drill(t),
  );
}
