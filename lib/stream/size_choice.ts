/**
 * A transform chosen by how much input there is: the input is held until it passes a threshold,
 * then everything goes through the `large` transform; input that ends before the threshold goes
 * through the `small` one.
 *
 * Why: starting a compression worker costs about a tenth of a CPU-second (a new isolate and its
 * modules). A server with hundreds of one-row databases paid that per database for dumps of a
 * few KiB, which one thread compresses in well under a millisecond.
 *
 * @module
 */

/** A transform of bytes, made on demand. */
export type MakeTransform = () => TransformStream<Uint8Array, Uint8Array>;

/**
 * Holds up to `threshold` bytes, then commits to `large()` (input reaching the threshold) or
 * `small()` (input ending below it). Output keeps the chosen transform's backpressure: the
 * readable pulls from it only as it is read. An error of the chosen transform, an abort of the
 * writable or a cancel of the readable reaches the other side.
 */
export function bySize(
  threshold: number,
  large: MakeTransform,
  small: MakeTransform,
): TransformStream<Uint8Array, Uint8Array> {
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let input!: WritableStreamDefaultController;
  let chosen!: (reader: ReadableStreamDefaultReader<Uint8Array>) => void;
  let refused!: (reason: unknown) => void;
  const reader = new Promise<ReadableStreamDefaultReader<Uint8Array>>((resolve, reject) => {
    chosen = resolve;
    refused = reject;
  });
  // A rejection nobody pulls for (the readable was never read) is not an unhandled one.
  reader.catch(() => {});

  const commit = async (make: MakeTransform) => {
    let inner: TransformStream<Uint8Array, Uint8Array>;
    try {
      inner = make();
    } catch (e) {
      refused(e);
      throw e;
    }
    writer = inner.writable.getWriter();
    chosen(inner.readable.getReader());
    const first = held;
    held = [];
    for (const chunk of first) await writer.write(chunk);
  };

  const writable = new WritableStream<Uint8Array>({
    start(controller) {
      input = controller;
    },
    async write(chunk) {
      if (writer) return await writer.write(chunk);
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes >= threshold) await commit(large);
    },
    async close() {
      if (!writer) await commit(small);
      await writer!.close();
    },
    async abort(reason) {
      held = [];
      refused(reason);
      await writer?.abort(reason).catch(() => {});
    },
  });

  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await (await reader).read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      refused(reason);
      held = [];
      input.error(reason);
      // Cancelled from the read side, not aborted from the write side: a write of ours may be
      // waiting for the inner transform's output to be read, and an abort would wait for that
      // write forever. The cancel releases it and stops the inner transform (its workers too).
      // Settled by now: refused above when nothing was chosen yet.
      await reader.then((r) => r.cancel(reason)).catch(() => {});
    },
  }, { highWaterMark: 0 });

  return { writable, readable } as TransformStream<Uint8Array, Uint8Array>;
}
