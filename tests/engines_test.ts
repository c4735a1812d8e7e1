/**
 * Engine adapters and tool discovery against real PostgreSQL 15 and MariaDB 10.11 servers.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./harness/assert.ts";
import { sharedMariadb, sharedPostgres, type TestServer } from "./harness/servers.ts";
import {
  connect,
  ConnectError,
  type EngineAdapter,
  MissingDatabaseError,
  type ObjectCounts,
  selectDatabases,
} from "../lib/engines/mod.ts";
import { parseMysqlVersion } from "../lib/engines/mysql/adapter.ts";
import { parsePgVersion } from "../lib/engines/postgres/adapter.ts";
import { findTools } from "../lib/engines/mod.ts";
import { requireTools } from "../lib/tools/find.ts";
import { ConfigError, ExitCode } from "../lib/errors.ts";

async function withAdapter<T>(
  adapter: Promise<EngineAdapter>,
  fn: (a: EngineAdapter) => Promise<T>,
): Promise<T> {
  const a = await adapter;
  try {
    return await fn(a);
  } finally {
    await a.close();
  }
}

/** A port nothing listens on: bound and released, below the ephemeral range. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The engines' rows of the table-driven tests below: data per engine, assertions shared. */
interface EngineRow {
  name: string;
  type: "postgresql" | "mariadb";
  server: () => Promise<TestServer>;
  /** Two databases (`a` holding a 20000-row table, `b` empty) and one not matched by `eng_*`. */
  setup: string;
  /** Database `a` gets its table through this SQL, run in it (or undefined: in `setup`). */
  fill?: { database: string; sql: string };
  /** Names the listing must hold (user and system). */
  listed: string[];
  /** Names it must not hold (templates). */
  unlisted: string[];
  /** Size rules: the empty database's size, and what the table adds. */
  sizes: (size: (n: string) => number) => void;
  /** System databases that `*` must not select. */
  system: string[];
  /** include, exclude, expected selection. */
  selection: [string[], string[], string[]];
  /** Objects: the fixture database, its SQL and counts; a database counted empty. */
  objects: { database: string; sql: string; counts: ObjectCounts; empty?: string };
}

const ENGINE_ROWS: EngineRow[] = [
  {
    name: "PostgreSQL",
    type: "postgresql",
    server: sharedPostgres,
    setup: "create database eng_pg_a; create database eng_pg_b; create database other_pg;",
    fill: {
      database: "eng_pg_a",
      sql: "create table big as select g, repeat('x', 200) as s from generate_series(1, 20000) g",
    },
    listed: ["eng_pg_a", "eng_pg_b", "other_pg", "postgres"],
    unlisted: ["template0", "template1"],
    sizes: (size) => {
      assert(size("eng_pg_b") > 1_000_000, `empty database size ${size("eng_pg_b")}`);
      assert(size("eng_pg_a") > size("eng_pg_b") + 3_000_000, "the 20000-row table adds its size");
    },
    system: ["postgres"],
    selection: [["eng_pg_*", "postgres", "template1"], ["*_b"], ["eng_pg_a"]],
    objects: {
      database: "eng_pg_objects",
      sql: `create extension if not exists pgcrypto; -- its functions must not be counted
     create schema s2;
     create table t1(id serial primary key, v text);
     create table s2.t2(id int);
     create table parted(k int) partition by range (k);
     create table parted_1 partition of parted for values from (0) to (10);
     create view v1 as select * from t1;
     create materialized view mv1 as select count(*) from t1;
     create sequence seq_extra;
     create function f1() returns int language sql as $$ select 1 $$;
     create procedure p1() language sql as $$ select 1 $$;
     create function trg() returns trigger language plpgsql as $$ begin return new; end $$;
     create trigger tr1 before insert on t1 for each row execute function trg();
     create trigger tr2 before update on s2.t2 for each row execute function trg();
     create table fk(id int references t1(id)); -- constraint triggers are internal
     select lo_from_bytea(0, 'blob one'), lo_from_bytea(0, 'blob two');`,
      counts: {
        tables: 5, // t1, s2.t2, parted, parted_1, fk
        views: 2,
        routines: 3, // f1, p1, trg
        triggers: 2,
        sequences: 2, // t1_id_seq, seq_extra
        large_objects: 2,
      },
      empty: "postgres",
    },
  },
  {
    name: "MariaDB",
    type: "mariadb",
    server: sharedMariadb,
    setup: `create database eng_my_a; create database eng_my_b;
     create table eng_my_a.big(id int primary key, s varchar(255));
     use eng_my_a;
     insert into big select seq, repeat('x', 200) from seq_1_to_20000;
     analyze table big;`,
    listed: ["eng_my_a", "eng_my_b", "mysql", "information_schema", "performance_schema"],
    unlisted: [],
    sizes: (size) => {
      assertEquals(size("eng_my_b"), 0);
      assert(size("eng_my_a") > 3_000_000, `size ${size("eng_my_a")}`);
    },
    system: ["mysql", "sys", "information_schema", "performance_schema"],
    selection: [["mysql", "sys", "eng_my_?"], ["eng_my_b"], ["eng_my_a"]],
    objects: {
      database: "eng_my_objects",
      sql: `create table t1(id int primary key, v text);
     create table t2(id int) with system versioning;
     create view v1 as select * from t1;
     create sequence s1;
     create function f1() returns int deterministic return 1;
     create procedure p1() select 1;
     create trigger tr1 before insert on t1 for each row set new.v = 'x';
     create trigger tr2 before update on t1 for each row set new.v = 'y';
     create event e1 on schedule every 1 day disable do select 1;`,
      counts: { tables: 2, views: 1, routines: 2, triggers: 2, events: 1, sequences: 1 },
    },
  },
];

Deno.test("PostgreSQL: version detected", async () => {
  const pg = await sharedPostgres();
  await withAdapter(connect("postgresql", pg.params), async (a) => {
    assertEquals(a.engine, "postgresql");
    const v = await a.serverVersion();
    assertEquals([v.flavor, v.major], ["postgresql", 15]);
    assertMatch(v.full, /^15\.\d+/);
    assertEquals(v.minor, Number(/^15\.(\d+)/.exec(v.full)![1]));
  });
});

Deno.test("MariaDB: version and flavor detected even when configured as mysql", async () => {
  const my = await sharedMariadb();
  for (const type of ["mysql", "mariadb"] as const) {
    await withAdapter(connect(type, my.params), async (a) => {
      assertEquals(a.engine, "mariadb");
      const v = await a.serverVersion();
      assertEquals([v.flavor, v.major, v.minor], ["mariadb", 10, 11]);
      assertMatch(v.full, /^10\.11\.\d+-MariaDB/);
    });
  }
});

for (const row of ENGINE_ROWS) {
  Deno.test(`${row.name}: databases with sizes, sorted, system databases never selected`, async () => {
    const server = await row.server();
    await server.sql(row.setup);
    if (row.fill) await server.sql(row.fill.sql, { database: row.fill.database });
    await withAdapter(connect(row.type, server.params), async (a) => {
      const all = await a.listDatabases();
      const names = all.map((d) => d.name);
      for (const n of row.listed) assert(names.includes(n), `${n} missing from ${names}`);
      for (const n of row.unlisted) assert(!names.includes(n), `${n} listed`);
      assertEquals(names, [...names].sort(), "sorted by name");
      row.sizes((n) => all.find((d) => d.name === n)!.sizeBytes);
      const everything = selectDatabases(a.engine, all, ["*"], []).map((d) => d.name);
      for (const sys of row.system) assert(!everything.includes(sys), `${sys} selected by *`);
      const [include, exclude, expected] = row.selection;
      assertEquals(
        selectDatabases(a.engine, all, include, exclude).map((d) => d.name),
        expected,
      );
    });
  });

  Deno.test(`${row.name}: object counts cover every kind of object the engine has`, async () => {
    const server = await row.server();
    const o = row.objects;
    await server.sql(`create database ${o.database}`);
    await server.sql(o.sql, { database: o.database });
    await withAdapter(connect(row.type, server.params), async (a) => {
      assertEquals(await a.objectCounts(o.database), o.counts);
      if (o.empty) {
        assertEquals(await a.objectCounts(o.empty), {
          tables: 0,
          views: 0,
          routines: 0,
          triggers: 0,
          sequences: 0,
          large_objects: 0,
        });
      }
      await assertRejects(() => a.objectCounts("no_such_db"), MissingDatabaseError, "no_such_db");
    });
  });
}

Deno.test("a wrong password gives a clear error that does not contain the password", async () => {
  const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
  const secret = "Wr0ng-S3cret-Value";
  for (const [type, server] of [["postgresql", pg], ["mariadb", my]] as const) {
    const error = await assertRejects(
      () => connect(type, { ...server.params, password: secret }),
      ConnectError,
    );
    assertEquals(error.reason, "auth");
    assertEquals(error.exitCode, ExitCode.FAILED);
    assertEquals(
      error.message,
      `authentication failed for user ${server.user} at 127.0.0.1:${server.port}`,
    );
    const everything = `${error.message} ${error.hint} ${String(error.cause)} ${error.stack}`;
    assertNotMatch(everything, new RegExp(secret));
    assertNotMatch(everything, new RegExp(server.password));
  }
});

Deno.test("a closed port gives 'connection refused' naming host and port", async () => {
  const port = closedPort();
  for (const type of ["postgresql", "mysql"] as const) {
    const error = await assertRejects(
      () =>
        connect(type, {
          host: "127.0.0.1",
          port,
          user: "u",
          password: "p4ss-w0rd",
          connectTimeout: 3,
        }),
      ConnectError,
    );
    assertEquals(error.message, `cannot connect to 127.0.0.1:${port}: connection refused`);
    assertEquals(error.reason, "refused");
  }
});

Deno.test("a server that never answers times out after connect_timeout", async () => {
  // Accepts TCP connections and says nothing, like a firewalled or hung server.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch { /* closed */ }
  })();
  try {
    for (const type of ["postgresql", "mariadb"] as const) {
      const t0 = performance.now();
      const error = await assertRejects(
        () =>
          connect(type, { host: "127.0.0.1", port, user: "u", password: "pw", connectTimeout: 1 }),
        ConnectError,
      );
      const ms = performance.now() - t0;
      assertEquals(error.reason, "timeout");
      assertEquals(error.message, `cannot connect to 127.0.0.1:${port}: no answer within 1 s`);
      assert(ms >= 900 && ms < 5000, `took ${ms} ms`);
    }
  } finally {
    listener.close();
    for (const c of held) {
      try {
        c.close();
      } catch { /* closed by peer */ }
    }
    await accepting;
  }
});

Deno.test("an unknown host name is reported as such", async () => {
  const error = await assertRejects(
    () =>
      connect("postgresql", {
        host: "no-such-host.invalid",
        port: 5432,
        user: "u",
        password: "pw",
        connectTimeout: 3,
      }),
    ConnectError,
  );
  assertEquals(error.reason, "dns");
  assertStringIncludes(error.message, "no-such-host.invalid");
});

Deno.test("version strings are parsed for every flavor", () => {
  assertEquals(parseMysqlVersion("8.0.36"), {
    full: "8.0.36",
    major: 8,
    minor: 0,
    flavor: "mysql",
  });
  assertEquals(parseMysqlVersion("9.7.0-1+b1").flavor, "mysql");
  assertEquals(parseMysqlVersion("5.5.5-10.11.6-MariaDB-log"), {
    full: "5.5.5-10.11.6-MariaDB-log",
    major: 10,
    minor: 11,
    flavor: "mariadb",
  });
  assertEquals(parseMysqlVersion("11.4.2-MariaDB").major, 11);
  assertEquals(parsePgVersion("15.18 (Debian)", 150018), {
    full: "15.18 (Debian)",
    major: 15,
    minor: 18,
    flavor: "postgresql",
  });
  assertEquals([parsePgVersion("9.6.24", 90624).major, parsePgVersion("9.6.24", 90624).minor], [
    9,
    6,
  ]);
  assertThrows(() => parseMysqlVersion("garbage"));
});

Deno.test("tool discovery finds pg_dump 15 for a PostgreSQL 15 server and explains why", async () => {
  const pg = await sharedPostgres();
  const major = await withAdapter(
    connect("postgresql", pg.params),
    async (a) => (await a.serverVersion()).major,
  );
  const set = await findTools("postgresql", major, { paths: {} });
  assertEquals(set.problems, []);
  assertEquals(set.tools.dump?.path, "/usr/lib/postgresql/15/bin/pg_dump");
  assertEquals(set.tools.dump?.major, 15);
  assertMatch(set.tools.dump!.version!, /^pg_dump \(PostgreSQL\) 15\./);
  assertMatch(set.tools.dump!.reason!, /oldest PostgreSQL pg_dump >= server 15/);
  assertEquals(set.tools.dumpall?.path, "/usr/lib/postgresql/15/bin/pg_dumpall");
  assertEquals(set.tools.client?.path, "/usr/lib/postgresql/15/bin/psql");
  assertEquals(requireTools(set), {
    dump: "/usr/lib/postgresql/15/bin/pg_dump",
    dumpall: "/usr/lib/postgresql/15/bin/pg_dumpall",
    client: "/usr/lib/postgresql/15/bin/psql",
  });
});

Deno.test("tool discovery: no pg_dump new enough is reported with what is needed and where it looked", async () => {
  const set = await findTools("postgresql", 18, { paths: {} });
  assertEquals(set.tools.dump?.path, undefined);
  const problem = set.tools.dump!.problem!;
  assertStringIncludes(problem, "no pg_dump for PostgreSQL 18 or newer");
  assertStringIncludes(problem, "pg_dump 15 (/usr/lib/postgresql/15/bin/pg_dump)");
  assertStringIncludes(problem, "/usr/lib/postgresql/<major>/bin");
  assertStringIncludes(problem, "/usr/pgsql-<major>/bin");
  assertStringIncludes(problem, "postgresql-client-18");
  assertEquals(set.problems.length, 3);
  const error = assertThrows(() => requireTools(set), ConfigError);
  assertStringIncludes(error.message, "no pg_dump for PostgreSQL 18");
  assertEquals(error.exitCode, ExitCode.CONFIG);
});

Deno.test("tool discovery finds mariadb-dump and mariadb for MariaDB, mysqldump/mysql for MySQL", async () => {
  const my = await sharedMariadb();
  const engine = await withAdapter(connect("mysql", my.params), (a) => Promise.resolve(a.engine));
  const maria = await findTools(engine, 10, { paths: {} });
  assertEquals(maria.problems, []);
  assertMatch(maria.tools.dump!.path!, /\/mariadb-dump$/);
  assertMatch(maria.tools.dump!.version!, /MariaDB/);
  assertMatch(maria.tools.client!.path!, /\/mariadb$/);
  const mysql = await findTools("mysql", 8, { paths: {} });
  assertMatch(mysql.tools.dump!.path!, /\/mysqldump$/);
  assertMatch(mysql.tools.client!.path!, /\/mysql$/);
});

Deno.test("tool discovery: explicit paths win, then tools.dir, then the other product's name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vya-tools-" });
  try {
    // tools.dir holding only the MariaDB names: a MySQL instance falls back to them.
    await Deno.symlink("/usr/bin/mariadb-dump", `${dir}/mariadb-dump`);
    await Deno.symlink("/usr/bin/mariadb", `${dir}/mariadb`);
    const fallback = await findTools("mysql", 8, { dir, paths: {} }, { path: "/nonexistent" });
    assertEquals(fallback.tools.dump?.path, `${dir}/mariadb-dump`);
    assertEquals(fallback.tools.dump?.reason, "mariadb-dump found in tools.dir (no mysqldump)");

    const explicit = await findTools(
      "postgresql",
      15,
      { dir, paths: { pg_dump: "/usr/bin/pg_dump" } },
    );
    assertEquals(explicit.tools.dump?.path, "/usr/bin/pg_dump");
    assertEquals(explicit.tools.dump?.reason, "tools.pg_dump");

    const tooOld = await findTools("postgresql", 16, {
      paths: { pg_dump: "/usr/lib/postgresql/15/bin/pg_dump" },
    });
    assertStringIncludes(tooOld.tools.dump!.problem!, "a server 16 needs pg_dump 16 or newer");

    const missing = await findTools("mariadb", 10, { paths: { "mariadb-dump": `${dir}/nope` } });
    assertStringIncludes(missing.tools.dump!.problem!, "not an executable file");

    const nothing = await findTools("mariadb", 10, { paths: {} }, { path: dir + "/empty" });
    assertStringIncludes(nothing.tools.dump!.problem!, "no mariadb-dump or mysqldump found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tool discovery: only the roles asked for, each binary asked once, Debian's pg_wrapper skipped beside the Debian layout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vya-tools-" });
  try {
    const asked = `${dir}/asked.log`;
    const fake = async (path: string, answer: string) => {
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(
        path,
        `#!/bin/sh\necho "${path}" >> "${asked}"\necho "${answer}"\n`,
        { mode: 0o755 },
      );
    };
    await fake(`${dir}/lib/15/bin/pg_dump`, "pg_dump (PostgreSQL) 15.1");
    await fake(`${dir}/lib/15/bin/psql`, "psql (PostgreSQL) 15.1");
    await fake(`${dir}/share/postgresql-common/pg_wrapper`, "pg_dump (PostgreSQL) 15.1");
    await Deno.mkdir(`${dir}/bin`);
    await Deno.symlink(`${dir}/share/postgresql-common/pg_wrapper`, `${dir}/bin/pg_dump`);
    const where = { rhelPrefix: `${dir}/none-`, path: `${dir}/bin`, roles: ["dump"] as const };
    const lines = async () => (await Deno.readTextFile(asked)).trim().split("\n");

    const set = await findTools("postgresql", 15, { paths: {} }, {
      ...where,
      debianRoot: `${dir}/lib`,
    });
    assertEquals(set.tools.dump?.path, `${dir}/lib/15/bin/pg_dump`);
    assertEquals(Object.keys(set.tools), ["dump"]);
    assertEquals(await lines(), [`${dir}/lib/15/bin/pg_dump`]);
    // Asked again (the users backup, the next instance): no second `--version`.
    await findTools("postgresql", 15, { paths: {} }, { ...where, debianRoot: `${dir}/lib` });
    assertEquals(await lines(), [`${dir}/lib/15/bin/pg_dump`]);

    // Without the Debian layout the wrapper is the only pg_dump, and is used.
    const alone = await findTools("postgresql", 15, { paths: {} }, {
      ...where,
      debianRoot: `${dir}/nothing`,
    });
    assertEquals(alone.tools.dump?.path, `${dir}/bin/pg_dump`);
    assertEquals((await lines()).at(-1), `${dir}/share/postgresql-common/pg_wrapper`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Sessions the server counted for a database so far (flushed as each session ends). */
async function sessionsOf(pg: TestServer, database: string): Promise<number> {
  return Number(
    await pg.sql(`SELECT sessions FROM pg_stat_database WHERE datname = '${database}'`),
  );
}

/** Waits until the count stops moving (a session's stats are flushed as it exits). */
async function settledSessions(pg: TestServer, database: string): Promise<number> {
  let last = await sessionsOf(pg, database);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = await sessionsOf(pg, database);
    if (now === last && i >= 3) return now;
    last = now;
  }
  return last;
}

Deno.test("PostgreSQL: while a database is held its catalog queries share one session", async () => {
  const pg = await sharedPostgres();
  const db = `held_${crypto.randomUUID().slice(0, 8)}`;
  await pg.sql(`CREATE DATABASE ${db}`);
  await pg.sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)", { database: db });
  try {
    // Each psql of sessionsOf counts one session of database postgres, not of db.
    const queries = async (a: EngineAdapter) => {
      await a.objectCounts(db);
      await a.restoreWarning?.(db);
      assertEquals((await a.tableRows(db))["public.t"], { rows: 1, exact: true });
    };
    let before = await settledSessions(pg, db);
    await withAdapter(connect("postgresql", pg.params), queries);
    const unheld = (await settledSessions(pg, db)) - before;
    assertEquals(unheld, 3);
    before = await settledSessions(pg, db);
    await withAdapter(connect("postgresql", pg.params), async (a) => {
      const release = a.hold!(db);
      await queries(a);
      release();
      release();
    });
    assertEquals((await settledSessions(pg, db)) - before, 1);
  } finally {
    await pg.sql(`DROP DATABASE IF EXISTS ${db}`);
  }
});
