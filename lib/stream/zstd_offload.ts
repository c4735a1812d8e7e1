/**
 * zstd compression on a worker thread, as a TransformStream. The main thread of a backup reads
 * the dump, hashes and writes; with zstd on the same thread those steps and the compression take
 * turns on one core while the dump tool and the server use the other. On its own thread the
 * compression overlaps them, as `pg_dump | zstd` does. The output is one standard frame.
 *
 * @module
 */

/** Main thread → worker. */
export type ZstdRequest =
  | { type: "init"; level: number }
  | { type: "data"; data: Uint8Array }
  | { type: "end" };

/** Worker → main thread: compressed bytes produced so far, the final bytes, or a failure. */
export type ZstdReply =
  | { type: "out" | "done"; chunks: Uint8Array[] }
  | { type: "error"; message: string };

/** Chunks sent and not yet answered: bounds the memory held in the worker's queue. */
const MAX_IN_FLIGHT = 8;

/**
 * Returns the offloaded compressor, or undefined when no worker can be started (e.g. the
 * worker module is not readable under narrow flags): the caller then compresses in-thread.
 */
export function offloadedZstd(level: number): TransformStream<Uint8Array, Uint8Array> | undefined {
  let worker: Worker;
  try {
    // The literal `new Worker(new URL("…", import.meta.url))` shape lets `deno compile` embed it.
    worker = new Worker(new URL("./zstd_worker.ts", import.meta.url), { type: "module" });
  } catch {
    return undefined;
  }
  let inFlight = 0;
  let waiting: (() => void) | undefined;
  let finished: { resolve: () => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  let controller!: TransformStreamDefaultController<Uint8Array>;
  const wake = () => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };
  const fail = (error: Error) => {
    failure ??= error;
    worker.terminate();
    wake();
    finished?.reject(error);
  };
  worker.onmessage = (event: MessageEvent<ZstdReply>) => {
    const reply = event.data;
    if (reply.type === "error") return fail(new Error(`zstd worker: ${reply.message}`));
    for (const c of reply.chunks) controller.enqueue(c);
    if (reply.type === "out") {
      inFlight--;
      wake();
    } else {
      worker.terminate();
      finished?.resolve();
    }
  };
  worker.onerror = (event: ErrorEvent) => {
    // Without preventDefault an uncaught worker error also kills the whole process.
    event.preventDefault();
    fail(new Error(`zstd worker failed: ${event.message}`));
  };
  worker.postMessage({ type: "init", level } satisfies ZstdRequest);
  return new TransformStream<Uint8Array, Uint8Array>({
    start(c) {
      controller = c;
    },
    async transform(chunk) {
      if (failure) throw failure;
      // Transfer when the chunk owns its buffer outright; copy a view into a larger one.
      const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength
        ? chunk
        : chunk.slice();
      inFlight++;
      worker.postMessage({ type: "data", data: own } satisfies ZstdRequest, [
        own.buffer as ArrayBuffer,
      ]);
      while (inFlight >= MAX_IN_FLIGHT && !failure) {
        await new Promise<void>((resolve) => waiting = resolve);
      }
      if (failure) throw failure;
    },
    async flush() {
      if (failure) throw failure;
      const done = new Promise<void>((resolve, reject) => finished = { resolve, reject });
      worker.postMessage({ type: "end" } satisfies ZstdRequest);
      await done;
    },
    cancel() {
      worker.terminate();
    },
  });
}
