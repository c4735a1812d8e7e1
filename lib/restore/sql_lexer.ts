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

const EMPTY = new Uint8Array(0);
const MAX_TAG = 256;

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

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
  // Streaming state, for lines fed in pieces: inside a `--`/`#` comment until the newline,
  // bytes of a cut token kept for the next piece, bytes to skip (the rest of an escape), and
  // the two bytes before the next piece (look-behind of E'…' and $tag$).
  #lineComment = false;
  #hold: Uint8Array = EMPTY;
  #skip = 0;
  #before: number[] = [0x20, 0x20];

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

  /**
   * Reads one line (without its newline, or with it: both are fine), or, with `final` false,
   * a piece of a line that goes on in the next call: a line too long to hold is fed as it
   * streams by. A token cut by the end of a piece (`--`, `/*`, `$tag$`, a delimiter, an
   * escape) is kept (a few bytes) and read with the next piece, so the state is the same as if
   * the whole line had been fed at once.
   */
  feed(line: Uint8Array, from = 0, to = line.length, final = true): void {
    if (this.#hold.length > 0) {
      line = concatBytes(this.#hold, line.subarray(from, to));
      from = 0;
      to = line.length;
      this.#hold = EMPTY;
    }
    const mysql = this.dialect === "mysql";
    let i = from + this.#skip;
    this.#skip = 0;
    // A position before `from` is in an earlier piece of the same line (or in no line at all).
    const prior = this.#before;
    const byteAt = (q: number) => q >= from ? line[q] : prior[from - q - 1] ?? 0x20;
    const before = (k: number) => byteAt(i - k);
    // Whether `n` bytes from i are there; if not, and more of the line follows, keep the rest.
    const has = (n: number) => {
      if (i + n <= to) return true;
      if (!final) this.#hold = line.slice(i, to);
      return false;
    };
    let stop = false;
    while (i < to && !stop) {
      const b = line[i];
      if (this.#lineComment) {
        const nl = line.indexOf(0x0a, i);
        if (nl < 0 || nl >= to) {
          i = to;
          break;
        }
        this.#lineComment = false;
        i = nl + 1;
        continue;
      }
      if (this.#blockDepth > 0) {
        if (b === STAR || (!mysql && b === SLASH)) {
          if (!has(2)) {
            if (!final) stop = true;
            else i++;
            continue;
          }
          if (b === STAR && line[i + 1] === SLASH) {
            this.#blockDepth--;
            i += 2;
            continue;
          }
          if (b === SLASH && line[i + 1] === STAR) {
            this.#blockDepth++;
            i += 2;
            continue;
          }
        }
        i++;
        continue;
      }
      if (this.#dollarTag !== null) {
        if (b === DOLLAR) {
          if (!has(this.#dollarTag.length) && !final) {
            stop = true;
            continue;
          }
          if (this.#matches(line, i, to, this.#dollarTag)) {
            i += this.#dollarTag.length;
            this.#dollarTag = null;
            continue;
          }
        }
        i++;
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
      if (b === DASH) {
        // MySQL needs a space or the end of the line after "--".
        if (!has(mysql ? 3 : 2) && !final) {
          stop = true;
          continue;
        }
        if (line[i + 1] === DASH && i + 1 < to && (!mysql || i + 2 >= to || isSpace(line[i + 2]))) {
          this.#lineComment = true;
          continue;
        }
      }
      if (mysql && b === HASH) {
        this.#lineComment = true;
        continue;
      }
      if (b === SLASH) {
        if (!has(2) && !final) {
          stop = true;
          continue;
        }
        if (line[i + 1] === STAR && i + 1 < to) {
          this.#blockDepth = 1;
          i += 2;
          continue;
        }
      }
      if (b === this.#delimiter[0]) {
        if (!has(this.#delimiter.length) && !final) {
          stop = true;
          continue;
        }
        if (this.#matches(line, i, to, this.#delimiter)) {
          this.#inStatement = false;
          i += this.#delimiter.length;
          continue;
        }
      }
      this.#inStatement = true;
      if (b === SQ || b === DQ || (mysql && b === BT)) {
        this.#quote = b;
        const prev = before(1);
        const prev2 = before(2);
        // MySQL strings take backslash escapes; PostgreSQL only E'…' strings.
        this.#backslash = mysql
          ? b !== BT
          : b === SQ && (prev === 0x45 || prev === 0x65) && !isIdentChar(prev2);
        i++;
        continue;
      }
      if (!mysql && b === DOLLAR && !isIdentChar(before(1))) {
        const end = this.#dollarTagEnd(line, i, to);
        if (end < 0) {
          if (!final) {
            this.#hold = line.slice(i, to);
            stop = true;
            continue;
          }
        } else if (end > 0) {
          this.#dollarTag = line.slice(i, end);
          i = end;
          continue;
        }
      }
      i++;
    }
    if (final) {
      this.#lineComment = false;
      this.#before = [0x20, 0x20];
      return;
    }
    if (i > to) this.#skip = i - to;
    // The look-behind of the next piece: the two bytes before where it goes on.
    const next = stop ? i : to;
    this.#before = [byteAt(next - 1), byteAt(next - 2)];
  }

  #matches(line: Uint8Array, at: number, to: number, what: Uint8Array): boolean {
    if (at + what.length > to) return false;
    for (let k = 0; k < what.length; k++) if (line[at + k] !== what[k]) return false;
    return true;
  }

  /** End (exclusive) of a `$tag$` opening at `at`, 0 if none, -1 if cut by `to`. */
  #dollarTagEnd(line: Uint8Array, at: number, to: number): number {
    let j = at + 1;
    if (j >= to) return -1;
    if (line[j] === DOLLAR) return j + 1;
    if (!isTagStart(line[j])) return 0;
    while (j < to && isIdentChar(line[j]) && line[j] !== DOLLAR) {
      // Nothing longer is taken for a tag, so what is kept between pieces stays small.
      if (j - at > MAX_TAG) return 0;
      j++;
    }
    if (j >= to) return -1;
    return line[j] === DOLLAR ? j + 1 : 0;
  }
}
