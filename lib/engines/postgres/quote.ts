/**
 * Quoting for PostgreSQL statements and libpq connection strings: the one `pgIdent`.
 *
 * @module
 */

/** Quotes an identifier (a double quote inside is doubled). */
export function pgIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a string literal (standard_conforming_strings, the default since 9.1). */
export function pgLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Quotes a value for a libpq connection string. */
export function quoteConninfo(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}
