/**
 * The users backup file: plain SQL, split into one section per account by marker comments, so
 * one account can be restored without parsing SQL heuristically.
 *
 * ```
 * -- vya-backupdb users: {"format":1,"engine":"mariadb",...}
 * -- (free comment lines describing the format)
 * -- vya-backupdb preamble: {"lines":3}
 * SET ...;                                  (session settings run before anything, PostgreSQL)
 * -- vya-backupdb account: {"name":"app","host":"10.0.%","kind":"user"}
 * -- vya-backupdb step: {"phase":"create","lines":1}
 * CREATE USER `app`@`10.0.%` IDENTIFIED BY PASSWORD '*…';
 * -- vya-backupdb step: {"phase":"object","database":"shop","lines":1}
 * GRANT SELECT (`a`) ON `shop`.`t` TO `app`@`10.0.%`;
 * ```
 *
 * Every step marker says how many lines its statement has: a statement is read by count, never
 * by looking for the next marker, so a multi-line string inside a statement (a role comment)
 * cannot be taken for a marker.
 *
 * @module
 */

/** Version of the file format. */
export const USERS_FORMAT_VERSION = 1;

/** Prefix of every marker line. */
const MARK = "-- vya-backupdb ";

/**
 * When a statement runs on restore, in this order:
 * - `create`: CREATE USER / CREATE ROLE (roles' sections come first)
 * - `alter`: role attributes, password, comment, settings (PostgreSQL)
 * - `grant`: global and database-level privileges, proxy grants, parameter privileges
 * - `member`: role memberships (GRANT role TO …)
 * - `default-role`: MariaDB/MySQL default roles
 * - `object`: table, column and routine privileges; they need their database (`database`)
 */
export type Phase = "create" | "alter" | "grant" | "member" | "default-role" | "object";

/** The restore order of phases. */
export const PHASES: readonly Phase[] = [
  "create",
  "alter",
  "grant",
  "member",
  "default-role",
  "object",
];

/** One statement of an account. */
export interface Step {
  /** When it runs. */
  phase: Phase;
  /** The database it needs to exist (object privileges). */
  database?: string;
  /** The SQL, ending with `;`. */
  sql: string;
}

/** Who a section is about. */
export interface AccountRef {
  /** User or role name. */
  name: string;
  /** MySQL/MariaDB host part ("" for MariaDB roles); absent for PostgreSQL. */
  host?: string;
  /** A role (group) or a user (login). PostgreSQL roles that can log in are `user`. */
  kind: "user" | "role";
  /**
   * An account every fresh server already has (PostgreSQL's bootstrap superuser, MySQL's
   * root@localhost): `--all` creates it only when it is missing.
   */
  bootstrap?: boolean;
  /**
   * MariaDB's PUBLIC (10.11+): a pseudo-role every server has, standing for every account. It
   * is never created or dropped; only its privileges are granted (`GRANT … TO PUBLIC`).
   */
  pseudo?: boolean;
}

/** One account's section. */
export interface Section {
  /** The account. */
  account: AccountRef;
  /** Its statements, in file order. */
  steps: Step[];
}

/** What the first line of the file says. */
export interface UsersHeader {
  /** {@linkcode USERS_FORMAT_VERSION}. */
  format: number;
  /** postgresql, mysql or mariadb. */
  engine: string;
  /** Version of the server it was taken from. */
  server_version: string;
  /** Instance id. */
  instance: string;
  /** ISO-8601 UTC. */
  taken_at: string;
}

/** A whole users file. */
export interface UsersFile {
  /** The header. */
  header: UsersHeader;
  /** Session settings run before any statement (PostgreSQL: pg_dumpall's SET lines). */
  preamble: string[];
  /** Sections, in restore order of their creation (roles first). */
  sections: Section[];
}

/** The display name of an account: `user@host` for MySQL/MariaDB, the role name otherwise. */
export function accountLabel(a: Pick<AccountRef, "name" | "host">): string {
  return a.host === undefined ? a.name : `${a.name}@${a.host}`;
}

const DESCRIPTION = [
  "-- Users and roles backup written by vya-backupdb.",
  "-- One section per account starts with a line '-- vya-backupdb account: {json}' (name, host for",
  "-- MySQL/MariaDB, kind user|role, bootstrap, pseudo for MariaDB's PUBLIC, which is never",
  "-- created: only granted to). Each statement is preceded by",
  "-- '-- vya-backupdb step: {json}' giving its phase (create, alter, grant, member, default-role,",
  "-- object), the database an object privilege needs, and its number of lines.",
  "-- Restore with: vya-backupdb users restore --instance ID (--all | --user NAME) --file THIS",
];

function lineCount(sql: string): number {
  return sql.split("\n").length;
}

/** Serialises a users file. */
export function formatUsersFile(file: UsersFile): string {
  const out: string[] = [`${MARK}users: ${JSON.stringify(file.header)}`, ...DESCRIPTION];
  if (file.preamble.length) {
    const text = file.preamble.join("\n");
    out.push(`${MARK}preamble: ${JSON.stringify({ lines: lineCount(text) })}`, text);
  }
  for (const section of file.sections) {
    out.push("", `${MARK}account: ${JSON.stringify(section.account)}`);
    for (const step of section.steps) {
      const meta: Record<string, unknown> = { phase: step.phase };
      if (step.database !== undefined) meta.database = step.database;
      meta.lines = lineCount(step.sql);
      out.push(`${MARK}step: ${JSON.stringify(meta)}`, step.sql);
    }
  }
  out.push("", `${MARK}end`, "");
  return out.join("\n");
}

/** The file is not a users backup of this format, or is damaged. */
export class UsersFormatError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsersFormatError";
  }
}

function parseJson<T>(text: string, line: number): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new UsersFormatError(`line ${line}: marker is not valid JSON`);
  }
}

/** Parses a users file; throws {@linkcode UsersFormatError} when it is not one or is cut short. */
export function parseUsersFile(text: string): UsersFile {
  const lines = text.split("\n");
  const first = lines[0] ?? "";
  if (!first.startsWith(`${MARK}users: `)) {
    throw new UsersFormatError("not a vya-backupdb users backup (first line)");
  }
  const header = parseJson<UsersHeader>(first.slice(`${MARK}users: `.length), 1);
  if (header.format !== USERS_FORMAT_VERSION) {
    throw new UsersFormatError(`users backup format ${header.format} is not supported`);
  }
  const file: UsersFile = { header, preamble: [], sections: [] };
  let current: Section | undefined;
  let ended = false;
  const take = (at: number, count: number): string => {
    if (at + count > lines.length) throw new UsersFormatError(`line ${at}: statement cut short`);
    return lines.slice(at, at + count).join("\n");
  };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (!line.startsWith(MARK)) continue;
    const rest = line.slice(MARK.length);
    if (rest === "end") {
      ended = true;
      break;
    }
    const colon = rest.indexOf(": ");
    const kind = colon < 0 ? rest : rest.slice(0, colon);
    const body = colon < 0 ? "{}" : rest.slice(colon + 2);
    if (kind === "preamble") {
      const { lines: n } = parseJson<{ lines: number }>(body, i + 1);
      file.preamble = take(i + 1, n).split("\n").filter((l) => l.trim());
      i += n;
    } else if (kind === "account") {
      current = { account: parseJson<AccountRef>(body, i + 1), steps: [] };
      file.sections.push(current);
    } else if (kind === "step") {
      if (!current) throw new UsersFormatError(`line ${i + 1}: statement outside an account`);
      const meta = parseJson<{ phase: Phase; database?: string; lines: number }>(body, i + 1);
      if (!PHASES.includes(meta.phase)) {
        throw new UsersFormatError(`line ${i + 1}: unknown phase ${meta.phase}`);
      }
      const step: Step = { phase: meta.phase, sql: take(i + 1, meta.lines) };
      if (meta.database !== undefined) step.database = meta.database;
      current.steps.push(step);
      i += meta.lines;
    }
  }
  if (!ended) throw new UsersFormatError("the file is cut short (no end marker)");
  return file;
}
