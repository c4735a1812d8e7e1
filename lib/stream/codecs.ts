/**
 * Compression codecs (gzip, zstd, none) as Web TransformStreams.
 *
 * All codecs use node:zlib: it is the fastest implementation measured under Deno (see
 * shared environment notes), it gives level control that `CompressionStream` lacks, and it
 * ships zstd. gzip with `threads > 1` goes through the parallel compressor.
 *
 * @module
 */
import zlib from "node:zlib";
import { fromNodeTransform } from "./node_transform.ts";
import { parallelGzip } from "./gzip_parallel.ts";
import { offloadedZstd } from "./zstd_offload.ts";
import { guardZstdDecompressor, zstdFrameCheck } from "./zstd_guard.ts";
import { concatBytes } from "./bytes.ts";
import { bySize } from "./size_choice.ts";

/** A compression format the tool writes and reads. */
export type CodecFormat = "gzip" | "zstd" | "none";

/** Options for {@linkcode Codec.compress}. */
export interface CompressOptions {
  /**
   * Threads to compress with (default 1). gzip compresses blocks on up to that many threads
   * (the caller's and `threads - 1` workers);
   * zstd (whose node:zlib build rejects `ZSTD_c_nbWorkers`) moves to one worker when more than
   * one thread is allowed, so compression overlaps the caller's reading, hashing and writing.
   */
  threads?: number;
}

/** A compression format: how to compress, decompress and name its files. */
export interface Codec {
  /** Format name, as in the configuration. */
  readonly format: CodecFormat;
  /** File name suffix, with its dot ("" for none). */
  readonly extension: ".gz" | ".zst" | "";
  /** Lowest and highest accepted level (0 and 0 for none, which ignores the level). */
  readonly levels: { readonly min: number; readonly max: number };
  /**
   * A stream that compresses what flows through it.
   *
   * @throws {RangeError} when `level` is outside {@linkcode Codec.levels} or `threads` < 1.
   */
  compress(level: number, opts?: CompressOptions): TransformStream<Uint8Array, Uint8Array>;
  /** A stream that decompresses what flows through it (gzip: every concatenated member). */
  decompress(): TransformStream<Uint8Array, Uint8Array>;
}

/**
 * Below this much input a compressor stays on the calling thread: a worker costs about 0.1
 * CPU-s to start, more than one thread takes to compress 4 MiB, and servers with hundreds of
 * tiny databases paid it per database.
 */
export const OFFLOAD_THRESHOLD = 4 * 1024 * 1024;

/** Node zlib's default 16 KiB output chunks cost measurable per-chunk overhead in Deno. */
const CHUNK_SIZE = 64 * 1024;
/**
 * Decompressed chunks: larger still, since every one then crosses the restore's dump filter
 * and a write to the client (a restore spent 0.4 s per 200 MB on 64 KiB chunks alone).
 */
const DECOMPRESS_CHUNK_SIZE = 256 * 1024;

function checkLevel(format: CodecFormat, level: number, min: number, max: number): void {
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new RangeError(
      `${format} compression level must be an integer from ${min} to ${max}, got ${level}`,
    );
  }
}

function checkThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`compression threads must be an integer of at least 1, got ${threads}`);
  }
}

const gzip: Codec = {
  format: "gzip",
  extension: ".gz",
  levels: { min: 1, max: 9 },
  compress(level, opts = {}) {
    checkLevel("gzip", level, 1, 9);
    const threads = opts.threads ?? 1;
    checkThreads(threads);
    const oneThread = () =>
      fromNodeTransform(() => zlib.createGzip({ level, chunkSize: CHUNK_SIZE }));
    if (threads === 1) return oneThread();
    return bySize(OFFLOAD_THRESHOLD, () => parallelGzip({ level, threads }), oneThread);
  },
  decompress() {
    // createGunzip reads concatenated members until the input ends, which the parallel
    // compressor does not need (it writes one member) but `cat a.gz b.gz` files do.
    return fromNodeTransform(() => zlib.createGunzip({ chunkSize: DECOMPRESS_CHUNK_SIZE }));
  },
};

/**
 * Deno's zstd compressor ends some streams with one or two empty frames after the data (content
 * size 0 or unknown, one empty raw block, the checksum of nothing: 13 bytes each). Its own
 * decoder then reads only the first frame and never ends; a backup must be one frame that every
 * zstd reader handles, so they are dropped.
 */
function isEmptyZstdFrame(b: Uint8Array): boolean {
  const header = b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd &&
    // Checksum flag set, no dictionary; single segment with content size 0, or a window byte.
    ((b[4] === 0x24 && b[5] === 0x00) || b[4] === 0x04);
  const emptyLastRawBlock = b[6] === 0x01 && b[7] === 0x00 && b[8] === 0x00;
  const checksumOfNothing = b[9] === 0x99 && b[10] === 0xe9 && b[11] === 0xd8 && b[12] === 0x51;
  return header && emptyLastRawBlock && checksumOfNothing;
}

const EMPTY_FRAME_BYTES = 13;
/** Enough held-back output for a few trailing empty frames. */
const HOLD_BACK = 4 * EMPTY_FRAME_BYTES;

/** Passes compressed output on, dropping empty frames that follow the data frame. */
function withoutTrailingEmptyFrame(
  inner: TransformStream<Uint8Array, Uint8Array>,
): TransformStream<Uint8Array, Uint8Array> {
  const n = HOLD_BACK;
  let held = new Uint8Array(0);
  let emitted = 0;
  const strip = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      // Hold back the last n bytes seen; everything before them can go on at once.
      if (chunk.length >= n) {
        if (held.length) controller.enqueue(held);
        controller.enqueue(chunk.subarray(0, chunk.length - n));
        emitted += held.length + chunk.length - n;
        held = chunk.slice(chunk.length - n);
        return;
      }
      const all = concatBytes([held, chunk]);
      if (all.length > n) {
        controller.enqueue(all.subarray(0, all.length - n));
        emitted += all.length - n;
      }
      held = all.slice(Math.max(0, all.length - n));
    },
    flush(controller) {
      let end = held.length;
      // Keep at least the first frame: an empty input compresses to one empty frame.
      while (
        end >= EMPTY_FRAME_BYTES && emitted + end - EMPTY_FRAME_BYTES > 0 &&
        isEmptyZstdFrame(held.subarray(end - EMPTY_FRAME_BYTES, end))
      ) end -= EMPTY_FRAME_BYTES;
      if (end > 0) controller.enqueue(held.subarray(0, end));
    },
  });
  // One stream to the caller: write into the compressor, read the stripped output.
  return {
    writable: inner.writable,
    readable: inner.readable.pipeThrough(strip),
  } as TransformStream<
    Uint8Array,
    Uint8Array
  >;
}

const zstd: Codec = {
  format: "zstd",
  extension: ".zst",
  levels: { min: 1, max: 19 },
  compress(level, opts = {}) {
    checkLevel("zstd", level, 1, 19);
    const threads = opts.threads ?? 1;
    checkThreads(threads);
    const oneThread = () =>
      fromNodeTransform(() =>
        zlib.createZstdCompress({
          chunkSize: CHUNK_SIZE,
          // The content checksum (the zstd CLI's default too) is what lets decompression detect
          // corrupted data; without it damaged blocks can decode to wrong bytes silently.
          params: {
            [zlib.constants.ZSTD_c_compressionLevel]: level,
            [zlib.constants.ZSTD_c_checksumFlag]: 1,
          },
        })
      );
    // More than one thread: compress on a worker, overlapping the caller's own work.
    const inner = threads === 1
      ? oneThread()
      : bySize(OFFLOAD_THRESHOLD, () => offloadedZstd(level) ?? oneThread(), oneThread);
    return withoutTrailingEmptyFrame(inner);
  },
  decompress() {
    // Guarded: Deno's zstd decompressor neither reports truncation nor corruption safely.
    return fromNodeTransform(
      () => guardZstdDecompressor(zlib.createZstdDecompress({ chunkSize: DECOMPRESS_CHUNK_SIZE })),
      zstdFrameCheck(),
    );
  },
};

const identity = (): TransformStream<Uint8Array, Uint8Array> => new TransformStream();

const none: Codec = {
  format: "none",
  extension: "",
  levels: { min: 0, max: 0 },
  compress(_level, opts = {}) {
    checkThreads(opts.threads ?? 1);
    return identity();
  },
  decompress: identity,
};

const CODECS: Record<CodecFormat, Codec> = { gzip, zstd, none };

/** The codec of a format. */
export function codecFor(format: CodecFormat): Codec {
  const codec = CODECS[format];
  if (!codec) throw new RangeError(`unknown compression format: ${String(format)}`);
  return codec;
}

/**
 * Finds the codec of existing data: from its first bytes (gzip 1f 8b, zstd 28 b5 2f fd) when
 * given bytes, else from a file name's suffix (.gz, .zst). Anything else is "none".
 */
export function detectCodec(firstBytesOrFileName: Uint8Array | string): Codec {
  if (typeof firstBytesOrFileName === "string") {
    const name = firstBytesOrFileName.toLowerCase();
    if (name.endsWith(".gz")) return gzip;
    if (name.endsWith(".zst")) return zstd;
    return none;
  }
  const b = firstBytesOrFileName;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return gzip;
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) {
    return zstd;
  }
  return none;
}
