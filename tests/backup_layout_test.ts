/**
 * Database names that try to escape their folder or confuse a shell — quotes, backticks,
 * spaces, unicode, `/`, `..`, `.hidden`, a leading dash, `%` — are backed up by the CLI, each
 * into its own folder strictly inside `{storage}/{host}/{instance}/`, and every folder name
 * decodes back to the exact database name.
 */
import { basename, dirname, join, relative } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { makeTestEnv } from "./helpers/cli.ts";
import { decodeName, encodeName } from "../lib/storage/layout.ts";
import {
  decompress,
  dumpFiles,
  instanceRoot,
  listFiles,
  readMeta,
  sha256sumCheck,
} from "./backup_support.ts";

const NAMES = [
  `it's "quoted"`,
  "back`tick",
  "with space",
  "ação",
  "a/b",
  "..",
  ".",
  ".hidden",
  "../../escape",
  "-dash",
  "100%",
  "trailing.",
];

/** Names every engine must take; the others are kept where the engine allows them. */
const REQUIRED = [`it's "quoted"`, "back`tick", "with space", "ação"];

const pgIdent = (n: string) => `"${n.replaceAll('"', '""')}"`;
const myIdent = (n: string) => `\`${n.replaceAll("`", "``")}\``;

/** One engine: its server and how it creates database `name` holding one marker row. */
interface LayoutRow {
  /** Engine label and what its names try, part of the test name. */
  name: string;
  server: () => Promise<PgServer | MyServer>;
  create: (server: PgServer | MyServer, name: string, marker: string) => Promise<void>;
}

const LAYOUT_ROWS: LayoutRow[] = [
  {
    name: "PostgreSQL names with quotes, slashes, dots and unicode",
    server: sharedPostgres,
    create: async (server, name, marker) => {
      await server.sql(`CREATE DATABASE ${pgIdent(name)}`);
      // A table name with a dot too: the per-table row count must quote it as one name.
      await server.sql(
        `CREATE TABLE t (v text); INSERT INTO t VALUES ('${marker}');
         CREATE TABLE "dot.ted" (v int); INSERT INTO "dot.ted" VALUES (1);`,
        { database: name },
      );
    },
  },
  {
    name: "MariaDB names with quotes, backticks, spaces and unicode",
    server: sharedMariadb,
    create: async (server, name, marker) => {
      await server.sql(
        `CREATE DATABASE ${myIdent(name)}; CREATE TABLE ${myIdent(name)}.t (v TEXT);
           INSERT INTO ${myIdent(name)}.t VALUES ('${marker}');
           CREATE TABLE ${myIdent(name)}.\`dot.ted\` (v INT);
           INSERT INTO ${myIdent(name)}.\`dot.ted\` VALUES (1);`,
      );
    },
  },
];

/** Creates every name the engine accepts, each with a marker row; returns those created. */
async function createAll(row: LayoutRow, server: PgServer | MyServer): Promise<string[]> {
  const created: string[] = [];
  for (const [i, name] of NAMES.entries()) {
    try {
      await row.create(server, name, `marker-${i}`);
      created.push(name);
    } catch (e) {
      if (REQUIRED.includes(name)) throw e;
    }
  }
  return created;
}

async function checkNames(row: LayoutRow): Promise<void> {
  const server = await row.server();
  const names = await createAll(row, server);
  const env = await makeTestEnv([
    { id: "inst", server, extra: { users: { backup: false }, databases: { include: names } } },
  ]);
  try {
    const r = await env.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertStringIncludes(r.stdout, `${names.length} ok, 0 failed`);

    const root = instanceRoot(env, "inst");
    const realRoot = Deno.realPathSync(root) + "/";
    for (const file of listFiles(env.storage)) {
      if (basename(file) === ".vya-backupdb.lock") continue;
      const real = Deno.realPathSync(file);
      assert(real.startsWith(realRoot), `${real} is outside ${realRoot}`);
    }
    // One folder per database, directly under the instance folder, decoding to its name.
    const folders = [...Deno.readDirSync(root)].map((e) => e.name).sort();
    assertEquals(folders.map(decodeName).sort(), [...names].sort());
    for (const folder of folders) {
      assert(!folder.startsWith("."), `hidden or relative folder ${folder}`);
      assert(!folder.includes("/"), folder);
    }

    for (const [i, name] of NAMES.entries()) {
      if (!names.includes(name)) continue;
      const dir = join(root, encodeName(name));
      const dumps = dumpFiles(dir);
      assertEquals(dumps.length, 1, `one dump for ${JSON.stringify(name)}`);
      const dump = dumps[0];
      // {instance}/{database}/{day}/{file}: nothing nested deeper, nothing beside.
      assertEquals(relative(root, dump).split("/").length, 3, relative(root, dump));
      assertEquals(decodeName(basename(dirname(dirname(dump)))), name);
      assertMatch(basename(dump), /_\d{8}T\d{6}Z\.sql\.gz$/);
      assertEquals(decodeName(basename(dump).replace(/_\d{8}T\d{6}Z\.sql\.gz$/, "")), name);
      const stem = dump.slice(0, -".sql.gz".length);
      const check = await sha256sumCheck(stem + ".sha256");
      assertEquals(check.code, 0, check.text);
      const meta = await readMeta(stem + ".metadata.json");
      assertEquals(meta.status, "ok");
      assertEquals(meta.database, name);
      assertStringIncludes(await decompress(dump), `marker-${i}`);
    }
  } finally {
    await env.cleanup();
  }
}

for (const row of LAYOUT_ROWS) {
  Deno.test(`backup layout: ${row.name} stay in their folders`, async () => {
    await checkNames(row);
  });
}
