/**
 * `restore --jobs N` through the CLI as a sysadmin runs it, table-driven over the engines:
 *
 * - the drill: accounts and a database of varied tables (sizes, FKs, indexes, views, triggers,
 *   sequences, routines, and text that looks like the dump's own entry headers) backed up from
 *   server A and rebuilt on an empty server B with `--jobs 4`, then again with `--jobs 1`;
 *   schema, rows, ownership and grants compared with A each time;
 * - a statement that fails in one session stops the load: exit 1, the dump's line and the
 *   server's message, and the database it created is gone;
 * - a restore killed with SIGKILL at several points leaves nothing, or a marked database that
 *   the next restore (without --force) replaces;
 * - fewer free connections than asked: the restore says so and uses fewer.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, startMariadb, startPostgres } from "./harness/servers.ts";
import { cliArgs, type CliResult, makeTestEnv, REPO_ROOT, type TestEnv } from "./helpers/cli.ts";
import {
  myProps,
  myRows,
  mySchema,
  pgObjectAcls,
  pgProps,
  pgRows,
  pgSchema,
} from "./helpers/compare.ts";
import { myExists, pgExists } from "./helpers/restore_support.ts";
import { connect } from "../lib/engines/mod.ts";

const INSTANCE = "db1";
const DB = "shop";

/** Text that a splitter reading lines naively would take for entry headers. */
const FAKE_PG = "-- Data for Name: evil; Type: TABLE DATA; Schema: public; Owner: x";
const FAKE_MY = "-- Table structure for table `evil`";

const PG_ROLES = `
  CREATE ROLE app LOGIN PASSWORD 'app-pw';
  CREATE ROLE ro NOLOGIN;
  CREATE DATABASE ${DB} OWNER app;
`;

const PG_CONTENT = `
  CREATE SCHEMA s AUTHORIZATION app;
  CREATE SEQUENCE order_no START 1000;
  SELECT setval('order_no', 4242);
  CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
  INSERT INTO customers (name, email) SELECT 'c' || g, 'c' || g || '@x' FROM generate_series(1, 5000) g;
  CREATE TABLE products (id int PRIMARY KEY, title text, price numeric(10,2));
  INSERT INTO products SELECT g, 'p' || g, g / 7.0 FROM generate_series(1, 2000) g;
  CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL REFERENCES customers,
    placed timestamptz, note text);
  INSERT INTO orders (customer, placed, note)
    SELECT 1 + g % 5000, '2026-01-01'::timestamptz + g * interval '1 minute', md5(g::text)
      FROM generate_series(1, 30000) g;
  CREATE TABLE order_lines (order_id bigint REFERENCES orders, product int REFERENCES products,
    qty int CHECK (qty > 0), PRIMARY KEY (order_id, product));
  INSERT INTO order_lines SELECT 1 + g / 2, 1 + g % 2000, 1 + g % 9 FROM generate_series(0, 59999) g;
  CREATE INDEX orders_placed ON orders (placed);
  CREATE INDEX lines_product ON order_lines (product);
  CREATE TABLE s.audit (id serial PRIMARY KEY, at timestamptz DEFAULT now(), what text);
  INSERT INTO s.audit (at, what) VALUES ('2026-01-01', 'first');
  CREATE FUNCTION s.log_order() RETURNS trigger LANGUAGE plpgsql AS $body$
  BEGIN
    INSERT INTO s.audit (what) VALUES ('order ' || NEW.id);
    RETURN NEW;
  END
  -- Name: evil; Type: INDEX; Schema: public; Owner: x
  $body$;
  CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION s.log_order();
  CREATE TABLE empty_t (x int);
  CREATE TABLE tags (id int PRIMARY KEY, label text UNIQUE);
  INSERT INTO tags SELECT g, 'tag' || g FROM generate_series(1, 10) g;
  CREATE TABLE big_text (id int PRIMARY KEY, body text);
  INSERT INTO big_text SELECT g, repeat(md5(g::text), 150) FROM generate_series(1, 2000) g;
  CREATE TABLE notes (body text, id int);
  INSERT INTO notes VALUES ('${FAKE_PG}', 1), (E'line\\n${FAKE_PG}', 2);
  CREATE TABLE big (id bigint, payload text);
  INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 300000) g;
  CREATE INDEX big_id ON big (id);
  CREATE VIEW order_totals AS SELECT o.id, sum(l.qty) AS qty
    FROM orders o JOIN order_lines l ON l.order_id = o.id GROUP BY o.id;
  CREATE MATERIALIZED VIEW per_customer AS SELECT customer, count(*) AS n FROM orders GROUP BY 1;
  CREATE UNIQUE INDEX per_customer_c ON per_customer (customer);
  CREATE FUNCTION s.twice(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
  ALTER TABLE products OWNER TO app;
  ALTER TABLE notes OWNER TO app;
  GRANT USAGE ON SCHEMA s TO ro;
  GRANT SELECT ON customers, order_totals TO ro;
  GRANT SELECT (title), UPDATE (price) ON products TO ro;
`;

const MY_CONTENT = `
  CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL,
    email VARCHAR(80) UNIQUE) ENGINE=InnoDB;
  INSERT INTO customers (name, email) SELECT CONCAT('c', seq), CONCAT('c', seq, '@x')
    FROM seq_1_to_5000;
  CREATE TABLE products (id INT PRIMARY KEY, title VARCHAR(40), price DECIMAL(10,2));
  INSERT INTO products SELECT seq, CONCAT('p', seq), seq / 7 FROM seq_1_to_2000;
  CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL,
    placed DATETIME, note VARCHAR(40), KEY orders_placed (placed),
    FOREIGN KEY (customer) REFERENCES customers (id)) ENGINE=InnoDB;
  INSERT INTO orders (customer, placed, note)
    SELECT 1 + seq % 5000, '2026-01-01' + INTERVAL seq MINUTE, MD5(seq) FROM seq_1_to_30000;
  CREATE TABLE order_lines (order_id BIGINT, product INT, qty INT,
    PRIMARY KEY (order_id, product), KEY lines_product (product),
    FOREIGN KEY (order_id) REFERENCES orders (id),
    FOREIGN KEY (product) REFERENCES products (id)) ENGINE=InnoDB;
  INSERT INTO order_lines SELECT 1 + seq DIV 2, 1 + seq % 2000, 1 + seq % 9 FROM seq_0_to_59999;
  CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(60));
  INSERT INTO audit (what) VALUES ('first');
  CREATE TABLE empty_t (x INT);
  CREATE TABLE tags (id INT PRIMARY KEY, label VARCHAR(20) UNIQUE);
  INSERT INTO tags SELECT seq, CONCAT('tag', seq) FROM seq_1_to_10;
  CREATE TABLE notes (body TEXT, id INT);
  INSERT INTO notes VALUES ('${FAKE_MY}', 1), ('a\\n${FAKE_MY}', 2);
  CREATE PROCEDURE fake_header() SELECT 'x
${FAKE_MY}
' AS t;
  CREATE TABLE big (id BIGINT, payload VARCHAR(80), KEY big_id (id));
  INSERT INTO big SELECT seq, CONCAT(MD5(seq), MD5(seq * 7)) FROM seq_1_to_300000;
  CREATE SEQUENCE order_no START WITH 1000;
  CREATE VIEW order_totals AS SELECT o.id, SUM(l.qty) AS qty
    FROM orders o JOIN order_lines l ON l.order_id = o.id GROUP BY o.id;
  CREATE VIEW top_totals AS SELECT * FROM order_totals WHERE qty > 10;
  CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW
    INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
  CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
  CREATE PROCEDURE count_orders(OUT n INT) SELECT COUNT(*) INTO n FROM orders;
  CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;
`;

/** One engine's row of the table. */
interface JobsRow {
  name: string;
  start: () => Promise<PgServer | MyServer>;
  fixture: (a: PgServer | MyServer) => Promise<void>;
  compare: [label: string, read: (s: PgServer | MyServer, db: string) => Promise<unknown>][];
  exists: (s: PgServer | MyServer, db: string) => Promise<boolean>;
  /** Whether database `db` carries the mark of an unfinished restore. */
  marked: (s: PgServer | MyServer, db: string) => Promise<boolean>;
  /** Whether `db` holds no table, view or sequence (a database created and not yet marked). */
  empty: (s: PgServer | MyServer, db: string) => Promise<boolean>;
  /** Whether a session loads into `db` now: [data phase, index/post phase]. */
  loading: (s: PgServer | MyServer, db: string, what: "data" | "index") => Promise<boolean>;
  /** The line of the dump to break, and how: a statement of a parallel phase. */
  breakLine: RegExp;
  broken: (line: string) => string;
  serverMessage: RegExp;
  /** Limits the server's free connections to about `n` (returns the undo). */
  limitConnections: (s: PgServer | MyServer, n: number) => Promise<() => Promise<void>>;
  /** A dump of `db`, decompressed, from the backup file. */
  decompress: (path: string) => Promise<string>;
}

async function gunzip(path: string): Promise<string> {
  const file = await Deno.open(path);
  const text = await new Response(file.readable.pipeThrough(new DecompressionStream("gzip")))
    .text();
  return text;
}

const pg = (s: PgServer | MyServer) => s as PgServer;
const my = (s: PgServer | MyServer) => s as MyServer;

const POSTGRES: JobsRow = {
  name: "PostgreSQL",
  start: startPostgres,
  fixture: async (a) => {
    await a.sql(PG_ROLES);
    await a.sql(PG_CONTENT, { database: DB });
  },
  compare: [
    ["database properties", (s, db) => pgProps(pg(s), db)],
    ["privileges", (s, db) => pgObjectAcls(pg(s), db)],
    ["schema", (s, db) => pgSchema(pg(s), db)],
    ["rows", (s, db) => pgRows(pg(s), db)],
  ],
  exists: (s, db) => pgExists(pg(s), db),
  empty: async (s, db) =>
    (await s.sql(
      `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'S', 'p') AND n.nspname <> 'information_schema'
          AND n.nspname NOT LIKE 'pg\\_%'`,
      { database: db },
    )) === "0",
  marked: async (s, db) =>
    (await s.sql(`SELECT shobj_description(oid, 'pg_database') FROM pg_database
                   WHERE datname = '${db}'`)).startsWith("vya-backupdb: INCOMPLETE"),
  loading: async (s, db, what) =>
    Number(
      await s.sql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}'
                     AND state = 'active' AND query ${
        what === "data" ? "LIKE 'COPY %'" : "LIKE 'CREATE INDEX%'"
      }`),
    ) > 0,
  breakLine: /^CREATE INDEX lines_product ON public\.order_lines USING btree \(product\);$/m,
  broken: (l) => l.replace("(product)", "(nosuchcol)"),
  serverMessage: /ERROR: {2}column "nosuchcol" does not exist/,
  limitConnections: async (s, n) => {
    // A login role with a connection limit (the CLI's own two sessions count).
    await s.sql(
      `CREATE ROLE loader LOGIN CREATEDB PASSWORD 'loader-pw' CONNECTION LIMIT ${n + 2}`,
    );
    return () => Promise.resolve();
  },
  decompress: gunzip,
};

const MARIADB: JobsRow = {
  name: "MariaDB",
  start: startMariadb,
  fixture: async (a) => {
    await a.sql(`CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
      CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT SELECT ON ${DB}.* TO 'app'@'%';`);
    await a.sql(MY_CONTENT, { database: DB });
  },
  compare: [
    ["database properties", (s, db) => myProps(my(s), db)],
    ["schema", (s, db) => mySchema(my(s), db)],
    ["rows", (s, db) => myRows(my(s), db)],
  ],
  exists: (s, db) => myExists(my(s), db),
  empty: async (s, db) =>
    (await s.sql(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}'`)) ===
      "0",
  marked: async (s, db) =>
    (await s.sql(`SELECT COUNT(*) FROM information_schema.TABLES
                   WHERE TABLE_SCHEMA = '${db}' AND TABLE_NAME = '_vya_restore_incomplete'`)) ===
      "1",
  loading: async (s, db, what) =>
    Number(
      await s.sql(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '${db}'
                     AND COMMAND = 'Query' AND INFO ${
        what === "data" ? "LIKE 'INSERT%'" : "LIKE '%VIEW%'"
      }`),
    ) > 0,
  // mariadb-dump 10.11.19+ writes a row a line; older ones the whole INSERT on one.
  breakLine: /^INSERT INTO `tags` VALUES ?\n?\(1,/m,
  broken: (l) => l.replace("(1,", "(1,2,"),
  serverMessage: /ERROR 1136: Column count doesn't match value count/,
  limitConnections: async (s, n) => {
    // max_connections cannot go below 10: idle sessions take the rest.
    const held: { close(): Promise<void> }[] = [];
    const used = () =>
      s.sql(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS " +
          "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'",
      ).then(Number);
    const before = await s.sql("SELECT @@GLOBAL.max_connections");
    await s.sql("SET GLOBAL max_connections = 10");
    // The CLI's own two connections come on top of those held (the probe's own is gone then).
    while ((await used()) - 1 < 10 - 2 - n) held.push(await connect("mariadb", s.params));
    return async () => {
      for (const c of held) await c.close();
      await s.sql(`SET GLOBAL max_connections = ${before}`);
    };
  },
  decompress: gunzip,
};

const ROWS = [POSTGRES, MARIADB];

async function assertSame(
  row: JobsRow,
  a: PgServer | MyServer,
  b: PgServer | MyServer,
  db: string,
  what: string,
) {
  for (const [label, read] of row.compare) {
    assertEquals(await read(b, db), await read(a, DB), `${what}: ${label}`);
  }
}

/** The backup of DB named in a `backup` run's summary. */
function dumpOf(r: CliResult): string {
  const m = new RegExp(`^ok +${INSTANCE}/${DB} .* (/\\S+)$`, "m").exec(r.stdout);
  assert(m, `backup of ${DB} listed in:\n${r.stdout}`);
  return m[1];
}

/** Starts the CLI without waiting for it. */
function spawnCli(env: TestEnv, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: cliArgs(env.configPath, args),
    cwd: REPO_ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** The restore folders in the temporary folder whose owner file names `pid`. */
function ownedBy(pid: number): string[] {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  return spoolFolders().filter((n) => {
    try {
      return Deno.readTextFileSync(`${tmp}/${n}/owner`).trim() === String(pid);
    } catch {
      return false;
    }
  });
}

/** The spool folders of parallel restores in the temporary folder. */
function spoolFolders(): string[] {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  return [...Deno.readDirSync(tmp)].map((e) => e.name).filter((n) => n.startsWith("vya-restore-"))
    .sort();
}

async function until(p: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await p().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

for (const row of ROWS) {
  Deno.test(`restore --jobs: ${row.name} drill, failure, kill and connection limit`, async (t) => {
    const a = await row.start();
    let b: PgServer | MyServer | undefined;
    let env: TestEnv | undefined;
    try {
      await row.fixture(a);
      env = await makeTestEnv([{ id: INSTANCE, server: a }]);
      const backup = await env.run(["backup", "--all"]);
      assertEquals(backup.code, 0, backup.stderr + backup.stdout);
      const dump = dumpOf(backup);
      b = await row.start();
      await env.retarget(INSTANCE, b);
      const users = await env.run(["users", "restore", "--instance", INSTANCE, "--all"]);
      assertEquals(users.code, 0, users.stderr + users.stdout);
      const restore = (...more: string[]) =>
        env!.run(["restore", "--instance", INSTANCE, "--database", DB, "--latest", ...more]);

      await t.step("the drill with --jobs 4, then --jobs 1, equals the original", async () => {
        const plan = await restore("--jobs", "4", "--dry-run");
        assertEquals(plan.code, 0, plan.stderr);
        assertStringIncludes(plan.stdout, "over 4 sessions");
        const r4 = await restore("--jobs", "4");
        assertEquals(r4.code, 0, r4.stderr + r4.stdout);
        assert(!/using \d+ session/.test(r4.stderr), r4.stderr);
        await assertSame(row, a, b!, DB, "--jobs 4");
        const r1 = await restore("--jobs", "1", "--force");
        assertEquals(r1.code, 0, r1.stderr + r1.stdout);
        await assertSame(row, a, b!, DB, "--jobs 1");
      });

      await t.step(
        "a failing statement stops the load, names the line, drops the target",
        async () => {
          const spoolsBefore = spoolFolders();
          const text = await row.decompress(dump);
          const m = row.breakLine.exec(text);
          assert(m, `${row.breakLine} in the dump`);
          const line = text.slice(0, m.index).split("\n").length;
          const file = `${env!.dir}/broken.sql`;
          await Deno.writeTextFile(file, text.replace(m[0], row.broken(m[0])));
          const r = await env!.run([
            "restore",
            "--instance",
            INSTANCE,
            "--file",
            file,
            "--target",
            "broken",
            "--jobs",
            "4",
          ]);
          assertEquals(r.code, 1, r.stderr + r.stdout);
          assertStringIncludes(r.stderr, `statement at line ${line} of the dump`);
          assertMatch(r.stderr, row.serverMessage);
          assert(!await row.exists(b!, "broken"), "the created target is dropped");
          // (Folders of dead runs from before may be swept meanwhile: only new ones count.)
          assertEquals(
            spoolFolders().filter((n) => !spoolsBefore.includes(n)),
            [],
            "the spool folder is removed",
          );
        },
      );

      await t.step("killed with SIGKILL part-way: nothing, or marked and replaced", async () => {
        const points: [string, () => Promise<boolean>][] = [
          ["created", () => row.exists(b!, "killme")],
          ["loading data", () => row.loading(b!, "killme", "data")],
          ["after 1.5 s", () => new Promise((r) => setTimeout(() => r(true), 1500))],
        ];
        for (const [label, point] of points) {
          const child = spawnCli(env!, [
            "restore",
            "--instance",
            INSTANCE,
            "--database",
            DB,
            "--latest",
            "--target",
            "killme",
            "--jobs",
            "4",
          ]);
          const reached = await until(point, 60_000);
          child.kill("SIGKILL");
          await child.status;
          assert(reached, `${label}: reached`);
          // The killed run's private folders (the spool holds rows) are removed by the next.
          const left = ownedBy(child.pid);
          // The clients die with the run (pdeathsig); give the server a moment to see it.
          await until(async () => !(await row.loading(b!, "killme", "data")), 5000);
          // Left behind: marked (the next restore replaces it), or unmarked only when the load
          // had finished before the kill, and then equal to the source, or when the kill came
          // between CREATE DATABASE and its mark (README): then it holds nothing.
          let finished = false;
          if (
            await row.exists(b!, "killme") && !(await row.marked(b!, "killme")) &&
            !(await row.empty(b!, "killme"))
          ) {
            finished = true;
            for (const [l, read] of row.compare.filter(([l]) => l !== "database properties")) {
              assertEquals(await read(b!, "killme"), await read(a, DB), `${label}: unmarked ${l}`);
            }
          }
          const again = await restore(
            "--target",
            "killme",
            "--jobs",
            "4",
            ...(finished ? ["--force"] : []),
          );
          assertEquals(again.code, 0, `${label}: ${again.stderr}${again.stdout}`);
          assertEquals(spoolFolders().filter((n) => left.includes(n)), [], `${label}: swept`);
          for (const [l, read] of row.compare.filter(([l]) => l !== "database properties")) {
            assertEquals(await read(b!, "killme"), await read(a, DB), `${label}: ${l}`);
          }
          await b!.sql(`DROP DATABASE killme`);
        }
      });

      await t.step("fewer free connections than asked: fewer sessions, said", async () => {
        const undo = await row.limitConnections(b!, 2);
        try {
          if (row === POSTGRES) {
            await env!.retarget(INSTANCE, b!, { user: "loader", password: "loader-pw" });
          }
          const r = await restore(
            "--target",
            "narrow",
            "--jobs",
            "4",
            ...(row === POSTGRES ? ["--no-owner"] : []),
          );
          assertEquals(r.code, 0, r.stderr + r.stdout);
          assertMatch(
            r.stderr,
            /using 2 sessions: .*(max_connections|CONNECTION LIMIT) leaves 2 free/,
          );
          assertEquals(
            await row.compare.at(-1)![1](b!, "narrow"),
            await row.compare.at(-1)![1](a, DB),
          );
        } finally {
          await undo();
        }
      });
    } finally {
      await env?.cleanup();
      await a.stop();
      await b?.stop();
    }
  });
}
