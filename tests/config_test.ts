/**
 * Configuration: every error names file:line:column and the field path; overlays merge as
 * documented; relative paths resolve against the config file's folder.
 */
import { stringify } from "yaml";
import { ConfigValidationError, parseConfig } from "../lib/config/load.ts";
import { retentionFor } from "../lib/config/retention.ts";
import { parseDurationSeconds } from "../lib/config/schema.ts";
import { findTools } from "../lib/engines/mod.ts";
import { requireTools } from "../lib/tools/find.ts";
import { ConfigError } from "../lib/errors.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./harness/assert.ts";

const FILE = "/etc/vya-backupdb/config.yaml";

const BASE = `storage:
  path: /var/backups/vya
instances:
  - id: pg-main
    type: postgresql
    port: 5432
    credential: pg-main
  - id: maria
    type: mariadb
    credential: maria
environments:
  dev:
    storage: { path: ./backups, compression: { format: zstd } }
    instances:
      - id: maria
        port: 3307
      - id: extra
        type: mysql
        credential: extra
`;

function errorOf(text: string, env?: string): string {
  const e = assertThrows(() => parseConfig(text, FILE, env), ConfigError);
  return e.message;
}

Deno.test("a valid file gets defaults and absolute paths", () => {
  const { config, source } = parseConfig(BASE, FILE);
  assertEquals(source.dir, "/etc/vya-backupdb");
  assertEquals(config.storage.path, "/var/backups/vya");
  assertEquals(config.storage.compression, { format: "gzip", level: 6, threads: 0 });
  assertEquals(config.credentials.file, "/etc/vya-backupdb/.secrets/credentials.json");
  assertEquals(config.instances.map((i) => [i.id, i.host, i.port]), [
    ["pg-main", "127.0.0.1", 5432],
    ["maria", "127.0.0.1", 3306],
  ]);
  assertEquals(config.instances[0].databases, { include: [], exclude: [] });
  assertEquals(config.instances[0].users.backup, true);
  assertEquals(config.backup.jobs, 1);
});

Deno.test("an overlay deep-merges over the base, instances by id", () => {
  const { config } = parseConfig(BASE, FILE, "dev");
  assertEquals(config.environment, "dev");
  assertEquals(config.storage.path, "/etc/vya-backupdb/backups");
  // zstd's default level, not gzip's: the overlay changed the format only.
  assertEquals(config.storage.compression, { format: "zstd", level: 3, threads: 0 });
  assertEquals(config.instances.map((i) => [i.id, i.type, i.port]), [
    ["pg-main", "postgresql", 5432],
    ["maria", "mariadb", 3307],
    ["extra", "mysql", 3306],
  ]);
});

Deno.test("environment: in the file selects the overlay; --env wins over it", () => {
  const withKey = `environment: dev\n${BASE}`;
  assertEquals(parseConfig(withKey, FILE).config.storage.path, "/etc/vya-backupdb/backups");
  const prodFile = withKey + "  prod:\n    storage: { path: /srv/prod }\n";
  assertEquals(parseConfig(prodFile, FILE, "prod").config.storage.path, "/srv/prod");
});

Deno.test("an unknown environment is an error that lists the defined ones", () => {
  assertStringIncludes(
    errorOf(BASE, "staging"),
    `${FILE}: unknown environment "staging" (from --env or $VYA_ENV); defined: dev`,
  );
  assertStringIncludes(
    errorOf(`environment: qa\n${BASE}`),
    `${FILE}:1:14: environment: unknown environment "qa"; defined: dev`,
  );
});

Deno.test("malformed YAML names the line and column", () => {
  const message = errorOf("storage:\n  path: [unclosed\ninstances: []\n");
  assert(/^\/etc\/vya-backupdb\/config\.yaml:\d+:\d+: invalid YAML: /.test(message), message);
});

Deno.test("duplicate keys are refused with their position", () => {
  assertStringIncludes(
    errorOf("storage:\n  path: /a\nstorage:\n  path: /b\n"),
    `${FILE}:3:1: invalid YAML: Map keys must be unique`,
  );
});

Deno.test("a wrong type names file:line:column, field path, expectation and value", () => {
  const text = BASE.replace("    port: 5432\n", '    port: "abc"\n');
  assertStringIncludes(
    errorOf(text),
    `${FILE}:6:11: instances[0].port: expected 1-65535, got "abc"`,
  );
  const big = BASE.replace("    port: 5432\n", "    port: 70000\n");
  assertStringIncludes(
    errorOf(big),
    `${FILE}:6:11: instances[0].port: expected 1-65535, got 70000`,
  );
});

Deno.test("an error inside an overlay points into the overlay", () => {
  const text = BASE.replace("        port: 3307\n", "        port: nope\n");
  assertStringIncludes(
    errorOf(text, "dev"),
    `${FILE}:16:15: instances[1].port: expected 1-65535, got "nope"`,
  );
});

Deno.test("unknown keys are errors, at the key", () => {
  const text = BASE.replace(
    "    credential: pg-main\n",
    "    credential: pg-main\n    pasword: x\n",
  );
  assertStringIncludes(errorOf(text), `${FILE}:8:5: instances[0].pasword: unknown key`);
  assertStringIncludes(errorOf("storag:\n  path: /x\n"), `${FILE}:1:1: storag: unknown key`);
});

Deno.test("duplicate instance ids are errors naming both", () => {
  const text = BASE.replace("  - id: maria\n", "  - id: pg-main\n");
  assertStringIncludes(
    errorOf(text),
    `${FILE}:8:9: instances[1].id: duplicate instance id "pg-main" (first used by instances[0])`,
  );
});

Deno.test("every problem is reported at once, not only the first", () => {
  const text = BASE
    .replace("    port: 5432\n", "    port: 0\n")
    .replace("    type: mariadb\n", "    type: oracle\n");
  const lines = errorOf(text).split("\n");
  assertEquals(lines.length, 2, lines.join("\n"));
  assertStringIncludes(lines.join("\n"), "instances[0].port: expected 1-65535, got 0");
  assertStringIncludes(
    lines.join("\n"),
    `instances[1].type: expected one of postgresql, mysql, mariadb, got "oracle"`,
  );
});

Deno.test("compression levels are checked per format", () => {
  const gzip = BASE.replace(
    "  path: /var/backups/vya\n",
    "  path: /x\n  compression: { format: gzip, level: 12 }\n",
  );
  assertStringIncludes(
    errorOf(gzip),
    "storage.compression.level: expected a gzip level 1-9 (zstd takes 1-19), got 12",
  );
  const zstd = gzip.replace("format: gzip", "format: zstd");
  assertEquals(parseConfig(zstd, FILE).config.storage.compression.level, 12);
});

Deno.test("a missing required field is named", () => {
  const text = BASE.replace("    credential: maria\n", "");
  assertStringIncludes(errorOf(text), "instances[1].credential: required");
});

Deno.test("every config key a tool hint names is one the config accepts; misspelt tools are refused", async () => {
  const nowhere = { path: "/nonexistent", debianRoot: "/nonexistent", rhelPrefix: "/nonexistent/" };
  const texts: string[] = [];
  const sets = [
    await findTools("postgresql", 99, { dir: "/nonexistent", paths: {} }, nowhere),
    await findTools("mariadb", 10, { paths: {} }, nowhere),
    await findTools("mysql", 8, { paths: { mysqldump: "/nonexistent/mysqldump" } }, nowhere),
    await findTools("postgresql", 15, { paths: { pg_dump: "/nonexistent/pg_dump" } }, nowhere),
  ];
  for (const set of sets) {
    texts.push(...set.problems);
    const e = assertThrows(() => requireTools(set), ConfigError);
    texts.push(e.message, e.hint ?? "");
  }
  const keys = new Set<string>();
  for (const t of texts) {
    for (const m of t.matchAll(/\btools\.(?:[\w-]+|<name>)(?:\.[\w-]+)*/g)) keys.add(m[0]);
  }
  for (const k of ["tools.dir", "tools.pg_dump", "tools.mariadb-dump", "tools.mysqldump"]) {
    assert(keys.has(k), `${k} is not among the hinted keys ${[...keys].join(", ")}`);
  }
  for (const key of keys) {
    const path = key.replace("<name>", "pg_dump").split(".").slice(1);
    // tools.X.Y would be { X: { Y: path } }: the value at the end is the path.
    let value: unknown = "/opt/bin/x";
    for (const part of path.slice(1).reverse()) value = { [part]: value };
    const text = stringify({
      instances: [{ id: "a", type: "postgresql", credential: "a", tools: { [path[0]]: value } }],
    });
    parseConfig(text, FILE); // throws when the hinted key is refused
  }
  const misspelt = `instances:
  - id: a
    type: postgresql
    credential: a
    tools:
      paths: { pg_dump: /x }
`;
  assertStringIncludes(errorOf(misspelt), "config.yaml:6:7: instances[0].tools.paths: unknown key");
});

const RETENTION = `retention:
  keep_last: 3
  keep_daily: 7
  keep_within: 36h
  timezone: Europe/Paris
instances:
  - id: pg-main
    type: postgresql
    credential: pg-main
    retention:
      keep_daily: 14
      prune: manual
    retention_overrides:
      shop:
        keep_monthly: 24
        timezone: UTC
  - id: maria
    type: mariadb
    credential: maria
`;

Deno.test("retention merges database over instance over the top level, key by key", () => {
  const { config } = parseConfig(RETENTION, FILE);
  assertEquals(retentionFor(config, "pg-main", "shop"), {
    keep_last: 3,
    keep_daily: 14,
    keep_weekly: 0,
    keep_monthly: 24,
    keep_yearly: 0,
    keep_within: 36 * 3600,
    min_keep: 1,
    timezone: "UTC",
    prune: "manual",
  });
  // Another database of the instance, and its users backups: the instance's block.
  const crm = retentionFor(config, "pg-main", "crm");
  assertEquals([crm?.keep_daily, crm?.keep_monthly, crm?.timezone], [14, 0, "Europe/Paris"]);
  assertEquals(retentionFor(config, "pg-main"), crm);
  // An instance without a block gets the top-level one; prune defaults to after_backup.
  const maria = retentionFor(config, "maria", "shop");
  assertEquals(
    [maria?.keep_last, maria?.keep_daily, maria?.prune, maria?.min_keep],
    [3, 7, "after_backup", 1],
  );
  assertThrows(() => retentionFor(config, "nope"), ConfigError);
});

Deno.test("without any retention block there is no policy, and the timezone defaults to the system's", () => {
  const { config } = parseConfig(BASE, FILE);
  assertEquals(retentionFor(config, "pg-main", "shop"), undefined);
  const withBlock = parseConfig(`retention: { keep_last: 2 }\n${BASE}`, FILE).config;
  assertEquals(
    retentionFor(withBlock, "maria")?.timezone,
    Intl.DateTimeFormat().resolvedOptions().timeZone,
  );
});

Deno.test("retention errors name file:line:column and the field", () => {
  const bad = RETENTION
    .replace("  keep_daily: 7\n", "  keep_daily: -1\n")
    .replace("  timezone: Europe/Paris\n", "  timezone: Mars/Olympus\n")
    .replace("        keep_monthly: 24\n", "        keep_montly: 24\n")
    .replace("      prune: manual\n", "      prune: nightly\n")
    .replace("  keep_within: 36h\n", "  keep_within: 3 months\n");
  const message = errorOf(bad);
  assertStringIncludes(
    message,
    `${FILE}:3:15: retention.keep_daily: expected a whole number >= 0, got -1`,
  );
  assertStringIncludes(
    message,
    `${FILE}:5:13: retention.timezone: expected an IANA time zone such as Europe/Paris or UTC, got "Mars/Olympus"`,
  );
  assertStringIncludes(
    message,
    `${FILE}:4:16: retention.keep_within: expected a duration such as "36h", "7d", "2w" or a whole number of seconds (0 = none), got "3 months"`,
  );
  assertStringIncludes(
    message,
    `${FILE}:12:14: instances[0].retention.prune: expected one of after_backup, manual, got "nightly"`,
  );
  assertStringIncludes(
    message,
    `${FILE}:15:9: instances[0].retention_overrides.shop.keep_montly: unknown key`,
  );
  assertEquals(message.split("\n").length, 5, message);
});

Deno.test("a retention that keeps nothing after merging is an error at the block that empties it", () => {
  const zeroed = RETENTION.replace(
    "        keep_monthly: 24\n",
    "        keep_last: 0\n        keep_daily: 0\n        keep_within: 0\n",
  );
  assertStringIncludes(
    errorOf(zeroed),
    `${FILE}:15:9: instances[0].retention_overrides.shop: this retention keeps nothing (after merging)`,
  );
  // A top-level block that keeps nothing, used by an instance without its own block.
  const top = `retention: { min_keep: 3 }\n${BASE}`;
  assertStringIncludes(errorOf(top), `${FILE}:1:12: retention: this retention keeps nothing`);
  assertEquals(
    assertThrows(() => parseConfig(top, FILE), ConfigValidationError).exitCode,
    3,
  );
});

Deno.test("an overlay may set retention and alerts", () => {
  const text = RETENTION.replace("instances:\n", "alerts: { max_age: 2d }\ninstances:\n") +
    "environments:\n  dev:\n    retention: { keep_daily: 2 }\n    alerts: { max_age: 90m }\n";
  const base = parseConfig(text, FILE).config;
  assertEquals(base.alerts.max_age, 2 * 86400);
  const dev = parseConfig(text, FILE, "dev").config;
  assertEquals(retentionFor(dev, "maria")?.keep_daily, 2);
  assertEquals(dev.alerts.max_age, 90 * 60);
});

Deno.test("alerts.max_age defaults to 26h and refuses 0 and nonsense", () => {
  assertEquals(parseConfig(BASE, FILE).config.alerts.max_age, 26 * 3600);
  assertStringIncludes(
    errorOf(`alerts:\n  max_age: 0\n${BASE}`),
    `${FILE}:2:12: alerts.max_age: expected a duration such as "26h" from 1m to 366d, got 0`,
  );
  assertStringIncludes(
    errorOf(`alerts:\n  max_age: soon\n${BASE}`),
    "alerts.max_age: expected a duration",
  );
});

Deno.test("durations accept weeks and days besides h/m/s", () => {
  assertEquals(
    ["2w", "7d", "36h", "1d12h", "1h30m", "90", 90, "10m"].map(parseDurationSeconds),
    [1209600, 604800, 129600, 129600, 5400, 90, 90, 600],
  );
  assertEquals(["", "3 months", "1y", "-1h", "h"].map(parseDurationSeconds), [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
});

Deno.test("backup.verify and verify.instance: defaults, values, and a target that is missing or of another engine", () => {
  assertEquals(parseConfig(BASE, FILE).config.backup.verify, "none");
  const text = BASE.replace("storage:\n", "backup: { verify: restore }\nstorage:\n")
    .replace(
      "    credential: pg-main\n",
      "    credential: pg-main\n    verify: { instance: maria }\n",
    );
  assertEquals(
    parseConfig(text.replace("instance: maria", "instance: pg-main"), FILE).config
      .instances[0].verify,
    { instance: "pg-main" },
  );
  assertEquals(
    parseConfig(text.replace("instance: maria", "instance: pg-main"), FILE).config
      .backup.verify,
    "restore",
  );
  assertStringIncludes(
    errorOf(text),
    `instances[0].verify.instance: "maria" is a mariadb instance; pg-main is postgresql`,
  );
  assertStringIncludes(
    errorOf(text.replace("instance: maria", "instance: nope")),
    `instances[0].verify.instance: no instance has the id "nope"`,
  );
  assertStringIncludes(
    errorOf(text.replace("verify: restore", "verify: sometimes")),
    "backup.verify: expected one of none, checksum, restore",
  );
});
