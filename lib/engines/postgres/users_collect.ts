/**
 * PostgreSQL roles: `pg_dumpall --roles-only` (run as a child, password through PGPASSWORD),
 * restructured into one section per role by its statement structure:
 * `CREATE ROLE x;` and `ALTER ROLE x …` / `COMMENT ON ROLE x` / `SECURITY LABEL … ON ROLE x`
 * belong to x, `GRANT a TO x …` (memberships, parameter privileges) to the grantee x.
 *
 * pg_dumpall 15 prints attributes with the password hash (`ALTER ROLE … WITH … PASSWORD '…'`),
 * role settings (`ALTER ROLE … SET`), memberships with their grantor and admin option, and
 * `GRANT SET ON PARAMETER`; that is everything a rebuild needs at cluster level. Object
 * privileges, ownership and default privileges live in each database's dump; database-level
 * settings per role (`ALTER ROLE … IN DATABASE`) are kept with the database's metadata.
 * `pg_*` roles are never dumped by pg_dumpall; the bootstrap superuser (oid 10) is marked so
 * `users restore --all` does not try to create it on a server that has it.
 *
 * @module
 */
import type { ConnectionParams } from "../../config/types.ts";
import { pgConninfo, pgEnv } from "./dump.ts";
import { runTool } from "../../process.ts";
import { redact } from "../../redact.ts";
import { DumpError } from "../../backup/stream_dump.ts";
import type { AccountRef, Phase, Section, Step } from "../../users/format.ts";
import { isWord, type Token, tokenize } from "../sql_tokens.ts";
import { excludedAccount } from "../select.ts";
import type { AccountSummary } from "../../users/summary.ts";

/** pg_dumpall's last words when it finished. */
export const PG_DUMPALL_MARKER = "PostgreSQL database cluster dump complete";

/** Splits SQL text into statements (each with its `;`), dropping comments and psql meta lines. */
export function splitPgStatements(text: string): string[] {
  const statements: string[] = [];
  let current = "";
  let i = 0;
  let atLineStart = true;
  while (i < text.length) {
    const ch = text[i];
    if (atLineStart && current.trim() === "" && ch === "\\") {
      // psql meta-command (\restrict, \connect): to the end of the line.
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl + 1;
      current = "";
      continue;
    }
    atLineStart = false;
    if (ch === "-" && text[i + 1] === "-") {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
      continue;
    }
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < text.length) {
        if (text[j] === ch && text[j + 1] === ch) j += 2;
        else if (text[j] === ch) break;
        else j++;
      }
      current += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (ch === ";") {
      const stmt = (current + ";").trim();
      if (stmt !== ";") statements.push(stmt);
      current = "";
      i++;
      continue;
    }
    if (ch === "\n") atLineStart = true;
    current += ch;
    i++;
  }
  return statements;
}

/** The role a statement of pg_dumpall's roles output is about, and its phase. */
export function classifyPgStatement(
  sql: string,
): { role: string; phase: Phase; database?: string } | "session" | undefined {
  const t = tokenize(sql, { pg: true });
  const name = (tok: Token | undefined) => tok?.value;
  if (isWord(t[0], "SET")) return "session";
  if (isWord(t[0], "CREATE") && isWord(t[1], "ROLE")) return { role: name(t[2])!, phase: "create" };
  if (isWord(t[0], "ALTER") && isWord(t[1], "ROLE")) {
    if (isWord(t[3], "IN") && isWord(t[4], "DATABASE")) {
      return { role: name(t[2])!, phase: "object", database: name(t[5]) };
    }
    return { role: name(t[2])!, phase: "alter" };
  }
  if (isWord(t[0], "COMMENT") && isWord(t[2], "ROLE")) return { role: name(t[3])!, phase: "alter" };
  if (isWord(t[0], "SECURITY") && isWord(t[1], "LABEL")) {
    const on = t.findIndex((x) => isWord(x, "ROLE"));
    if (on > 0) return { role: name(t[on + 1])!, phase: "alter" };
  }
  if (isWord(t[0], "GRANT")) {
    const on = t.findIndex((x) => isWord(x, "ON"));
    const to = t.findIndex((x) => isWord(x, "TO"));
    if (to > 0) {
      return {
        role: name(t[to + 1])!,
        phase: on > 0 && on < to ? "grant" : "member",
      };
    }
  }
  return undefined;
}

/** The parts of pg_dumpall's output. */
export interface PgRolesDump {
  /** Session settings to run first. */
  preamble: string[];
  /** Statements grouped per role, in the order roles were created. */
  byRole: Map<string, { phase: Phase; database?: string; sql: string }[]>;
  /** Statements that could not be attributed to a role (kept, reported). */
  unattributed: string[];
}

/** Restructures pg_dumpall --roles-only output per role. */
export function restructurePgDumpall(text: string): PgRolesDump {
  const result: PgRolesDump = { preamble: [], byRole: new Map(), unattributed: [] };
  for (const sql of splitPgStatements(text)) {
    const c = classifyPgStatement(sql);
    if (c === "session") {
      result.preamble.push(sql);
    } else if (!c) {
      result.unattributed.push(sql);
    } else {
      if (!result.byRole.has(c.role)) result.byRole.set(c.role, []);
      result.byRole.get(c.role)!.push({
        phase: c.phase,
        ...(c.database !== undefined ? { database: c.database } : {}),
        sql,
      });
    }
  }
  return result;
}

/** What {@linkcode collectPgRoles} returns. */
export interface PgCollected {
  /** Session settings. */
  preamble: string[];
  /** Sections per role. */
  sections: Section[];
  /** Metadata summaries (no hash). */
  summaries: AccountSummary[];
  /** Warnings (unattributed statements, …). */
  warnings: string[];
  /** pg_dumpall options used (for the metadata). */
  options: string[];
}

/** Catalog facts of one role, read with the driver. */
export interface PgRoleFacts {
  /** Role name. */
  name: string;
  /** Can log in. */
  login: boolean;
  /** Attributes as keywords. */
  attributes: string[];
  /** Password hash method, or null when none (or unreadable). */
  method: string | null;
  /** Roles it is a member of. */
  memberOf: string[];
  /** The bootstrap superuser. */
  bootstrap: boolean;
}

/** Runs pg_dumpall --roles-only and builds the per-role sections. */
export async function collectPgRoles(
  toolPath: string,
  params: ConnectionParams,
  facts: PgRoleFacts[],
  options: { exclude: readonly string[]; noPasswords?: boolean },
): Promise<PgCollected> {
  const dumpOptions = ["--roles-only", "--no-password"];
  if (options.noPasswords) dumpOptions.push("--no-role-passwords");
  const out = await runTool({
    cmd: toolPath,
    args: [...dumpOptions, `--dbname=${pgConninfo(params, "postgres")}`],
    env: pgEnv(params),
  });
  if (out.code !== 0) {
    throw new DumpError(`pg_dumpall exited with code ${out.code}: ${redact(out.stderr.trim())}`);
  }
  if (!out.stdout.includes(PG_DUMPALL_MARKER)) {
    throw new DumpError(`pg_dumpall exited 0 but its output lacks "${PG_DUMPALL_MARKER}"`);
  }
  const dump = restructurePgDumpall(out.stdout);
  const warnings: string[] = [];
  for (const sql of dump.unattributed) {
    warnings.push(`statement not attributed to a role, left out: ${sql.slice(0, 80)}`);
  }
  if (options.noPasswords) {
    warnings.push("taken with --no-role-passwords: roles are restored without password");
  }
  const factsByName = new Map(facts.map((f) => [f.name, f]));
  const sections: Section[] = [];
  const summaries: AccountSummary[] = [];
  for (const [role, statements] of dump.byRole) {
    if (excludedAccount(options.exclude, role)) continue;
    const f = factsByName.get(role);
    const account: AccountRef = { name: role, kind: f && !f.login ? "role" : "user" };
    if (f?.bootstrap) account.bootstrap = true;
    const steps: Step[] = statements.map((s) => ({ ...s }));
    sections.push({ account, steps });
    summaries.push({
      name: role,
      kind: account.kind,
      ...(account.bootstrap ? { bootstrap: true } : {}),
      plugin: options.noPasswords ? null : f?.method ?? null,
      has_password: !options.noPasswords && Boolean(f?.method),
      roles: f?.memberOf ?? [],
      attributes: f?.attributes ?? [],
    });
  }
  // Roles without login first: memberships name them (all CREATEs run first anyway).
  const order = sections.map((s, i) => ({ s, sum: summaries[i], i }))
    .sort((a, b) =>
      (a.s.account.kind === "role" ? 0 : 1) - (b.s.account.kind === "role" ? 0 : 1) || a.i - b.i
    );
  return {
    preamble: dump.preamble,
    sections: order.map((x) => x.s),
    summaries: order.map((x) => x.sum),
    warnings,
    options: dumpOptions,
  };
}
