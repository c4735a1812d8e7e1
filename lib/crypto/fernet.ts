/**
 * Fernet (https://github.com/fernet/spec) on WebCrypto: AES-128-CBC with PKCS#7 padding,
 * authenticated by HMAC-SHA256, in url-safe base64 tokens. Compatible with Python's
 * `cryptography.fernet`, which wrote the files of the tool this project replaces.
 *
 * @module
 */

/** Why a token or key was refused. */
export type FernetErrorReason =
  | "key"
  | "base64"
  | "version"
  | "too-short"
  | "ciphertext"
  | "hmac"
  | "padding"
  | "expired"
  | "future"
  | "utf8";

/** A token or key Fernet refuses. The message says why and never contains the token. */
export class FernetError extends Error {
  /** Machine-readable cause, for callers that explain it in their own words. */
  readonly reason: FernetErrorReason;

  /** Creates a Fernet error. */
  constructor(reason: FernetErrorReason, message: string) {
    super(message);
    this.name = "FernetError";
    this.reason = reason;
  }
}

/** Options of {@linkcode Fernet.encrypt}. */
export interface EncryptOptions {
  /** Timestamp written into the token (default: now). */
  now?: Date;
  /** 16-byte IV (default: random). Only for reproducing test vectors. */
  iv?: Uint8Array;
}

/** Options of {@linkcode Fernet.decrypt}. */
export interface DecryptOptions {
  /** Maximum token age in seconds; absent = tokens never expire. */
  ttl?: number;
  /** The current time (default: now). */
  now?: Date;
}

const VERSION = 0x80;
const HEADER = 1 + 8 + 16; // version, timestamp, IV
const HMAC_LENGTH = 32;
const BLOCK = 16;
/** Seconds a token may be dated in the future (the spec's clock-skew allowance). */
export const MAX_CLOCK_SKEW = 60;

const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Encodes bytes as url-safe base64 with padding, the form Python's Fernet writes. */
export function base64UrlEncode(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_");
}

/** Decodes url-safe base64 (padding optional); undefined when the text is not valid base64. */
export function base64UrlDecode(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!BASE64URL.test(text)) return undefined;
  const body = text.replace(/=+$/, "");
  if (body.length % 4 === 1) return undefined;
  if (body.length !== text.length && text.length % 4 !== 0) return undefined;
  try {
    const binary = atob(body.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** Generates a new random Fernet key (32 bytes, url-safe base64 with padding). */
export function generateKey(): string {
  return base64UrlEncode(crypto.getRandomValues(new Uint8Array(32)));
}

/** A Fernet key ready to encrypt and decrypt. Create one with {@linkcode Fernet.fromKey}. */
export class Fernet {
  #signing: CryptoKey;
  #encryption: CryptoKey;

  private constructor(signing: CryptoKey, encryption: CryptoKey) {
    this.#signing = signing;
    this.#encryption = encryption;
  }

  /**
   * Imports a key: url-safe base64 of 32 bytes (or the raw bytes); the first 16 sign, the last
   * 16 encrypt.
   *
   * @throws {FernetError} reason "key" when the key is not 32 base64-encoded bytes
   */
  static async fromKey(key: string | Uint8Array): Promise<Fernet> {
    const raw = typeof key === "string" ? base64UrlDecode(key.trim()) : key;
    if (!raw || raw.length !== 32) {
      throw new FernetError("key", "a Fernet key must be 32 bytes in url-safe base64");
    }
    const signing = await crypto.subtle.importKey(
      "raw",
      raw.slice(0, 16),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    const encryption = await crypto.subtle.importKey(
      "raw",
      raw.slice(16, 32),
      { name: "AES-CBC" },
      false,
      ["encrypt", "decrypt"],
    );
    return new Fernet(signing, encryption);
  }

  /** Encrypts bytes or UTF-8 text into a token. */
  async encrypt(plaintext: Uint8Array | string, options: EncryptOptions = {}): Promise<string> {
    const data = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext;
    const iv = options.iv ?? crypto.getRandomValues(new Uint8Array(16));
    if (iv.length !== 16) throw new RangeError("a Fernet IV must be 16 bytes");
    const seconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
    const ciphertext = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-CBC", iv: iv.slice() },
        this.#encryption,
        data.slice(),
      ),
    );
    const body = new Uint8Array(HEADER + ciphertext.length);
    body[0] = VERSION;
    new DataView(body.buffer).setBigUint64(1, BigInt(seconds));
    body.set(iv, 9);
    body.set(ciphertext, HEADER);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", this.#signing, body));
    const token = new Uint8Array(body.length + HMAC_LENGTH);
    token.set(body);
    token.set(mac, body.length);
    return base64UrlEncode(token);
  }

  /**
   * Verifies and decrypts a token. Checks, in order: base64, version byte, length, HMAC (so a
   * wrong key is reported as such before anything unauthenticated is trusted), then the
   * timestamp (only with a ttl, as Python's `cryptography` does), then the padding.
   *
   * @throws {FernetError} with the reason the token was refused
   */
  async decrypt(token: string, options: DecryptOptions = {}): Promise<Uint8Array> {
    const data = base64UrlDecode(token.trim());
    if (data === undefined) {
      throw new FernetError("base64", "token is not valid url-safe base64");
    }
    if (data.length === 0 || data[0] !== VERSION) {
      throw new FernetError("version", "token does not start with the Fernet version byte 0x80");
    }
    if (data.length < HEADER + HMAC_LENGTH) {
      throw new FernetError("too-short", "token is too short to be a Fernet token");
    }
    const cipherLength = data.length - HEADER - HMAC_LENGTH;
    if (cipherLength === 0 || cipherLength % BLOCK !== 0) {
      throw new FernetError("ciphertext", "token ciphertext is not a whole number of AES blocks");
    }
    const body = data.subarray(0, data.length - HMAC_LENGTH);
    const mac = data.subarray(data.length - HMAC_LENGTH);
    // subtle.verify compares in constant time.
    if (!(await crypto.subtle.verify("HMAC", this.#signing, mac, body))) {
      throw new FernetError(
        "hmac",
        "token does not decrypt under this key: encrypted on another host or with another key",
      );
    }
    if (options.ttl !== undefined) {
      const timestamp = Number(new DataView(data.buffer, data.byteOffset).getBigUint64(1));
      const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
      if (timestamp + options.ttl < now) {
        throw new FernetError("expired", `token has expired (older than ${options.ttl} s)`);
      }
      if (timestamp > now + MAX_CLOCK_SKEW) {
        throw new FernetError(
          "future",
          `token is dated more than ${MAX_CLOCK_SKEW} s in the future (clock skew)`,
        );
      }
    }
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-CBC", iv: data.slice(9, HEADER) },
          this.#encryption,
          data.slice(HEADER, data.length - HMAC_LENGTH),
        ),
      );
    } catch {
      throw new FernetError("padding", "token ciphertext has invalid padding");
    }
  }

  /**
   * Decrypts a token whose plaintext is UTF-8 text.
   *
   * @throws {FernetError} as {@linkcode Fernet.decrypt}, or reason "utf8" when the plaintext
   *   is not valid UTF-8
   */
  async decryptText(token: string, options: DecryptOptions = {}): Promise<string> {
    const bytes = await this.decrypt(token, options);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new FernetError("utf8", "token plaintext is not UTF-8 text");
    }
  }
}
