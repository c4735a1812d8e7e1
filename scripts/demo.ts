/**
 * The demo: the whole job against throwaway local servers, printing what a sysadmin would look
 * at. Starts a PostgreSQL and a MariaDB server on 127.0.0.1 with a small sample dataset, writes
 * a temporary config with encrypted credentials, and runs the tool's commands as a user would.
 *
 *   bash scripts/demo.sh        (sets the machine up first)
 *   deno task demo              (when Deno and the servers' packages are installed)
 *
 * @module
 */
import { join } from "node:path";
import { stringify } from "yaml";
import {
  type MyServer,
  type PgServer,
  startMariadb,
  startPostgres,
} from "../tests/harness/servers.ts";
import { runCli } from "../tests/helpers/cli.ts";
import { startSmtp } from "../tests/harness/alerts.ts";

const bold = (s: string) => Deno.stdout.isTerminal() ? `\x1b[1m${s}\x1b[0m` : s;

function step(title: string): void {
  console.log(`\n${bold("== " + title)}`);
}

async function show(args: string[], options: { stdin?: string } = {}): Promise<number> {
  console.log(bold(`$ vya-backupdb ${args.join(" ")}`));
  const r = await runCli(args, options);
  if (r.stdout.trim()) console.log(r.stdout.trimEnd());
  if (r.stderr.trim()) console.log(r.stderr.trimEnd().replace(/^/gm, "  [stderr] "));
  console.log(`  (exit ${r.code})`);
  return r.code;
}

/** `credentials encrypt` of a server's superuser login, the password piped in as a script would. */
async function storeLogin(c: string[], id: string, server: PgServer | MyServer): Promise<void> {
  await show(
    [...c, "credentials", "encrypt", "--id", id, "--username", server.user, "--password-stdin"],
    { stdin: server.password + "\n" },
  );
}

async function seedPostgres(pg: PgServer): Promise<void> {
  await pg.sql(`
    CREATE ROLE shop_owner LOGIN PASSWORD 'shop-owner-pw';
    CREATE ROLE reporting NOLOGIN;
    CREATE ROLE analyst LOGIN PASSWORD 'analyst-pw' IN ROLE reporting;
    CREATE DATABASE shop OWNER shop_owner;
    CREATE DATABASE inventory;
    CREATE DATABASE tmp_scratch;`);
  await pg.sql(
    `
    SET ROLE shop_owner;
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE,
      created_at timestamptz DEFAULT now());
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
      total numeric(10,2), placed_at timestamptz DEFAULT now());
    INSERT INTO customers (name, email)
      SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
    INSERT INTO orders (customer_id, total)
      SELECT 1 + (g % 2000), (g % 500) + 0.99 FROM generate_series(1, 20000) g;
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 400;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;`,
    { database: "shop" },
  );
  await pg.sql(
    `
    CREATE TABLE items (sku text PRIMARY KEY, qty int, note text);
    INSERT INTO items SELECT 'SKU-' || g, g % 97, repeat('x', g % 50) FROM generate_series(1, 5000) g;`,
    { database: "inventory" },
  );
}

async function seedMariadb(my: MyServer): Promise<void> {
  await my.sql(`
    CREATE DATABASE blog CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
    CREATE TABLE blog.posts (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200),
      body MEDIUMTEXT, published DATETIME);
    CREATE USER 'blog_app'@'%' IDENTIFIED BY 'blog-app-pw';
    GRANT SELECT, INSERT, UPDATE ON blog.* TO 'blog_app'@'%';
    CREATE DATABASE test_throwaway;`);
  await my.sql(
    `INSERT INTO posts (title, body, published)
      SELECT CONCAT('Post ', seq), REPEAT('lorem ipsum ', 40), NOW() FROM seq_1_to_3000;`,
    { database: "blog" },
  );
}

async function main(): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "vya-demo-" });
  step("Starting throwaway PostgreSQL and MariaDB servers on 127.0.0.1");
  const [pg, my] = await Promise.all([startPostgres(), startMariadb()]);
  // The run's mail goes to a local SMTP server, shown below.
  const smtp = await startSmtp();
  try {
    console.log(`PostgreSQL on port ${pg.port}, MariaDB on port ${my.port}; work folder ${work}`);
    console.log(`SMTP server on port ${smtp.port}`);
    await Deno.mkdir(join(work, "metrics"));
    await Promise.all([seedPostgres(pg), seedMariadb(my)]);

    const configPath = join(work, "config.yaml");
    const config = {
      storage: { path: join(work, "backups"), compression: { format: "zstd", level: 3 } },
      credentials: {
        file: join(work, ".secrets/credentials.json"),
        key_file: join(work, ".secrets/key"),
      },
      instances: [
        {
          id: "pg-main",
          type: "postgresql",
          host: pg.host,
          port: pg.port,
          credential: "pg-main",
          databases: { exclude: ["tmp_*"] },
        },
        {
          id: "maria-main",
          type: "mariadb",
          host: my.host,
          port: my.port,
          credential: "maria-main",
          databases: { exclude: ["test_*"] },
        },
      ],
      notify: {
        on: ["failure", "stale", "success"],
        email: {
          host: "127.0.0.1",
          port: smtp.port,
          tls: "none",
          from: "backups@demo.example.com",
          to: ["dba@example.com"],
        },
      },
      metrics: { textfile: join(work, "metrics", "vya_backupdb.prom") },
      // Manual here so the demo can show the plan first; after_backup is the nightly choice.
      retention: { keep_last: 1, prune: "manual" },
    };
    await Deno.writeTextFile(configPath, stringify(config));
    const c = ["--config", configPath];

    step("Configuration");
    console.log(stringify(config).trimEnd());
    await show([...c, "credentials", "keygen"]);
    await storeLogin(c, "pg-main", pg);
    await storeLogin(c, "maria-main", my);
    await show([...c, "credentials", "list"]);
    await show([...c, "config", "validate"]);
    await show([...c, "config", "show"]);

    step("Health check");
    await show([...c, "check"]);

    step("Backup of every instance");
    await show([...c, "backup", "--all", "--dry-run"]);
    await show([...c, "backup", "--all"]);
    for (const mail of smtp.mails) {
      step(`The run's mail, as the SMTP server received it`);
      console.log(`Subject: ${mail.parsed.subject}\n`);
      console.log((mail.parsed.text ?? "").trimEnd());
    }
    step("The metrics file for node_exporter's textfile collector");
    console.log((await Deno.readTextFile(config.metrics.textfile)).trimEnd());
    step("What is on disk");
    const tree = await new Deno.Command("find", { args: [join(work, "backups"), "-type", "f"] })
      .output();
    const files = new TextDecoder().decode(tree.stdout).trim().split("\n").sort();
    for (const f of files) console.log(f.slice(work.length + 1));
    const meta = files.find((f) => f.includes("/shop/") && f.endsWith(".metadata.json"));
    if (meta) {
      step(`One metadata file: ${meta.slice(work.length + 1)}`);
      console.log(await Deno.readTextFile(meta));
      const dir = meta.slice(0, meta.lastIndexOf("/"));
      const sum = await new Deno.Command("sha256sum", {
        args: ["-c", meta.split("/").pop()!.replace(".metadata.json", ".sha256")],
        cwd: dir,
      }).output();
      console.log(bold("$ sha256sum -c …sha256"));
      console.log(new TextDecoder().decode(sum.stdout).trim());
    }
    step("Retention: a second backup of shop, then what prune would remove (nothing is deleted)");
    await show([...c, "backup", "--instance", "pg-main", "--database", "shop"]);
    await show([...c, "prune", "--instance", "pg-main", "--database", "shop", "--dry-run"]);
    await restoreAndRebuild(c, configPath, config);
    step("State of the backups: info, the monitoring check (reads the storage only)");
    await show([...c, "info"]);
    await show([...c, "info", "--instance", "pg-main", "--database", "shop", "--json"]);
  } finally {
    step("Stopping the servers");
    await Promise.all([pg.stop(), my.stop(), smtp.stop()]);
    await Deno.remove(work, { recursive: true }).catch(() => {});
    console.log("done");
  }
}

/** Restore, then the rebuild of both servers from nothing onto empty ones. */
async function restoreAndRebuild(
  c: string[],
  configPath: string,
  config: { instances: { port: number }[] },
): Promise<void> {
  step("Verify: restore each newest backup into a scratch database, compare, drop it");
  await show([...c, "verify", "--restore", "--instance", "pg-main"]);
  step("Restore");
  await show([...c, "restore", "--instance", "pg-main", "--list"]);
  await show([
    ...c,
    "restore",
    "--instance",
    "pg-main",
    "--database",
    "shop",
    "--latest",
    "--dry-run",
    "--target",
    "shop_copy",
  ]);
  await show([
    ...c,
    "restore",
    "--instance",
    "pg-main",
    "--database",
    "shop",
    "--latest",
    "--target",
    "shop_copy",
  ]);
  await show([
    ...c,
    "restore",
    "--instance",
    "maria-main",
    "--database",
    "blog",
    "--latest",
    "--target",
    "blog_copy",
  ]);
  console.log("Restoring over an existing database is refused without --force:");
  await show([
    ...c,
    "restore",
    "--instance",
    "pg-main",
    "--database",
    "shop",
    "--latest",
    "--target",
    "shop_copy",
  ]);

  step("Rebuilding both servers from nothing");
  console.log(
    "Two empty servers replace the old ones; the config points the same instance ids at them.",
  );
  const [pg2, my2] = await Promise.all([startPostgres(), startMariadb()]);
  try {
    config.instances[0].port = pg2.port;
    config.instances[1].port = my2.port;
    await Deno.writeTextFile(configPath, stringify(config));
    // The new servers' superuser passwords differ: store them as a sysadmin would.
    await storeLogin(c, "pg-main", pg2);
    await storeLogin(c, "maria-main", my2);
    await show([...c, "users", "restore", "--instance", "pg-main", "--all"]);
    await show([...c, "users", "restore", "--instance", "maria-main", "--all"]);
    for (const db of ["shop", "inventory"]) {
      await show([...c, "restore", "--instance", "pg-main", "--database", db, "--latest"]);
    }
    await show([...c, "restore", "--instance", "maria-main", "--database", "blog", "--latest"]);
    step("The applications log in to the new servers with their old passwords");
    const psql = await new Deno.Command(`${pg2.bin}/psql`, {
      args: [
        "-X",
        "-At",
        "-h",
        pg2.host,
        "-p",
        String(pg2.port),
        "-U",
        "shop_owner",
        "-d",
        "shop",
        "-c",
        "SELECT current_user, count(*) FROM orders",
      ],
      env: { PGPASSWORD: "shop-owner-pw" },
    }).output();
    console.log(
      `shop_owner on PostgreSQL: ${
        new TextDecoder().decode(psql.stdout).trim() || new TextDecoder().decode(psql.stderr).trim()
      }`,
    );
    const maria = await new Deno.Command(`${my2.bin}/mariadb`, {
      args: [
        "--no-defaults",
        "--protocol=TCP",
        "-h",
        my2.host,
        "-P",
        String(my2.port),
        "-u",
        "blog_app",
        "-N",
        "-e",
        "SELECT CURRENT_USER(), COUNT(*) FROM blog.posts",
      ],
      env: { MYSQL_PWD: "blog-app-pw" },
    }).output();
    console.log(
      `blog_app on MariaDB: ${
        new TextDecoder().decode(maria.stdout).trim() ||
        new TextDecoder().decode(maria.stderr).trim()
      }`,
    );
  } finally {
    await Promise.all([pg2.stop(), my2.stop()]);
  }
}

if (import.meta.main) await main();
