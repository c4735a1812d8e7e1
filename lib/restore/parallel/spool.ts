/**
 * The disk between the one reader of a parallel restore and its sessions. Each section of the
 * dump is appended to its own file while a session may already be loading it from the other
 * end, so a slow table never holds the reader back and memory stays flat. What has been
 * written and not yet loaded is bounded: beyond the limit the reader waits, as long as some
 * session can make room (a session that has caught up with the reader cannot; waiting for it
 * would never end).
 *
 * The folder is private (0700, files 0600: the dump's rows are in it) and removed at the end,
 * also when the restore fails; one a `kill -9` left is swept by the next run.
 *
 * @module
 */
import { makeRestoreTempDir } from "../temp_dir.ts";

/** Resolves the waiters of the moment each time something changes. */
export class Changes {
  #waiters: (() => void)[] = [];
  /** Resolves at the next {@linkcode notify}. */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  /** Wakes every waiter. */
  notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/** Bytes a section holds in memory before they are written to its file. */
const BUFFER = 256 * 1024;

/** Default of the spool's bound: bytes written and not yet loaded. */
export const DEFAULT_SPOOL_LIMIT = 2 * 1024 * 1024 * 1024;

/** A folder of section files with a bound on what is not yet consumed. */
export class Spool {
  /** The private folder. */
  readonly dir: string;
  /** The bound on unconsumed bytes. */
  readonly limit: number;
  /** Notified on every write, read and reader state change. */
  readonly changes: Changes = new Changes();
  /** Bytes written to files and not yet read back. */
  unconsumed = 0;
  /** Open readers, and of those the ones waiting for the writer. */
  readers = 0;
  /** Readers that caught up with the writer. */
  starved = 0;
  #files = 0;

  private constructor(dir: string, limit: number) {
    this.dir = dir;
    this.limit = limit;
  }

  /** Creates the private folder (under TMPDIR). */
  static async create(limit = DEFAULT_SPOOL_LIMIT): Promise<Spool> {
    return new Spool(await makeRestoreTempDir(), limit);
  }

  /** A new, empty section file (created on disk at its first flush). */
  file(): SpoolFile {
    return new SpoolFile(this, `${this.dir}/${String(++this.#files).padStart(6, "0")}.sql`);
  }

  /**
   * Resolves once the unconsumed bytes are within the limit, or no reader could consume
   * (all caught up or none open): then waiting would not end.
   */
  async room(): Promise<void> {
    while (this.unconsumed > this.limit && this.readers - this.starved > 0) {
      await this.changes.next();
    }
  }

  /** Removes the folder and everything in it. */
  async dispose(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** One section's file: appended by the reader, read (once) by a session. */
export class SpoolFile {
  readonly #spool: Spool;
  /** The file's path. */
  readonly path: string;
  #handle?: Deno.FsFile;
  #buffer = new Uint8Array(BUFFER);
  #buffered = 0;
  // Wakes this file's reader only: a reader waking other readers would wake it back, forever.
  #more = new Changes();
  /** Bytes in the file. */
  written = 0;
  /** No more bytes will come. */
  closed = false;

  /** A file of `spool` at `path` (not yet created). */
  constructor(spool: Spool, path: string) {
    this.#spool = spool;
    this.path = path;
  }

  /** Bytes appended so far (written or buffered). */
  get size(): number {
    return this.written + this.#buffered;
  }

  /** Copies `span` in; returns whether the buffer is full and should be flushed. */
  append(span: Uint8Array): boolean {
    let at = 0;
    while (at < span.length) {
      if (this.#buffered === this.#buffer.length) {
        // Full: grow once per overflow; flush() empties it before the next push.
        const bigger = new Uint8Array(this.#buffer.length * 2);
        bigger.set(this.#buffer.subarray(0, this.#buffered));
        this.#buffer = bigger;
      }
      const n = Math.min(span.length - at, this.#buffer.length - this.#buffered);
      this.#buffer.set(span.subarray(at, at + n), this.#buffered);
      this.#buffered += n;
      at += n;
    }
    return this.#buffered >= BUFFER;
  }

  /** Writes what is buffered to the file, for the readers. */
  async flush(): Promise<void> {
    if (this.#buffered === 0) return;
    this.#handle ??= await Deno.open(this.path, { write: true, createNew: true, mode: 0o600 });
    let at = 0;
    while (at < this.#buffered) {
      at += await this.#handle!.write(this.#buffer.subarray(at, this.#buffered));
    }
    this.written += this.#buffered;
    this.#spool.unconsumed += this.#buffered;
    this.#buffered = 0;
    if (this.#buffer.length > BUFFER) this.#buffer = new Uint8Array(BUFFER);
    this.#more.notify();
    this.#spool.changes.notify();
  }

  /** Flushes and marks the end. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.#handle?.close();
    this.#handle = undefined;
    this.#more.notify();
    this.#spool.changes.notify();
  }

  /** Closes the write end without marking the end (after a failure). */
  abandon(): void {
    try {
      this.#handle?.close();
    } catch { /* already closed */ }
    this.#handle = undefined;
  }

  /**
   * The section's bytes as they come, until it is closed; the file is removed once read. The
   * signal ends the wait for the writer.
   */
  async *read(signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const spool = this.#spool;
    let file: Deno.FsFile | undefined;
    let offset = 0;
    spool.readers++;
    spool.changes.notify();
    try {
      while (true) {
        signal?.throwIfAborted();
        if (offset < this.written) {
          // A fresh buffer each time: the client's stdin may still hold the last one.
          const buf = new Uint8Array(Math.min(BUFFER, this.written - offset));
          file ??= await Deno.open(this.path, { read: true });
          const n = await file.read(buf);
          if (n === null || n === 0) throw new Error(`${this.path} ended early`);
          offset += n;
          spool.unconsumed -= n;
          spool.changes.notify();
          yield buf.subarray(0, n);
          continue;
        }
        if (this.closed) return;
        spool.starved++;
        spool.changes.notify();
        try {
          await abortable(this.#more.next(), signal);
        } finally {
          spool.starved--;
        }
      }
    } finally {
      // What was not read no longer counts against the bound.
      spool.unconsumed -= this.written - offset;
      spool.readers--;
      spool.changes.notify();
      file?.close();
      await Deno.remove(this.path).catch(() => {});
    }
  }
}

/** `p`, or a rejection when `signal` aborts first. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
