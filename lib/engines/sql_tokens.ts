/**
 * A small tokenizer for statements a server prints (`SHOW GRANTS`, pg_dumpall): enough to find
 * top-level keywords while skipping quoted identifiers and strings. Shared by both families.
 *
 * @module
 */
/** A token of a server-printed statement. */
export interface Token {
  /** `ident` (backtick-quoted), `string` (single-quoted), `word`, `punct`. */
  type: "ident" | "string" | "word" | "punct";
  /** The text (identifiers and strings unquoted). */
  value: string;
  /** Offset of the first character. */
  start: number;
  /** Offset after the last character. */
  end: number;
}

/**
 * Splits a statement into tokens, honouring quoted identifiers and strings. MySQL quotes
 * identifiers with backticks and may use backslash escapes in strings; PostgreSQL (`pg: true`)
 * quotes identifiers with double quotes and, with standard_conforming_strings, has no escapes.
 */
export function tokenize(sql: string, options: { pg?: boolean } = {}): Token[] {
  const identQuote = options.pg ? '"' : "`";
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === identQuote || ch === "'" || (!options.pg && ch === '"')) {
      const start = i;
      let value = "";
      i++;
      while (i < sql.length) {
        if (sql[i] === ch && sql[i + 1] === ch) {
          value += ch;
          i += 2;
        } else if (sql[i] === ch) {
          i++;
          break;
        } else if (sql[i] === "\\" && ch !== identQuote && !options.pg && i + 1 < sql.length) {
          value += sql[i + 1];
          i += 2;
        } else {
          value += sql[i++];
        }
      }
      tokens.push({ type: ch === identQuote ? "ident" : "string", value, start, end: i });
    } else if (/[A-Za-z0-9_$.*@%]/.test(ch)) {
      const start = i;
      while (i < sql.length && /[A-Za-z0-9_$]/.test(sql[i])) i++;
      if (i === start) i++;
      tokens.push({ type: "word", value: sql.slice(start, i), start, end: i });
    } else {
      tokens.push({ type: "punct", value: ch, start: i, end: i + 1 });
      i++;
    }
  }
  return tokens;
}

/** Whether a token is one of the keywords (case-insensitive). */
export function isWord(t: Token | undefined, ...words: string[]): boolean {
  return t?.type === "word" && words.includes(t.value.toUpperCase());
}
