/**
 * Looking at the first chunk of a stream without losing it: how a file is packed (age,
 * gzip, zstd) is read from its first bytes, in the same pass that then reads the rest.
 *
 * @module
 */

/**
 * The first chunk of `stream` (empty when it ends at once) and a stream of all of it again,
 * that chunk included. Errors and cancellation pass through.
 */
export async function peekStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ head: Uint8Array; stream: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const first = await reader.read();
  const head = first.done ? new Uint8Array(0) : first.value;
  let pending: Uint8Array | undefined = first.done ? undefined : first.value;
  const again = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pending) {
        controller.enqueue(pending);
        pending = undefined;
        return;
      }
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { head, stream: again };
}
