/**
 * A file as a stream of chunks of a chosen size, each a fresh buffer. 256 KiB pieces cut the
 * per-chunk cost of a read and of every pipeline stage, but the default stays at 64 KiB: a
 * decompressor turns each piece into its whole output before a stop can take effect, and a
 * hostile or merely very compressible file expands a thousandfold (a 256 KiB piece of gzipped
 * zeros is 256 MB of SQL to get through before a SIGTERM ends the verification), besides the
 * memory (1 MiB pieces: +40 MiB peak RSS).
 *
 * @module
 */

/** Default piece size of {@linkcode fileChunks}. */
export const FILE_CHUNK_SIZE = 64 * 1024;

/**
 * Streams an open file from its current position to its end in pieces of `size` bytes (the
 * last one shorter); the file is closed when the stream ends, fails or is cancelled. Each piece
 * is a fresh buffer, so consumers may keep it.
 */
export function fileChunks(file: Deno.FsFile, size = FILE_CHUNK_SIZE): ReadableStream<Uint8Array> {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      file.close();
    } catch {
      // Already closed by its owner.
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(size);
      let got = 0;
      try {
        while (got < size) {
          const n = await file.read(buffer.subarray(got));
          if (n === null) break;
          got += n;
        }
      } catch (e) {
        close();
        throw e;
      }
      if (got > 0) controller.enqueue(got === size ? buffer : buffer.subarray(0, got));
      if (got < size) {
        close();
        controller.close();
      }
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 1 });
}
