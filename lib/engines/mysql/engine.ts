/**
 * The MySQL/MariaDB engine: one family, its products' and versions' differences in
 * ./flavour.ts. Every MySQL/MariaDB specific of the tool is reached through this object (driver
 * side in ./adapter.ts, dump in ./dump.ts, restore target in ./target.ts, accounts in
 * ./users_*.ts and ./grants.ts, tools in ./tools.ts, quoting in ./quote.ts).
 *
 * @module
 */
import type { Engine } from "../types.ts";
import { VERSION } from "../../version.ts";
import { connectMysql } from "./adapter.ts";
import { openMysql, VERBATIM } from "./driver.ts";
import { mysqlDialect } from "./dialect.ts";
import { MYSQL_COMPLETION_MARKER, mysqlDumpCommand } from "./dump.ts";
import type { MysqlFacts } from "./flavour.ts";
import { myIdent } from "./quote.ts";
import { myTarget } from "./target.ts";
import { findMysqlTools } from "./tools.ts";
import { collectMysqlAccounts, isPseudoAccount } from "./users_collect.ts";
import { openMysqlUsersTarget } from "./users_target.ts";

/** Databases every MySQL/MariaDB server has for itself. */
const SYSTEM_DATABASES = ["information_schema", "performance_schema", "mysql", "sys"] as const;

const FLOAT_CAVEAT = "FLOAT columns are dumped with 6 significant digits by " +
  "mysqldump/mariadb-dump; use DOUBLE or DECIMAL for exact values";

/** The engine for one product and version of the family. */
export function mysqlEngine(facts: MysqlFacts): Engine {
  return {
    family: "mysql",
    flavor: facts.flavor,
    label: "MySQL/MariaDB",
    // An instance configured as mysql may well be MariaDB (Debian's "mysql" is); one
    // configured as mariadb must be.
    matchesConfigured: (type) => type === "mysql" || type === facts.flavor,
    connect: connectMysql,
    systemDatabases: SYSTEM_DATABASES,
    isSystemDatabase: (name) => (SYSTEM_DATABASES as readonly string[]).includes(name),
    findTools: (serverMajor, tools, options) => findMysqlTools(facts, serverMajor, tools, options),
    dumpCommand: (tool, params, database, tuning) =>
      mysqlDumpCommand(tool.path, tool.name, facts, params, database, tuning),
    completionMarker: MYSQL_COMPLETION_MARKER,
    dialect: mysqlDialect,
    dumpCaveats: [FLOAT_CAVEAT],
    openRestoreTarget: (params) => myTarget(params),
    ownership: false,
    propertyRoles: () => [],
    filterTargetMajor: () => undefined,
    async collectUsers(o) {
      const conn = await openMysql(o.params, VERBATIM);
      try {
        const got = await collectMysqlAccounts(conn, facts, {
          exclude: o.exclude,
          noPasswords: o.noPasswords,
        });
        return {
          preamble: [],
          sections: got.sections,
          summaries: got.summaries,
          warnings: got.warnings,
          dump: {
            tool: "vya-backupdb",
            path: "",
            tool_version: VERSION,
            options: [
              "SHOW CREATE USER",
              "SHOW GRANTS",
              ...(o.noPasswords ? ["no-passwords"] : []),
            ],
          },
        };
      } finally {
        await conn.end().catch(() => {});
      }
    },
    async listAccounts(params, exclude) {
      const conn = await openMysql(params, VERBATIM);
      try {
        const got = await collectMysqlAccounts(conn, facts, { exclude });
        return got.sections.map((s) =>
          s.account.host ? `${s.account.name}@${s.account.host}` : s.account.name
        );
      } finally {
        await conn.end().catch(() => {});
      }
    },
    openUsersTarget: openMysqlUsersTarget,
    accountsHaveHosts: true,
    isPseudoAccount,
    quoteIdent: myIdent,
  };
}
