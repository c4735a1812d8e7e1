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
import { guardZstdDecompressor, zstdFrameCheck } from "./zstd_guard.ts";

/** A compression format the tool writes and reads. */
export type CodecFormat = "gzip" | "zstd" | "none";

/** Options for {@linkcode Codec.compress}. */
export interface CompressOptions {
  /**
   * Worker threads to compress with (default 1). Only gzip uses more than one; zstd in this
   * node:zlib build rejects `ZSTD_c_nbWorkers`, so it always runs on one thread.
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

/** Node zlib's default 16 KiB output chunks cost measurable per-chunk overhead in Deno. */
const CHUNK_SIZE = 64 * 1024;

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
    if (threads > 1) return parallelGzip({ level, threads });
    return fromNodeTransform(() => zlib.createGzip({ level, chunkSize: CHUNK_SIZE }));
  },
  decompress() {
    // createGunzip reads concatenated members until the input ends, which the parallel
    // compressor does not need (it writes one member) but `cat a.gz b.gz` files do.
    return fromNodeTransform(() => zlib.createGunzip({ chunkSize: CHUNK_SIZE }));
  },
};

const zstd: Codec = {
  format: "zstd",
  extension: ".zst",
  levels: { min: 1, max: 19 },
  compress(level, opts = {}) {
    checkLevel("zstd", level, 1, 19);
    checkThreads(opts.threads ?? 1);
    return fromNodeTransform(() =>
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
  },
  decompress() {
    // Guarded: Deno's zstd decompressor neither reports truncation nor corruption safely.
    return fromNodeTransform(
      () => guardZstdDecompressor(zlib.createZstdDecompress({ chunkSize: CHUNK_SIZE })),
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
