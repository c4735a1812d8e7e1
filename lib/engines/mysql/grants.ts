/**
 * Reading the statements MySQL/MariaDB print for an account (`SHOW CREATE USER`, `SHOW GRANTS`):
 * which phase of a restore each belongs to, which database an object privilege needs, and the
 * authentication clause that `SHOW GRANTS` repeats (with the hash) on MariaDB.
 *
 * The server prints these in a canonical form (identifiers in backticks, strings in single
 * quotes); a small tokenizer that skips quoted text is enough to find the top-level keywords.
 *
 * @module
 */
import type { Phase } from "../../users/format.ts";
import { isWord, tokenize } from "../sql_tokens.ts";

/** What one `SHOW GRANTS` line is. */
export interface GrantInfo {
  /** The restore phase. */
  phase: Phase;
  /** global, database, table, routine, proxy, role or default-role. */
  level: "global" | "database" | "table" | "routine" | "proxy" | "role" | "default-role";
  /** The database of a database-, table- or routine-level privilege. */
  database?: string;
  /** The statement without its authentication clause (no hash), without trailing `;`. */
  sql: string;
  /** `GRANT USAGE ON *.*` and nothing else: already implied by CREATE USER. */
  usageOnly: boolean;
}

/**
 * Classifies a `SHOW GRANTS` line. Returns undefined for lines that are not GRANT or
 * SET DEFAULT ROLE statements.
 */
export function classifyGrant(line: string): GrantInfo | undefined {
  const sql = stripAuthClause(line.trim().replace(/;$/, ""));
  const tokens = tokenize(sql);
  if (isWord(tokens[0], "SET") && isWord(tokens[1], "DEFAULT") && isWord(tokens[2], "ROLE")) {
    return { phase: "default-role", level: "default-role", sql, usageOnly: false };
  }
  if (!isWord(tokens[0], "GRANT")) return undefined;
  const on = tokens.findIndex((t) => isWord(t, "ON"));
  const to = tokens.findIndex((t) => isWord(t, "TO"));
  if (on < 0 || (to >= 0 && to < on)) {
    // GRANT `role` TO …: no ON clause.
    return { phase: "member", level: "role", sql, usageOnly: false };
  }
  if (isWord(tokens[1], "PROXY") && on === 2) {
    return { phase: "grant", level: "proxy", sql, usageOnly: false };
  }
  let at = on + 1;
  let routine = false;
  if (isWord(tokens[at], "PROCEDURE", "FUNCTION", "PACKAGE")) {
    routine = true;
    at++;
    if (isWord(tokens[at], "BODY")) at++;
  }
  const db = tokens[at];
  const dot = tokens[at + 1];
  const obj = tokens[at + 2];
  const privileges = sql.slice(tokens[1].start, tokens[on].start).trim();
  const usageOnly = /^USAGE$/i.test(privileges);
  if (db?.type === "word" && db.value.startsWith("*")) {
    // `*.*` tokenizes as "*" "." "*" or "*.*" depending on spacing; either way: global.
    return { phase: "grant", level: "global", sql, usageOnly };
  }
  const database = db?.type === "ident" ? db.value : db?.value;
  const isDot = dot?.value === "." || dot?.value?.startsWith(".");
  if (!routine && isDot && obj?.value === "*") {
    return { phase: "grant", level: "database", database, sql, usageOnly };
  }
  return {
    phase: "object",
    level: routine ? "routine" : "table",
    database,
    sql,
    usageOnly: false,
  };
}

/**
 * Removes MariaDB's `IDENTIFIED BY PASSWORD '…'` / `IDENTIFIED VIA … [USING '…'] [OR …]` from a
 * GRANT line: the account's CREATE USER already carries it, and a grant must not carry a hash.
 */
export function stripAuthClause(sql: string): string {
  const tokens = tokenize(sql);
  const to = tokens.findIndex((t) => isWord(t, "TO"));
  if (to < 0) return sql;
  const from = tokens.findIndex((t, i) => i > to && isWord(t, "IDENTIFIED"));
  if (from < 0) return sql;
  let end = tokens.length;
  for (let i = from + 1; i < tokens.length; i++) {
    if (isWord(tokens[i], "REQUIRE", "WITH", "PASSWORD", "ACCOUNT")) {
      // `IDENTIFIED BY PASSWORD` has PASSWORD right after BY: that one belongs to the clause.
      if (isWord(tokens[i], "PASSWORD") && isWord(tokens[i - 1], "BY")) continue;
      end = i;
      break;
    }
  }
  const cutEnd = end < tokens.length ? tokens[end].start : sql.length;
  return (sql.slice(0, tokens[from].start).trimEnd() + " " + sql.slice(cutEnd)).trim();
}

/**
 * Removes the authentication clause from a CREATE USER statement (for `--no-role-passwords`)
 * and makes sure the account is created locked: an account without its password must not be
 * usable by anyone until an administrator sets one.
 */
export function withoutPassword(createUser: string): string {
  const tokens = tokenize(createUser);
  const from = tokens.findIndex((t) => isWord(t, "IDENTIFIED"));
  let sql = createUser;
  if (from >= 0) {
    let end = tokens.length;
    for (let i = from + 1; i < tokens.length; i++) {
      if (isWord(tokens[i], "REQUIRE", "WITH", "ACCOUNT", "DEFAULT", "COMMENT", "ATTRIBUTE")) {
        end = i;
        break;
      }
      if (isWord(tokens[i], "PASSWORD") && !isWord(tokens[i - 1], "BY")) {
        end = i;
        break;
      }
    }
    const cutEnd = end < tokens.length ? tokens[end].start : createUser.length;
    sql = (createUser.slice(0, tokens[from].start).trimEnd() + " " + createUser.slice(cutEnd))
      .trim();
  }
  sql = sql.replace(/\s+ACCOUNT\s+UNLOCK\b/i, "");
  if (!/\bACCOUNT\s+LOCK\b/i.test(sql)) sql += " ACCOUNT LOCK";
  return sql;
}
