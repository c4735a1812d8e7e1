/**
 * Reads a plain SQL dump line by line, by structure rather than by text substitution: finds the
 * dump tool's banner (and so the engine), the original tool's header that precedes it, the
 * roles a PostgreSQL dump assigns ownership and privileges to, and, on request, leaves out the
 * header and the `ALTER … OWNER TO …;` statements. COPY data and everything after a MySQL banner
 * flow through untouched and unbuffered, so memory stays flat whatever the size of the dump.
 *
 * @module
 */
import { DIALECTS, type SqlDialect } from "../engines/dialect.ts";
import { SqlLexer } from "./sql_lexer.ts";
import { type DefinerAccount, type ForeignStatement, MysqlBodyScanner } from "./mysql_body_scan.ts";
import { concatBytes } from "../stream/bytes.ts";

/** What a pass over a dump found. */
export interface DumpFacts {
  /**
   * The dialect whose banner was found (its `family` says which engines restore the file);
   * undefined when no banner was found.
   */
  dialect?: SqlDialect;
  /** The banner line (`-- PostgreSQL database dump`, `-- MySQL dump …`, `-- MariaDB dump …`). */
  banner?: string;
  /** 1-based line number of the banner. */
  bannerLine?: number;
  /**
   * Statements before the banner (the original tool's header), each by its first words only
   * (`CREATE USER`, `\connect`): a header may hold passwords.
   */
  headerStatements: string[];
  /** PostgreSQL: roles named by OWNER TO (ownership only). */
  ownerRoles: Set<string>;
  /** PostgreSQL: roles named by GRANT / REVOKE / ALTER DEFAULT PRIVILEGES. */
  privilegeRoles: Set<string>;
  /** PostgreSQL: the dump holds large objects (pg_dump wraps them in its own BEGIN/COMMIT). */
  largeObjects: boolean;
  /**
   * PostgreSQL: about how many relations the dump creates (a table counts 3: itself, its TOAST
   * table and index), each holding a lock until a one-transaction restore commits.
   */
  relations: number;
  /** MySQL/MariaDB: the DEFINER accounts of views, routines, triggers and events. */
  definers: Map<string, DefinerAccount>;
  /**
   * The first statement after the banner that would leave the target database or run a client
   * command on this machine (`USE`, `CREATE/DROP DATABASE`, `\connect`, `\!`…): such a file is
   * refused.
   */
  foreign?: ForeignStatement;
  /** Lines read. */
  lines: number;
  /** Bytes read. */
  bytes: number;
}

/** What the filter does besides looking. */
export interface DumpFilterOptions {
  /** The dialect when known; otherwise both are tried until a banner decides. */
  dialect?: SqlDialect;
  /** Leave out every line before the banner (the original tool's header). */
  skipHeader?: boolean;
  /** PostgreSQL: leave out `ALTER … OWNER TO …;` statements (outside COPY data). */
  noOwner?: boolean;
  /**
   * PostgreSQL: the target server's major version. A newer pg_dump (chosen because no client
   * of the server's own major is installed) writes session settings an older server rejects;
   * those top-level `SET` lines are left out.
   */
  targetMajor?: number;
  /**
   * PostgreSQL: the restore runs the load in a transaction of its own, so pg_dump's top-level
   * `BEGIN;`/`COMMIT;` (around large objects) are left out: they would commit it early.
   */
  ownTransaction?: boolean;
  /**
   * MySQL/MariaDB: collect the DEFINER accounts and look for foreign statements (an inspection
   * pass, or a load that reads the file only once).
   */
  collectDefiners?: boolean;
  /**
   * Stop at the first statement that would leave the target, before any of it is passed on
   * (throws {@linkcode ForeignStatementError}): for a load that has not read the file before.
   */
  refuseForeign?: boolean;
  /**
   * PostgreSQL: called, before the line is passed on, for each kept line at a statement
   * boundary that is a pg_dump entry header (`-- Name: …; Type: …`, `-- Data for Name: …`) or a
   * top-level `SET …`, with its 1-based line number in the output: lets a parallel restore
   * split the dump by entry where the lexer knows it is no COPY data or quoted text.
   */
  onEntryLine?: (text: string, outputLine: number) => void;
  /**
   * PostgreSQL: stop at the first large object (throws {@linkcode UnexpectedLargeObjectError})
   * before any of it is passed on: for a parallel load whose sessions were settled on the
   * metadata's word that the dump holds none.
   */
  refuseLargeObjects?: boolean;
}

/** Session settings pg_dump writes and the first server major that knows them. */
const PG_SETTING_SINCE: Record<string, number> = { transaction_timeout: 17 };

const NL = 0x0a;

/**
 * The most of one line the reader holds (outside COPY data and MySQL bodies, which are never
 * held). Statements it must read whole (COPY … FROM stdin, ALTER … OWNER TO, GRANT, REVOKE,
 * SET) stay far below it even with 1,600 quoted 63-byte column names; a longer line (a huge
 * INSERT or COMMENT) passes through in pieces, so memory does not depend on line length.
 */
export const MAX_HELD_LINE = 1024 * 1024;

/** The input is not a plain SQL dump (NUL bytes, an endless line before any banner). */
export class DumpFormatError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "DumpFormatError";
  }
}
/** {@linkcode DumpFilterOptions.refuseForeign}: the statement that stopped the reader. */
export class ForeignStatementError extends DumpFormatError {
  /** Creates the error. */
  constructor(readonly statement: ForeignStatement) {
    super(`line ${statement.line}: \`${statement.text}\` would leave the target database`);
    this.name = "ForeignStatementError";
  }
}

/** A large object in a dump that a parallel load was told holds none. */
export class UnexpectedLargeObjectError extends DumpFormatError {
  /** Creates the error. */
  constructor(line: number) {
    super(
      `line ${line}: a large object, which the backup's metadata does not count (it was ` +
        `created while the backup ran); a dump with large objects loads in one session: ` +
        `restore it with --jobs 1`,
    );
    this.name = "UnexpectedLargeObjectError";
  }
}

const decoder = new TextDecoder();

type Mode = "header" | "body" | "copy" | "pass";

/** Splits a role list (`a, "b c", PUBLIC`) and unquotes each name. */
export function parseRoleList(text: string): string[] {
  const roles: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === " " || text[i] === ",") i++;
    if (i >= text.length) break;
    let name = "";
    if (text[i] === '"') {
      i++;
      while (i < text.length) {
        if (text[i] === '"' && text[i + 1] === '"') {
          name += '"';
          i += 2;
        } else if (text[i] === '"') {
          i++;
          break;
        } else name += text[i++];
      }
    } else {
      while (i < text.length && text[i] !== ",") name += text[i++];
      name = name.trim();
      if (/^(GROUP|ROLE) /i.test(name)) name = name.replace(/^\S+ /, "");
    }
    roles.push(name);
  }
  return roles;
}

const OWNER_RE = /^ALTER [A-Z ]+ .* OWNER TO ("(?:[^"]|"")+"|[^\s";]+);\s*$/;
const GRANT_RE = /^GRANT .+ TO (.+?)(?: WITH (?:GRANT|ADMIN) OPTION)?(?: GRANTED BY .+)?;\s*$/;
const REVOKE_RE = /^REVOKE .+ FROM (.+?)(?: CASCADE| RESTRICT)?;\s*$/;
const DEFAULT_PRIV_RE = /^ALTER DEFAULT PRIVILEGES FOR ROLE ("(?:[^"]|"")+"|[^\s";]+) /;
const COPY_RE = /^COPY .* FROM stdin;\s*$/;

/**
 * The line machine shared by {@linkcode DumpFilter} (which passes lines on) and
 * {@linkcode scanDump}-style sinks (which only look).
 */
export class DumpLineReader {
  /** What was found so far. */
  readonly facts: DumpFacts = {
    headerStatements: [],
    ownerRoles: new Set(),
    privilegeRoles: new Set(),
    largeObjects: false,
    relations: 0,
    definers: new Map(),
    lines: 0,
    bytes: 0,
  };
  #definers?: MysqlBodyScanner;
  #options: DumpFilterOptions;
  #mode: Mode = "header";
  #lexers: SqlLexer[];
  #lexer?: SqlLexer;
  // A partial line carried to the next chunk (only outside COPY data and pass-through).
  #carry: Uint8Array[] = [];
  #carryBytes = 0;
  // In COPY data: the current line already flowed out and is known not to be the terminator.
  #midDataLine = false;
  // Outside COPY data: the current line is longer than MAX_HELD_LINE and streams through.
  #longLine = false;
  // MySQL pass-through with refuseForeign: the undecided start of the last line.
  #held: Uint8Array = new Uint8Array(0);
  // For each dropped line, how many lines had been kept before it (non-decreasing).
  #drops: number[] = [];

  /** Creates a reader. */
  constructor(options: DumpFilterOptions = {}) {
    this.#options = options;
    this.#lexers = options.dialect
      ? [new SqlLexer(options.dialect)]
      : DIALECTS.map((dialect) => new SqlLexer(dialect));
    // The scanner is also what finds a MySQL body's foreign statements.
    if (options.collectDefiners || options.refuseForeign) this.#definers = new MysqlBodyScanner();
  }

  /**
   * Reads a chunk and calls `emit` with the spans to keep, in order. Spans are views into
   * `chunk` or carried bytes; the caller must use them before the next call.
   */
  push(chunk: Uint8Array, emit: (span: Uint8Array) => void): void {
    // pg_dump and mysqldump escape NUL in data: a raw one means this is no dump (a file
    // zero-filled by a crash, a binary). memchr-fast, so checked on every byte.
    const nul = chunk.indexOf(0);
    if (nul >= 0) {
      throw new DumpFormatError(
        `NUL byte at byte offset ${this.facts.bytes + nul} (line ${this.#lineAt(chunk, nul)}): ` +
          `not a plain SQL dump (pg_dump and mysqldump never write raw NUL bytes)`,
      );
    }
    this.facts.bytes += chunk.length;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#mode === "pass") {
        const rest = pos === 0 ? chunk : chunk.subarray(pos);
        if (this.#definers) {
          // The scanner counts the lines anyway (from the banner's own newline on). It reads
          // the chunk before it is passed on, so a foreign statement in it is never sent.
          this.#definers.push(chunk, pos);
          this.facts.lines = this.facts.bannerLine! - 1 + this.#definers.lines;
          this.#scannerForeign();
          if (this.#options.refuseForeign) {
            this.#passHeld(rest, emit);
            return;
          }
        } else this.facts.lines += countNewlines(chunk, pos);
        emit(rest);
        return;
      }
      const nl = chunk.indexOf(NL, pos);
      if (nl < 0) {
        this.#partial(chunk.subarray(pos), emit);
        return;
      }
      if (this.#mode === "copy") {
        // Long runs of COPY data: emit every line up to the terminator in one span.
        const end = this.#copyRunEnd(chunk, pos, nl);
        if (end > pos) {
          emit(chunk.subarray(pos, end));
          pos = end;
          continue;
        }
      }
      if (this.#longLine) {
        // The end of a line too long to hold: it was not one the reader acts on.
        const tail = chunk.subarray(pos, nl + 1);
        this.#lexer!.feed(tail);
        this.#longLine = false;
        this.facts.lines++;
        emit(tail);
        pos = nl + 1;
        continue;
      }
      let line: Uint8Array;
      if (this.#carryBytes > 0) {
        this.#carry.push(chunk.subarray(pos, nl + 1));
        line = concatBytes(this.#carry, this.#carryBytes + nl + 1 - pos);
        this.#carry = [];
        this.#carryBytes = 0;
      } else line = chunk.subarray(pos, nl + 1);
      pos = nl + 1;
      if (this.#midDataLine) {
        this.#midDataLine = false;
        this.facts.lines++;
        emit(line);
        continue;
      }
      if (this.#line(line)) emit(line);
    }
  }

  /** Ends the input: a last line without newline is handled like any other. */
  end(emit: (span: Uint8Array) => void): void {
    if (this.#longLine) {
      this.#longLine = false;
      this.facts.lines++;
      return;
    }
    if (this.#carryBytes > 0) {
      const line = concatBytes(this.#carry, this.#carryBytes);
      this.#carry = [];
      this.#carryBytes = 0;
      if (this.#midDataLine || this.#mode === "pass") emit(line);
      else if (this.#line(line)) emit(line);
    }
    if (this.#definers) {
      this.#definers.end();
      this.facts.definers = this.#definers.found;
      this.#scannerForeign();
      if (this.#held.length) emit(this.#held);
      this.#held = new Uint8Array(0);
    }
  }

  /**
   * MySQL pass-through with refuseForeign: the start of a line the scanner has not judged yet
   * is held back, so that no prefix of a foreign statement (`DROP DATABASE other` cut short of
   * `_db`) ever reaches a client, which would run it at the end of its input.
   */
  #passHeld(rest: Uint8Array, emit: (span: Uint8Array) => void): void {
    const keep = this.#definers!.undecided;
    const held = this.#held;
    const out = (span: Uint8Array) => span.length > 0 && emit(span);
    if (held.length) {
      const cut = Math.max(0, held.length + rest.length - keep);
      if (cut === 0) {
        this.#held = concatBytes([held, rest], held.length + rest.length);
        return;
      }
      if (cut < held.length) {
        out(held.subarray(0, cut));
        this.#held = concatBytes([held.subarray(cut), rest], held.length - cut + rest.length);
        return;
      }
      out(held);
      this.#held = new Uint8Array(0);
      out(rest.subarray(0, cut - held.length));
      this.#held = rest.slice(cut - held.length);
      return;
    }
    if (keep === 0) out(rest);
    else {
      out(rest.subarray(0, rest.length - keep));
      this.#held = rest.slice(rest.length - keep);
    }
  }

  /** Takes over the MySQL scanner's foreign statement (its lines count from the banner). */
  #scannerForeign(): void {
    const f = this.#definers?.foreign;
    if (!f || this.facts.foreign) return;
    this.facts.foreign = { line: f.line - 1 + (this.facts.bannerLine ?? 1), text: f.text };
    if (this.#options.refuseForeign) throw new ForeignStatementError(this.facts.foreign);
  }

  #partial(rest: Uint8Array, emit: (span: Uint8Array) => void): void {
    if (this.#longLine) {
      this.#lexer!.feed(rest, 0, rest.length, false);
      emit(rest);
      return;
    }
    if (this.#mode !== "copy" && this.#carryBytes + rest.length > MAX_HELD_LINE) {
      this.#spill(rest, emit);
      return;
    }
    if (this.#mode === "copy") {
      // A data line may be huge: let it flow unless it could still turn out to be "\.".
      if (this.#midDataLine || this.#carryBytes + rest.length > 3) {
        if (this.#carryBytes > 0) {
          const head = concatBytes(this.#carry, this.#carryBytes);
          this.#carry = [];
          this.#carryBytes = 0;
          emit(head);
        }
        emit(rest);
        this.#midDataLine = true;
        return;
      }
    }
    this.#carry.push(rest.slice());
    this.#carryBytes += rest.length;
  }

  /**
   * A line outside COPY data grew past MAX_HELD_LINE. Before the banner it cannot be the
   * header of a dump: refused. In a PostgreSQL body it is no statement the reader acts on (a
   * long INSERT or COMMENT): what was held and what follows pass through, lexed as they go.
   */
  #spill(rest: Uint8Array, emit: (span: Uint8Array) => void): void {
    if (this.#mode === "header") {
      const start = this.facts.bytes - this.#carryBytes - rest.length;
      throw new DumpFormatError(
        `line ${this.facts.lines + 1} (from byte offset ${start}) runs past ` +
          `${MAX_HELD_LINE / 1024 / 1024} MiB without a newline before any dump banner: not a ` +
          `pg_dump, mysqldump or mariadb-dump file`,
      );
    }
    const lexer = this.#lexer!;
    // The line is never read whole: judge its start, as a line of normal length is judged.
    if (lexer.atBoundary) {
      const head = concatBytes([...this.#carry, rest], this.#carryBytes + rest.length).subarray(
        0,
        64,
      );
      if (leavesTarget(decoder.decode(head).trimStart())) {
        this.#foreign(head, this.facts.lines + 1);
      }
    }
    // Set first: what the lexer reports while the pieces are fed is on a line not counted yet.
    this.#longLine = true;
    for (const part of this.#carry) {
      lexer.feed(part, 0, part.length, false);
      emit(part);
    }
    this.#carry = [];
    this.#carryBytes = 0;
    lexer.feed(rest, 0, rest.length, false);
    emit(rest);
  }

  /** 1-based line number of byte `at` of a chunk not yet counted. */
  #lineAt(chunk: Uint8Array, at: number): number {
    let line = this.facts.lines + 1;
    let nl = chunk.indexOf(NL);
    while (nl >= 0 && nl < at) {
      line++;
      nl = chunk.indexOf(NL, nl + 1);
    }
    return line;
  }

  /** End (exclusive) of the run of complete COPY data lines starting at `pos`. */
  #copyRunEnd(chunk: Uint8Array, pos: number, firstNl: number): number {
    if (this.#carryBytes > 0 || this.#midDataLine) return pos;
    let start = pos;
    let nl = firstNl;
    while (nl >= 0) {
      if (isCopyEnd(chunk.subarray(start, nl + 1))) return start;
      this.facts.lines++;
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    return start;
  }

  /** Lines passed on so far (read minus left out). */
  get outputLines(): number {
    return this.facts.lines - this.#drops.length;
  }

  /**
   * The line of the input that line `outputLine` (1-based) of the output came from: client
   * errors name output lines, users need the file's.
   */
  inputLine(outputLine: number): number {
    let dropped = 0;
    for (const at of this.#drops) {
      if (at < outputLine) dropped++;
      else break;
    }
    return outputLine + dropped;
  }

  /** Handles one complete line; returns whether to keep it. */
  #line(line: Uint8Array): boolean {
    const keep = this.#classify(line);
    // Output lines before this dropped one: lines read before it minus lines dropped.
    if (!keep) this.#drops.push(this.facts.lines - 1 - this.#drops.length);
    return keep;
  }

  #classify(line: Uint8Array): boolean {
    this.facts.lines++;
    if (this.#mode === "copy") {
      if (isCopyEnd(line)) this.#mode = "body";
      return true;
    }
    if (this.#mode === "header") return this.#headerLine(line);
    return this.#bodyLine(line);
  }

  #headerLine(line: Uint8Array): boolean {
    const text = decoder.decode(line).replace(/\r?\n$/, "");
    for (const lexer of this.#lexers) {
      if (!lexer.atBoundary) continue;
      if (lexer.dialect.isBanner(text)) {
        this.#lexer = lexer;
        this.facts.dialect = lexer.dialect;
        this.facts.banner = text;
        this.facts.bannerLine = this.facts.lines;
        this.#mode = lexer.dialect.body === "passThrough" ? "pass" : "body";
        if (this.#mode === "body") {
          lexer.observe((buffer, at, what) => this.#statement(buffer, at, what));
        }
        // The banner's own line ends here: the scanner starts at the next line.
        this.#definers?.push(new Uint8Array([NL]));
        return true;
      }
    }
    // Before the banner: the original tool's header (or a file that is no dump at all).
    const lexer = this.#lexers[0];
    const trimmed = text.trimStart();
    // mariadb-dump (10.11.19+) opens with its sandbox switch, which forbids client shell
    // commands for the rest of the file: part of the dump, kept.
    if (lexer.atBoundary && trimmed.startsWith("/*M!999999")) return true;
    if (lexer.atBoundary && trimmed && !trimmed.startsWith("--") && !trimmed.startsWith("#")) {
      if (this.facts.headerStatements.length < 50) {
        this.facts.headerStatements.push(firstWords(trimmed));
      }
    }
    for (const l of this.#lexers) {
      if (l.atBoundary && trimmed.startsWith("\\")) continue;
      if (l.dialect.lexical.delimiterCommand && l.atBoundary) {
        const m = /^DELIMITER\s+(\S+)/i.exec(trimmed);
        if (m) {
          l.setDelimiter(m[1]);
          continue;
        }
      }
      l.feed(line);
    }
    return !this.#options.skipHeader;
  }

  #bodyLine(line: Uint8Array): boolean {
    const lexer = this.#lexer!;
    if (!lexer.atBoundary) {
      // pg_dump puts a constraint on the line after its `ALTER TABLE ONLY …`.
      if (line[0] === 0x20 && line[4] === 0x41 && isIndexConstraint(line)) this.facts.relations++;
      lexer.feed(line);
      return true;
    }
    const first = line[0];
    // psql meta-commands are one line and no SQL. pg_dump writes only \restrict/\unrestrict;
    // any other (\connect, \!, \copy, \i…) would leave the target or run on this machine.
    if (first === 0x5c) {
      if (leavesTarget(decoder.decode(line.subarray(0, 16)))) this.#foreign(line);
      return true;
    }
    if (first === 0x2d /* - */ && this.#options.onEntryLine && line[1] === 0x2d) {
      const text = decoder.decode(line.subarray(0, 4096));
      if (/^-- (Data for )?Name: /.test(text)) {
        this.#options.onEntryLine(text.replace(/\r?\n$/, ""), this.outputLines);
      }
    }
    if (first === 0x44 /* D */) {
      if (leavesTarget(decoder.decode(line.subarray(0, 32)))) this.#foreign(line);
    }
    // pg_dump starts its statements in upper case at the line's start; a statement written
    // otherwise is no pg_dump's, but whether it leaves the target is still judged.
    if (first === 0x20 || first === 0x09 || (first >= 0x61 && first <= 0x7a)) {
      if (leavesTarget(decoder.decode(line.subarray(0, 80)).trimStart())) this.#foreign(line);
    }
    // Only statements that begin with these letters matter here; the rest is just lexed.
    if (
      first === 0x41 /* A */ || first === 0x47 /* G */ || first === 0x52 /* R */ ||
      first === 0x43 /* C */ || first === 0x53 /* S */ || first === 0x42 /* B */
    ) {
      const text = decoder.decode(line);
      if (first === 0x43 && COPY_RE.test(text)) {
        lexer.feed(line);
        if (lexer.atBoundary) this.#mode = "copy";
        return true;
      }
      if ((first === 0x42 || first === 0x43) && /^(BEGIN|COMMIT);\r?\n?$/.test(text)) {
        // Only pg_dump's wrapper around large objects is written this way.
        if (this.#options.ownTransaction) return false;
      }
      if (first === 0x43) this.facts.relations += relationsCreated(text);
      if ((first === 0x43 || first === 0x41) && leavesTarget(text)) this.#foreign(line);
      const owner = OWNER_RE.exec(text);
      if (owner && topLevelAt(lexer.dialect, text, text.lastIndexOf(" OWNER TO "))) {
        for (const r of parseRoleList(owner[1])) this.facts.ownerRoles.add(r);
        if (this.#options.noOwner) return false;
      } else this.#privileges(lexer.dialect, text);
      if (first === 0x53 && this.#newerSetting(text)) return false;
      if (first === 0x53 && this.#options.onEntryLine && text.startsWith("SET ")) {
        this.#options.onEntryLine(text, this.outputLines);
      }
      if (first === 0x53 && text.startsWith("SELECT pg_catalog.lo_create(")) {
        this.facts.largeObjects = true;
        if (this.#options.refuseLargeObjects) {
          throw new UnexpectedLargeObjectError(this.facts.lines);
        }
      }
    }
    lexer.feed(line);
    return true;
  }

  /**
   * PostgreSQL body: each statement's start and each backslash outside quotes, wherever in a
   * line (pg_dump writes one statement a line and psql commands only as lines of their own,
   * which are judged before they reach the lexer): `SELECT 1; \connect other` or
   * `SELECT 1; DROP DATABASE other;` is foreign too.
   */
  #statement(buffer: Uint8Array, at: number, what: "statement" | "backslash"): void {
    // A statement at the start of a line was judged before the line reached the lexer.
    if (what === "statement" && !this.#longLine && onlyBlanksBefore(buffer, at)) return;
    const text = buffer.subarray(at, at + 80);
    if (what === "backslash" || leavesTarget(decoder.decode(text))) {
      this.#foreign(text, this.#longLine ? this.facts.lines + 1 : this.facts.lines);
    }
  }

  /** Records (or, with refuseForeign, stops at) a line that leaves the target. */
  #foreign(line: Uint8Array, at = this.facts.lines): void {
    this.facts.foreign ??= {
      line: at,
      text: decoder.decode(line.subarray(0, 80)).split(/[;\n]/)[0],
    };
    if (this.#options.refuseForeign) throw new ForeignStatementError(this.facts.foreign);
  }

  #newerSetting(text: string): boolean {
    const major = this.#options.targetMajor;
    if (major === undefined) return false;
    const m = /^SET (\w+) = [^;]*;\s*$/.exec(text);
    return m !== null && (PG_SETTING_SINCE[m[1]] ?? 0) > major;
  }

  #privileges(dialect: SqlDialect, text: string): void {
    const add = (list: string) => {
      for (const r of parseRoleList(list)) {
        if (r.toUpperCase() !== "PUBLIC") this.facts.privilegeRoles.add(r);
      }
    };
    const def = DEFAULT_PRIV_RE.exec(text);
    if (def) {
      add(def[1]);
      const rest = text.slice(text.indexOf(" ", def[0].length) + 1);
      const inner = /\b(GRANT .*|REVOKE .*)$/.exec(rest);
      if (inner) text = inner[1];
    }
    const grant = GRANT_RE.exec(text);
    if (grant && topLevelAt(dialect, text, text.lastIndexOf(" TO "))) add(grant[1]);
    const revoke = REVOKE_RE.exec(text);
    if (revoke && topLevelAt(dialect, text, text.lastIndexOf(" FROM "))) add(revoke[1]);
  }
}

function onlyBlanksBefore(buffer: Uint8Array, at: number): boolean {
  for (let i = 0; i < at; i++) if (buffer[i] !== 0x20 && buffer[i] !== 0x09) return false;
  return true;
}

/**
 * Whether a PostgreSQL statement starting with `head` (at a statement boundary) would leave the
 * target or run on this machine: any psql meta-command but pg_dump's own `\restrict` and
 * `\unrestrict`, statements on databases, tablespaces, roles or the server, and a `COPY` that
 * is no `COPY … FROM stdin;` (which the caller has ruled out: a file or program is named).
 */
function leavesTarget(head: string): boolean {
  if (head.startsWith("\\")) return !/^\\(un)?restrict\b/.test(head);
  return /^(DROP (DATABASE|TABLESPACE|ROLE|USER)\b|CREATE (DATABASE|TABLESPACE)|COPY |ALTER (DATABASE|SYSTEM)\b)/i
    .test(head);
}

const RELATION_RE =
  /^CREATE (?:UNLOGGED )?(TABLE|SEQUENCE|(?:UNIQUE )?INDEX|VIEW|MATERIALIZED VIEW|OR REPLACE VIEW) /;

/** Relations a top-level `CREATE …` line of pg_dump creates (a table also gets TOAST ones). */
function relationsCreated(text: string): number {
  const m = RELATION_RE.exec(text);
  if (!m) return 0;
  return m[1] === "TABLE" || m[1] === "MATERIALIZED VIEW" ? 3 : 1;
}

/** `    ADD CONSTRAINT … PRIMARY KEY|UNIQUE|EXCLUDE …`: a constraint that builds an index. */
function isIndexConstraint(line: Uint8Array): boolean {
  const text = decoder.decode(line.subarray(0, 512));
  return /^ {4}ADD CONSTRAINT .* (PRIMARY KEY|UNIQUE|EXCLUDE)\b/.test(text);
}

/** Whether position `at` of a one-line statement is outside quotes and comments. */
function topLevelAt(dialect: SqlDialect, text: string, at: number): boolean {
  if (at < 0) return false;
  const lexer = new SqlLexer(dialect);
  lexer.feed(new TextEncoder().encode(text.slice(0, at)));
  return lexer.atTopLevel;
}

function firstWords(text: string): string {
  if (text.startsWith("\\")) return text.split(/\s+/)[0];
  return text.split(/[\s(;]+/).slice(0, 2).join(" ").toUpperCase();
}

function isCopyEnd(line: Uint8Array): boolean {
  return line[0] === 0x5c && line[1] === 0x2e &&
    (line.length === 2 || line[2] === NL || (line[2] === 0x0d && line[3] === NL));
}

/**
 * Newlines in `chunk[from, to)`. A MySQL body is mostly short lines (mariadb-dump writes one row
 * a line), and one indexOf call per line cost more than the rest of the filter: long ranges are
 * counted four bytes at a time instead (a word's bytes equal to `\n` found by the exact zero-byte test).
 */
function countNewlines(chunk: Uint8Array, from: number, to = chunk.length): number {
  let n = 0;
  let i = from;
  if (to - i >= 64) {
    const aligned = Math.min(to, ((chunk.byteOffset + i + 3) & ~3) - chunk.byteOffset);
    for (; i < aligned; i++) if (chunk[i] === NL) n++;
    const words = (to - i) >> 2;
    const w = new Uint32Array(chunk.buffer, chunk.byteOffset + i, words);
    for (let k = 0; k < words; k++) {
      const y = w[k] ^ 0x0a0a0a0a;
      // High bit of each byte of y that is zero, moved to the byte's low bit, then summed.
      const t = ~(((y & 0x7f7f7f7f) + 0x7f7f7f7f) | y | 0x7f7f7f7f) >>> 7;
      n += (t * 0x01010101) >>> 24;
    }
    i += words << 2;
  }
  for (; i < to; i++) if (chunk[i] === NL) n++;
  return n;
}

/**
 * A stream that passes a dump on, leaving out what the options ask (header, ownership), and
 * records {@linkcode DumpFacts} on the way.
 */
export class DumpFilter extends TransformStream<Uint8Array, Uint8Array> {
  /** The reader doing the work; its facts are complete once the stream has closed. */
  readonly reader: DumpLineReader;

  /** Creates the filter. */
  constructor(options: DumpFilterOptions = {}) {
    const reader = new DumpLineReader(options);
    super({
      transform(chunk, controller) {
        reader.push(chunk, (span) => controller.enqueue(span));
      },
      flush(controller) {
        reader.end((span) => controller.enqueue(span));
      },
    });
    this.reader = reader;
  }
}
