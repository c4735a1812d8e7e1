/**
 * Adapts a Node.js Transform stream (node:zlib) to a Web {@linkcode TransformStream}.
 *
 * Node's own `Duplex.toWeb()` enqueues every `data` event without waiting, so a slow consumer
 * makes the readable side grow without bound. Here `transform()` resolves only once zlib has
 * consumed the chunk, and a TransformStream does not call `transform()` again while its readable
 * side is full, so at most one input chunk and its output are buffered at any time.
 *
 * @module
 */
import type { Transform } from "node:stream";

/** Validates the input as it passes; a throw fails the stream with that error. */
export interface InputCheck {
  /** Sees each input chunk before the Node stream does. */
  chunk(chunk: Uint8Array): void;
  /** Called when the input ends. */
  end(): void;
}

/**
 * Wraps the Node Transform made by `make` (created lazily, on the first chunk or at flush) as a
 * Web TransformStream with back-pressure. Cancelling either side destroys the Node stream; a
 * throw from `check` errors the stream and destroys it too.
 */
export function fromNodeTransform(
  make: () => Transform,
  check?: InputCheck,
): TransformStream<Uint8Array, Uint8Array> {
  let node: Transform | undefined;
  let failure: Error | undefined;
  const waiters = new Set<(error: Error) => void>();

  const fail = (error: Error) => {
    failure ??= error;
    for (const reject of waiters) reject(error);
    waiters.clear();
  };

  // Registers a rejection hook for the lifetime of one pending operation, so an 'error' event
  // ends whichever operation is waiting instead of leaving it hanging.
  const guarded = (run: (resolve: () => void, reject: (e: Error) => void) => void) =>
    new Promise<void>((resolve, reject) => {
      if (failure) return reject(failure);
      const onError = (e: Error) => reject(e);
      waiters.add(onError);
      run(() => {
        waiters.delete(onError);
        resolve();
      }, (e) => {
        waiters.delete(onError);
        reject(e);
      });
    });

  const ensure = (controller: TransformStreamDefaultController<Uint8Array>): Transform => {
    if (node) return node;
    const created = make();
    created.on("data", (chunk: Uint8Array) => {
      try {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch {
        // The readable side was cancelled; destroy() below stops further output.
      }
    });
    created.on("error", (e: Error) => fail(e));
    node = created;
    return created;
  };

  const runCheck = (stream: Transform, run: () => void) => {
    try {
      run();
    } catch (error) {
      stream.destroy();
      throw error;
    }
  };

  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      const stream = ensure(controller);
      runCheck(stream, () => check?.chunk(chunk));
      return guarded((resolve, reject) => {
        stream.write(chunk, (error) => (error ? reject(error) : resolve()));
      });
    },
    flush(controller) {
      const stream = ensure(controller);
      runCheck(stream, () => check?.end());
      return guarded((resolve) => {
        stream.once("end", resolve);
        stream.end();
      });
    },
    cancel(reason) {
      node?.destroy();
      fail(reason instanceof Error ? reason : new Error(String(reason ?? "cancelled")));
    },
  });
}
