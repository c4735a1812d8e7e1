/**
 * One redaction layer for everything the tool prints: logs, error messages and the stderr of
 * child processes. It masks the secret values known to this run (decrypted passwords), and
 * secret-looking pairs and URL credentials it has never been told about.
 *
 * @module
 */

/** What a masked value is replaced with. */
export const MASK = "********";

// `key=value` / `key: value` pairs; the separator is required so that a path such as
// `.secrets/x` is not taken for a secret.
const PAIR_PATTERN =
  /\b((?:password|passwd|pwd|secret|token|PGPASSWORD|MYSQL_PWD)\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s,;&'"]+)/gi;
// SQL: IDENTIFIED BY 'x', IDENTIFIED BY PASSWORD '*hash', PASSWORD 'x', USING 'hash', AS 'hash'.
const SQL_SECRET =
  /\b((?:identified\s+by(?:\s+password)?|password|using|as)\s+)('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")/gi;
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]+):([^@/?#\s]+)@/gi;

/** Masks secret values in text. */
export class Redactor {
  #secrets = new Set<string>();

  /** Registers a value that must never be printed. Values shorter than 4 characters are kept too. */
  addSecret(value: string | undefined | null): void {
    if (value) this.#secrets.add(value);
  }

  /** Whether any secret is registered. */
  get size(): number {
    return this.#secrets.size;
  }

  /** Returns the text with every known secret, secret pair and URL password masked. */
  redact(text: string): string {
    let out = text;
    // Longest first, so a secret that contains another is masked whole.
    const secrets = [...this.#secrets].sort((a, b) => b.length - a.length);
    for (const secret of secrets) out = out.split(secret).join(MASK);
    out = out.replace(URL_CREDENTIALS, `$1:${MASK}@`);
    out = out.replace(PAIR_PATTERN, (_m, key: string) => `${key}${MASK}`);
    out = out.replace(SQL_SECRET, (_m, key: string) => `${key}'${MASK}'`);
    return out;
  }
}

/** The process-wide redactor: credentials register their secrets here as they are decrypted. */
export const redactor: Redactor = new Redactor();

/** Redacts text with the process-wide {@linkcode redactor}. */
export function redact(text: string): string {
  return redactor.redact(text);
}
