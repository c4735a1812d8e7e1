/**
 * Just enough of a SQL lexer to know, line by line, where statements begin and end in a dump:
 * quotes, identifiers, dollar quotes (PostgreSQL), comments, and MySQL's `DELIMITER` command.
 * Dumps are line-oriented, so the state is carried from one line to the next and a line can be
 * asked whether it starts at a statement boundary. It never rewrites anything.
 *
 * @module
 */

/** The SQL dialect of a dump. */
export type Dialect = "postgresql" | "mysql";

const SQ = 0x27; // '
const DQ = 0x22; // "
const BT = 0x60; // `
const BS = 0x5c; // \
const DOLLAR = 0x24;
const DASH = 0x2d;
const HASH = 0x23;
const SLASH = 0x2f;
const STAR = 0x2a;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a || b === 0x0c;
}

function isIdentChar(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
    b === 0x5f || b === DOLLAR || b >= 0x80;
}

function isTagStart(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f || b >= 0x80;
}

/** Lexical state of a dump, fed one line at a time. */
export class SqlLexer {
  /** The dialect being read. */
  readonly dialect: Dialect;
  #quote = 0;
  #backslash = false;
  #dollarTag: Uint8Array | null = null;
  #blockDepth = 0;
  #inStatement = false;
  #delimiter: Uint8Array = new Uint8Array([0x3b]);

  /** Creates a lexer at the start of a file. */
  constructor(dialect: Dialect) {
    this.dialect = dialect;
  }

  /**
   * Whether the next line starts at a statement boundary: outside any quote or comment and
   * after the end of the previous statement.
   */
  get atBoundary(): boolean {
    return this.#quote === 0 && this.#dollarTag === null && this.#blockDepth === 0 &&
      !this.#inStatement;
  }

  /** Whether the lexer is outside any quote or block comment (statement text may be open). */
  get atTopLevel(): boolean {
    return this.#quote === 0 && this.#dollarTag === null && this.#blockDepth === 0;
  }

  /**
   * Changes the statement delimiter (MySQL `DELIMITER x`); the caller recognises the command,
   * which is a client command and not SQL.
   */
  setDelimiter(text: string): void {
    this.#delimiter = new TextEncoder().encode(text);
  }

  /** Reads one line (without its newline, or with it: both are fine). */
  feed(line: Uint8Array, from = 0, to = line.length): void {
    const mysql = this.dialect === "mysql";
    let i = from;
    while (i < to) {
      const b = line[i];
      if (this.#blockDepth > 0) {
        if (b === STAR && line[i + 1] === SLASH && i + 1 < to) {
          this.#blockDepth--;
          i += 2;
        } else if (!mysql && b === SLASH && line[i + 1] === STAR && i + 1 < to) {
          this.#blockDepth++;
          i += 2;
        } else i++;
        continue;
      }
      if (this.#dollarTag !== null) {
        if (b === DOLLAR && this.#matches(line, i, to, this.#dollarTag)) {
          i += this.#dollarTag.length;
          this.#dollarTag = null;
        } else i++;
        continue;
      }
      if (this.#quote !== 0) {
        if (this.#backslash && b === BS) i += 2;
        else {
          if (b === this.#quote) this.#quote = 0;
          i++;
        }
        continue;
      }
      if (isSpace(b)) {
        i++;
        continue;
      }
      if (b === DASH && line[i + 1] === DASH && i + 1 < to) {
        // MySQL needs a space or the end of the line after "--".
        if (!mysql || i + 2 >= to || isSpace(line[i + 2])) return;
      }
      if (mysql && b === HASH) return;
      if (b === SLASH && line[i + 1] === STAR && i + 1 < to) {
        this.#blockDepth = 1;
        i += 2;
        continue;
      }
      if (b === this.#delimiter[0] && this.#matches(line, i, to, this.#delimiter)) {
        this.#inStatement = false;
        i += this.#delimiter.length;
        continue;
      }
      this.#inStatement = true;
      if (b === SQ || b === DQ || (mysql && b === BT)) {
        this.#quote = b;
        const prev = i > from ? line[i - 1] : 0x20;
        const prev2 = i > from + 1 ? line[i - 2] : 0x20;
        // MySQL strings take backslash escapes; PostgreSQL only E'…' strings.
        this.#backslash = mysql
          ? b !== BT
          : b === SQ && (prev === 0x45 || prev === 0x65) && !isIdentChar(prev2);
        i++;
        continue;
      }
      if (!mysql && b === DOLLAR && (i === from || !isIdentChar(line[i - 1]))) {
        const end = this.#dollarTagEnd(line, i, to);
        if (end > 0) {
          this.#dollarTag = line.slice(i, end);
          i = end;
          continue;
        }
      }
      i++;
    }
  }

  #matches(line: Uint8Array, at: number, to: number, what: Uint8Array): boolean {
    if (at + what.length > to) return false;
    for (let k = 0; k < what.length; k++) if (line[at + k] !== what[k]) return false;
    return true;
  }

  /** End (exclusive) of a `$tag$` opening at `at`, or 0. */
  #dollarTagEnd(line: Uint8Array, at: number, to: number): number {
    let j = at + 1;
    if (j < to && line[j] === DOLLAR) return j + 1;
    if (j >= to || !isTagStart(line[j])) return 0;
    while (j < to && isIdentChar(line[j]) && line[j] !== DOLLAR) j++;
    return j < to && line[j] === DOLLAR ? j + 1 : 0;
  }
}
