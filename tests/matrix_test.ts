/**
 * Server-version matrix: for every server of the matrix (`VYA_TEST_MATRIX=minimal`, the default:
 * Debian's PostgreSQL 15 and MariaDB 10.11; `full`: also PostgreSQL 16/17/18 and MySQL 9 from
 * scripts/setup-matrix.sh), through the CLI a sysadmin uses:
 *
 * - `check` names the client tool it chose and why: the OLDEST PostgreSQL client at least as
 *   new as the server (client 17 for a PostgreSQL 16 server: Debian has no client 16), MySQL's
 *   own mysqldump for MySQL, mariadb-dump for MariaDB;
 * - `backup` then `restore --latest --target <copy>`: the copy has the same rows and schema;
 * - the empty-server drill: `users backup`, a fresh server of the same version,
 *   `users restore --all`, `restore --file`, and the account logs in with its original
 *   password (on MySQL 9 a caching_sha2_password account, its hash carried as hex);
 * - (full) a PostgreSQL 18 server whose only reachable clients are older: `check` says what to
 *   install (exit 2, like any instance that cannot be backed up) and `backup` refuses it;
 * - (full) a MySQL 9 server on a machine with only MariaDB's tools (Debian 12's default, where
 *   /usr/bin/mysqldump is mariadb-dump): `check` says it falls back to them, and the backup
 *   restores.
 *
 * The matrix clients are not installed under /usr/lib/postgresql: the CLI finds them on PATH,
 * the way a package installed elsewhere would be found, and the machine's own PostgreSQL stays
 * the only one Debian's wrappers know.
 */
import { run } from "./harness/process.ts";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import mysql from "mysql2/promise";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import {
  MATRIX_PREFIX,
  matrixEntries,
  type MatrixEntry,
  matrixMode,
  type MatrixServer,
  mysqlClientBin,
  pgClientBin,
  pgClientFor,
  requireMatrixInstalled,
} from "./harness/matrix.ts";
import { makeTestEnv, type TestEnv, type TestInstance } from "./helpers/cli.ts";
import { instanceDir, parseStem } from "../lib/storage/layout.ts";
import { latestUsersBackup } from "../lib/users/store.ts";

const MODE = matrixMode();
if (MODE === "full") requireMatrixInstalled();

/** PATH for the CLI: the matrix clients where a sysadmin would have put them. */
const CLI_PATH = MODE === "full"
  ? [
    `${MATRIX_PREFIX}/pg17/client/bin`,
    `${MATRIX_PREFIX}/pg18/client/bin`,
    mysqlClientBin(),
    Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
  ].join(":")
  : Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin";

const APP_DB = "mx_app";
const USER = "mx_user";
const USER_PASSWORD = "Orig-pw-1 é";
const decoder = new TextDecoder();

/** Runs a client tool with the harness's runner (secrets in `env`, SQL on stdin). */
const tool = (cmd: string, args: string[], env: Record<string, string>, stdin?: string) =>
  run([cmd, ...args], { env, stdin });

// ---------------------------------------------------------------------------------------------
// Fixture: the same application database on every engine

function pgFixture(): string {
  return `
CREATE ROLE mx_readers NOLOGIN;
CREATE ROLE ${USER} LOGIN PASSWORD '${USER_PASSWORD}' IN ROLE mx_readers;
CREATE TABLE customers (
  id serial PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE,
  created timestamptz DEFAULT '2024-01-02 03:04:05+00'
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id int REFERENCES customers(id),
  total numeric(12,2) CHECK (total >= 0),
  note text,
  payload jsonb,
  raw bytea
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT id, customer_id, total FROM orders WHERE total > 100;
CREATE FUNCTION order_count(c int) RETURNS bigint LANGUAGE sql
  AS $$ SELECT count(*) FROM orders WHERE customer_id = c $$;
CREATE TABLE user_notes (id int PRIMARY KEY, body text);
ALTER TABLE user_notes OWNER TO ${USER};
COMMENT ON TABLE orders IS 'orders ü 😀';
INSERT INTO customers (name, email)
  SELECT 'name ' || i || ' ü 😀', 'c' || i || '@example.org' FROM generate_series(1, 50) i;
INSERT INTO orders (customer_id, total, note, payload, raw)
  SELECT 1 + i % 50, i * 1.25, CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END,
         jsonb_build_object('i', i, 's', 'ü'), decode(lpad(to_hex(i * 7919), 8, '0'), 'hex')
  FROM generate_series(1, 500) i;
INSERT INTO user_notes VALUES (1, 'mine');
GRANT SELECT ON customers, orders, big_orders TO mx_readers;
`;
}

function myFixture(flavor: "mysql" | "mariadb"): string {
  const customers = Array.from(
    { length: 50 },
    (_, i) => `('name ${i + 1} ü 😀', 'c${i + 1}@example.org')`,
  ).join(",");
  const orders = Array.from({ length: 500 }, (_, k) => {
    const i = k + 1;
    const note = i % 7 === 0 ? "NULL" : `'n${i}'`;
    const raw = (i * 7919).toString(16).padStart(8, "0");
    return `(${1 + (i % 50)}, ${
      (i * 1.25).toFixed(2)
    }, ${note}, JSON_OBJECT('i', ${i}, 's', 'ü'), X'${raw}')`;
  }).join(",");
  // MySQL 9 defaults to caching_sha2_password; saying so keeps the test honest if that changes.
  const identified = flavor === "mysql"
    ? `IDENTIFIED WITH caching_sha2_password BY '${USER_PASSWORD}'`
    : `IDENTIFIED BY '${USER_PASSWORD}'`;
  return `
CREATE DATABASE ${APP_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE ${APP_DB};
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(100) UNIQUE,
  created DATETIME DEFAULT '2024-01-02 03:04:05'
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT,
  total DECIMAL(12,2),
  note TEXT,
  payload JSON,
  raw VARBINARY(16),
  KEY orders_customer (customer_id),
  CONSTRAINT orders_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB COMMENT='orders ü 😀';
CREATE VIEW big_orders AS SELECT id, customer_id, total FROM orders WHERE total > 100;
CREATE PROCEDURE order_count(IN c INT) SELECT COUNT(*) FROM orders WHERE customer_id = c;
CREATE TRIGGER orders_note BEFORE INSERT ON orders FOR EACH ROW
  SET NEW.note = COALESCE(NEW.note, 'none');
INSERT INTO customers (name, email) VALUES ${customers};
INSERT INTO orders (customer_id, total, note, payload, raw) VALUES ${orders};
CREATE USER '${USER}'@'%' ${identified};
GRANT SELECT, EXECUTE ON ${APP_DB}.* TO '${USER}'@'%';
`;
}

async function createFixture(entry: MatrixEntry, server: MatrixServer): Promise<void> {
  if (entry.engine === "postgresql") {
    await server.sql(`CREATE DATABASE ${APP_DB}`);
    await server.sql(pgFixture(), { database: APP_DB });
    await server.sql(`GRANT CONNECT ON DATABASE ${APP_DB} TO mx_readers`);
  } else {
    await server.sql(myFixture(entry.engine === "mysql" ? "mysql" : "mariadb"));
  }
}

// ---------------------------------------------------------------------------------------------
// What a user compares: rows and schema

const TABLES = ["customers", "orders"];

async function rows(server: MatrixServer, db: string): Promise<string> {
  const out: string[] = [];
  for (const t of [...TABLES, "big_orders"]) {
    out.push(await server.sql(`SELECT * FROM ${t} ORDER BY id`, { database: db }));
  }
  return out.join("\n---\n");
}

/** The schema as the server's own dump tool prints it, with the database name neutralised. */
async function schema(entry: MatrixEntry, server: MatrixServer, db: string): Promise<string> {
  let result;
  if (entry.engine === "postgresql") {
    result = await tool(`${server.bin}/pg_dump`, [
      "-h",
      "127.0.0.1",
      "-p",
      String(server.port),
      "-U",
      server.user,
      "--schema-only",
      db,
    ], server.clientEnv);
  } else {
    const mysqlOnly = entry.engine === "mysql" ? ["--set-gtid-purged=OFF", "--no-tablespaces"] : [];
    result = await tool(
      `${server.bin}/${entry.engine === "mysql" ? "mysqldump" : "mariadb-dump"}`,
      [
        "--no-defaults",
        "--protocol=TCP",
        "-h",
        "127.0.0.1",
        "-P",
        String(server.port),
        "-u",
        server.user,
        "--no-data",
        "--routines",
        "--triggers",
        "--skip-comments",
        ...mysqlOnly,
        db,
      ],
      server.clientEnv,
    );
  }
  assertEquals(result.code, 0, result.stderr);
  return result.stdout
    .split("\n")
    // Random per-run keys of recent pg_dump builds.
    .filter((l) => !/^\\(un)?restrict /.test(l))
    // MySQL 8+ prints a column's explicit COLLATE back as `CHARACTER SET x COLLATE y` once the
    // table has been recreated from SHOW CREATE TABLE (any tool, same charset and collation in
    // information_schema): the same schema.
    .map((l) => l.replace(/ CHARACTER SET \w+ COLLATE /, " COLLATE "))
    .join("\n")
    .replaceAll(db, "<db>");
}

/** Finds the database backup the CLI just wrote. */
async function latestDbBackup(env: TestEnv, instance: string, db: string): Promise<string> {
  const found: { path: string; at: number }[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      const parsed = parseStem(e.name);
      if (e.isFile && parsed?.name === db && /\.sql(\.gz|\.zst)?$/.test(e.name)) {
        found.push({ path: p, at: parsed.at.getTime() });
      }
    }
  };
  await walk(instanceDir(env.storage, Deno.hostname(), instance));
  assert(found.length > 0, `no backup of ${db} in ${env.storage}`);
  return found.sort((a, b) => b.at - a.at)[0].path;
}

/** Logs in as the restored account with its original password and reads a table. */
async function loginAsUser(entry: MatrixEntry, server: MatrixServer): Promise<string> {
  const r = entry.engine === "postgresql"
    ? await tool(`${server.bin}/psql`, [
      "-X",
      "-A",
      "-t",
      "-h",
      "127.0.0.1",
      "-p",
      String(server.port),
      "-U",
      USER,
      "-d",
      APP_DB,
      "-c",
      "SELECT count(*) FROM orders",
    ], { PGPASSWORD: USER_PASSWORD })
    : await tool(`${server.bin}/${entry.engine === "mysql" ? "mysql" : "mariadb"}`, [
      "--no-defaults",
      "--protocol=TCP",
      "-h",
      "127.0.0.1",
      "-P",
      String(server.port),
      "-u",
      USER,
      "--batch",
      "--skip-column-names",
      "-e",
      `SELECT COUNT(*) FROM ${APP_DB}.orders`,
    ], { MYSQL_PWD: USER_PASSWORD });
  assertEquals(r.code, 0, `${USER} cannot log in with the original password: ${r.stderr}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------------------------
// Expected tool choice per server

function expectedDump(entry: MatrixEntry): { path: string; version: RegExp; reason: RegExp } {
  if (entry.engine === "postgresql") {
    const client = pgClientFor(entry.major);
    return {
      path: `${client.bin}/pg_dump`,
      version: new RegExp(`pg_dump \\(PostgreSQL\\) ${client.major}\\.`),
      reason: new RegExp(`oldest PostgreSQL pg_dump >= server ${entry.major}`),
    };
  }
  if (entry.engine === "mysql") {
    return {
      path: `${mysqlClientBin()}/mysqldump`,
      version: /mysqldump +Ver 9\./,
      reason: /mysqldump found in PATH/,
    };
  }
  return { path: "/usr/bin/mariadb-dump", version: /MariaDB/, reason: /mariadb-dump found in/ };
}

// ---------------------------------------------------------------------------------------------

for (const entry of matrixEntries(MODE)) {
  Deno.test({
    name: `matrix ${entry.name}: check, backup/restore round trip, empty-server users drill`,
    // mysql2 keeps a socket timer past close on failed handshakes.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const [a, b] = await Promise.all([entry.start(), entry.start()]);
      let env: TestEnv | undefined;
      try {
        await createFixture(entry, a);
        const instances: TestInstance[] = [
          { id: "a", server: a },
          { id: "b", server: b },
        ];
        if (entry.engine === "postgresql" && entry.major === 18) {
          // Only older clients reachable: tools.dir holds client 17, PATH only Debian's 15.
          instances.push({
            id: "a-old",
            server: a,
            extra: { tools: { dir: pgClientBin(17) } },
          });
        }
        env = await makeTestEnv(instances);
        const cli = (args: string[]) => env!.run(args, { env: { PATH: CLI_PATH } });

        await t.step("check names the client it chose and why", async () => {
          const r = await cli(["check", "--instance", "a"]);
          assertEquals(r.code, 0, r.stdout + r.stderr);
          const flavor = entry.engine === "postgresql" ? "postgresql" : entry.engine;
          assertMatch(r.stdout, new RegExp(`server: ${flavor} ${entry.major}\\.`));
          const want = expectedDump(entry);
          const line = r.stdout.split("\n").find((l) => l.trim().startsWith("dump:")) ?? "";
          assertStringIncludes(line, `dump: ${want.path} (`);
          assertMatch(line, want.version);
          assertMatch(line, want.reason);
          console.log(`      ${entry.name} ${line.trim()}`);
        });

        await t.step(
          "backup, then restore --latest into a copy: same rows, same schema",
          async () => {
            let r = await cli(["backup", "--instance", "a"]);
            assertEquals(r.code, 0, r.stdout + r.stderr);
            const meta = JSON.parse(
              await Deno.readTextFile(
                (await latestDbBackup(env!, "a", APP_DB)).replace(
                  /\.sql(\.gz)?$/,
                  ".metadata.json",
                ),
              ),
            );
            assertEquals(meta.status, "ok");
            assertEquals(meta.dump.path, expectedDump(entry).path);
            r = await cli([
              "restore",
              "--instance",
              "a",
              "--database",
              APP_DB,
              "--latest",
              "--target",
              `${APP_DB}_copy`,
            ]);
            assertEquals(r.code, 0, r.stdout + r.stderr);
            assertEquals(await rows(a, `${APP_DB}_copy`), await rows(a, APP_DB));
            const orig = await schema(entry, a, APP_DB);
            assertEquals(await schema(entry, a, `${APP_DB}_copy`), orig);
            assertStringIncludes(orig, "big_orders");
            assertStringIncludes(orig, "order_count");
          },
        );

        await t.step(
          "empty server: users restore --all, restore --file, original passwords",
          async () => {
            let r = await cli(["users", "backup", "--instance", "a"]);
            assertEquals(r.code, 0, r.stdout + r.stderr);
            const usersFile = await latestUsersBackup(env!.storage, Deno.hostname(), "a");
            assert(usersFile, "users backup written");
            const usersSql = decoder.decode(gunzipSync(await Deno.readFile(usersFile)));
            if (entry.engine === "mysql") {
              // print_identified_with_as_hex: the binary caching_sha2 hash as a hex literal.
              assertMatch(
                usersSql,
                new RegExp(
                  `CREATE USER .${USER}.@.%. IDENTIFIED WITH .caching_sha2_password. AS 0x[0-9A-F]{100,}`,
                ),
              );
            }
            const dbFile = await latestDbBackup(env!, "a", APP_DB);

            r = await cli(["users", "restore", "--instance", "b", "--all", "--file", usersFile]);
            assertEquals(r.code, 0, r.stdout + r.stderr);
            r = await cli(["restore", "--instance", "b", "--file", dbFile, "--target", APP_DB]);
            assertEquals(r.code, 0, r.stdout + r.stderr);

            assertEquals(await rows(b, APP_DB), await rows(a, APP_DB));
            assertEquals(await schema(entry, b, APP_DB), await schema(entry, a, APP_DB));
            assertEquals(await loginAsUser(entry, b), "500");
            // The same file over four sessions: the same database, ownership and grants.
            const j4 = `${APP_DB}_j4`;
            r = await cli([
              "restore",
              "--instance",
              "b",
              "--file",
              dbFile,
              "--target",
              j4,
              "--jobs",
              "4",
            ]);
            assertEquals(r.code, 0, r.stdout + r.stderr);
            assertEquals(await rows(b, j4), await rows(a, APP_DB));
            assertEquals(await schema(entry, b, j4), await schema(entry, a, APP_DB));
            if (entry.engine === "postgresql") {
              for (const db of [APP_DB, j4]) {
                assertEquals(
                  await b.sql(`SELECT tableowner FROM pg_tables WHERE tablename = 'user_notes'`, {
                    database: db,
                  }),
                  USER,
                );
              }
            } else {
              assertEquals(
                await b.sql(`SELECT plugin FROM mysql.user WHERE user = '${USER}'`),
                entry.engine === "mysql" ? "caching_sha2_password" : "mysql_native_password",
              );
              // The application's driver too (mysql2: caching_sha2 full authentication).
              const conn = await mysql.createConnection({
                host: "127.0.0.1",
                port: b.port,
                user: USER,
                password: USER_PASSWORD,
                database: APP_DB,
              });
              try {
                const [res] = await conn.query<mysql.RowDataPacket[]>(
                  "SELECT COUNT(*) AS n FROM customers",
                );
                assertEquals(Number(res[0].n), 50);
              } finally {
                await conn.end();
              }
            }
          },
        );

        if (entry.engine === "mysql") {
          await t.step(
            "only MariaDB's tools (Debian 12's default): fallback, still restores",
            async () => {
              // Debian 12 has no MySQL client: /usr/bin/mysqldump is MariaDB's mariadb-dump.
              const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
              const run = (args: string[]) => env!.run(args, { env: { PATH: path } });
              let r = await run(["check", "--instance", "a"]);
              assertEquals(r.code, 0, r.stdout + r.stderr);
              assertMatch(
                r.stdout,
                /dump: \S+\/mysqldump \(.*MariaDB.*a MariaDB build; no MySQL mysqldump found\)/,
              );
              r = await run(["backup", "--instance", "a"]);
              assertEquals(r.code, 0, r.stdout + r.stderr);
              r = await run([
                "restore",
                "--instance",
                "a",
                "--database",
                APP_DB,
                "--latest",
                "--target",
                `${APP_DB}_maria`,
              ]);
              assertEquals(r.code, 0, r.stdout + r.stderr);
              assertEquals(await rows(a, `${APP_DB}_maria`), await rows(a, APP_DB));
              assertEquals(
                await schema(entry, a, `${APP_DB}_maria`),
                await schema(entry, a, APP_DB),
              );
            },
          );
        }

        if (instances.some((i) => i.id === "a-old")) {
          await t.step("a server newer than every client: check says what to install", async () => {
            const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
            const r = await env!.run(["check", "--instance", "a-old"], { env: { PATH: path } });
            assertMatch(r.stdout, /dump: NOT FOUND/);
            assertMatch(r.stdout, /no pg_dump for PostgreSQL 18 or newer: found only pg_dump 17/);
            assertStringIncludes(r.stdout, "Install the PostgreSQL 18 client");
            assertStringIncludes(r.stdout, "postgresql-client-18");
            // A client tool to install is a configuration problem: exit 3.
            assertEquals(r.code, 3, r.stdout + r.stderr);
            const backup = await env!.run(["backup", "--instance", "a-old"], {
              env: { PATH: path },
            });
            // Nothing could be dumped, for want of a tool: exit 3 too.
            assertEquals(backup.code, 3, backup.stdout + backup.stderr);
            assertStringIncludes(backup.stderr, "postgresql-client-18");
          });
        }
      } finally {
        await env?.cleanup();
        await Promise.all([a.stop(), b.stop()]);
      }
    },
  });
}
