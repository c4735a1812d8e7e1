/**
 * Encryption at rest against real PostgreSQL and MariaDB servers, through the CLI: backups and
 * users backups are written as age files (`.sql.zst.age`, `.sql.gz.age`) that Debian's `age`
 * decrypts and the system's zstd/gzip and psql/mariadb restore by hand (the README's manual
 * procedure, run for real); `restore --latest` and `users restore` decrypt them; a missing or
 * wrong identity is refused before any database is created; a tampered or cut file is refused
 * with nothing left on the server; no secret key appears in any output or file.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { type MyServer, type PgServer, sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { type CliResult, makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { myExists, pgExists } from "./helpers/restore_support.ts";
import { myRows, pgRows } from "./helpers/compare.ts";
import { listFiles, sha256sumCheck, tool } from "./backup_support.ts";
import type { RunSummary } from "../lib/backup/run.ts";
import { databaseBackupKeys, parseFileName, usersBackupKeys } from "../lib/storage/layout.ts";
import { validateMetadata } from "../lib/storage/metadata.ts";
import type { BackupMetadata } from "../lib/storage/metadata.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const decoder = new TextDecoder();

/** Every output of every CLI run of this file: checked for key material at the end. */
const outputs: string[] = [];

interface Key {
  file: string;
  recipient: string;
  secret: string;
}

interface Setup {
  pg: PgServer;
  my: MyServer;
  /** PostgreSQL with zstd, MariaDB with gzip: both suffixes are exercised. */
  pgEnv: TestEnv;
  myEnv: TestEnv;
  key: Key;
  other: Key;
}

async function ageKeygen(file: string): Promise<Key> {
  const r = await tool("age-keygen", ["-o", file]);
  assertEquals(r.code, 0, r.stderr);
  await Deno.chmod(file, 0o600);
  const text = await Deno.readTextFile(file);
  return {
    file,
    recipient: /age1[0-9a-z]+/.exec(text)![0],
    secret: /AGE-SECRET-KEY-1[0-9A-Z]+/.exec(text)![0],
  };
}

/** Rewrites an env's config: its storage with `encryption` (absent: the key's, with identity). */
async function configure(
  env: TestEnv,
  format: "zstd" | "gzip",
  encryption: Record<string, unknown>,
): Promise<void> {
  await env.writeConfig({
    storage: { path: env.storage, compression: { format, level: 3 }, encryption },
  });
}

let setup: Promise<Setup> | undefined;

function getSetup(): Promise<Setup> {
  setup ??= (async () => {
    const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
    await pg.sql(`CREATE DATABASE enc_pg TEMPLATE template0 ENCODING 'UTF8';`);
    await pg.sql(
      `CREATE TABLE t (id int PRIMARY KEY, note text);
       INSERT INTO t SELECT g, 'row é ' || md5(random()::text) || md5(g::text)
         FROM generate_series(1, 5000) g;`,
      { database: "enc_pg" },
    );
    await my.sql("CREATE DATABASE enc_my CHARACTER SET utf8mb4;");
    await my.sql(
      `CREATE TABLE t (id INT PRIMARY KEY, note TEXT);
       INSERT INTO t VALUES (1, 'one'), (2, 'two é'), (3, NULL);`,
      { database: "enc_my" },
    );
    const pgEnv = await makeTestEnv([{ id: "pg", server: pg }]);
    const myEnv = await makeTestEnv([{ id: "my", server: my }]);
    const key = await ageKeygen(join(pgEnv.dir, "backup-key.txt"));
    const other = await ageKeygen(join(pgEnv.dir, "other-key.txt"));
    const enc = { recipients: [key.recipient], identity_file: key.file };
    await configure(pgEnv, "zstd", enc);
    await configure(myEnv, "gzip", enc);
    return { pg, my, pgEnv, myEnv, key, other };
  })();
  return setup;
}

async function run(env: TestEnv, args: string[]): Promise<CliResult> {
  const r = await env.run(args);
  outputs.push(r.stdout, r.stderr);
  return r;
}

let lastSecond = 0;

/** Backs up one database (in a fresh second, so each backup has its own stem). */
async function backup(env: TestEnv, instance: string, db: string): Promise<string> {
  const wait = (lastSecond + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const r = await run(env, ["--json", "backup", "--instance", instance, "--database", db]);
  assertEquals(r.code, 0, r.stderr + r.stdout);
  const summary = JSON.parse(r.stdout) as RunSummary;
  lastSecond = Math.floor(Date.parse(summary.finished_at) / 1000);
  const path = summary.results.find((x) => x.database === db)?.path;
  assert(path !== undefined, r.stdout);
  return path;
}

function sidecar(dump: string, ext: ".sha256" | ".metadata.json"): string {
  return dump.replace(/\.sql(\.gz|\.zst)?\.age$/, ext);
}

async function meta(dump: string): Promise<BackupMetadata> {
  return JSON.parse(await Deno.readTextFile(sidecar(dump, ".metadata.json")));
}

/** Runs a shell pipeline as a sysadmin types it; fails the test on a non-zero exit. */
async function shell(script: string, env: Record<string, string> = {}): Promise<void> {
  const out = await new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", script],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, `${script}\n${decoder.decode(out.stderr)}`);
}

async function assertEncryptedFile(dump: string, key: Key): Promise<void> {
  const bytes = await Deno.readFile(dump);
  assertEquals(decoder.decode(bytes.subarray(0, 22)), "age-encryption.org/v1\n");
  assertEquals((await Deno.stat(dump)).mode! & 0o777, 0o600);
  const check = await sha256sumCheck(sidecar(dump, ".sha256"));
  assertEquals(check.code, 0, check.text);
  const m = await meta(dump);
  assertEquals(m.encryption, { format: "age", recipients: [key.recipient] });
  assertEquals(m.file?.name, dump.slice(dump.lastIndexOf("/") + 1));
}

/**
 * Replaces a stored file's content and re-hashes it, as an attacker who can write the storage
 * would: the `.sha256` and the metadata's checksum and size agree with the new bytes, so only
 * age's own authentication can catch it.
 */
async function rehash(dump: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(dump, bytes);
  const hex = createHash("sha256").update(bytes).digest("hex");
  const name = dump.slice(dump.lastIndexOf("/") + 1);
  await Deno.writeTextFile(sidecar(dump, ".sha256"), `${hex}  ${name}\n`);
  const m = await meta(dump);
  m.file = { name, bytes: bytes.length, sha256: hex };
  await Deno.writeTextFile(sidecar(dump, ".metadata.json"), JSON.stringify(m, null, 2));
}

// ---------------------------------------------------------------------------------------------

Deno.test("layout: .age names are made and parsed; metadata's encryption is validated", () => {
  const at = new Date("2026-01-01T02:00:00Z");
  assertEquals(
    databaseBackupKeys("h", "pg", "shop", at, "zstd", true).dump,
    "h/pg/shop/2026-01-01/shop_20260101T020000Z.sql.zst.age",
  );
  assertEquals(
    usersBackupKeys("h", "pg", at, "gzip", true).dump,
    "h/pg/users_20260101T020000Z.sql.gz.age",
  );
  assertEquals(databaseBackupKeys("h", "pg", "shop", at, "none").dump.endsWith(".sql"), true);
  const names: [string, string, string][] = [
    ["shop_20260101T020000Z.sql.zst.age", "dump", "zstd"],
    ["shop_20260101T020000Z.sql.gz.age", "dump", "gzip"],
    ["shop_20260101T020000Z.sql.age", "dump", "none"],
    ["shop_20260101T020000Z.sql.zst.age.partial", "partial", "zstd"],
  ];
  for (const [name, role, format] of names) {
    const p = parseFileName(name);
    assertEquals([p?.role, p?.format, p?.encrypted], [role, format, true], name);
  }
  assertEquals(parseFileName("shop_20260101T020000Z.sql.zst")?.encrypted, false);
  assertEquals(parseFileName("shop_20260101T020000Z.sql.age.zst"), undefined);
  const base = {
    format_version: 1,
    kind: "users",
    status: "failed",
    instance: "pg",
    started_at: "2026-01-01T02:00:00Z",
    compression: { format: "zstd", level: 3 },
    file: null,
  };
  const check = (encryption: unknown) => validateMetadata({ ...base, encryption }) ?? "";
  assertEquals(check({ format: "age", recipients: ["age1x"] }), "");
  assertMatch(check({ format: "age", recipients: [] }), /^encryption:/);
  assertMatch(check({ format: "gpg", recipients: ["x"] }), /^encryption:/);
});

Deno.test(
  "PostgreSQL: encrypted zstd backup, age -d | zstd -d | psql by hand, restore --latest",
  opts,
  async () => {
    const { pg, pgEnv, key } = await getSetup();
    const dump = await backup(pgEnv, "pg", "enc_pg");
    assert(dump.endsWith(".sql.zst.age"), dump);
    await assertEncryptedFile(dump, key);
    assert(!decoder.decode(await Deno.readFile(dump)).includes("PostgreSQL database dump"));

    // The README's manual procedure, with nothing of this tool.
    await pg.sql("CREATE DATABASE enc_pg_manual TEMPLATE template0 ENCODING 'UTF8';");
    const psql = join(pg.bin, "psql");
    await shell(
      `age -d -i '${key.file}' '${dump}' | zstd -d | '${psql}' -h 127.0.0.1 -p ${pg.port} ` +
        `-U ${pg.user} -d enc_pg_manual -v ON_ERROR_STOP=1 -q >/dev/null`,
      pg.clientEnv,
    );
    const rows = await pgRows(pg, "enc_pg");
    assertEquals(await pgRows(pg, "enc_pg_manual"), rows);

    const r = await run(pgEnv, [
      "restore",
      "--instance",
      "pg",
      "--latest",
      "--database",
      "enc_pg",
      "--target",
      "enc_pg_restored",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await pgRows(pg, "enc_pg_restored"), rows);

    const list = await run(pgEnv, ["--json", "restore", "--instance", "pg", "--list"]);
    assertEquals(list.code, 0, list.stderr);
    const row = (JSON.parse(list.stdout) as { file: string; checksum: string }[])
      .find((x) => x.file === dump);
    assertEquals(row?.checksum, "ok");

    // verify decrypts with the configured identity, both kinds.
    for (const args of [[], ["--restore"]]) {
      const v = await run(pgEnv, ["verify", "--instance", "pg", "--database", "enc_pg", ...args]);
      assertEquals(v.code, 0, v.stdout + v.stderr);
    }
  },
);

Deno.test(
  "MariaDB: encrypted gzip backup, age -d | gzip -d | mariadb by hand, restore --latest",
  opts,
  async () => {
    const { my, myEnv, key } = await getSetup();
    const dump = await backup(myEnv, "my", "enc_my");
    assert(dump.endsWith(".sql.gz.age"), dump);
    await assertEncryptedFile(dump, key);

    await my.sql("CREATE DATABASE enc_my_manual CHARACTER SET utf8mb4;");
    const client = join(my.bin, "mariadb");
    await shell(
      `age -d -i '${key.file}' '${dump}' | gzip -d | '${client}' -h 127.0.0.1 -P ${my.port} ` +
        `-u ${my.user} enc_my_manual`,
      my.clientEnv,
    );
    const rows = await myRows(my, "enc_my");
    assertEquals(await myRows(my, "enc_my_manual"), rows);

    const r = await run(myEnv, [
      "restore",
      "--instance",
      "my",
      "--latest",
      "--database",
      "enc_my",
      "--target",
      "enc_my_restored",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await myRows(my, "enc_my_restored"), rows);
  },
);

Deno.test(
  "users backup is encrypted and users restore decrypts it (PostgreSQL, MariaDB)",
  opts,
  async () => {
    const { pg, my, pgEnv, myEnv, key } = await getSetup();
    await pg.sql("CREATE ROLE enc_login LOGIN PASSWORD 'enc-pw-1';");
    await my.sql("CREATE USER 'enc_login'@'%' IDENTIFIED BY 'enc-pw-2';");
    const cases: [TestEnv, string, string][] = [
      [pgEnv, "pg", ".sql.zst.age"],
      [myEnv, "my", ".sql.gz.age"],
    ];
    for (const [env, instance, ext] of cases) {
      const r = await run(env, ["--json", "users", "backup", "--instance", instance]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      const file = listFiles(env.storage).find((f) => /\/users_[^/]*\.age$/.test(f));
      assert(file?.endsWith(ext), `users file ${file}`);
      await assertEncryptedFile(file!, key);
      const plain = await tool("age", ["-d", "-i", key.file, file!]);
      assertEquals(plain.code, 0, plain.stderr);
    }
    await pg.sql("DROP ROLE enc_login;");
    await my.sql("DROP USER 'enc_login'@'%';");

    let r = await run(pgEnv, ["users", "restore", "--instance", "pg", "--user", "enc_login"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const login = await tool(join(pg.bin, "psql"), [
      `postgresql://enc_login:enc-pw-1@127.0.0.1:${pg.port}/postgres`,
      "-Atc",
      "SELECT current_user",
    ]);
    assertEquals(decoder.decode(login.stdout).trim(), "enc_login", login.stderr);

    r = await run(myEnv, ["users", "restore", "--instance", "my", "--user", "enc_login@%"]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const myLogin = await tool(join(my.bin, "mariadb"), [
      "-h",
      "127.0.0.1",
      "-P",
      String(my.port),
      "-u",
      "enc_login",
      "-penc-pw-2",
      "-N",
      "-e",
      "SELECT 1",
    ]);
    assertEquals(decoder.decode(myLogin.stdout).trim(), "1", myLogin.stderr);
  },
);

Deno.test(
  "an encrypted backup without (the right) identity is refused before any database is created",
  opts,
  async () => {
    const { pg, my, pgEnv, myEnv, key, other } = await getSetup();
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        "no identity_file",
        { recipients: [key.recipient] },
        /no identity file is configured.*storage\.encryption\.identity_file/s,
      ],
      [
        "another key",
        { recipients: [key.recipient], identity_file: other.file },
        /none of them a recipient of this backup/,
      ],
      [
        "an unreadable identity file",
        { recipients: [key.recipient], identity_file: join(pgEnv.dir, "missing-key.txt") },
        /missing-key\.txt/,
      ],
    ];
    for (const [what, encryption, message] of cases) {
      await configure(pgEnv, "zstd", encryption);
      const r = await run(pgEnv, [
        "restore",
        "--instance",
        "pg",
        "--latest",
        "--database",
        "enc_pg",
        "--target",
        "enc_pg_noid",
      ]);
      assertEquals(r.code, 3, `${what}: ${r.stderr}`);
      assertMatch(r.stderr, message, what);
      if (what !== "an unreadable identity file") assertStringIncludes(r.stderr, key.recipient);
      assert(!(await pgExists(pg, "enc_pg_noid")), `${what}: no database created`);

      const u = await run(pgEnv, ["users", "restore", "--instance", "pg", "--user", "enc_login"]);
      assertEquals(u.code, 3, `${what}: users restore: ${u.stderr}`);
    }
    await configure(myEnv, "gzip", { recipients: [key.recipient] });
    const r = await run(myEnv, [
      "restore",
      "--instance",
      "my",
      "--latest",
      "--database",
      "enc_my",
      "--target",
      "enc_my_noid",
    ]);
    assertEquals(r.code, 3, r.stderr);
    assertMatch(r.stderr, /storage\.encryption\.identity_file/);
    assert(!(await myExists(my, "enc_my_noid")));
    const enc = { recipients: [key.recipient], identity_file: key.file };
    await configure(pgEnv, "zstd", enc);
    await configure(myEnv, "gzip", enc);
  },
);

Deno.test(
  "a tampered or cut encrypted file is refused, the target never left behind",
  opts,
  async () => {
    const { pg, pgEnv, key } = await getSetup();
    const dump = await backup(pgEnv, "pg", "enc_pg");
    const original = await Deno.readFile(dump);
    const restoreFile = () =>
      run(pgEnv, [
        "restore",
        "--instance",
        "pg",
        "--file",
        dump,
        "--target",
        "enc_pg_tampered",
      ]);
    const flipped = original.slice();
    flipped[Math.floor(original.length / 2)] ^= 0x01;

    // The checksum catches a changed byte first.
    await Deno.writeFile(dump, flipped);
    let r = await restoreFile();
    assertEquals(r.code, 3, r.stderr);
    assertMatch(r.stderr, /does not match its checksum/);

    // Re-hashed: age's authentication of each chunk catches it.
    await rehash(dump, flipped);
    r = await restoreFile();
    assertEquals(r.code, 3, r.stderr);
    assertMatch(r.stderr, /authentication failed at chunk \d+/);
    assert(!(await pgExists(pg, "enc_pg_tampered")));

    // Cut at a chunk boundary and re-hashed: age's last-chunk flag catches it.
    const header = decoder.decode(original.subarray(0, 4096));
    const payload = header.indexOf("\n", header.indexOf("\n---") + 1) + 1 + 16;
    assert(original.length > payload + 65552, "the dump spans more than one age chunk");
    await rehash(dump, original.subarray(0, payload + 65552));
    r = await restoreFile();
    assertEquals(r.code, 3, r.stderr);
    assertMatch(r.stderr, /cut short/);
    assert(!(await pgExists(pg, "enc_pg_tampered")));

    // The same with the users backup.
    const users = listFiles(pgEnv.storage).find((f) => /\/users_[^/]*\.age$/.test(f))!;
    const usersBytes = (await Deno.readFile(users)).slice();
    usersBytes[usersBytes.length - 20] ^= 0x01;
    await rehash(users, usersBytes);
    const u = await run(pgEnv, ["users", "restore", "--instance", "pg", "--user", "enc_login"]);
    assertEquals(u.code, 3, u.stderr);
    assertMatch(u.stderr, /authentication failed/);

    await rehash(dump, original);
    assertEquals((await sha256sumCheck(sidecar(dump, ".sha256"))).code, 0);
    assert((await meta(dump)).encryption?.recipients.includes(key.recipient));
  },
);

Deno.test("no secret key in any output, metadata, log or file of the storage", opts, async () => {
  const { pgEnv, myEnv, key, other } = await getSetup();
  for (const env of [pgEnv, myEnv]) {
    for (const args of [["config", "show"], ["config", "show", "--json"]]) {
      const r = await run(env, args);
      assertEquals(r.code, 0, r.stderr);
    }
    const v = await run(env, [
      "--verbose",
      "restore",
      "--instance",
      env === pgEnv ? "pg" : "my",
      "--list",
    ]);
    assert(v.code === 0 || v.code === 1, v.stderr);
  }
  assert(outputs.length > 20, "the runs of this file were recorded");
  for (const [i, text] of outputs.entries()) {
    for (const secret of [key.secret, other.secret]) {
      assert(!text.includes(secret), `output ${i} holds a secret key: ${text.slice(0, 200)}`);
    }
    assert(!/AGE-SECRET-KEY/i.test(text), `output ${i} mentions a secret key`);
  }
  for (const env of [pgEnv, myEnv]) {
    const files = listFiles(env.storage);
    assert(files.some((f) => f.endsWith(".metadata.json")));
    for (const f of [...files, env.configPath]) {
      const text = decoder.decode(await Deno.readFile(f));
      assert(!/AGE-SECRET-KEY/i.test(text), `${f} holds key material`);
    }
  }
});

Deno.test({
  name: "cleanup",
  ...opts,
  fn: async () => {
    const s = await getSetup();
    await s.pg.sql(
      "DROP DATABASE IF EXISTS enc_pg; DROP DATABASE IF EXISTS enc_pg_manual; " +
        "DROP DATABASE IF EXISTS enc_pg_restored; DROP ROLE IF EXISTS enc_login;",
    ).catch(() => {});
    await s.my.sql(
      "DROP DATABASE IF EXISTS enc_my; DROP DATABASE IF EXISTS enc_my_manual; " +
        "DROP DATABASE IF EXISTS enc_my_restored; DROP USER IF EXISTS 'enc_login'@'%';",
    ).catch(() => {});
    await s.pgEnv.cleanup();
    await s.myEnv.cleanup();
  },
});
