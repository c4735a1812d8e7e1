/**
 * Just enough of a SQL lexer to know, line by line, where statements begin and end in a dump:
 * quotes, identifiers, dollar quotes, comments, and the client's `DELIMITER` command, each as
 * the dialect's lexical rules say (lib/engines/dialect.ts). Dumps are line-oriented, so the
 * state is carried from one line to the next and a line can be asked whether it starts at a
 * statement boundary. It never rewrites anything.
 *
 * @module
 */
import type { SqlDialect } from "../engines/dialect.ts";
import { concatBytes } from "../stream/bytes.ts";

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

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a || b === 0x0c;
}

function isIdentChar(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
    b === 0x5f || b === DOLLAR || b >= 0x80;
}

/** The byte at `q` of a piece starting at `from`; before it, the previous piece's `prior`. */
function byteAt(line: Uint8Array, from: number, prior: number[], q: number): number {
  return q >= from ? line[q] : prior[from - q - 1] ?? 0x20;
}

/** A state's answer when a token is cut by the end of a piece. */
const STOP = -1;

function isTagStart(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f || b >= 0x80;
}

/** See {@linkcode SqlLexer.observe}; a throw stops the reading of the line. */
export type LexerObserver = (
  buffer: Uint8Array,
  at: number,
  what: "statement" | "backslash",
) => void;

/** Lexical state of a dump, fed one line at a time. */
export class SqlLexer {
  /** The dialect being read. */
  readonly dialect: SqlDialect;
  // The dialect's lexical rules, copied once: the lexer is hot and reads them on every byte.
  readonly #allEscapes: boolean;
  readonly #eStrings: boolean;
  readonly #dollarQuotes: boolean;
  readonly #nested: boolean;
  readonly #hashComments: boolean;
  readonly #dashSpace: boolean;
  readonly #backticks: boolean;
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
  #observer?: LexerObserver;

  /** Creates a lexer at the start of a file. */
  constructor(dialect: SqlDialect) {
    this.dialect = dialect;
    const rules = dialect.lexical;
    this.#allEscapes = rules.backslashEscapesInStrings;
    this.#eStrings = rules.escapeStringPrefix;
    this.#dollarQuotes = rules.dollarQuotes;
    this.#nested = rules.nestedBlockComments;
    this.#hashComments = rules.hashLineComments;
    this.#dashSpace = rules.dashCommentNeedsSpace;
    this.#backticks = rules.backtickIdentifiers;
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
   * Tells `observer` of every statement's first byte and of every backslash outside quotes
   * and comments, wherever in a line they are (a second statement on a line, a psql command
   * after a statement), with the buffer and position being read.
   */
  observe(observer: LexerObserver): void {
    this.#observer = observer;
  }

  /**
   * Changes the statement delimiter (`DELIMITER x`, where the dialect has the command); the
   * caller recognises the command, which is a client command and not SQL.
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
      line = concatBytes([this.#hold, line.subarray(from, to)]);
      from = 0;
      to = line.length;
      this.#hold = EMPTY;
    }
    let i = from + this.#skip;
    this.#skip = 0;
    // A position before `from` is in an earlier piece of the same line (or in no line at all).
    const prior = this.#before;
    let stop = false;
    while (i < to) {
      const next = this.#lineComment
        ? this.#inLineComment(line, i, to)
        : this.#blockDepth > 0
        ? this.#inBlockComment(line, i, to, final)
        : this.#dollarTag !== null
        ? this.#inDollarQuote(line, i, to, final)
        : this.#quote !== 0
        ? this.#inQuote(line, i)
        : this.#inCode(line, i, from, to, final, prior);
      if (next === STOP) {
        stop = true;
        break;
      }
      i = next;
    }
    if (final) {
      this.#lineComment = false;
      this.#before = [0x20, 0x20];
      return;
    }
    if (i > to) this.#skip = i - to;
    // The look-behind of the next piece: the two bytes before where it goes on.
    const next = stop ? i : to;
    this.#before = [byteAt(line, from, prior, next - 1), byteAt(line, from, prior, next - 2)];
  }

  // Each state below reads from `i` and returns where reading goes on, or STOP when a token is
  // cut by the end of the piece (its bytes are then held for the next piece).

  /** Whether `n` bytes from i are there; if not, and more of the line follows, keeps the rest. */
  #has(line: Uint8Array, i: number, to: number, final: boolean, n: number): boolean {
    if (i + n <= to) return true;
    if (!final) this.#hold = line.slice(i, to);
    return false;
  }

  #inLineComment(line: Uint8Array, i: number, to: number): number {
    const nl = line.indexOf(0x0a, i);
    if (nl < 0 || nl >= to) return to;
    this.#lineComment = false;
    return nl + 1;
  }

  #inBlockComment(line: Uint8Array, i: number, to: number, final: boolean): number {
    const b = line[i];
    if (b === STAR || (this.#nested && b === SLASH)) {
      if (!this.#has(line, i, to, final, 2)) return final ? i + 1 : STOP;
      if (b === STAR && line[i + 1] === SLASH) {
        this.#blockDepth--;
        return i + 2;
      }
      if (b === SLASH && line[i + 1] === STAR) {
        this.#blockDepth++;
        return i + 2;
      }
    }
    return i + 1;
  }

  #inDollarQuote(line: Uint8Array, i: number, to: number, final: boolean): number {
    const tag = this.#dollarTag!;
    if (line[i] === DOLLAR) {
      if (!this.#has(line, i, to, final, tag.length) && !final) return STOP;
      if (this.#matches(line, i, to, tag)) {
        this.#dollarTag = null;
        return i + tag.length;
      }
    }
    return i + 1;
  }

  #inQuote(line: Uint8Array, i: number): number {
    const b = line[i];
    if (this.#backslash && b === BS) return i + 2;
    if (b === this.#quote) this.#quote = 0;
    return i + 1;
  }

  /** Outside quotes and comments: spaces, comment and quote openers, the delimiter. */
  #inCode(
    line: Uint8Array,
    i: number,
    from: number,
    to: number,
    final: boolean,
    prior: number[],
  ): number {
    const b = line[i];
    if (isSpace(b)) return i + 1;
    if (b === DASH) {
      // MySQL needs a space or the end of the line after "--".
      const space = this.#dashSpace;
      if (!this.#has(line, i, to, final, space ? 3 : 2) && !final) return STOP;
      if (line[i + 1] === DASH && i + 1 < to && (!space || i + 2 >= to || isSpace(line[i + 2]))) {
        this.#lineComment = true;
        return i;
      }
    }
    if (this.#hashComments && b === HASH) {
      this.#lineComment = true;
      return i;
    }
    if (b === SLASH) {
      if (!this.#has(line, i, to, final, 2) && !final) return STOP;
      if (line[i + 1] === STAR && i + 1 < to) {
        this.#blockDepth = 1;
        return i + 2;
      }
    }
    if (b === this.#delimiter[0]) {
      if (!this.#has(line, i, to, final, this.#delimiter.length) && !final) return STOP;
      if (this.#matches(line, i, to, this.#delimiter)) {
        this.#inStatement = false;
        return i + this.#delimiter.length;
      }
    }
    if (this.#observer) {
      if (!this.#inStatement) this.#observer(line, i, "statement");
      if (b === BS) this.#observer(line, i, "backslash");
    }
    this.#inStatement = true;
    if (b === SQ || b === DQ || (this.#backticks && b === BT)) {
      this.#quote = b;
      const prev = byteAt(line, from, prior, i - 1);
      const prev2 = byteAt(line, from, prior, i - 2);
      // MySQL strings take backslash escapes; PostgreSQL only E'…' strings.
      this.#backslash = this.#allEscapes
        ? b !== BT
        : this.#eStrings && b === SQ && (prev === 0x45 || prev === 0x65) && !isIdentChar(prev2);
      return i + 1;
    }
    if (this.#dollarQuotes && b === DOLLAR && !isIdentChar(byteAt(line, from, prior, i - 1))) {
      const end = this.#dollarTagEnd(line, i, to);
      if (end < 0) {
        if (!final) {
          this.#hold = line.slice(i, to);
          return STOP;
        }
      } else if (end > 0) {
        this.#dollarTag = line.slice(i, end);
        return end;
      }
    }
    return i + 1;
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
