/**
 * Reads the line heads of a MySQL/MariaDB dump's body for two things a restore must know before
 * it loads anything:
 *
 * - the DEFINER accounts of its views, routines, triggers and events: a server that lacks one
 *   loads the object without complaint and fails at its first use (`ERROR 1449 The user
 *   specified as a definer does not exist`);
 * - statements that would leave the target: `USE`, `CREATE`/`DROP DATABASE` (a dump made with
 *   `mysqldump --databases`), and client commands (`\!`, `\.`…) that run on this machine. A
 *   dump of this tool holds none; a file that does is refused, since it would load into, or
 *   drop, another database than the target.
 *
 * The dump tools write the clause near the start of a line that opens the object:
 * `/*!50013 DEFINER=…` (views), `CREATE DEFINER=…` (routines),
 * `/*!50003 CREATE*\/ /*!50017 DEFINER=…` (triggers, events). Only such line heads are read: a
 * row's text that happens to contain `DEFINER=` sits inside an `INSERT` line and is never
 * taken for one. Memory is bounded by {@linkcode HEAD} whatever the length of the lines.
 *
 * @module
 */
import { concatBytes } from "../stream/bytes.ts";

/** One account named by a DEFINER clause. */
export interface DefinerAccount {
  /** User name. */
  user: string;
  /** Host pattern; undefined for a role (MariaDB `DEFINER=role`). */
  host?: string;
}

/** How a definer is written in messages and in `users restore --user`. */
export function formatDefiner(d: DefinerAccount): string {
  return d.host === undefined ? `'${d.user}'` : `'${d.user}'@'${d.host}'`;
}

const NL = 0x0a;
// How much of a line's start is looked at: the clause comes within the first few words.
const HEAD = 1024;
const DEFINER_RE = /DEFINER=`((?:[^`]|``)*)`(?:@`((?:[^`]|``)*)`)?/g;
const decoder = new TextDecoder();

/** A statement of the dump that would leave the target database. */
export interface ForeignStatement {
  /** 1-based line of the dump's body (counted from the banner). */
  line: number;
  /** Its first words. */
  text: string;
}

// At a line's start (the client skips blanks there too), after an optional version comment
// `/*!40000 `: statements on other databases, and the client's own commands that switch
// database, read another file or run one on this machine (long forms as well as `\u`, `\.`…).
const FOREIGN_RE =
  /^\s*(?:\/\*!\d{5}\s*)?(USE\b|CONNECT\b|SOURCE\b|SYSTEM\b|(?:CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b|\\[^C-])/i;

/** Collects DEFINER accounts and foreign statements from the chunks of a dump, in order. */
export class MysqlBodyScanner {
  /** The DEFINER accounts found, keyed by their formatted name. */
  readonly found: Map<string, DefinerAccount> = new Map();
  /** The first statement that would leave the target, if any. */
  foreign?: ForeignStatement;
  #line = 0;
  // The head of the current line, when it started in an earlier chunk and may hold a clause.
  #head: Uint8Array | null = new Uint8Array(0);

  /** Newlines read so far. */
  get lines(): number {
    return this.#line;
  }

  /**
   * Bytes at the end of the input read so far that are the start of a line not judged yet (at
   * most {@linkcode HEAD}): it might still turn out to be a foreign statement.
   */
  get undecided(): number {
    return this.#head?.length ?? 0;
  }

  /** Reads `chunk` from offset `from`. */
  push(chunk: Uint8Array, from = 0): void {
    let start = from;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl < 0 ? chunk.length : nl;
      if (this.#head !== null && this.#head.length === 0 && !mayMatterByte(chunk[start])) {
        // The usual line (a row of an INSERT, `(1,'…'),`): its first byte rules it out, so it is
        // skipped without being looked at (or copied) any further.
        if (nl < 0) {
          this.#head = null;
          return;
        }
      } else if (this.#head !== null) {
        const part = chunk.subarray(start, Math.min(end, start + HEAD - this.#head.length));
        const head = this.#head.length ? concatBytes([this.#head, part]) : part;
        if (nl < 0 && head.length < HEAD && mayMatter(head)) this.#head = head.slice();
        else {
          this.#look(head);
          this.#head = nl < 0 ? null : new Uint8Array(0);
        }
      } else if (nl >= 0) this.#head = new Uint8Array(0);
      if (nl < 0) return;
      this.#line++;
      start = nl + 1;
    }
  }

  /** Ends the input. */
  end(): void {
    if (this.#head?.length) this.#look(this.#head);
    this.#head = new Uint8Array(0);
  }

  #look(head: Uint8Array): void {
    if (!mayMatter(head)) return;
    const text = decoder.decode(head);
    if (!this.foreign) {
      const m = FOREIGN_RE.exec(text);
      if (m) this.foreign = { line: this.#line + 1, text: text.split(/[;\n]/)[0].slice(0, 80) };
    }
    if (!mayOpenObject(head)) return;
    if (!text.includes("DEFINER=")) return;
    // Everything before the clause must be keywords and version comments: a quote means data.
    for (const m of text.matchAll(DEFINER_RE)) {
      if (text.slice(0, m.index).includes("'")) break;
      const account: DefinerAccount = {
        user: m[1].replaceAll("``", "`"),
        host: m[2]?.replaceAll("``", "`"),
      };
      this.found.set(formatDefiner(account), account);
    }
  }
}

/** Whether a line starting with `head` can hold anything this scanner looks for. */
function mayMatter(head: Uint8Array): boolean {
  return head.length === 0 || mayMatterByte(head[0]);
}

/** Whether a line whose first byte is `b` can hold anything this scanner looks for. */
function mayMatterByte(b: number): boolean {
  // "/*!", "CREATE"/"CONNECT", "DROP", "USE", "SOURCE"/"SYSTEM" (any case), a client command's
  // backslash, or a blank before any of them.
  const c = b | 0x20;
  return b === 0x2f || b === 0x5c || b === 0x20 || b === 0x09 || c === 0x63 || c === 0x64 ||
    c === 0x75 || c === 0x73;
}

/** Whether a line starting with `head` can open a view, routine, trigger or event. */
function mayOpenObject(head: Uint8Array): boolean {
  // "/*!" or "CREATE"; a shorter head is undecided and kept.
  if (head.length < 3) return true;
  if (head[0] === 0x2f && head[1] === 0x2a && head[2] === 0x21) return true;
  const create = [0x43, 0x52, 0x45, 0x41, 0x54, 0x45];
  for (let i = 0; i < Math.min(create.length, head.length); i++) {
    if (head[i] !== create[i]) return false;
  }
  return true;
}
