/**
 * Cuts the filtered SQL of a plain dump into sections at the dump tool's own entry headers,
 * and says in which phase of a parallel restore each one runs:
 *
 * - 0, one session: the session prelude and what precedes the data (PostgreSQL pre-data);
 * - 1, N sessions: PostgreSQL TABLE DATA and SEQUENCE SET entries; MySQL/MariaDB tables, each
 *   with its structure, data and triggers (`-- Table structure for table`, `-- Dumping data`);
 * - 2, N sessions: PostgreSQL INDEX entries of the post-data;
 * - 3, one session, in dump order: everything else (constraints, foreign keys, triggers, rules,
 *   ACLs; MySQL/MariaDB views, routines, events).
 *
 * PostgreSQL headers come from the dump filter's lexer (a header inside COPY data or a string is
 * none); MySQL/MariaDB dumps pass the filter unlexed, and there a header counts only at the
 * start of a line outside a `DELIMITER ;;` block (where trigger, routine and event bodies are,
 * the only raw multi-line text mysqldump writes; rows are one escaped line each).
 *
 * @module
 */
import type { Spool, SpoolFile } from "./spool.ts";
import { concatBytes } from "../../stream/bytes.ts";

/** A phase of a parallel restore; see the module comment. */
export type Phase = 0 | 1 | 2 | 3;

/** Phases loaded over several sessions. */
export const PARALLEL_PHASES: ReadonlySet<Phase> = new Set([1, 2]);

/** One contiguous piece of the filtered SQL. */
export interface Section {
  /** Position in the dump, from 0. */
  seq: number;
  /** When it runs. */
  phase: Phase;
  /** The table it loads (phase 1), for progress; empty otherwise. */
  table: string;
  /** 1-based line of the filtered SQL it starts at. */
  startLine: number;
  /** Its lines, once the next section has begun or the dump ended. */
  lines?: number;
  /** Session settings in effect where it starts (PostgreSQL `SET …` lines after the prelude). */
  settings: string;
  /** Its bytes. */
  file: SpoolFile;
}

const NL = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const PG_HEADER = /^-- (Data for )?Name: (.*?); Type: (.*?); Schema: (.*?);/;
const PG_DATA = new Set(["TABLE DATA", "SEQUENCE SET"]);
const MY_TABLE = /^-- Table structure for table `((?:[^`]|``)*)`/;
const MY_DATA = /^-- Dumping data for table `((?:[^`]|``)*)`/;
const MY_OTHER =
  /^-- (Temporary (view|table) structure for view|Final view structure for view|Dumping routines for database|Dumping events for database) /;
/**
 * Any other object header (MariaDB's `-- Sequence structure for`, and kinds to come): it ends the
 * prelude, and its object stays in dump order before the tables (a table may default to a
 * sequence's next value) or, after them, with the rest.
 */
const MY_STRUCTURE = /^-- \w[\w ]* structure for /;
/** The longest line start a MySQL header check needs to see. */
const MY_PEEK = 512;

/**
 * The phases a new section of phase `p` ends: those before the returned one get no more
 * sections. PostgreSQL's order is strict up to the post-data (indexes and the rest interleave);
 * MySQL/MariaDB tables may follow temporary views, so there only the prelude ends.
 */
export function endsBefore(family: "postgresql" | "mysql", p: Phase): Phase {
  return Math.min(p, family === "postgresql" ? 2 : 1) as Phase;
}

/** Splits the filtered SQL as it streams; sections are handed out as they begin. */
export class DumpSplitter {
  readonly #spool: Spool;
  readonly #family: "postgresql" | "mysql";
  readonly #onSection: (s: Section) => void;
  /** Every section so far, in dump order. */
  readonly sections: Section[] = [];
  #current?: Section;
  #preludeParts: Uint8Array[] = [];
  #preludeDone = false;
  #settings = new Map<string, string>();
  #pgDataSeen = false;
  #pgPostSeen = false;
  // MySQL line scanning.
  #lines = 0;
  #atLineStart = true;
  #inBody = false;
  #held?: Uint8Array;
  /** Sections whose last byte has been appended; closed at the next settle(). */
  #finished: Section[] = [];
  #full = new Set<SpoolFile>();

  /** Starts with the prelude's section; `onSection` hears of each new one as it begins. */
  constructor(
    spool: Spool,
    family: "postgresql" | "mysql",
    onSection: (s: Section) => void,
  ) {
    this.#spool = spool;
    this.#family = family;
    this.#onSection = onSection;
    this.#begin(0, "", 1);
  }

  /** The session prelude: what precedes the first entry header (settings, sandbox switch). */
  get prelude(): Uint8Array {
    return concatBytes(this.#preludeParts);
  }

  /** Lines of the prelude. */
  preludeLines = 0;

  /** PostgreSQL: the filter's hook, for entry headers and top-level SET lines. */
  entryLine(text: string, outputLine: number): void {
    if (text.startsWith("SET ")) {
      const m = /^SET (\w+)/.exec(text);
      if (m && this.#preludeDone) {
        this.#settings.set(m[1], text.endsWith("\n") ? text : text + "\n");
      }
      return;
    }
    const m = PG_HEADER.exec(text);
    if (!m) return;
    const [, , name, type, schema] = m;
    this.#endPrelude();
    const cur = this.#current!;
    if (PG_DATA.has(type) && !this.#pgPostSeen) {
      this.#pgDataSeen = true;
      this.#begin(1, type === "TABLE DATA" ? `${schema}.${name}` : "", outputLine);
    } else if (!this.#pgDataSeen) {
      // Pre-data: one section, in order.
      if (cur.phase !== 0) this.#begin(0, "", outputLine);
    } else {
      this.#pgPostSeen = true;
      if (type === "INDEX") this.#begin(2, "", outputLine);
      else if (cur.phase !== 3) this.#begin(3, "", outputLine);
    }
  }

  /** Takes a span of the filtered SQL (PostgreSQL: after any entryLine call for it). */
  emit(span: Uint8Array): void {
    if (this.#family === "postgresql") this.#append(span);
    else this.#scanMysql(span);
  }

  /** The dump ended (`outputLines`: lines of the filtered SQL). */
  end(outputLines?: number): void {
    if (this.#held) {
      const h = this.#held;
      this.#held = undefined;
      this.#classifyMysqlLine(h, 0, h.length)?.();
      this.#append(h);
    }
    this.#endPrelude();
    const total = this.#family === "postgresql" ? outputLines! : this.#lines;
    const cur = this.#current!;
    cur.lines = Math.max(0, total + 1 - cur.startLine);
    this.#finished.push(cur);
    this.#current = undefined;
  }

  /** Writes full buffers and closes finished sections. */
  async settle(): Promise<void> {
    for (const f of this.#full) await f.flush();
    this.#full.clear();
    for (const s of this.#finished) await s.file.close();
    this.#finished = [];
  }

  /** After a failure: closes every write end. */
  abandon(): void {
    for (const s of this.sections) s.file.abandon();
  }

  #begin(phase: Phase, table: string, startLine: number): void {
    const prev = this.#current;
    if (prev) {
      prev.lines = startLine - prev.startLine;
      this.#finished.push(prev);
    }
    const settings = [...this.#settings.values()].join("");
    const s: Section = {
      seq: this.sections.length,
      phase,
      table,
      startLine,
      settings,
      file: this.#spool.file(),
    };
    this.sections.push(s);
    this.#current = s;
    this.#onSection(s);
  }

  #endPrelude(): void {
    if (this.#preludeDone) return;
    this.#preludeDone = true;
    const first = this.sections[0];
    this.preludeLines = this.#family === "postgresql"
      ? countLines(this.prelude)
      : this.#lines + 1 - first.startLine;
  }

  #append(span: Uint8Array): void {
    if (span.length === 0) return;
    if (!this.#preludeDone) this.#preludeParts.push(span.slice());
    const file = this.#current!.file;
    if (file.append(span)) this.#full.add(file);
  }

  /**
   * MySQL/MariaDB: cuts at header lines. A line start that might be a header but is cut by
   * the end of the span is held (at most MY_PEEK bytes) until the next span.
   */
  #scanMysql(input: Uint8Array): void {
    let span = input;
    if (this.#held) {
      const joined = new Uint8Array(this.#held.length + input.length);
      joined.set(this.#held);
      joined.set(input, this.#held.length);
      span = joined;
      this.#held = undefined;
    }
    let from = 0; // start of what is not yet appended
    let pos = 0;
    while (pos < span.length) {
      if (!this.#atLineStart) {
        const nl = span.indexOf(NL, pos);
        if (nl < 0) break;
        this.#lines++;
        pos = nl + 1;
        this.#atLineStart = true;
        continue;
      }
      const nl = span.indexOf(NL, pos);
      if (nl < 0 && span.length - pos < MY_PEEK && couldMatter(span[pos])) {
        this.#append(span.subarray(from, pos));
        this.#held = span.slice(pos);
        return;
      }
      const end = nl < 0 ? span.length : nl;
      if (nl >= 0 && !this.#inBody && isTableLock(span, pos, end)) {
        // mysqldump's LOCK TABLES assume one session: a table created in another session with
        // a foreign key to the locked one makes the next INSERT fail (ERROR 1100, the new child
        // is not locked). Left out, as a comment of its own so that lines still count the same.
        this.#append(span.subarray(from, pos));
        this.#append(LOCK_LEFT_OUT);
        from = nl + 1;
        this.#lines++;
        pos = nl + 1;
        continue;
      }
      const cut = this.#classifyMysqlLine(span, pos, end);
      if (cut) {
        this.#append(span.subarray(from, pos));
        from = pos;
        cut();
      }
      if (nl < 0) {
        this.#atLineStart = false;
        break;
      }
      this.#lines++;
      pos = nl + 1;
    }
    this.#append(span.subarray(from));
  }

  /**
   * Looks at one line start; returns what to do at it when it begins a section (called once
   * the bytes before it are appended).
   */
  #classifyMysqlLine(span: Uint8Array, pos: number, end: number): (() => void) | undefined {
    const first = span[pos];
    if (first !== 0x2d && first !== 0x44) return undefined;
    const text = decoder.decode(span.subarray(pos, Math.min(end, pos + MY_PEEK)));
    if (first === 0x44) {
      const m = /^DELIMITER\s+(\S+)/.exec(text);
      if (m) this.#inBody = m[1] !== ";";
      return undefined;
    }
    if (this.#inBody || !text.startsWith("-- ")) return undefined;
    const line = this.#lines + 1;
    const table = MY_TABLE.exec(text)?.[1];
    if (table !== undefined) {
      return () => {
        this.#endPrelude();
        this.#begin(1, table.replaceAll("``", "`"), line);
      };
    }
    const data = MY_DATA.exec(text)?.[1];
    if (data !== undefined) {
      const name = data.replaceAll("``", "`");
      const cur = this.#current!;
      if (cur.phase === 1 && cur.table === name) return undefined;
      return () => {
        this.#endPrelude();
        this.#begin(1, name, line);
      };
    }
    if (!MY_OTHER.test(text) && MY_STRUCTURE.test(text)) {
      return () => {
        this.#endPrelude();
        if (this.#current!.phase !== 0) this.#begin(3, "", line);
      };
    }
    if (MY_OTHER.test(text)) {
      return () => {
        this.#endPrelude();
        if (this.#current!.phase !== 3) this.#begin(3, "", line);
      };
    }
    return undefined;
  }
}

/** A line start that may be a header, a DELIMITER command or a table lock. */
function couldMatter(b: number): boolean {
  return b === 0x2d || b === 0x44 || b === 0x4c || b === 0x55;
}

const LOCK_LEFT_OUT = new TextEncoder().encode("-- (LOCK TABLES left out: parallel restore)\n");
const LOCK_RE = /^(LOCK TABLES `(?:[^`]|``)+` WRITE|UNLOCK TABLES);\r?$/;

/** mysqldump's `LOCK TABLES `t` WRITE;` or `UNLOCK TABLES;` line. */
function isTableLock(span: Uint8Array, pos: number, end: number): boolean {
  const b = span[pos];
  if ((b !== 0x4c && b !== 0x55) || end - pos > MY_PEEK) return false;
  return LOCK_RE.test(decoder.decode(span.subarray(pos, end)));
}

function countLines(bytes: Uint8Array): number {
  let n = 0;
  let at = bytes.indexOf(NL);
  while (at >= 0) {
    n++;
    at = bytes.indexOf(NL, at + 1);
  }
  return n;
}

/** The bytes of a settings text. */
export function bytesOf(text: string): Uint8Array {
  return encoder.encode(text);
}
