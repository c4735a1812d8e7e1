/**
 * The PostgreSQL engine: every PostgreSQL specific of the tool is reached through this object
 * (driver side in ./adapter.ts, dump in ./dump.ts, restore target in ./target.ts, roles in
 * ./users_*.ts, tools in ./tools.ts, quoting in ./quote.ts).
 *
 * @module
 */
import type { Engine } from "../types.ts";
import { connectPostgres } from "./adapter.ts";
import { openPostgres } from "./driver.ts";
import { postgresDialect } from "./dialect.ts";
import { PG_COMPLETION_MARKER, pgDumpCommand } from "./dump.ts";
import { pgIdent } from "./quote.ts";
import { pgPropertyRoles, pgTarget } from "./target.ts";
import { findPgTools } from "./tools.ts";
import { requireTools } from "../../tools/find.ts";
import { collectPgRoles } from "./users_collect.ts";
import { readRoleFacts } from "./users_roles.ts";
import { openPgUsersTarget } from "./users_target.ts";

/** Databases every PostgreSQL server has for itself. */
const SYSTEM_DATABASES = ["template0", "template1", "postgres"] as const;

/** The PostgreSQL engine (one for every major: per-version rules live where they apply). */
export const postgresEngine: Engine = {
  family: "postgresql",
  flavor: "postgresql",
  label: "PostgreSQL",
  matchesConfigured: (type) => type === "postgresql",
  connect: connectPostgres,
  systemDatabases: SYSTEM_DATABASES,
  isSystemDatabase: (name) => (SYSTEM_DATABASES as readonly string[]).includes(name),
  findTools: findPgTools,
  dumpCommand: (tool, params, database, tuning) =>
    Promise.resolve(pgDumpCommand(tool.path, params, database, tuning)),
  completionMarker: PG_COMPLETION_MARKER,
  dialect: postgresDialect,
  dumpCaveats: [],
  openRestoreTarget: pgTarget,
  ownership: true,
  propertyRoles: pgPropertyRoles,
  filterTargetMajor: (serverMajor) => serverMajor,
  async collectUsers(o) {
    const set = await findPgTools(o.serverMajor, o.tools, { roles: ["dumpall"] });
    const tools = requireTools(set);
    const sql = await openPostgres(o.params);
    try {
      const facts = await readRoleFacts(sql);
      const roles = await collectPgRoles(tools.dumpall!, o.params, facts, {
        exclude: o.exclude,
        noPasswords: o.noPasswords,
      });
      return {
        preamble: roles.preamble,
        sections: roles.sections,
        summaries: roles.summaries,
        warnings: roles.warnings,
        dump: {
          tool: "pg_dumpall",
          path: tools.dumpall!,
          tool_version: set.tools.dumpall?.version ?? "",
          options: roles.options,
        },
      };
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
  },
  async listAccounts(params) {
    const sql = await openPostgres(params);
    try {
      return (await readRoleFacts(sql)).map((f) => f.name);
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
  },
  openUsersTarget: openPgUsersTarget,
  accountsHaveHosts: false,
  isPseudoAccount: (account) => Boolean(account.pseudo),
  quoteIdent: pgIdent,
};
