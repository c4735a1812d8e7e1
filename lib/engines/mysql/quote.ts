/**
 * Quoting for MySQL/MariaDB statements: the one backtick quote of identifiers and accounts.
 *
 * @module
 */

/** Quotes an identifier with backticks (a backtick inside is doubled). */
export function myIdent(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}

/** Quotes an account `user@host` the way the server prints it. */
export function quoteAccount(user: string, host: string): string {
  return `${myIdent(user)}@${myIdent(host)}`;
}
