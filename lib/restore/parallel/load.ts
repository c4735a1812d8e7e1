/**
 * `restore --jobs N`: one reader decompresses and filters the dump and cuts it into sections
 * (./split.ts) spooled to disk (./spool.ts); the phases run one after the other, each over
 * one client session or N of them, every session starting with the dump's own session
 * prelude. A phase can start while the reader is still spooling what it loads. The first
 * statement that fails ends every session and the reader; its message names the dump's line.
 *
 * @module
 */
import { basename } from "node:path";
import type { Logger } from "../../log.ts";
import { type ChildSpec, startChild } from "../../process.ts";
import { type DumpFacts, type DumpFilterOptions, DumpLineReader } from "../dump_filter.ts";
import { RestoreFailedError } from "../errors.ts";
import { abortable, Changes, Spool } from "./spool.ts";
import {
  bytesOf,
  DumpSplitter,
  endsBefore,
  PARALLEL_PHASES,
  type Phase,
  type Section,
} from "./split.ts";

/** What a parallel load needs. */
export interface ParallelLoadOptions {
  /** Sessions for the parallel phases (> 1). */
  jobs: number;
  /** The dump's engine family. */
  family: "postgresql" | "mysql";
  /** The decompressed, not yet filtered SQL. */
  sql: ReadableStream<Uint8Array>;
  /** How the dump is filtered (as for a one-session load). */
  filter: DumpFilterOptions;
  /** A client command reading SQL on stdin into the target, one per session. */
  client: () => Promise<{ child: ChildSpec; cleanup: () => Promise<void> }>;
  /**
   * Called once the SQL has ended, with what the reader found; throws when the file changed
   * while it was read, or (a load that reads the file only once) it is not fit to keep.
   */
  verified: (facts: DumpFacts) => Promise<void>;
  /** Ends the load (interrupt, stall): every session is killed. */
  signal: AbortSignal;
  /** Something went through (for the stall watch). */
  onActivity: () => void;
  /** Tables whose data is complete, of those seen so far, and the ones loading now. */
  onTables?: (done: number, total: number, loading: string[]) => void;
  /** Bound of the spool (bytes read ahead and not yet loaded). */
  spoolLimit?: number;
  /** The target database, for messages. */
  target: string;
  /** The client's error with the dump's line (see restore.ts). */
  describe: (stderr: string, cmd: string, dumpLine: (sent: number) => number) => string;
  /** Where the clients' warnings go. */
  log: Logger;
}

/** A FIFO whose consumers wait for items until it is closed. */
class Queue<T> {
  #items: T[] = [];
  #closed = false;
  #changes = new Changes();
  push(item: T): void {
    this.#items.push(item);
    this.#changes.notify();
  }
  close(): void {
    this.#closed = true;
    this.#changes.notify();
  }
  async next(signal: AbortSignal): Promise<T | undefined> {
    while (true) {
      signal.throwIfAborted();
      if (this.#items.length) return this.#items.shift();
      if (this.#closed) return undefined;
      await abortable(this.#changes.next(), signal);
    }
  }
}

/** Lines sent to a session, mapped back to lines of the filtered SQL. */
class LineMap {
  #segments: { from: number; output: number }[] = [];
  sent = 0;
  /** The next `lines` lines sent come from line `output` on. */
  add(output: number, lines: number): void {
    this.#segments.push({ from: this.sent + 1, output });
    this.sent += lines;
  }
  /** The filtered SQL's line of line `sent` of the session. */
  outputLine(sent: number): number {
    let seg = this.#segments[0] ?? { from: 1, output: 1 };
    for (const s of this.#segments) {
      if (s.from <= sent) seg = s;
      else break;
    }
    return seg.output + (sent - seg.from);
  }
}

/** Loads the dump over up to `jobs` sessions; throws RestoreFailedError (or the abort reason). */
export async function parallelLoad(o: ParallelLoadOptions): Promise<void> {
  const load = new ParallelLoad(o, await Spool.create(o.spoolLimit));
  await load.run();
}

/** The state of one parallel load: its reader, queues, sessions and first failure. */
class ParallelLoad {
  readonly #o: ParallelLoadOptions;
  readonly #spool: Spool;
  readonly #control = new AbortController();
  #failure: unknown;
  readonly #queues = [0, 1, 2, 3].map(() => new Queue<Section>());
  readonly #tables = { total: 0, done: 0, loading: new Set<string>() };
  readonly #splitter: DumpSplitter;
  readonly #reader: DumpLineReader;

  constructor(o: ParallelLoadOptions, spool: Spool) {
    this.#o = o;
    this.#spool = spool;
    this.#splitter = new DumpSplitter(spool, o.family, (s) => {
      for (let q = 0; q < endsBefore(o.family, s.phase); q++) this.#queues[q].close();
      this.#queues[s.phase].push(s);
      if (s.table) this.#tables.total++;
    });
    const splitter = this.#splitter;
    this.#reader = new DumpLineReader({
      ...o.filter,
      onEntryLine: o.family === "postgresql"
        ? (text, line) => splitter.entryLine(text, line)
        : undefined,
    });
  }

  /** The first failure wins; everything else is stopped. */
  #fail(e: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = e;
    this.#control.abort(e);
    // Wake whoever waits for room or data: they see the abort.
    this.#spool.changes.notify();
  }

  #report(): void {
    const t = this.#tables;
    this.#o.onTables?.(t.done, t.total, [...t.loading]);
  }

  async run(): Promise<void> {
    const o = this.#o;
    const onAbort = () =>
      this.#fail(o.signal.reason ?? new RestoreFailedError("restore interrupted"));
    if (o.signal.aborted) onAbort();
    o.signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.all([this.#read(), this.#phases()]);
    } finally {
      o.signal.removeEventListener("abort", onAbort);
      this.#splitter.abandon();
      await this.#spool.dispose();
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The reader: decompressed SQL through the filter into the spool, then the checksum. */
  async #read(): Promise<void> {
    const signal = this.#control.signal;
    const input = this.#o.sql.getReader();
    // A reader parked in a read of the decompressor is released by the cancel.
    signal.addEventListener("abort", () => input.cancel().catch(() => {}), { once: true });
    const splitter = this.#splitter;
    const emit = (span: Uint8Array) => splitter.emit(span);
    try {
      while (true) {
        const { done, value: chunk } = await input.read();
        signal.throwIfAborted();
        if (done) break;
        this.#reader.push(chunk, emit);
        await splitter.settle();
        await abortable(this.#spool.room(), signal);
        this.#o.onActivity();
      }
      this.#reader.end(emit);
      splitter.end(this.#reader.outputLines);
      await splitter.settle();
      await this.#o.verified(this.#reader.facts);
    } catch (e) {
      this.#fail(e);
    } finally {
      for (const q of this.#queues) q.close();
    }
  }

  /** The phases in order, each over one session or `jobs` of them. */
  async #phases(): Promise<void> {
    for (const phase of [0, 1, 2, 3] as Phase[]) {
      const n = PARALLEL_PHASES.has(phase) ? this.#o.jobs : 1;
      await Promise.all(
        Array.from(
          { length: n },
          () => this.#session(this.#queues[phase]).catch((e) => this.#fail(e)),
        ),
      );
      if (this.#failure !== undefined) return;
    }
  }

  /** One session: takes sections from `queue` until it is closed, then ends its client. */
  async #session(queue: Queue<Section>): Promise<void> {
    const o = this.#o;
    const signal = this.#control.signal;
    const first = await queue.next(signal).catch(() => undefined);
    if (!first) return;
    const { child: spec, cleanup } = await o.client();
    const child = startChild(spec);
    const kill = () => child.kill(1000);
    signal.addEventListener("abort", kill, { once: true });
    const map = new LineMap();
    const feeding = this.#feed(child.process.stdin, queue, first, map)
      .then(() => undefined, (e) => e);
    try {
      const [feedError, status, stderr] = await Promise.all([
        feeding,
        child.process.status,
        child.stderr,
      ]);
      if (this.#failure !== undefined) return; // killed for another failure, or interrupted
      if (!status.success) {
        const dumpLine = (sent: number) => this.#reader.inputLine(map.outputLine(sent));
        this.#fail(
          new RestoreFailedError(
            `restore into ${o.target} failed: ${o.describe(stderr, spec.cmd, dumpLine)}`,
          ),
        );
        return;
      }
      if (feedError) {
        this.#fail(feedError);
        return;
      }
      const noise = stderr.split("\n").filter((l) => l.trim());
      for (const line of noise.slice(0, 20)) o.log.warn(`${basename(spec.cmd)}: ${line}`);
    } finally {
      signal.removeEventListener("abort", kill);
      child.kill(1000);
      await cleanup();
    }
  }

  /** Writes the prelude, then each section taken from `queue`, into one client's stdin. */
  async #feed(
    stdin: WritableStream<Uint8Array>,
    queue: Queue<Section>,
    first: Section,
    map: LineMap,
  ): Promise<void> {
    const signal = this.#control.signal;
    const tables = this.#tables;
    const writer = stdin.getWriter();
    try {
      if (first.seq !== 0) {
        map.add(1, this.#splitter.preludeLines);
        await writer.write(this.#splitter.prelude);
      }
      let section: Section | undefined = first;
      while (section) {
        const s: Section = section;
        if (s.settings) {
          map.add(s.startLine, countLines(s.settings));
          await writer.write(bytesOf(s.settings));
        }
        if (s.table) {
          tables.loading.add(s.table);
          this.#report();
        }
        map.add(s.startLine, 0);
        for await (const chunk of s.file.read(signal)) {
          await writer.write(chunk);
          this.#o.onActivity();
        }
        map.sent += s.lines ?? 0;
        section = await queue.next(signal);
        // Its client holds all of it now (a pipe's worth behind at most).
        if (s.table) {
          tables.loading.delete(s.table);
          tables.done++;
          this.#report();
        }
      }
      await writer.close();
    } catch (e) {
      await writer.abort(e).catch(() => {});
      throw e;
    }
  }
}

function countLines(text: string): number {
  return text.split("\n").length - 1;
}
