/**
 * The "rebuild a server from nothing" drill, entirely through the CLI as a sysadmin runs it.
 *
 * Server A holds accounts, roles, memberships, privileges down to columns and routines, and two
 * application databases full of awkward content. `backup --all` saves it under instance `db1`.
 * A is then replaced by an empty server B at the same instance id (config and credential
 * rewritten, as when a machine is replaced at the same address); `users restore --all` and one
 * `restore --latest` per database must rebuild it so that every account logs in with its
 * original password and B is indistinguishable from A: accounts, privileges, schema, every
 * table's rows and the database properties.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, startMariadb, startPostgres } from "./harness/servers.ts";
import { type CliResult, makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import {
  mariaAccounts,
  mariaLogin,
  myProps,
  myRows,
  mySchema,
  pgLogin,
  pgObjectAcls,
  pgProps,
  pgRoles,
  pgRows,
  pgSchema,
} from "./helpers/compare.ts";

const INSTANCE = "db1";
const DATABASES = ["shop", "ledger-db"];

/** Where each backup of a `backup` run went, read from its summary lines. */
function backedUp(r: CliResult): Map<string, string> {
  const files = new Map<string, string>();
  for (const m of r.stdout.matchAll(/^ok +db1\/(\S+) .* (\/\S+)$/gm)) files.set(m[1], m[2]);
  return files;
}

/** The file, its checksum and its metadata exist and are not empty. */
async function assertBackupFiles(dump: string): Promise<void> {
  const stem = dump.replace(/\.sql(\.gz|\.zst)?$/, "");
  for (const path of [dump, `${stem}.sha256`, `${stem}.metadata.json`]) {
    const info = await Deno.stat(path);
    assert(info.isFile && info.size > 0, `${path} written`);
  }
}

/** Steps 2 and 3: back up A, point db1 at B, restore users then every database. */
async function rebuild(env: TestEnv, b: PgServer | MyServer): Promise<{
  usersRestore: CliResult;
  restores: CliResult[];
}> {
  const backup = await env.run(["backup", "--all"]);
  assertEquals(backup.code, 0, backup.stderr + backup.stdout);
  const files = backedUp(backup);
  for (const name of ["(users)", ...DATABASES]) {
    assert(files.has(name), `backup of ${name} listed in:\n${backup.stdout}`);
    await assertBackupFiles(files.get(name)!);
  }
  await env.retarget(INSTANCE, b);
  const usersRestore = await env.run(["users", "restore", "--instance", INSTANCE, "--all"]);
  assertEquals(usersRestore.code, 0, usersRestore.stderr + usersRestore.stdout);
  const restores = [];
  for (const db of DATABASES) {
    const r = await env.run(["restore", "--instance", INSTANCE, "--database", db, "--latest"]);
    assertEquals(r.code, 0, `${db}: ${r.stderr}${r.stdout}`);
    assertStringIncludes(r.stdout, `into ${db} on ${INSTANCE}`);
    restores.push(r);
  }
  return { usersRestore, restores };
}

/** One engine's drill: fixture, checks and comparisons are the engine's own, the steps shared. */
interface DrillRow<S extends PgServer | MyServer> {
  /** Engine label, part of the test name. */
  name: string;
  start: () => Promise<S>;
  /** Step 1: fills A with accounts, privileges and the two databases. */
  fixture: (a: S) => Promise<void>;
  /** What `users restore --all` and the restores must have said. */
  restoreChecks: (usersRestore: CliResult, restores: CliResult[]) => void;
  /** Every login account logs in to B with its original password; wrong ones are refused. */
  logins: (b: S) => Promise<void>;
  /** B's accounts/roles equal A's. */
  accounts: (a: S, b: S) => Promise<void>;
  /** What is compared per database between B and A, by label. */
  perDatabase: [label: string, read: (server: S, db: string) => Promise<unknown>][];
  /** The comparisons compare like with like; these make sure there was something to lose. */
  extraChecks: (a: S, b: S) => Promise<void>;
}

async function drill<S extends PgServer | MyServer>(row: DrillRow<S>): Promise<void> {
  const a = await row.start();
  let b: S | undefined;
  let env: TestEnv | undefined;
  try {
    await row.fixture(a);
    env = await makeTestEnv([{ id: INSTANCE, server: a }]);

    b = await row.start();
    const { usersRestore, restores } = await rebuild(env, b);
    row.restoreChecks(usersRestore, restores);
    await row.logins(b);
    await row.accounts(a, b);
    for (const db of DATABASES) {
      for (const [label, read] of row.perDatabase) {
        assertEquals(await read(b, db), await read(a, db), `${db}: ${label}`);
      }
    }
    await row.extraChecks(a, b);
  } finally {
    await env?.cleanup();
    await a.stop();
    await b?.stop();
  }
}

/** A row with its server type erased, so that both engines fit in one table. */
interface DrillCase {
  name: string;
  drill: () => Promise<void>;
}

function drillCase<S extends PgServer | MyServer>(row: DrillRow<S>): DrillCase {
  return { name: row.name, drill: () => drill(row) };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

const PG_ROLES = `
  CREATE ROLE grp NOLOGIN;
  CREATE ROLE grp2 NOLOGIN;
  GRANT grp TO grp2;
  CREATE ROLE app LOGIN PASSWORD 'app-pw' CONNECTION LIMIT 5 VALID UNTIL '2099-01-01';
  CREATE ROLE owner LOGIN CREATEDB PASSWORD 'owner-pw';
  CREATE ROLE "Odd ""name""" LOGIN PASSWORD 'odd pw ''q'' \\ ;';
  CREATE ROLE reader LOGIN NOINHERIT PASSWORD 'reader-pw';
  GRANT grp TO app;
  GRANT grp TO owner WITH ADMIN OPTION;
  GRANT grp2 TO reader, "Odd ""name""";
  ALTER ROLE app SET search_path = s, public;
  COMMENT ON ROLE app IS 'the application''s login';
  CREATE DATABASE shop OWNER owner TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'
    LC_CTYPE 'C' CONNECTION LIMIT 20;
  COMMENT ON DATABASE shop IS 'the shop''s data';
  REVOKE ALL ON DATABASE shop FROM PUBLIC;
  GRANT CONNECT ON DATABASE shop TO app, grp, reader, "Odd ""name""";
  GRANT TEMPORARY ON DATABASE shop TO app WITH GRANT OPTION;
  ALTER DATABASE shop SET work_mem = '8MB';
  ALTER ROLE reader IN DATABASE shop SET statement_timeout = '5s';
  CREATE DATABASE "ledger-db" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
  GRANT CREATE ON DATABASE "ledger-db" TO owner;
`;

/** The awkward content of restore_test's fixture, made by whoever runs it. */
const PG_CONTENT = `
  SET TimeZone = 'Asia/Kolkata';
  CREATE TABLE "Mixed ""Case"" Table" (
    id serial PRIMARY KEY,
    "quoted ""col""" text,
    maybe text,
    bin bytea,
    big text,
    at timestamptz,
    doubled int GENERATED ALWAYS AS (id * 2) STORED
  );
  INSERT INTO "Mixed ""Case"" Table" ("quoted ""col""", maybe, bin, big, at) VALUES
    ('null below', NULL, '\\x00ff0a0d5c27'::bytea, repeat('large text é ', 20000),
     '2024-03-10 02:30:00+05:30'),
    ('empty below', '', ''::bytea, '', '1999-12-31 23:59:59.123456-08'),
    (E'tab\\there\\nnewline', 'x', NULL, NULL, '2024-07-01 12:00:00');
  CREATE TABLE child (id int PRIMARY KEY,
    parent int NOT NULL REFERENCES "Mixed ""Case"" Table"(id));
  INSERT INTO child VALUES (10, 1), (11, 2);
  CREATE VIEW child_view AS SELECT c.id, p."quoted ""col"""
    FROM child c JOIN "Mixed ""Case"" Table" p ON p.id = c.parent;
  CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
  BEGIN
    NEW.id := NEW.id; -- a ';' and 'OWNER TO nobody;' inside a body
    RETURN NEW;
  END;
  $body$;
  CREATE TRIGGER child_touch BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION touch();
  CREATE SEQUENCE counter START 5;
  SELECT setval('counter', 42);
  COMMENT ON SEQUENCE counter IS 'a sequence''s comment';
  COMMENT ON TABLE child IS 'children';
  COMMENT ON COLUMN child.parent IS 'the parent''s id';
`;

/** shop: made by its non-superuser owner, privileges down to columns, defaults for later. */
const PG_SHOP = `
  SET ROLE owner;
  ${PG_CONTENT}
  CREATE SCHEMA s;
  CREATE TABLE s.t (id serial PRIMARY KEY, a int, b int);
  INSERT INTO s.t (a, b) VALUES (1, 2), (NULL, 3);
  CREATE FUNCTION s.f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
  REVOKE EXECUTE ON FUNCTION s.f(int) FROM PUBLIC;
  GRANT USAGE ON SCHEMA s TO grp;
  GRANT SELECT ON s.t TO grp;
  GRANT SELECT (a), UPDATE (b) ON s.t TO app;
  GRANT USAGE, SELECT ON SEQUENCE s.t_id_seq TO app;
  GRANT EXECUTE ON FUNCTION s.f(int) TO app WITH GRANT OPTION;
  GRANT SELECT ON child_view TO reader;
  ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO grp;
  ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
  ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO reader;
  CREATE TABLE s.later (x int);
  CREATE FUNCTION s.g() RETURNS int LANGUAGE sql AS 'SELECT 2';
  RESET ROLE;
  ALTER TABLE child OWNER TO app;
  GRANT SELECT ON child TO reader;
`;

/** ledger-db: owned by the superuser, a quoted schema, per-role default privileges. */
const PG_LEDGER = `
  ${PG_CONTENT}
  CREATE SCHEMA "Acc ""ounts""" AUTHORIZATION owner;
  CREATE TABLE "Acc ""ounts""".entries (id bigint PRIMARY KEY, memo text);
  INSERT INTO "Acc ""ounts""".entries VALUES (1, 'first'), (2, NULL), (3, '');
  ALTER TABLE "Acc ""ounts""".entries OWNER TO owner;
  GRANT USAGE ON SCHEMA "Acc ""ounts""" TO "Odd ""name""";
  GRANT SELECT, INSERT ON "Acc ""ounts""".entries TO "Odd ""name""";
  ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA "Acc ""ounts"""
    GRANT SELECT ON TABLES TO reader;
  ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT USAGE ON SEQUENCES TO app;
`;

/** Login roles and the password each was given on A. */
const PG_LOGINS: [string, string, string][] = [
  ["app", "app-pw", "shop"],
  ["owner", "owner-pw", "shop"],
  ['Odd "name"', "odd pw 'q' \\ ;", "shop"],
  ["reader", "reader-pw", "shop"],
  ["app", "app-pw", "ledger-db"],
];

const POSTGRES_DRILL: DrillRow<PgServer> = {
  name: "PostgreSQL",
  start: startPostgres,
  fixture: async (a) => {
    await a.sql(PG_ROLES);
    await a.sql(PG_SHOP, { database: "shop" });
    await a.sql(PG_LEDGER, { database: "ledger-db" });
  },
  restoreChecks: (usersRestore) => {
    assertMatch(usersRestore.stdout, /skipped +postgres/);
  },
  logins: async (b) => {
    for (const [user, password, db] of PG_LOGINS) {
      assertEquals(await pgLogin(b, user, password, db), user, `${user} logs in to ${db}`);
    }
    const refused = await pgLogin(b, "app", "wrong", "shop").then(() => false, () => true);
    assert(refused, "a wrong password is refused");
  },
  accounts: async (a, b) => {
    assertEquals(await pgRoles(b), await pgRoles(a));
  },
  perDatabase: [
    ["database properties", pgProps],
    ["privileges", pgObjectAcls],
    ["schema", pgSchema],
    ["rows", pgRows],
  ],
  extraChecks: async (_a, b) => {
    const shop = await pgProps(b, "shop");
    assertEquals([shop.owner, shop.connection_limit, shop.comment], [
      "owner",
      20,
      "the shop's data",
    ]);
    const rows = await pgRows(b, "shop");
    assertEquals(rows['public."Mixed ""Case"" Table"'].split(":")[0], "3");
    assertEquals(rows["sequence public.counter"], "42:true");
    assertStringIncludes(await pgObjectAcls(b, "shop"), "app=X*/owner");
  },
};

// ---------------------------------------------------------------------------------------------
// MariaDB

/** The awkward content of restore_test's fixture, with a definer that must exist first. */
const MY_CONTENT = `
  SET time_zone = '+05:30';
  CREATE TABLE \`weird\`\`name\` (
    id INT AUTO_INCREMENT PRIMARY KEY,
    maybe VARCHAR(20) NULL,
    bin BLOB,
    big LONGTEXT,
    at TIMESTAMP NULL,
    dt DATETIME(6) NULL,
    n INT,
    doubled INT AS (n * 2) STORED,
    emoji VARCHAR(10) CHARACTER SET utf8mb4
  ) DEFAULT CHARSET=utf8mb4;
  INSERT INTO \`weird\`\`name\` (maybe, bin, big, at, dt, emoji, n) VALUES
    (NULL, 0x00FF0A0D5C27, REPEAT('large text é ', 20000), '2024-03-10 02:30:00',
     '1999-12-31 23:59:59.123456', '🦆', 1),
    ('', '', '', NULL, NULL, '', 2),
    ('x', NULL, NULL, NULL, NULL, NULL, NULL);
  CREATE TABLE child (id INT PRIMARY KEY, parent INT NOT NULL,
    FOREIGN KEY (parent) REFERENCES \`weird\`\`name\`(id)) ENGINE=InnoDB;
  INSERT INTO child VALUES (10, 1), (11, 2);
  CREATE VIEW child_view AS
    SELECT c.id, p.maybe FROM child c JOIN \`weird\`\`name\` p ON p.id = c.parent;
  CREATE DEFINER = 'app'@'%' SQL SECURITY DEFINER VIEW app_view AS SELECT id FROM child;
  CREATE PROCEDURE count_children(OUT n INT) SELECT COUNT(*) INTO n FROM child;
  CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
  CREATE TRIGGER child_touch BEFORE INSERT ON child FOR EACH ROW SET NEW.id = NEW.id;
  CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM child WHERE id < 0;
`;

const MY_ACCOUNTS = `
  CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';
  CREATE USER 'app'@'10.0.%' IDENTIFIED BY 'app-lan-pw';
  CREATE USER 'web'@'%' IDENTIFIED BY 'web pw ''q'' \\\\ ;'
    WITH MAX_QUERIES_PER_HOUR 100 MAX_USER_CONNECTIONS 3;
  CREATE USER 'col'@'%' IDENTIFIED BY 'col-pw';
  CREATE USER 'ops'@'localhost' IDENTIFIED BY 'ops-pw';
  CREATE USER 'locked'@'%' IDENTIFIED BY 'locked-pw' ACCOUNT LOCK;
  CREATE ROLE reader;
  CREATE ROLE writer;
`;

/** Privileges, given once both databases and their objects exist. */
const MY_GRANTS = `
  GRANT SELECT ON shop.* TO reader;
  GRANT INSERT, UPDATE, DELETE ON \`ledger-db\`.* TO writer;
  GRANT reader TO writer;
  GRANT writer TO 'web'@'%';
  SET DEFAULT ROLE writer FOR 'web'@'%';
  GRANT reader TO 'app'@'%';
  GRANT SELECT (id, maybe), UPDATE (maybe) ON shop.\`weird\`\`name\` TO 'col'@'%';
  GRANT EXECUTE ON PROCEDURE shop.count_children TO 'col'@'%';
  GRANT EXECUTE ON FUNCTION \`ledger-db\`.twice TO 'web'@'%';
  GRANT SELECT ON \`ledger-db\`.child TO 'app'@'%';
  GRANT SELECT ON \`ledger-db\`.child_view TO 'col'@'%';
  GRANT RELOAD, PROCESS ON *.* TO 'col'@'%';
  GRANT ALL ON shop.* TO 'app'@'10.0.%' WITH GRANT OPTION;
  GRANT SELECT ON \`ledger-db\`.* TO 'ops'@'localhost';
`;

/** Accounts that can log in from 127.0.0.1, with their passwords. */
const MY_LOGINS: [string, string][] = [
  ["app", "app-pw"],
  ["web", "web pw 'q' \\ ;"],
  ["col", "col-pw"],
];

const MARIADB_DRILL: DrillRow<MyServer> = {
  name: "MariaDB",
  start: startMariadb,
  fixture: async (a) => {
    await a.sql(`
      CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
      CREATE DATABASE \`ledger-db\` CHARACTER SET latin1 COLLATE latin1_general_cs;
      ${MY_ACCOUNTS}`);
    for (const db of DATABASES) await a.sql(MY_CONTENT, { database: db });
    await a.sql(MY_GRANTS);
  },
  restoreChecks: (usersRestore, restores) => {
    // Table, column and routine privileges cannot exist before their database.
    assertMatch(usersRestore.stdout, /waiting for their database/);
    assertMatch(
      usersRestore.stdout,
      /shop: GRANT SELECT \((`id`, `maybe`|`maybe`, `id`)\), UPDATE \(`maybe`\) ON `shop`\.`weird``name` TO `col`@`%`/,
    );
    assertMatch(usersRestore.stdout, /ledger-db: GRANT EXECUTE ON FUNCTION `ledger-db`\.`twice`/);
    // Each restore applies exactly the grants that were listed as waiting for its database.
    for (const [i, db] of DATABASES.entries()) {
      const waiting = usersRestore.stdout.split("\n").filter((l) => l.startsWith(`  ${db}: `));
      assert(waiting.length > 0, `grants wait for ${db}`);
      assertStringIncludes(restores[i].stderr, `applied ${waiting.length} privilege(s) on ${db}`);
    }
  },
  logins: async (b) => {
    for (const [user, password] of MY_LOGINS) {
      const r = await mariaLogin(b, user, password);
      assertEquals(r.code, 0, `${user}: ${r.stderr}`);
      assertEquals(r.stdout.trim(), `${user}@%`);
    }
    assert((await mariaLogin(b, "app", "wrong")).code !== 0, "a wrong password is refused");
    assertStringIncludes((await mariaLogin(b, "locked", "locked-pw")).stderr, "locked");
  },
  accounts: async (a, b) => {
    // Every account (host-limited ones included): plugin, hash, limits, lock, grants, roles.
    const accounts = await mariaAccounts(a);
    for (const name of ["'app'@'10.0.%'", "'ops'@'localhost'", "'reader'@''", "'writer'@''"]) {
      assert(name in accounts, `${name} compared`);
    }
    assertEquals(await mariaAccounts(b), accounts);
  },
  perDatabase: [
    ["database properties", myProps],
    ["schema", mySchema],
    ["rows", myRows],
  ],
  extraChecks: async (_a, b) => {
    assertEquals((await myProps(b, "ledger-db")).collation, "latin1_general_cs");
    assertEquals(
      await b.sql("SELECT emoji FROM `weird``name` WHERE id = 1", { database: "shop" }),
      "🦆",
    );
    assertEquals(
      Object.keys(await myRows(b, "shop")).sort(),
      ["child", "weird`name"],
    );
  },
};

// ---------------------------------------------------------------------------------------------

const DRILL_ROWS: DrillCase[] = [drillCase(POSTGRES_DRILL), drillCase(MARIADB_DRILL)];

for (const row of DRILL_ROWS) {
  Deno.test(`drill: ${row.name} server rebuilt from nothing through the CLI`, () => row.drill());
}
