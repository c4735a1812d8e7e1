/** Pure parts of the users backup: the file format, hash masking, SHOW GRANTS classification. */
import { assert, assertEquals, assertStringIncludes } from "./harness/assert.ts";
import { mysqlDifferences, restoreOrder } from "../lib/users/compare.ts";
import { parseRoleAttributes } from "../lib/engines/postgres/users_compare.ts";
import { myCreateStatements } from "../lib/engines/mysql/target.ts";
import {
  formatUsersFile,
  parseUsersFile,
  type Section,
  type UsersFile,
} from "../lib/users/format.ts";
import { maskHashes } from "../lib/users/mask.ts";
import { classifyGrant, stripAuthClause } from "../lib/engines/mysql/grants.ts";
import { restructurePgDumpall } from "../lib/engines/postgres/users_collect.ts";

Deno.test("users file: round trip, a marker-like line inside a statement stays data", () => {
  const file: UsersFile = {
    header: {
      format: 1,
      engine: "postgresql",
      server_version: "15",
      instance: "x",
      taken_at: "2024-01-01T00:00:00.000Z",
    },
    preamble: ["SET standard_conforming_strings = on;"],
    sections: [{
      account: { name: "app", kind: "user" },
      steps: [
        { phase: "create", sql: "CREATE ROLE app;" },
        { phase: "alter", sql: "COMMENT ON ROLE app IS 'a\n-- vya-backupdb end\nb';" },
      ],
    }],
  };
  assertEquals(parseUsersFile(formatUsersFile(file)), file);
  const cut = formatUsersFile(file).split("\n").slice(0, -3).join("\n");
  let failed = false;
  try {
    parseUsersFile(cut);
  } catch {
    failed = true;
  }
  assert(failed, "a file cut short is refused");
});

Deno.test("users: hashes are masked in every form", () => {
  const text = [
    "CREATE USER `a`@`%` IDENTIFIED BY PASSWORD '*DB14CBAE92D7CB2F84BD3AA7222415B564A4054A'",
    "CREATE USER `e`@`%` IDENTIFIED VIA ed25519 USING 'LIEvGDGjHTmKyz3peLRjPqahOct5n6/BQCNm1bOvot4'",
    "ALTER ROLE x WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc==$def=:ghi='",
    "ALTER ROLE y PASSWORD 'md5" + "0123456789abcdef0123456789abcdef'",
    "CREATE USER m IDENTIFIED WITH 'caching_sha2_password' AS 0x24412430",
  ].join("\n");
  const masked = maskHashes(text);
  for (const secret of ["DB14CB", "LIEvGD", "SCRAM-SHA-256$", "md50123", "0x2441"]) {
    assert(!masked.includes(secret), `${secret} masked`);
  }
});

Deno.test("users: SHOW GRANTS lines are classified and lose their hash", () => {
  const line = "GRANT RELOAD ON *.* TO `ed`@`%` IDENTIFIED VIA ed25519 USING 'LIE' REQUIRE SSL";
  assertEquals(stripAuthClause(line), "GRANT RELOAD ON *.* TO `ed`@`%` REQUIRE SSL");
  assertEquals(
    stripAuthClause(
      "GRANT ALL PRIVILEGES ON *.* TO `r`@`%` IDENTIFIED BY PASSWORD '*4' WITH GRANT OPTION",
    ),
    "GRANT ALL PRIVILEGES ON *.* TO `r`@`%` WITH GRANT OPTION",
  );
  assertEquals(classifyGrant("GRANT SELECT ON `shop`.* TO `r`")?.level, "database");
  const col = classifyGrant("GRANT SELECT (`a ON ``x`), UPDATE (`b`) ON `my db`.`t` TO `c`@`%`");
  assertEquals([col?.phase, col?.database], ["object", "my db"]);
  const proc = classifyGrant("GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `c`@`%`");
  assertEquals([proc?.level, proc?.database], ["routine", "shop"]);
  assertEquals(classifyGrant("GRANT `reader` TO `web`@`%`")?.phase, "member");
  assertEquals(classifyGrant("SET DEFAULT ROLE `reader` FOR `web`@`%`")?.phase, "default-role");
  assertEquals(
    classifyGrant("GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION")?.level,
    "proxy",
  );
});

Deno.test("users: pg_dumpall output is split per role by statement structure", () => {
  const dump = restructurePgDumpall([
    "\\restrict abc",
    "SET standard_conforming_strings = on;",
    'CREATE ROLE "Odd ""x""";',
    'ALTER ROLE "Odd ""x""" WITH LOGIN PASSWORD \'SCRAM-SHA-256$1\';',
    "COMMENT ON ROLE app IS 'it''s; -- not a comment",
    "still the comment';",
    "GRANT grp TO app WITH ADMIN OPTION GRANTED BY postgres;",
    "GRANT SET ON PARAMETER work_mem TO app;",
    "\\unrestrict abc",
  ].join("\n"));
  assertEquals(dump.preamble, ["SET standard_conforming_strings = on;"]);
  assertEquals([...dump.byRole.keys()], ['Odd "x"', "app"]);
  assertEquals(dump.byRole.get("app")!.map((s) => s.phase), ["alter", "member", "grant"]);
  assertEquals(dump.unattributed, []);
});

Deno.test("existing account vs backup: waiting grants are not missing, hashes never shown", () => {
  const backup = [
    { phase: "create" as const, sql: "CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*AB';" },
    { phase: "grant" as const, sql: "GRANT RELOAD ON *.* TO `u`@`%`;" },
    {
      phase: "object" as const,
      database: "shop",
      sql: "GRANT SELECT (`b`, `a`) ON `shop`.`t` TO `u`@`%`;",
    },
    { phase: "object" as const, database: "gone", sql: "GRANT SELECT ON `gone`.`t` TO `u`@`%`;" },
  ];
  const same = [
    { phase: "create" as const, sql: "CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*AB';" },
    {
      phase: "object" as const,
      database: "shop",
      sql: "GRANT SELECT (`a`, `b`) ON `shop`.`t` TO `u`@`%`;",
    },
    { phase: "grant" as const, sql: "GRANT RELOAD ON *.* TO `u`@`%`;" },
  ];
  const databaseExists = (db: string) => db === "shop";
  assertEquals(mysqlDifferences(backup, same, { databaseExists }), []);
  const changed = [
    { phase: "create" as const, sql: "CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*CD';" },
    { phase: "grant" as const, sql: "GRANT PROCESS ON *.* TO `u`@`%`;" },
  ];
  const diff = mysqlDifferences(backup, changed, { databaseExists });
  assertEquals(diff, [
    "CREATE USER differs (password, plugin, limits, locking or TLS; see SHOW CREATE USER)",
    "missing grants: GRANT RELOAD ON *.* TO `u`@`%`; GRANT SELECT (`a`, `b`) ON `shop`.`t` TO `u`@`%`",
    "grants not in the backup: GRANT PROCESS ON *.* TO `u`@`%`",
  ]);
  assert(!diff.join().includes("*CD"), "no hash in the differences");
  // Taken with --no-role-passwords: the password set since is not a difference.
  const noPw = [{ phase: "create" as const, sql: "CREATE USER `u`@`%` ACCOUNT LOCK;" }];
  assertEquals(mysqlDifferences(noPw, [changed[0]], { databaseExists }), []);
});

Deno.test("restore order: roles before the accounts naming them, file order otherwise", () => {
  const sec = (name: string, host: string | undefined, sql: string[]): { section: Section } => ({
    section: {
      account: { name, host, kind: "role" },
      steps: sql.map((s) => ({ phase: s.startsWith("SET") ? "default-role" : "member", sql: s })),
    },
  });
  const my = [
    sec("u", "%", ["GRANT `a`, `m`@`%` TO `u`@`%`;", "SET DEFAULT ROLE `a` FOR `u`@`%`;"]),
    sec("a", "", ["GRANT `z` TO `a`;"]),
    sec("m", "%", []),
    sec("z", "", []),
  ];
  assertEquals(restoreOrder(my, false).map((x) => x.section.account.name), ["z", "a", "m", "u"]);
  const pg = [
    sec("app", undefined, ['GRANT grp TO app WITH INHERIT TRUE GRANTED BY "Owner";']),
    sec("grp", undefined, []),
    sec("Owner", undefined, []),
  ];
  assertEquals(restoreOrder(pg, true).map((x) => x.section.account.name), ["grp", "Owner", "app"]);
});

Deno.test("PostgreSQL role attributes are read from pg_dumpall's ALTER ROLE line", () => {
  const a = parseRoleAttributes(
    "ALTER ROLE app WITH NOSUPERUSER INHERIT LOGIN CONNECTION LIMIT 5 PASSWORD 'SCRAM-x' " +
      "VALID UNTIL '2099-01-01 00:00:00+00';",
  )!;
  assertEquals(a.flags.get("SUPERUSER"), false);
  assertEquals(a.flags.get("LOGIN"), true);
  assertEquals(a.connectionLimit, 5);
  assertEquals(a.password, "SCRAM-x");
  assertEquals(a.validUntil, "2099-01-01 00:00:00+00");
  assertEquals(parseRoleAttributes("ALTER ROLE app SET x = 1;"), undefined);
});

Deno.test("MariaDB database comment: quotes doubled, backslashes only under a known sql_mode", () => {
  const plain = myCreateStatements("d", { character_set: "utf8mb4", comment: "it's ★" });
  assertEquals(plain, ["CREATE DATABASE `d` CHARACTER SET utf8mb4 COMMENT 'it''s ★'"]);
  const bs = myCreateStatements("d", { comment: "a\\b" });
  assertEquals(bs.length, 4);
  assertEquals(bs[2], "CREATE DATABASE `d` COMMENT 'a\\\\b'");
  assertStringIncludes(bs[1], "NO_BACKSLASH_ESCAPES");
  assertEquals(myCreateStatements("d", { comment: "" }), ["CREATE DATABASE `d`"]);
});
