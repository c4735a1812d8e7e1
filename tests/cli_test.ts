/**
 * The command line as a sysadmin meets it: help, exit codes, `config`, `check` and
 * `credentials` against real servers, and no password in anything it prints.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { sharedMariadb, sharedPostgres } from "./harness/servers.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./harness/assert.ts";
import { makeTestEnv, REPO_ROOT, runCli } from "./helpers/cli.ts";
import { ORIGINAL_CREDENTIALS_JSON, ORIGINAL_VAULT } from "./helpers/original_tool.ts";
import { runPython } from "./helpers/python.ts";
import { V8_FLAGS_OPTION } from "../lib/stream/gc.ts";

/** A password distinctive enough that finding it anywhere in output is a leak. */
const SECRET = "Vya-S3cret_pw!42";

function assertNoSecret(text: string, secret = SECRET): void {
  assert(!text.includes(secret), `the password leaked into:\n${text}`);
}

Deno.test("the deno.json tasks and the README start the program with the V8 flags the code declares", async () => {
  // deno.json cannot import a constant; this keeps its literal flags from drifting from
  // V8_FLAGS (what the tests, the bench and the systemd unit pass) and from what README tells.
  const tasks = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json"))).tasks;
  for (const task of ["vya", "compile"]) {
    assertStringIncludes(tasks[task], ` ${V8_FLAGS_OPTION} `, `deno.json task "${task}"`);
  }
  const readme = await Deno.readTextFile(join(REPO_ROOT, "README.md"));
  assertStringIncludes(readme, ` ${V8_FLAGS_OPTION} `);
});

Deno.test("--help documents the commands and the exit codes; every command has --help", async () => {
  const top = await runCli(["--help"]);
  assertEquals(top.code, 0);
  for (
    const word of [
      "backup",
      "restore",
      "users",
      "check",
      "config",
      "credentials",
      "info",
      "version",
    ]
  ) {
    assertStringIncludes(top.stdout, word);
  }
  assertStringIncludes(top.stdout, "64 command-line usage error");
  for (
    const cmd of [
      ["backup"],
      ["restore"],
      ["check"],
      ["config", "validate"],
      ["credentials", "encrypt"],
      ["users", "restore"],
      ["info"],
    ]
  ) {
    const r = await runCli([...cmd, "--help"]);
    assertEquals(r.code, 0, `${cmd.join(" ")} --help: ${r.stderr}`);
    assertStringIncludes(r.stdout, `vya-backupdb ${cmd.join(" ")}`);
  }
});

Deno.test("usage errors exit 64; version prints the version", async () => {
  assertEquals((await runCli(["frobnicate"])).code, 64);
  assertEquals((await runCli(["backup", "--bogus"])).code, 64);
  const v = await runCli(["version"]);
  assertEquals(v.code, 0);
  assertMatch(v.stdout, /^vya-backupdb \d+\.\d+\.\d+ \(deno /);
});

Deno.test("global options work before and after the command", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = join(dir, "c.yaml");
    await Deno.writeTextFile(config, "storage: { path: /tmp/x }\n");
    const before = await runCli(["--config", config, "--json", "config", "validate"]);
    const after = await runCli(["config", "validate", "--json", "--config", config]);
    assertEquals(before.code, 0, before.stderr);
    assertEquals(JSON.parse(before.stdout).valid, true);
    assertEquals(after.stdout, before.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config validate: exit 3 with file:line:col, and needs only read access to the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      "instances:\n  - id: a\n    type: postgresql\n    port: abc\n    credential: a\n",
    );
    const bad = await runCli(["--config", config, "config", "validate"], {
      permissions: [`--allow-read=${dir}`],
    });
    assertEquals(bad.code, 3);
    assertStringIncludes(
      bad.stderr,
      `${config}:4:11: instances[0].port: expected 1-65535, got "abc"`,
    );

    await Deno.writeTextFile(config, "storage: { path: /srv/b }\n");
    const good = await runCli(["--config", config, "config", "validate"], {
      permissions: [`--allow-read=${dir}`],
    });
    assertEquals(good.code, 0, good.stderr);
    const missing = await runCli(["--config", join(dir, "nope.yaml"), "config", "validate"]);
    assertEquals(missing.code, 3);
    assertStringIncludes(missing.stderr, "nope.yaml: configuration file not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a command that lacks a permission says which flag to add, without prompting", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(config, "storage: { path: /srv/b }\n");
    const r = await runCli(["--config", config, "config", "validate"], { permissions: [] });
    assertEquals(r.code, 3);
    assertStringIncludes(r.stderr, `--allow-read=${config}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check: a good instance of each engine, then a wrong password, a closed port, an unknown id", async () => {
  const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
  await pg.sql("CREATE DATABASE cli_app1; CREATE DATABASE cli_tmp_x");
  await my.sql("CREATE DATABASE cli_shop");
  const env = await makeTestEnv([
    {
      id: "pg",
      server: pg,
      extra: { databases: { include: ["cli_*", "postgres"], exclude: ["cli_tmp_*"] } },
    },
    { id: "my", server: my, extra: { databases: { include: ["cli_*", "mysql"] } } },
    { id: "pg-wrong", server: pg, login: { user: pg.user, password: "not-the-password" } },
    { id: "pg-closed", server: { ...pg, port: 1 } },
  ]);
  try {
    const good = await env.run(["check", "--instance", "pg"]);
    assertEquals(good.code, 0, good.stderr);
    assertStringIncludes(good.stdout, "pg (postgresql at 127.0.0.1:");
    assertStringIncludes(good.stdout, "server: postgresql 15");
    assertStringIncludes(good.stdout, "cli_app1");
    assert(!good.stdout.includes("cli_tmp_x"), "excluded database listed");
    assert(!/^\s+postgres\s/m.test(good.stdout), "system database listed");
    assertMatch(good.stdout, /dump: \S+\/pg_dump \(pg_dump \(PostgreSQL\) 15/);

    const maria = await env.run(["check", "--instance", "my", "--json"]);
    assertEquals(maria.code, 0, maria.stderr);
    const [report] = JSON.parse(maria.stdout);
    assertEquals(report.server_version.flavor, "mariadb");
    assertEquals(report.databases.map((d: { name: string }) => d.name), ["cli_shop"]);
    assertEquals(report.tools.tools.dump.path.endsWith("mariadb-dump"), true);

    const wrong = await env.run(["check", "--instance", "pg-wrong"]);
    assertEquals(wrong.code, 2);
    assertMatch(wrong.stdout, /reachable: yes, authenticated: no/);
    assertMatch(wrong.stdout, /error: .*authentication failed/i);
    assertNoSecret(wrong.stdout + wrong.stderr, "not-the-password");

    const closed = await env.run(["check", "--instance", "pg-closed"]);
    assertEquals(closed.code, 2);
    assertMatch(closed.stdout, /reachable: no/);
    assertMatch(closed.stdout, /connection refused/i);

    // All at once: the broken ones do not stop the good ones from being checked.
    const all = await env.run(["check"]);
    assertEquals(all.code, 1);
    assertStringIncludes(all.stdout, "pg (postgresql at");
    assertStringIncludes(all.stdout, "my (mariadb at");

    const unknown = await env.run(["check", "--instance", "nope"]);
    assertEquals(unknown.code, 3);
    assertStringIncludes(
      unknown.stderr,
      'unknown instance "nope"; configured: pg, my, pg-wrong, pg-closed',
    );
  } finally {
    await env.cleanup();
  }
});

Deno.test("credentials written by the original tool (host key) are used by check", async () => {
  const pg = await sharedPostgres();
  await pg.sql(`CREATE ROLE cli_orig LOGIN PASSWORD '${SECRET}'`);
  const dir = await Deno.makeTempDir({ prefix: "vya-orig-" });
  try {
    await Deno.mkdir(join(dir, ".secrets"), { mode: 0o700 });
    const entries = { "pg-orig": { username: "cli_orig", password: SECRET } };
    await runPython(
      ORIGINAL_CREDENTIALS_JSON,
      JSON.stringify({ path: join(dir, ".secrets/credentials.json"), entries }),
    );
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      stringify({
        storage: { path: join(dir, "backups") },
        // No key_file: the key is derived from the host name, as the original tool did.
        instances: [{ id: "pg-orig", type: "postgresql", port: pg.port, credential: "pg-orig" }],
      }),
    );
    const r = await runCli(["--config", config, "check", "--verbose"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertStringIncludes(r.stdout, "authenticated: yes");
    assertNoSecret(r.stdout + r.stderr);

    // And a vault.json.enc of the original tool, imported into a file of our own.
    const vault = join(dir, "old", "vault.json.enc");
    await Deno.mkdir(join(dir, "old"), { mode: 0o700 });
    await runPython(ORIGINAL_VAULT, JSON.stringify({ path: vault, entries }));
    await Deno.remove(join(dir, ".secrets/credentials.json"));
    const imported = await runCli(["--config", config, "credentials", "import", "--from", vault]);
    assertEquals(imported.code, 0, imported.stderr);
    assertStringIncludes(imported.stdout, "imported 1 entry");
    const again = await runCli(["--config", config, "check"]);
    assertEquals(again.code, 0, again.stdout + again.stderr);
    assertNoSecret(imported.stdout + imported.stderr + again.stdout + again.stderr);
    const stored = await Deno.readTextFile(join(dir, ".secrets/credentials.json"));
    assertNoSecret(stored);
    assertEquals((await Deno.stat(join(dir, ".secrets/credentials.json"))).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no password in config show, logs at every level, errors or --json output", async () => {
  const [pg, my] = await Promise.all([sharedPostgres(), sharedMariadb()]);
  await pg.sql(`CREATE ROLE cli_leak LOGIN SUPERUSER PASSWORD '${SECRET}'`);
  await my.sql(
    `CREATE USER 'cli_leak'@'%' IDENTIFIED BY '${SECRET}'; GRANT ALL ON *.* TO 'cli_leak'@'%'`,
  );
  await pg.sql("CREATE DATABASE cli_leakdb");
  const env = await makeTestEnv([
    {
      id: "pg",
      server: pg,
      login: { user: "cli_leak", password: SECRET },
      extra: { databases: { include: ["cli_leakdb"] } },
    },
    {
      id: "my",
      server: my,
      login: { user: "cli_leak", password: SECRET },
      extra: { databases: { include: ["nothing_*"] } },
    },
  ]);
  try {
    const outputs: string[] = [];
    const runs = [
      ["config", "show"],
      ["config", "show", "--json"],
      ["config", "validate", "--verbose"],
      ["credentials", "list", "--json"],
      ["check", "--verbose"],
      ["check", "--json", "--verbose"],
      ["backup", "--all", "--verbose"],
      ["backup", "--all", "--json", "--verbose"],
      ["backup", "--instance", "pg", "--database", "no_such_db", "--verbose"],
      ["restore", "--instance", "pg", "--list", "--json"],
      ["info", "--json"],
      ["info"],
    ];
    for (const args of runs) {
      const r = await env.run(args);
      outputs.push(`$ ${args.join(" ")} (exit ${r.code})\n${r.stdout}${r.stderr}`);
    }
    const all = outputs.join("\n");
    assertStringIncludes(all, "cli_leak");
    assertNoSecret(all);
    // Listing needs nothing but read access to the config and the storage.
    const listed = await runCli([
      "--config",
      env.configPath,
      "restore",
      "--instance",
      "pg",
      "--list",
    ], {
      permissions: [`--allow-read=${env.configPath},${env.storage}`],
    });
    assertEquals(listed.code, 0, listed.stderr);
    assertMatch(listed.stdout, /cli_leakdb\s.*\sok\s.*\sok\s/);
    const files = await Array.fromAsync(walk(env.storage));
    assert(files.some((f) => f.endsWith(".metadata.json")), "no backup was written");
    for (const f of files.filter((f) => f.endsWith(".json"))) {
      assertNoSecret(await Deno.readTextFile(f));
    }
  } finally {
    await env.cleanup();
  }
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walk(p);
    else yield p;
  }
}

Deno.test("backup runs under narrow, explicit permissions; a missing one is named", async () => {
  const pg = await sharedPostgres();
  await pg.sql("CREATE DATABASE cli_narrow");
  const env = await makeTestEnv([
    { id: "pg", server: pg, extra: { databases: { include: ["cli_narrow"] } } },
  ]);
  try {
    // What README's "Permissions" section tells a sysadmin to grant; nothing broader.
    const permissions = [
      `--allow-read=${env.dir},${REPO_ROOT},/usr/lib/postgresql,/usr/bin,/usr/local/bin,/bin`,
      `--allow-write=${env.storage},/tmp`,
      `--allow-net=127.0.0.1:${pg.port}`,
      "--allow-sys=hostname,cpus,uid",
      "--allow-env=PATH",
      "--allow-run",
    ];
    const r = await runCli(["--config", env.configPath, "backup", "--all"], { permissions });
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertMatch(r.stdout, /ok +pg\/cli_narrow /);
    const denied = await runCli(["--config", env.configPath, "backup", "--all"], {
      permissions: permissions.filter((p) => !p.startsWith("--allow-net")),
    });
    assertEquals(denied.code, 3, denied.stdout + denied.stderr);
    assertStringIncludes(denied.stderr, "--allow-net=127.0.0.1");
  } finally {
    await env.cleanup();
  }
});
