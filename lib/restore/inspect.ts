/**
 * Reads a dump file from end to end before anything touches a server: its SHA-256 (streamed)
 * against the recorded one, age decryption when it is encrypted (each chunk authenticated),
 * full decompression (a truncated or damaged archive fails here), the
 * dump tool's banner (which engine wrote it), the completion marker at its end, and the facts
 * the restore needs (original tool header, roles, large objects).
 *
 * @module
 */
import { basename } from "node:path";
import type { AgeIdentities } from "../crypto/age_keys.ts";
import { AgeError } from "../crypto/age_stream.ts";
import { decryptIfAge, type IdentitySource } from "../crypto/identity_source.ts";
import { type CodecFormat, detectCodec } from "../stream/codecs.ts";
import { peekStream } from "../stream/peek.ts";
import { ByteCounter } from "../stream/counter.ts";
import { fileChunks } from "../stream/file_chunks.ts";
import { sha256File, Sha256Stream } from "../stream/sha256.ts";
import { type DumpFacts, DumpFormatError, DumpLineReader } from "./dump_filter.ts";
import { BadBackupError } from "./errors.ts";
import { DIALECTS } from "../engines/dialect.ts";
import { VyaError } from "../errors.ts";
import { isZip, readZipEntry, type ZipEntry, zipEntryStream } from "./zip.ts";

/** How a dump file is packed. */
export type Packing = CodecFormat | "zip";

/** What {@linkcode inspectDump} found. */
export interface DumpInspection {
  /** The file. */
  path: string;
  /** Bytes on disk. */
  bytes: number;
  /** Hex SHA-256 of the file. */
  sha256: string;
  /** How it is compressed (inside the encryption, when encrypted). */
  packing: Packing;
  /** Whether it is age-encrypted. */
  encrypted: boolean;
  /** The identities that decrypted it (encrypted files only; they print as public keys). */
  identities?: AgeIdentities;
  /** The zip entry, for `.zip` files. */
  zipEntry?: ZipEntry;
  /** Uncompressed bytes. */
  rawBytes: number;
  /** What the dump holds. */
  facts: DumpFacts;
  /** The dump tool's completion marker is at the end. */
  complete: boolean;
}

/** What the caller knows about the file beforehand. */
export interface InspectOptions {
  /** SHA-256 recorded at backup time: a mismatch refuses the file. */
  expectedSha256?: string;
  /** Called with the bytes of the file read so far. */
  onProgress?: (bytes: number, total: number) => void;
  /** Stops the reading (SIGINT/SIGTERM): the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Where the identities of an age-encrypted file come from; without it an encrypted file is
   * refused (exit 3) naming the setting, before it is decrypted.
   */
  identities?: IdentitySource;
  /** The recipients recorded in its metadata: the identity must be one of them. */
  recipients?: readonly string[];
}

/** Decompressed bytes between two breaks of the verify pass (see the sink in inspectDump). */
const BREAK_EVERY = 16 * 1024 * 1024;

/** How much of the end of a dump's SQL is kept to find the completion marker in. */
export const COMPLETION_TAIL = 4096;

/**
 * Refuses, before anything opens it, a path that is missing or not a regular file: opening a
 * FIFO blocks, and a device such as /dev/zero never ends.
 */
export async function assertBackupFile(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new BadBackupError(`backup file ${path} does not exist`);
    }
    if (e instanceof Deno.errors.NotADirectory) {
      throw new BadBackupError(`backup file ${path} does not exist (a parent is not a folder)`);
    }
    throw e;
  }
  if (!info.isFile) {
    throw new BadBackupError(`${path} is not a regular file (it is ${fileKind(info)})`);
  }
}

function fileKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a folder";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a plain file";
}

/** Finds how a file is packed from its first bytes. */
export async function detectPacking(path: string): Promise<Packing> {
  await assertBackupFile(path);
  using file = await openOrExplain(path);
  const head = new Uint8Array(4);
  let got = 0;
  while (got < 4) {
    const n = await file.read(head.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (isZip(head.subarray(0, got))) return "zip";
  return detectCodec(head.subarray(0, got)).format;
}

/** Opens a file for reading; a missing one is a {@linkcode BadBackupError} naming it. */
export async function openOrExplain(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new BadBackupError(`backup file ${path} does not exist`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new BadBackupError(`${path} is a folder, not a backup file`);
    }
    throw e;
  }
}

/** The uncompressed content of a dump file, as a stream. */
export async function openDump(
  path: string,
  packing: Packing,
  zipEntry?: ZipEntry,
): Promise<ReadableStream<Uint8Array>> {
  if (packing === "zip") return zipEntryStream(path, zipEntry ?? await readZipEntry(path));
  const file = await openOrExplain(path);
  const codec = detectCodec(packing === "gzip" ? ".gz" : packing === "zstd" ? ".zst" : "");
  return fileChunks(file).pipeThrough(codec.decompress());
}

/**
 * Reads the whole file. Throws {@linkcode BadBackupError} when it is missing, does not match
 * its checksum, cannot be decompressed, or holds no dump banner or no completion marker.
 */
export async function inspectDump(
  path: string,
  options: InspectOptions = {},
): Promise<DumpInspection> {
  const name = basename(path);
  let packing = await detectPacking(path);
  let identities: AgeIdentities | undefined;
  const size = (await Deno.stat(path)).size;
  const zipEntry = packing === "zip" ? await readZipEntry(path) : undefined;
  const reader = new DumpLineReader({ collectDefiners: true });
  const tail = new TailKeeper(COMPLETION_TAIL);
  let rawBytes = 0;
  let sinceBreak = 0;
  const sink = new WritableStream<Uint8Array>({
    async write(chunk) {
      rawBytes += chunk.length;
      reader.push(chunk, () => {});
      tail.push(chunk);
      // A file that decompresses hugely (a gzip bomb, a run of one byte) hands over many MB per
      // piece read, all as microtasks: a break now and then lets a SIGTERM be heard at once.
      sinceBreak += chunk.length;
      if (sinceBreak >= BREAK_EVERY) {
        sinceBreak = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
        options.signal?.throwIfAborted();
      }
    },
    close() {
      reader.end(() => {});
    },
  });
  const counter = new ByteCounter({
    onProgress: options.onProgress ? (n) => options.onProgress!(n, size) : undefined,
  });
  const sha = new Sha256Stream();
  let sha256: string;
  try {
    if (packing === "zip") {
      // The original tool wrote no checksum; the archive is hashed in a pass of its own.
      const content = await zipEntryStream(path, zipEntry!);
      await content.pipeTo(sink, { signal: options.signal });
      sha256 = await sha256File(path);
    } else {
      const file = await openOrExplain(path);
      const stored = fileChunks(file).pipeThrough(counter).pipeThrough(sha);
      const plain = await plainSql(stored, path, packing, options);
      identities = plain.identities;
      packing = plain.packing;
      await plain.sql.pipeTo(sink, { signal: options.signal });
      sha256 = await sha.digest;
    }
  } catch (e) {
    if (e instanceof BadBackupError || options.signal?.aborted) throw e;
    // No (matching) identity: a key problem, not a damaged file.
    if (e instanceof VyaError && e.kind === "credential") throw e;
    if (e instanceof DumpFormatError) throw new BadBackupError(`${path}: ${e.message}`);
    const why = e instanceof Error ? e.message : String(e);
    if (options.expectedSha256) {
      const actual = await sha256File(path);
      if (actual !== options.expectedSha256) {
        throw checksumError(name, options.expectedSha256, actual);
      }
    }
    if (e instanceof AgeError) throw new BadBackupError(`${e.message}: it cannot be decrypted`);
    throw new BadBackupError(
      `${path} cannot be decompressed (${why}): the file is damaged ` +
        `or truncated`,
    );
  }
  if (options.expectedSha256 && sha256 !== options.expectedSha256) {
    throw checksumError(path, options.expectedSha256, sha256);
  }
  const facts = reader.facts;
  if (!facts.dialect) {
    throw new BadBackupError(
      `${path} holds no pg_dump, mysqldump or mariadb-dump output ` +
        `(no "-- PostgreSQL database dump", "-- MySQL dump" or "-- MariaDB dump" banner)`,
    );
  }
  assertComplete(path, facts, tail);
  const encrypted = identities !== undefined;
  return {
    path,
    bytes: size,
    sha256,
    packing,
    encrypted,
    identities,
    zipEntry,
    rawBytes,
    facts,
    complete: true,
  };
}

/**
 * The SQL in a dump file's stored bytes: decrypted when they are an age file (the identity
 * checked against `options`), then decompressed as the inner bytes say (an encrypted file's
 * packing is only known once decrypted).
 */
async function plainSql(
  stored: ReadableStream<Uint8Array>,
  path: string,
  packing: Packing,
  options: InspectOptions,
): Promise<{ sql: ReadableStream<Uint8Array>; packing: Packing; identities?: AgeIdentities }> {
  const plain = await decryptIfAge(stored, path, options.identities, options.recipients);
  const inner = plain.identities ? await peekStream(plain.stream) : undefined;
  if (inner) packing = detectCodec(inner.head).format;
  const codec = detectCodec(packing === "gzip" ? ".gz" : packing === "zstd" ? ".zst" : "");
  return {
    sql: (inner?.stream ?? plain.stream).pipeThrough(codec.decompress()),
    packing,
    identities: plain.identities,
  };
}

/** The most of a file's SQL {@linkcode peekDump} reads looking for the banner. */
const PEEK_LIMIT = 4 * 1024 * 1024;

/**
 * Reads only the start of a file: how it is packed, its identities when it is encrypted, and
 * the banner with what precedes it (the facts a load needs before it starts). Undefined when
 * anything is not as a backup of this tool has it (no banner near the start, a zip, a file that
 * cannot be opened, decrypted or decompressed): the caller reads the file whole first, and that
 * pass says what is wrong. The checksum, the completion marker and the rest of the facts are
 * the load's to check as it reads; `sha256` is the expected one, `complete` false.
 */
export async function peekDump(
  path: string,
  options: InspectOptions & { expectedSha256: string },
): Promise<DumpInspection | undefined> {
  let packing = await detectPacking(path);
  if (packing === "zip") return undefined;
  const size = (await Deno.stat(path)).size;
  const reader = new DumpLineReader({ collectDefiners: true });
  const file = await openOrExplain(path);
  let stream: ReadableStream<Uint8Array> | undefined;
  try {
    const plain = await plainSql(fileChunks(file), path, packing, options);
    packing = plain.packing;
    stream = plain.sql;
    for await (const chunk of stream) {
      reader.push(chunk, () => {});
      if (reader.facts.dialect || reader.facts.bytes >= PEEK_LIMIT) break;
    }
    if (!reader.facts.dialect || reader.facts.foreign) return undefined;
    return {
      path,
      bytes: size,
      sha256: options.expectedSha256,
      packing,
      encrypted: plain.identities !== undefined,
      identities: plain.identities,
      rawBytes: 0,
      facts: reader.facts,
      complete: false,
    };
  } catch (e) {
    // No (matching) identity is told as such; the rest is for the whole-file pass to explain.
    if (e instanceof VyaError && e.kind === "credential") throw e;
    return undefined;
  } finally {
    await stream?.cancel().catch(() => {});
    try {
      file.close();
    } catch { /* closed by the stream */ }
  }
}

/** Throws {@linkcode BadBackupError} when the dump tool's completion marker is not at the end. */
export function assertComplete(path: string, facts: DumpFacts, tail: TailKeeper): void {
  const tailText = new TextDecoder().decode(tail.bytes());
  if (DIALECTS.some((d) => tailText.includes(d.completionMarker))) return;
  const marker = facts.dialect?.completionMarker;
  throw new BadBackupError(
    `${path} is truncated: the dump tool's completion marker ` +
      `${marker ? `("${marker}") ` : ""}is missing at its end`,
  );
}

function checksumError(path: string, expected: string, actual: string): BadBackupError {
  return new BadBackupError(
    `${path} does not match its checksum (expected sha256 ${expected}, file has ${actual}): ` +
      `the file is corrupted or truncated`,
    { hint: "pick another backup (restore --list shows which ones verify)" },
  );
}

/**
 * The last `size` bytes of a stream, kept as references to its last chunks and copied only
 * once at the end (copying a tail out of every chunk cost more than the hash of the file).
 */
export class TailKeeper {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  /** Keeps the last `size` bytes. */
  constructor(readonly size: number) {}

  /** Takes the next chunk (kept by reference: it must not change afterwards). */
  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#chunks.length > 1 && this.#bytes - this.#chunks[0].length >= this.size) {
      this.#bytes -= this.#chunks.shift()!.length;
    }
  }

  /** A stream stage that keeps the tail of what passes through it. */
  tap(): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream({
      transform: (chunk, controller) => {
        this.push(chunk);
        controller.enqueue(chunk);
      },
    });
  }

  /** The last `size` bytes (fewer if fewer went through). */
  bytes(): Uint8Array {
    const out = new Uint8Array(Math.min(this.size, this.#bytes));
    let at = out.length;
    for (let i = this.#chunks.length - 1; i >= 0 && at > 0; i--) {
      const c = this.#chunks[i];
      const take = Math.min(at, c.length);
      out.set(c.subarray(c.length - take), at - take);
      at -= take;
    }
    return out;
  }
}
