/**
 * Parallel gzip compression (like pigz) as a Web TransformStream.
 *
 * Format choice: ONE gzip member, pigz-style, not concatenated members. Input is cut into blocks;
 * each worker deflates its block as raw deflate primed with the previous block's last 32 KiB
 * (the deflate window) and ends it with Z_SYNC_FLUSH, which byte-aligns the output with an empty
 * stored block, so the blocks concatenate into one valid deflate stream; the last block ends with
 * Z_FINISH. The main thread writes the gzip header, the blocks in order, and the trailer with the
 * CRC-32 and length of the whole input. Why not concatenated members, which would be simpler:
 * - readers that stop after the first member (some libraries, `gzip -l` size reporting, older
 *   Java GZIPInputStream versions) would silently see a truncated dump;
 * - priming with the previous window keeps the ratio within a fraction of a percent of
 *   single-threaded gzip, where independent members would lose the context at each block.
 * CRC-32 is computed on the main thread as the data passes (zlib.crc32 runs at ~8 GiB/s here),
 * which avoids a crc32_combine implementation.
 *
 * Memory is bounded: at most `2 * threads` blocks are in flight; `transform()` waits for the
 * oldest block when that limit is reached, which back-pressures the producer.
 *
 * `threads` counts the calling thread: `threads - 1` workers, and a block that finds every worker
 * busy is deflated right here (gzip_block.ts, as the workers do). The calling thread would
 * otherwise mostly wait, and each worker is an isolate of its own with node:zlib loaded, about
 * 25 MiB: with 2 threads a backup peaked at 144-150 MiB with two workers, about 25 MiB less with
 * one worker and the calling thread. While the calling thread deflates a block (about 10 ms per
 * MiB at level 6) it reads no input; the workers have their blocks meanwhile.
 *
 * Workers are Deno Web Workers running gzip_worker.ts (measured faster here than
 * node:worker_threads); they inherit the program's permissions. Loading the module needs read
 * access to it; without that the stream falls back to one thread. `deno compile` must be given
 * `--include lib/stream/gzip_worker.ts`: compiled binaries do not embed worker modules on their
 * own.
 *
 * @module
 */
import zlib from "node:zlib";
import { fromNodeTransform } from "./node_transform.ts";
import { deflateBlock } from "./gzip_block.ts";

/** A block sent to a worker. Exported for the worker module only. */
export interface BlockRequest {
  /** Sequence number, echoed in the reply. */
  id: number;
  /** gzip level 1-9. */
  level: number;
  /** The uncompressed block (transferred). */
  data: Uint8Array;
  /** The last 32 KiB before this block, or undefined for the first block. */
  dict?: Uint8Array;
  /** Whether this block ends the stream (Z_FINISH instead of Z_SYNC_FLUSH). */
  last: boolean;
}

/** A worker's answer: the raw deflate of the block, or an error message. */
export type BlockReply = { id: number; out: Uint8Array } | { id: number; error: string };

/** Options for {@linkcode parallelGzip}. */
export interface ParallelGzipOptions {
  /** gzip level 1-9. */
  level: number;
  /**
   * Compressing threads, this one included (`threads - 1` workers); 1 means the plain
   * single-threaded node:zlib path.
   */
  threads: number;
  /** Uncompressed bytes per block (default 1 MiB, at least 32 KiB). */
  blockSize?: number;
}

/** Default block size: large enough that message overhead is negligible, small enough to spread. */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;

const WINDOW = 32 * 1024;

/**
 * Blocks a worker may hold before this thread deflates one itself: with one, the worker sat idle
 * while this thread deflated and the next block filled (a 200 MB backup took 3.7 s against 3.3 s
 * with two workers); with two it always has the next block.
 */
const WORKER_QUEUE = 2;

const WORKER_URL = new URL("./gzip_worker.ts", import.meta.url);

/**
 * Whether worker threads can start: loading the worker module needs read access to it. Without
 * it, compressing on one thread beats failing a backup over a speed-up.
 */
function canLoadWorker(): boolean {
  if (WORKER_URL.protocol !== "file:") return true;
  return Deno.permissions.querySync({ name: "read", path: WORKER_URL }).state === "granted";
}

interface Job {
  resolve(out: Uint8Array): void;
  reject(error: Error): void;
}

/** One worker and the blocks it still owes. */
class WorkerSlot {
  readonly worker: Worker;
  readonly jobs = new Map<number, Job>();

  constructor(onFatal: (error: Error) => void) {
    // Kept in the literal `new Worker(new URL("…", import.meta.url))` shape that
    // `deno compile --bundle` recognises and embeds.
    this.worker = new Worker(new URL("./gzip_worker.ts", import.meta.url), { type: "module" });
    this.worker.onmessage = (event: MessageEvent<BlockReply>) => {
      const reply = event.data;
      const job = this.jobs.get(reply.id);
      if (!job) return;
      this.jobs.delete(reply.id);
      if ("error" in reply) job.reject(new Error(`gzip worker: ${reply.error}`));
      else job.resolve(reply.out);
    };
    this.worker.onerror = (event: ErrorEvent) => {
      // Without preventDefault an uncaught worker error also kills the whole process.
      event.preventDefault();
      onFatal(new Error(`gzip worker failed: ${event.message}`));
    };
  }

  run(request: BlockRequest): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      this.jobs.set(request.id, { resolve, reject });
      const transfer = [request.data.buffer as ArrayBuffer];
      this.worker.postMessage(request, transfer);
    });
  }

  failAll(error: Error): void {
    for (const job of this.jobs.values()) job.reject(error);
    this.jobs.clear();
  }
}

function gzipHeader(level: number): Uint8Array {
  // XFL 2 = maximum compression, 4 = fastest, as gzip itself writes; OS 3 = Unix; MTIME 0 since
  // the input is a stream, not a file.
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

function gzipTrailer(crc: number, length: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, length % 0x1_0000_0000, true);
  return out;
}

/** A block in flight: its deflated bytes to come, and whether they are there. */
interface Pending {
  promise: Promise<Uint8Array>;
  settled: boolean;
}

/**
 * The workers of one stream and the blocks in flight: at most `2 * threads`, emitted in order.
 * Workers (`threads - 1` at most) start on demand and are terminated by
 * {@linkcode BlockPool.shutdown}; a block that finds none idle is deflated on this thread.
 */
class BlockPool {
  readonly #slots: WorkerSlot[] = [];
  readonly #pending: Pending[] = [];
  #dict: Uint8Array | undefined;
  #nextId = 0;
  #fatal: Error | undefined;
  #closed = false;

  constructor(readonly level: number, readonly threads: number) {}

  /** Whether any block was dispatched. */
  get dispatched(): boolean {
    return this.#nextId > 0;
  }

  shutdown(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const slot of this.#slots) {
      if (error) slot.failAll(error);
      slot.worker.terminate();
    }
  }

  fail(error: Error): void {
    this.#fatal ??= error;
    this.shutdown(error);
  }

  /**
   * The least busy worker unless every one has a block queued behind its current one (a worker
   * is started if there is room for one), or undefined: deflate here.
   */
  #idleWorker(): WorkerSlot | undefined {
    let least: WorkerSlot | undefined;
    for (const slot of this.#slots) if (!least || slot.jobs.size < least.jobs.size) least = slot;
    if (least && least.jobs.size === 0) return least;
    if (this.#slots.length >= this.threads - 1) {
      return least && least.jobs.size < WORKER_QUEUE ? least : undefined;
    }
    const slot = new WorkerSlot((error) => this.fail(error));
    this.#slots.push(slot);
    return slot;
  }

  #deflate(request: BlockRequest): Pending {
    const slot = this.#idleWorker();
    if (!slot) {
      const { data, level, dict, last } = request;
      return { promise: Promise.resolve(deflateBlock(data, level, dict, last)), settled: true };
    }
    const entry = { promise: slot.run(request), settled: false };
    entry.promise.then(() => (entry.settled = true), () => (entry.settled = true));
    return entry;
  }

  async dispatch(
    data: Uint8Array,
    last: boolean,
    controller: TransformStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    // A cancel can land between two blocks of one large chunk; no worker may start after it.
    if (this.#fatal) throw this.#fatal;
    if (this.#closed) throw new Error("parallel gzip stream is already closed");
    const request: BlockRequest = {
      id: this.#nextId++,
      level: this.level,
      data,
      dict: this.#dict,
      last,
    };
    // Take the window before the block's buffer is transferred away.
    this.#dict = data.length >= WINDOW ? data.slice(data.length - WINDOW) : undefined;
    const pending = this.#pending;
    pending.push(this.#deflate(request));
    // Emit what is already done, then wait while too many blocks are in flight.
    while (pending.length > 0 && (pending[0].settled || pending.length >= this.threads * 2)) {
      controller.enqueue(await pending.shift()!.promise);
    }
  }

  /** Emits every block still in flight, in order. */
  async drain(controller: TransformStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.#pending.length > 0) controller.enqueue(await this.#pending.shift()!.promise);
  }

  /** Runs `work`; on an error, stops the workers and throws the first fatal error. */
  async guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      this.shutdown(e);
      throw this.#fatal ?? e;
    }
  }
}

function checkGzipOptions(level: number, threads: number, blockSize: number): void {
  if (!Number.isInteger(level) || level < 1 || level > 9) {
    throw new RangeError(`gzip compression level must be an integer from 1 to 9, got ${level}`);
  }
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`compression threads must be an integer of at least 1, got ${threads}`);
  }
  if (!Number.isInteger(blockSize) || blockSize < WINDOW) {
    throw new RangeError(`gzip block size must be at least ${WINDOW} bytes, got ${blockSize}`);
  }
}

/**
 * A TransformStream that gzips with `threads` worker threads into a single gzip member,
 * preserving order. Workers start with the first full block and are terminated when the stream
 * ends, errors or is cancelled.
 *
 * @throws {RangeError} on a level outside 1-9, threads < 1 or blockSize < 32 KiB.
 */
export function parallelGzip(
  options: ParallelGzipOptions,
): TransformStream<Uint8Array, Uint8Array> {
  const { level, threads } = options;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkGzipOptions(level, threads, blockSize);
  if (threads === 1 || !canLoadWorker()) {
    return fromNodeTransform(() => zlib.createGzip({ level, chunkSize: 64 * 1024 }));
  }

  const pool = new BlockPool(level, threads);
  let block = new Uint8Array(blockSize);
  let fill = 0;
  let crc = 0;
  let length = 0;
  let started = false;

  const start = (controller: TransformStreamDefaultController<Uint8Array>) => {
    if (started) return;
    started = true;
    controller.enqueue(gzipHeader(level));
  };

  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      return pool.guard(async () => {
        start(controller);
        crc = zlib.crc32(chunk, crc);
        length += chunk.length;
        let offset = 0;
        while (offset < chunk.length) {
          const n = Math.min(blockSize - fill, chunk.length - offset);
          block.set(chunk.subarray(offset, offset + n), fill);
          fill += n;
          offset += n;
          if (fill === blockSize) {
            const full = block;
            block = new Uint8Array(blockSize);
            fill = 0;
            await pool.dispatch(full, false, controller);
          }
        }
      });
    },
    flush(controller) {
      return pool.guard(async () => {
        start(controller);
        if (!pool.dispatched && fill === 0) {
          // Empty input: no worker needed for an empty final deflate block.
          controller.enqueue(zlib.deflateRawSync(new Uint8Array(0), { level }));
        } else {
          await pool.dispatch(block.subarray(0, fill).slice(), true, controller);
        }
        await pool.drain(controller);
        controller.enqueue(gzipTrailer(crc, length));
        pool.shutdown();
      });
    },
    cancel(reason) {
      pool.fail(reason instanceof Error ? reason : new Error(String(reason ?? "cancelled")));
    },
  });
}
