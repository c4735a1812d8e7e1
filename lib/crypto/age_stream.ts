/**
 * Streaming age encryption and decryption (age-encryption.org/v1, X25519 recipients), as
 * TransformStreams that hold at most one 64 KiB chunk whatever the size of the data.
 *
 * The header (file key wrapped to each recipient, header MAC) is made and opened by the npm
 * package `age-encryption`, by age's author. The payload (age's STREAM: ChaCha20-Poly1305 over
 * 64 KiB chunks, 11-byte big-endian counter + last-chunk flag as nonce) is done here with
 * node:crypto: the package's own payload stream is pure JavaScript and ran at ~99 MiB/s on this
 * machine, a third of zstd's speed, where node:crypto's ChaCha20-Poly1305 runs at ~1150 MiB/s.
 * Doing the payload ourselves also lets a failure name the chunk and tell a file cut at a chunk
 * boundary from a damaged one.
 *
 * @module
 */
import type { Stanza } from "age-encryption";
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";
import { type ErrorKind, VyaError } from "../errors.ts";
import { youngCollector } from "../stream/gc.ts";
import { type AgeIdentities, agePackage, parseRecipients } from "./age_keys.ts";
import { concatBytes } from "../stream/bytes.ts";

/** Plaintext bytes per STREAM chunk (age spec). */
export const AGE_CHUNK: number = 64 * 1024;
const TAG = 16;
const NONCE = 16;
/** Ciphertext bytes per full STREAM chunk. */
export const AGE_SEALED_CHUNK: number = AGE_CHUNK + TAG;
/** The largest header read: about 2,000 X25519 recipients; past it the file is not ours. */
const MAX_HEADER = 256 * 1024;
const VERSION_LINE = "age-encryption.org/v1\n";
/** Each chunk is a new buffer: release them every few MiB (see lib/stream/gc.ts). */
const COLLECT_EVERY = 4 * 1024 * 1024;

/** Why an age file could not be decrypted. */
export type AgeFailure =
  /** None of the identities opens the file key (wrong key, or a damaged recipient stanza). */
  | "no-identity"
  /** The file does not start like an age file. */
  | "not-age"
  /** The header is malformed or its MAC does not match. */
  | "header"
  /** The file ends before age's final chunk (or inside its header). */
  | "truncated"
  /** A chunk does not authenticate: the file was changed (or cut inside a chunk). */
  | "authentication"
  /** There are bytes after age's final chunk. */
  | "trailing";

/** A decryption failure; `reason` says which, the message names the file and never a key. */
export class AgeError extends VyaError {
  /** Which failure. */
  readonly reason: AgeFailure;

  /** Creates the error. */
  constructor(message: string, reason: AgeFailure, kind: ErrorKind, cause?: unknown) {
    super(message, kind, { cause });
    this.name = "AgeError";
    this.reason = reason;
  }
}

/** The STREAM nonce: 11-byte big-endian chunk counter, then the last-chunk flag. */
class StreamNonce {
  readonly bytes = new Uint8Array(12);
  /** Chunks sealed or opened so far. */
  index = 0;

  next(): void {
    for (let i = 10; i >= 0; i--) {
      if (++this.bytes[i] !== 0) break;
    }
    this.index++;
  }

  withLast(last: boolean): Uint8Array {
    this.bytes[11] = last ? 1 : 0;
    return this.bytes;
  }
}

function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", fileKey, nonce, "payload", 32));
}

function seal(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array): Uint8Array {
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG });
  const body = c.update(plain);
  c.final();
  const out = new Uint8Array(body.length + TAG);
  out.set(body);
  out.set(c.getAuthTag(), body.length);
  return out;
}

/** The plaintext, or undefined when the chunk does not authenticate under this nonce. */
function open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  const d = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  const body = d.update(sealed.subarray(0, sealed.length - TAG));
  try {
    d.final();
  } catch {
    return undefined;
  }
  return new Uint8Array(body.buffer, body.byteOffset, body.length);
}

/**
 * Cuts a byte stream into pieces of `size`, keeping the last full piece back until more data
 * (or the end) shows whether it is the last: STREAM seals the last chunk differently.
 */
class Chunker {
  readonly #buf: Uint8Array;
  readonly #onChunk: (chunk: Uint8Array) => void;
  #used = 0;

  constructor(size: number, onChunk: (chunk: Uint8Array) => void) {
    this.#buf = new Uint8Array(size);
    this.#onChunk = onChunk;
  }

  push(data: Uint8Array): void {
    const size = this.#buf.length;
    while (data.length > 0) {
      if (this.#used === size) {
        this.#onChunk(this.#buf);
        this.#used = 0;
      }
      // Whole pieces straight from the input when there is more after them: no copy.
      while (this.#used === 0 && data.length > size) {
        this.#onChunk(data.subarray(0, size));
        data = data.subarray(size);
      }
      const n = Math.min(size - this.#used, data.length);
      this.#buf.set(data.subarray(0, n), this.#used);
      this.#used += n;
      data = data.subarray(n);
    }
  }

  /** What is held back: the last piece (possibly full, possibly empty). */
  rest(): Uint8Array {
    return this.#buf.subarray(0, this.#used);
  }
}

/**
 * The header and payload key of a new age file to `recipients`. The package makes the header;
 * a recipient of our own that adds no stanza sees the file key the package drew, and the
 * package's empty file gives the payload nonce. Its final chunk is checked against ours, so a
 * change in the package's layout fails loudly instead of writing unreadable files.
 */
async function newHeader(recipients: readonly string[]) {
  const e = new (await agePackage()).Encrypter();
  for (const r of recipients) e.addRecipient(r);
  let fileKey: Uint8Array | undefined;
  e.addRecipient({
    wrapFileKey(key: Uint8Array): Stanza[] {
      fileKey = key.slice();
      return [];
    },
  });
  const empty = await e.encrypt(new Uint8Array(0));
  const prefix = empty.subarray(0, empty.length - TAG);
  const nonce = prefix.subarray(prefix.length - NONCE);
  if (!fileKey) throw new Error("age-encryption did not draw a file key");
  const key = payloadKey(fileKey, nonce);
  fileKey.fill(0);
  const check = seal(key, new StreamNonce().withLast(true), new Uint8Array(0));
  if (!Buffer.from(check).equals(empty.subarray(empty.length - TAG))) {
    throw new Error("age-encryption's file layout changed: refusing to encrypt");
  }
  return { prefix: prefix.slice(), key };
}

/**
 * A transform that encrypts its input to every recipient, as `age -r R1 -r R2` does; any one
 * of their identities decrypts the output.
 *
 * @throws {ConfigError} right away when a recipient is not an X25519 `age1…` string
 */
export function encryptStream(
  recipients: readonly string[],
): TransformStream<Uint8Array, Uint8Array> {
  const checked = parseRecipients(recipients, "age recipients");
  let key: Uint8Array;
  const nonce = new StreamNonce();
  let chunker: Chunker;
  const collect = youngCollector(COLLECT_EVERY);
  return new TransformStream<Uint8Array, Uint8Array>({
    async start(controller) {
      const header = await newHeader(checked);
      key = header.key;
      controller.enqueue(header.prefix);
      chunker = new Chunker(AGE_CHUNK, (chunk) => {
        controller.enqueue(seal(key, nonce.withLast(false), chunk));
        nonce.next();
      });
    },
    transform(data) {
      chunker.push(data);
      collect(data.length);
    },
    flush(controller) {
      // The last chunk may be full; it is empty only when the whole input is (age spec).
      controller.enqueue(seal(key, nonce.withLast(true), chunker.rest()));
      key.fill(0);
    },
  });
}

/** Where the header ends (just after the `--- MAC` line), or -1 when not yet seen. */
function headerEnd(buf: Uint8Array): number {
  const marker = buf.indexOf(0x0a);
  // Stanza bodies are base64 and stanza lines start with "->", so "\n---" starts the MAC line.
  for (let i = marker; i >= 0 && i < buf.length - 3; i = buf.indexOf(0x0a, i + 1)) {
    if (buf[i + 1] === 0x2d && buf[i + 2] === 0x2d && buf[i + 3] === 0x2d) {
      const eol = buf.indexOf(0x0a, i + 1);
      return eol < 0 ? -1 : eol + 1;
    }
  }
  return -1;
}

function startsLikeAge(buf: Uint8Array): boolean {
  const n = Math.min(buf.length, VERSION_LINE.length);
  return new TextDecoder().decode(buf.subarray(0, n)) === VERSION_LINE.slice(0, n);
}

/** Opens the header with the identities; the payload key, or an {@linkcode AgeError}. */
async function openHeader(
  header: Uint8Array,
  nonce: Uint8Array,
  identities: AgeIdentities,
  file: string,
): Promise<Uint8Array> {
  let fileKey: Uint8Array;
  try {
    fileKey = await identities.decrypter().decryptHeader(header);
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    if (/no identity matched/.test(text)) {
      throw new AgeError(
        `no identity in ${identities.file} (${identities.recipients.join(", ")}) matches the ` +
          `recipients of ${file}: it was encrypted to another key`,
        "no-identity",
        "credential",
        error,
      );
    }
    const why = /HMAC/.test(text) ? "its header MAC does not match" : "its header is malformed";
    throw new AgeError(`${file} is a damaged age file: ${why}`, "header", "refused", error);
  }
  const key = payloadKey(fileKey, nonce);
  fileKey.fill(0);
  return key;
}

/**
 * A transform that decrypts an age file with any of `identities`, chunk by chunk: each chunk
 * is authenticated before it is passed on, and the stream errors with an {@linkcode AgeError}
 * naming `file` when the header does not open, a chunk does not authenticate, or the file ends
 * before age's final chunk. Data passed on before a failure must be discarded by the reader.
 *
 * @param file the file's name, for messages
 */
export function decryptStream(
  identities: AgeIdentities,
  file: string,
): TransformStream<Uint8Array, Uint8Array> {
  let head: Uint8Array = new Uint8Array(0);
  let payloadStart = 0;
  let key: Uint8Array | undefined;
  const nonce = new StreamNonce();
  let chunker: Chunker | undefined;
  const collect = youngCollector(COLLECT_EVERY);

  const where = (i: number) => {
    const from = payloadStart + i * AGE_SEALED_CHUNK;
    return `chunk ${i + 1} (bytes ${from}-${from + AGE_SEALED_CHUNK - 1})`;
  };
  const fail = (message: string, reason: AgeFailure) =>
    new AgeError(`${file}: ${message}`, reason, "failed");

  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(data, controller) {
      collect(data.length);
      if (chunker) return chunker.push(data);
      head = concatBytes([head, data]);
      if (!startsLikeAge(head)) {
        throw new AgeError(`${file} is not an age-encrypted file`, "not-age", "refused");
      }
      const end = headerEnd(head);
      if (end < 0 || head.length < end + NONCE) {
        if (head.length > MAX_HEADER + NONCE) {
          throw new AgeError(
            `${file}: its age header is malformed (too long)`,
            "header",
            "refused",
          );
        }
        return;
      }
      payloadStart = end + NONCE;
      key = await openHeader(
        head.subarray(0, end),
        head.subarray(end, payloadStart),
        identities,
        file,
      );
      const k = key;
      chunker = new Chunker(AGE_SEALED_CHUNK, (sealed) => {
        const plain = open(k, nonce.withLast(false), sealed);
        if (!plain) {
          throw open(k, nonce.withLast(true), sealed)
            ? fail(`there is data after age's final chunk, ${where(nonce.index)}`, "trailing")
            : fail(
              `authentication failed at ${where(nonce.index)}: the file was changed`,
              "authentication",
            );
        }
        controller.enqueue(plain);
        nonce.next();
      });
      const rest = head.subarray(payloadStart);
      head = new Uint8Array(0);
      chunker.push(rest);
    },
    flush(controller) {
      if (!chunker || !key) {
        if (head.length === 0) {
          throw new AgeError(`${file} is empty, not an age file`, "not-age", "refused");
        }
        throw fail("cut short inside its age header", "truncated");
      }
      const last = chunker.rest();
      if (last.length < TAG) {
        throw fail(`cut short in ${where(nonce.index)}: age's final chunk is missing`, "truncated");
      }
      const plain = openFinalChunk(key, nonce, last, where, fail);
      controller.enqueue(plain);
      key.fill(0);
    },
  });
}

/** Opens age's final chunk, telling a file cut at a chunk boundary from a changed one. */
function openFinalChunk(
  key: Uint8Array,
  nonce: StreamNonce,
  last: Uint8Array,
  where: (i: number) => string,
  fail: (message: string, reason: AgeFailure) => AgeError,
): Uint8Array {
  const plain = open(key, nonce.withLast(true), last);
  if (!plain) {
    if (last.length === AGE_SEALED_CHUNK && open(key, nonce.withLast(false), last)) {
      throw fail(
        `cut short after ${where(nonce.index)}, at a chunk boundary: age's final chunk is missing`,
        "truncated",
      );
    }
    throw fail(
      `authentication failed at ${
        where(nonce.index)
      }, the last one: the file was changed or cut short`,
      "authentication",
    );
  }
  if (plain.length === 0 && nonce.index > 0) {
    throw fail(
      "its final chunk is empty, which age never writes: the file was changed",
      "authentication",
    );
  }
  return plain;
}
