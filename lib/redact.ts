/**
 * One redaction layer for everything the tool prints: logs, error messages and the stderr of
 * child processes. It masks the secret values known to this run (decrypted passwords), and
 * secret-looking pairs and URL credentials it has never been told about.
 *
 * @module
 */

/** What a masked value is replaced with. */
export const MASK = "********";

const PAIR_PATTERN =
  /\b((?:password|passwd|pwd|secret|token|pass|identified by(?: password)?|PGPASSWORD|MYSQL_PWD)\s*[=:]?\s*)('[^']*'|"[^"]*"|[^\s,;&'"]+)/gi;
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
    return out;
  }
}

/** The process-wide redactor: credentials register their secrets here as they are decrypted. */
export const redactor: Redactor = new Redactor();

/** Redacts text with the process-wide {@linkcode redactor}. */
export function redact(text: string): string {
  return redactor.redact(text);
}
