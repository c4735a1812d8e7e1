/**
 * The shared engine suite: every method of the {@linkcode Engine} interface (lib/engines/types.ts)
 * and of the connection and restore target it opens, written once and run against every server
 * of the matrix (like restic's backend test suite). `VYA_TEST_MATRIX=minimal` (the default):
 * Debian's PostgreSQL 15 and MariaDB 10.11 (the shared servers); `full`: also PostgreSQL 16, 17,
 * 18 and MySQL 9 from scripts/setup-matrix.sh.
 *
 * What differs per server is data only (the row of {@linkcode ROWS}): the SQL that makes an
 * account, the properties a database is created with, what its client tools report. Every
 * assertion is the same for all.
 *
 * @module
 */
import { basename } from "node:path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertRejects,
  assertStringIncludes,
} from "./harness/assert.ts";
import { sharedMariadb, sharedPostgres, type TestServer } from "./harness/servers.ts";
import {
  matrixEntries,
  type MatrixEntry,
  matrixMode,
  requireMatrixInstalled,
} from "./harness/matrix.ts";
import {
  ConnectError,
  DIALECTS,
  type Engine,
  type EngineAdapter,
  engineFor,
  engineOf,
  selectDatabases,
} from "../lib/engines/mod.ts";
import type { DatabaseProperties } from "../lib/storage/metadata.ts";
import type { EngineType } from "../lib/config/types.ts";
import { runTool } from "../lib/process.ts";
import type { RestoreMarker } from "../lib/restore/marker.ts";
import type { TargetServer } from "../lib/restore/target.ts";
import { requireTools } from "../lib/tools/find.ts";
import { createLogger } from "../lib/log.ts";
import { USERS_FORMAT_VERSION, type UsersFile } from "../lib/users/format.ts";
import { restoreUsers } from "../lib/users/restore.ts";

const MODE = matrixMode();
if (MODE === "full") requireMatrixInstalled();

/** A name every engine must carry through untouched: quotes of both families, `;--`, non-ASCII. */
const HOSTILE = `vya "q" \`b\` 'x' ü;--`;

/** What differs between the servers: data, never assertions. */
interface Row {
  /** Configured engine type (as in the instance's `type`). */
  type: EngineType;
  /** The product the server reports. */
  flavor: "postgresql" | "mysql" | "mariadb";
  /** Properties a database is created with and must read back unchanged. */
  props: DatabaseProperties;
  /** What the found dump tool's `--version` says. */
  dumpVersion: RegExp;
  /** SQL (through the server's own client) making a login account with a password. */
  createAccount(name: string, password: string): string;
  /** SQL removing it. */
  dropAccount(name: string): string;
  /** How `users restore --user` names the account. */
  selector(name: string): string;
}

const PG: Omit<Row, "dumpVersion"> = {
  type: "postgresql",
  flavor: "postgresql",
  props: {
    owner: "postgres",
    encoding: "LATIN1",
    collate: "C",
    ctype: "C",
    connection_limit: 7,
    comment: "suite ü 'q' \\ b",
    grants: [],
    settings: [{ role: null, setting: "work_mem=8MB" }],
  },
  createAccount: (name, pw) =>
    `CREATE ROLE "${name.replaceAll('"', '""')}" LOGIN PASSWORD '${pw.replaceAll("'", "''")}'`,
  dropAccount: (name) => `DROP ROLE IF EXISTS "${name.replaceAll('"', '""')}"`,
  selector: (name) => name,
};

const MY_ACCOUNT = {
  createAccount: (name: string, pw: string) =>
    `CREATE USER '${name.replaceAll("'", "''")}'@'%' IDENTIFIED BY '${pw.replaceAll("'", "''")}'`,
  dropAccount: (name: string) => `DROP USER IF EXISTS '${name.replaceAll("'", "''")}'@'%'`,
  selector: (name: string) => `${name}@%`,
};

const ROWS: Record<string, Row> = {
  pg15: { ...PG, dumpVersion: /\(PostgreSQL\) 15\./ },
  pg16: { ...PG, dumpVersion: /\(PostgreSQL\) 1[6-9]\./ },
  pg17: { ...PG, dumpVersion: /\(PostgreSQL\) 1[7-9]\./ },
  pg18: { ...PG, dumpVersion: /\(PostgreSQL\) 1[89]\./ },
  mariadb: {
    type: "mariadb",
    flavor: "mariadb",
    props: {
      character_set: "latin1",
      collation: "latin1_german2_ci",
      comment: "suite ü 'q' \\ b",
    },
    dumpVersion: /MariaDB/,
    ...MY_ACCOUNT,
  },
  // Configured as mysql: the server says which product it is.
  mysql9: {
    type: "mysql",
    flavor: "mysql",
    props: { character_set: "latin1", collation: "latin1_german2_ci" },
    dumpVersion: /Ver 9\.(?!.*MariaDB)/,
    ...MY_ACCOUNT,
  },
};

/** The server of a matrix entry: the module's shared one for Debian's own, else a fresh one. */
async function serverOf(entry: MatrixEntry): Promise<{ server: TestServer; owned: boolean }> {
  if (entry.name === "pg15") return { server: await sharedPostgres(), owned: false };
  if (entry.name === "mariadb") return { server: await sharedMariadb(), owned: false };
  return { server: await entry.start(), owned: true };
}

async function withAdapter<T>(
  engine: Engine,
  server: TestServer,
  fn: (a: EngineAdapter) => Promise<T>,
): Promise<T> {
  const a = await engine.connect(server.params);
  try {
    return await fn(a);
  } finally {
    await a.close();
  }
}

async function withTarget<T>(
  engine: Engine,
  server: TestServer,
  major: number,
  fn: (t: TargetServer) => Promise<T>,
): Promise<T> {
  const t = await engine.openRestoreTarget(server.params, major);
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

/** A hostile-named database made by the engine from `props`, dropped after `fn`. */
async function withDatabase<T>(
  engine: Engine,
  server: TestServer,
  major: number,
  name: string,
  props: DatabaseProperties,
  fn: (t: TargetServer) => Promise<T>,
): Promise<T> {
  return await withTarget(engine, server, major, async (t) => {
    await t.drop(name, 10);
    await t.execute(t.createStatements(name, props, {}));
    try {
      return await fn(t);
    } finally {
      await t.drop(name, 10);
    }
  });
}

/** Loads SQL into `database` through the engine's client command. */
async function load(t: TargetServer, client: string, database: string, sql: string) {
  const { child, cleanup } = await t.clientCommand(client, database);
  try {
    const out = await runTool({ ...child, input: sql });
    assertEquals(out.code, 0, out.stderr);
  } finally {
    await cleanup();
  }
}

/** A table with a hostile name and rows, quoted by the engine. */
function tableSql(engine: Engine, table: string): string {
  const q = engine.quoteIdent(table);
  const col = engine.quoteIdent(`c "${table}"`);
  return `CREATE TABLE ${q} (id int PRIMARY KEY, ${col} varchar(40));\n` +
    `INSERT INTO ${q} VALUES (1, 'one'), (2, 'two ü');\n`;
}

for (const entry of matrixEntries(MODE)) {
  const row = ROWS[entry.name];
  Deno.test({
    name: `engine suite ${entry.name}: every method of the Engine interface`,
    // mysql2 keeps a socket timer past close on failed handshakes.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      assert(row, `no suite row for matrix entry ${entry.name}`);
      const { server, owned } = await serverOf(entry);
      const tools = { dir: server.bin, paths: {} };
      // The engine is chosen once, from what the server says (configured type only connects).
      const version = await withAdapter(engineOf(row.type), server, (a) => a.serverVersion());
      const engine = engineFor(version);
      const suffix = `${entry.name} ${crypto.randomUUID().slice(0, 6)}`;
      try {
        await t.step("connect and version: the product and major the server reports", async () => {
          assertEquals([version.flavor, version.major], [row.flavor, entry.major]);
          assertMatch(version.full, new RegExp(`^(5\\.5\\.5-)?${entry.major}\\.`));
          assertEquals([engine.flavor, engine.family], [
            row.flavor,
            row.flavor === "postgresql" ? "postgresql" : "mysql",
          ]);
          assert(engine.matchesConfigured(row.type));
          assertEquals(engineOf(row.type).family, engine.family);
          await withAdapter(engine, server, async (a) => {
            assertEquals(a.engine, row.flavor);
            assertEquals((await a.serverVersion()).full, version.full);
          });
        });

        await t.step("connect: a wrong password is an auth error that never shows it", async () => {
          const password = `wrong-${crypto.randomUUID()}`;
          const e = await assertRejects(
            () => engine.connect({ ...server.params, password }),
            ConnectError,
          );
          assertEquals(e.reason, "auth");
          assertNotMatch(e.message, new RegExp(password));
          assertStringIncludes(e.message, `${server.params.user}`);
        });

        await t.step(
          "databases: listed with sizes and sorted; system databases never selected",
          async () => {
            const name = `${HOSTILE} list ${suffix}`;
            await withDatabase(engine, server, version.major, name, {}, async (target) => {
              const client = requireTools(await engine.findTools(version.major, tools)).client!;
              await load(target, client, name, tableSql(engine, "sized"));
              await withAdapter(engine, server, async (a) => {
                const all = await a.listDatabases();
                const names = all.map((d) => d.name);
                assertEquals(names, [...names].sort((x, y) => x < y ? -1 : x > y ? 1 : 0));
                const mine = all.find((d) => d.name === name);
                assert(mine, `${name} not listed: ${names.join(", ")}`);
                assert(mine.sizeBytes > 0, `size of ${name}: ${mine.sizeBytes}`);
                // Sized on request only: the same list, the named (hostile) database sized.
                const some = await a.listDatabases({ sizeOf: [name] });
                assertEquals(some.map((d) => d.name), names);
                for (const d of some) {
                  if (d.name === name) assertEquals(d.sizeBytes, mine.sizeBytes, "sized");
                  else assertEquals(d.sizeBytes, 0, `${d.name} sized unasked`);
                }
                const none = await a.listDatabases({ sizeOf: [] });
                assertEquals(none.map((d) => [d.name, d.sizeBytes]), names.map((n) => [n, 0]));
                const present = engine.systemDatabases.filter((s) => names.includes(s));
                assert(present.length > 0, "no system database listed");
                for (const s of engine.systemDatabases) assert(engine.isSystemDatabase(s), s);
                assert(!engine.isSystemDatabase(name));
                const chosen = selectDatabases(engine, all, ["*", ...present], []).map((d) =>
                  d.name
                );
                assert(chosen.includes(name));
                for (const s of present) assert(!chosen.includes(s), `${s} selected`);
                assertEquals(
                  selectDatabases(row.type, all, ["*"], []).map((d) => d.name),
                  chosen,
                );
                assertEquals(await a.objectCounts(name).then((c) => c.tables), 1);
                // Row counts for verify: exact for a small table, keyed by its (schema.)name.
                const rows = Object.entries(await a.tableRows(name));
                assertEquals(rows.map(([k, r]) => [k.split(".").pop(), r]), [
                  ["sized", { rows: 2, exact: true }],
                ]);
              });
            });
          },
        );

        await t.step("tool discovery: the server's own product's tools, new enough", async () => {
          const set = await engine.findTools(version.major, tools);
          assertEquals(set.problems, []);
          const paths = requireTools(set);
          assert(paths.dump && paths.client, JSON.stringify(paths));
          assertMatch(set.tools.dump!.version!, row.dumpVersion);
          assert(set.tools.dump!.reason, "no reason given");
          if (set.tools.dump!.major !== undefined) assert(set.tools.dump!.major >= version.major);
          const missing = await engine.findTools(version.major, {
            dir: "/nonexistent",
            paths: { [basename(paths.dump)]: "/nonexistent/tool" },
          });
          assert(missing.problems.length > 0, "a missing explicit tool went unreported");
          assertStringIncludes(missing.problems.join("; "), "/nonexistent/tool");
        });

        await t.step("dump: the command writes the database and ends with the marker", async () => {
          const name = `${HOSTILE} dump ${suffix}`;
          await withDatabase(engine, server, version.major, name, {}, async (target) => {
            const paths = requireTools(await engine.findTools(version.major, tools));
            await load(target, paths.client!, name, tableSql(engine, `t ${HOSTILE}`));
            const cmd = await engine.dumpCommand(
              { name: basename(paths.dump!), path: paths.dump! },
              server.params,
              name,
            );
            try {
              assert(!cmd.child.args.some((x) => x.includes(server.password)), "password in argv");
              const out = await runTool(cmd.child);
              assertEquals(out.code, 0, out.stderr);
              assertEquals(cmd.completionMarker, engine.completionMarker);
              assertStringIncludes(out.stdout.slice(-500), engine.completionMarker);
              // The restore tells the file's family from its banner: only its own dialect's.
              const lines = out.stdout.split("\n", 20);
              for (const dialect of DIALECTS) {
                const banners = lines.filter((l) => dialect.isBanner(l)).length;
                assertEquals(banners, dialect === engine.dialect ? 1 : 0, dialect.label);
              }
              assertStringIncludes(out.stdout.slice(-500), engine.dialect.completionMarker);
              assertStringIncludes(out.stdout, "two ü");
              assertEquals(cmd.tool, basename(paths.dump!));
            } finally {
              await cmd.cleanup();
            }
          });
        });

        await t.step(
          "target: name rules, lock, create with properties, mark, load, drop",
          async () => {
            const name = `${HOSTILE} target ${suffix}`;
            await withTarget(engine, server, version.major, async (target) => {
              assertEquals(target.nameProblem(name), undefined);
              assert(target.nameProblem("n".repeat(65)), "an over-long name was accepted");
              assert(await target.lockTarget(name), "lock not taken");
              await withTarget(engine, server, version.major, async (other) => {
                assertEquals(await other.lockTarget(name), false);
              });
              await target.drop(name, 10);
              await target.execute(target.createStatements(name, row.props, {}));
              try {
                await withAdapter(engine, server, async (a) => {
                  const got = await a.databaseProperties(name);
                  for (const key of Object.keys(row.props) as (keyof DatabaseProperties)[]) {
                    // Where the mark is the comment (PostgreSQL), the comment comes with the
                    // unmark below.
                    if (key === "comment" && engine.family === "postgresql") continue;
                    assertEquals(got[key], row.props[key], `property ${key}`);
                  }
                  // Only a transactional target needs the comment back (to restore it on rollback).
                  const comment = await target.comment(name);
                  assert(comment === undefined || comment === row.props.comment, String(comment));
                  assertEquals(await target.readMarker(name), undefined);
                  assertEquals(await a.restoreMark(name), undefined);
                  const marker: RestoreMarker = {
                    run: `suite-${suffix}`,
                    started_at: new Date().toISOString(),
                    // Restore passes only safe characters here (see markStatements).
                    file: "20261202_020000_suite.sql.zst",
                    created: true,
                  };
                  await target.execute(target.markStatements(name, marker));
                  assertEquals(await target.readMarker(name), marker);
                  assert(await a.restoreMark(name), "the mark is not seen by the adapter");
                  await target.execute(
                    target.unmarkStatements(name, row.props.comment ?? undefined),
                  );
                  assertEquals(await target.readMarker(name), undefined);
                  assertEquals(await a.restoreMark(name), undefined);
                  assertEquals(
                    (await a.databaseProperties(name)).comment ?? null,
                    row.props.comment ?? null,
                  );

                  const client = requireTools(await engine.findTools(version.major, tools)).client!;
                  await load(target, client, name, tableSql(engine, `t ${HOSTILE}`));
                  assertEquals((await a.objectCounts(name)).tables, 1);
                  assertEquals(await target.sessionsUsing(name), 0);
                  assertEquals(await target.busy(name), false);
                  assertEquals(await target.missingRoles([server.params.user]), []);
                  assertMatch(target.dropEffect(0, 5), /^no session/);
                  assertStringIncludes(target.dropEffect(3, 5), "3 session(s)");
                });
              } finally {
                await target.drop(name, 10);
              }
              await withAdapter(engine, server, async (a) => {
                assert(!(await a.listDatabases()).some((d) => d.name === name), "not dropped");
              });
            });
          },
        );

        await t.step("properties: the roles they name, and a dump filter target", () => {
          const roles = engine.propertyRoles(row.props, false);
          assertEquals(roles.length > 0, engine.ownership);
          assertEquals(engine.propertyRoles(row.props, true).includes("postgres"), false);
          const major = engine.filterTargetMajor(version.major);
          assert(major === undefined || major === version.major);
        });

        await t.step("users: collect an account, drop it, restore it, log in with it", async () => {
          const name = `vya "u" ü ${crypto.randomUUID().slice(0, 8)}`;
          const password = `pw ü '"; ${crypto.randomUUID().slice(0, 8)}`;
          await server.sql(row.createAccount(name, password));
          try {
            const got = await engine.collectUsers({
              params: server.params,
              serverMajor: version.major,
              tools,
              exclude: [],
            });
            const section = got.sections.find((s) => s.account.name === name);
            assert(section, `${name} not collected`);
            assert(got.summaries.some((s) => s.name === name && s.has_password));
            assertEquals(section.account.host !== undefined, engine.accountsHaveHosts);
            assert(!engine.isPseudoAccount(section.account));
            assert((await engine.listAccounts(server.params, [])).includes(row.selector(name)));
            const without = await engine.collectUsers({
              params: server.params,
              serverMajor: version.major,
              tools,
              exclude: [name],
            });
            assert(!without.sections.some((s) => s.account.name === name), "users.exclude ignored");
            const file: UsersFile = {
              header: {
                format: USERS_FORMAT_VERSION,
                engine: version.flavor,
                server_version: version.full,
                instance: "suite",
                taken_at: new Date().toISOString(),
              },
              preamble: got.preamble,
              sections: got.sections,
            };
            await server.sql(row.dropAccount(name));
            const target = await engine.openUsersTarget(server.params);
            try {
              assertEquals(target.engine, row.flavor);
              assertEquals((await target.current()).name, server.params.user);
              assertEquals(await target.exists(section.account), false);
            } finally {
              await target.close();
            }
            const log = createLogger({ sink: () => {} });
            const restore = (existing?: "skip") =>
              restoreUsers({
                file,
                type: row.type,
                params: server.params,
                select: { user: row.selector(name) },
                existing,
                log,
              });
            const first = await restore();
            assertEquals(first.accounts.map((a) => a.status), ["created"]);
            const mine = await engine.connect({ ...server.params, user: name, password });
            await mine.close();
            // Restored as the backup has it: a re-run compares equal and leaves it.
            const again = await restore("skip");
            assertEquals(again.accounts.map((a) => a.status), ["skipped"], JSON.stringify(again));
          } finally {
            await server.sql(row.dropAccount(name));
          }
        });

        await t.step("quoting: identifiers with either family's quotes survive", () => {
          for (const name of [HOSTILE, "`", '"', "a``b", 'a""b']) {
            const q = engine.quoteIdent(name);
            const open = q[0];
            assertEquals(q.at(-1), open);
            assertEquals(q.slice(1, -1).replaceAll(open + open, open), name);
          }
        });
      } finally {
        if (owned) await server.stop();
      }
    },
  });
}
