/**
 * Password hashes in account statements: found so they can be registered with the redactor,
 * and masked for anything shown (dry-run listings, error messages).
 *
 * A hash is not a password, but it is enough to log in to MySQL with `mysql_native_password`
 * (the hash is the credential) and to attack offline; it is treated like a secret.
 *
 * @module
 */
import { MASK, redactor } from "../redact.ts";

// Quoted literals that carry a hash, by the clause that introduces them.
const QUOTED_HASH = /\b(PASSWORD\s+|USING\s+|\bAS\s+)('(?:[^']|'')*'|0x[0-9A-Fa-f]+)/gi;
// Bare hash shapes, wherever they appear (a server error message quoting a statement).
const BARE_HASHES = [
  /SCRAM-SHA-256\$[^'\s;]+/g,
  /\bmd5[0-9a-f]{32}\b/g,
  /\*[0-9A-F]{40}\b/g,
];

/** Masks every password hash in SQL text. */
export function maskHashes(sql: string): string {
  let out = sql.replace(QUOTED_HASH, (_m, clause: string) => `${clause}'${MASK}'`);
  for (const pattern of BARE_HASHES) out = out.replace(pattern, MASK);
  return out;
}

/** The hash literals in SQL text (unquoted), for {@linkcode registerHashes}. */
export function findHashes(sql: string): string[] {
  const found: string[] = [];
  for (const m of sql.matchAll(QUOTED_HASH)) {
    const literal = m[2];
    const value = literal.startsWith("'") ? literal.slice(1, -1).replaceAll("''", "'") : literal;
    if (value.length >= 8) found.push(value);
  }
  for (const pattern of BARE_HASHES) {
    for (const m of sql.matchAll(pattern)) found.push(m[0]);
  }
  return found;
}

/** Registers every hash of the statements with the process-wide redactor. */
export function registerHashes(statements: Iterable<string>): void {
  for (const sql of statements) for (const hash of findHashes(sql)) redactor.addSecret(hash);
}
