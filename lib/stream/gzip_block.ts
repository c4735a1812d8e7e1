/**
 * One block of the parallel gzip compressor (gzip_parallel.ts), deflated the same way on a
 * worker and on the calling thread: raw deflate primed with the previous block's last 32 KiB,
 * ending in a sync flush (byte-aligned, so blocks concatenate) or, for the last block, a finish.
 *
 * @module
 */
import zlib from "node:zlib";

/** Deflates `data` as one block of the stream; `dict` is the window before it, if any. */
export function deflateBlock(
  data: Uint8Array,
  level: number,
  dict: Uint8Array | undefined,
  last: boolean,
): Uint8Array {
  return zlib.deflateRawSync(data, {
    level,
    dictionary: dict,
    finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    chunkSize: 256 * 1024,
  });
}
