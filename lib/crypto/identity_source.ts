/**
 * The identities a reading command (restore, users restore, verify) may need: the configured
 * identity file, read only when an encrypted backup is met, so that a plain backup never
 * depends on a key file being present or readable.
 *
 * @module
 */
import { CredentialError } from "../errors.ts";
import { type AgeIdentities, readIdentityFile } from "./age_keys.ts";
import { decryptStream } from "./age_stream.ts";
import { peekStream } from "../stream/peek.ts";

/** Where the configuration says the identity file is. */
const SETTING = "storage.encryption.identity_file";

/** The first bytes of every age file. */
const AGE_MAGIC = new TextEncoder().encode("age-encryption.org/");

/** Whether bytes start like an age file. */
export function isAgeHeader(head: Uint8Array): boolean {
  return head.length >= AGE_MAGIC.length && AGE_MAGIC.every((b, i) => head[i] === b);
}

/** The identity file of the configuration, read on first need (see the module documentation). */
export class IdentitySource {
  /** The configured file; undefined when none is configured. */
  readonly file: string | undefined;
  #read?: Promise<AgeIdentities>;

  /** A source for `file` (absent: every encrypted backup is refused, naming the setting). */
  constructor(file: string | undefined) {
    this.file = file;
  }

  /**
   * The identities that open `what`, encrypted to `recipients` (when known, from its
   * metadata). Called before anything touches a server.
   *
   * @throws {CredentialError} (exit 3) naming the file, its recipients and the setting when no
   *   identity file is configured, when it cannot be read, or when none of its identities is
   *   one of `recipients`
   */
  async require(what: string, recipients?: readonly string[]): Promise<AgeIdentities> {
    const to = recipients?.length ? ` to ${recipients.join(", ")}` : "";
    if (this.file === undefined) {
      throw new CredentialError(
        `${what} is encrypted (age${to}) and no identity file is configured to decrypt it`,
        { hint: `set ${SETTING} to the age identity (secret key) file of that recipient` },
      );
    }
    this.#read ??= readIdentityFile(this.file);
    const identities = await this.#read;
    if (recipients?.length && !identities.recipients.some((r) => recipients.includes(r))) {
      throw new CredentialError(
        `${what} is encrypted (age${to}); the identity file ${identities.file} holds the key(s) ` +
          `of ${identities.recipients.join(", ")}, none of them a recipient of this backup`,
        { hint: `set ${SETTING} to the identity file of one of its recipients` },
      );
    }
    return identities;
  }
}

/** The identity source of a configuration's `storage.encryption`. */
export function identitySource(
  encryption: { identity_file?: string } | undefined,
): IdentitySource {
  return new IdentitySource(encryption?.identity_file);
}

/** A stream's content as stored, or decrypted when it is an age file. */
export interface PlainContent {
  /** The plaintext (the stored bytes when not encrypted). */
  stream: ReadableStream<Uint8Array>;
  /** The identities that decrypt it; undefined when it is not encrypted. */
  identities?: AgeIdentities;
}

/**
 * Decrypts `stream` when its first bytes are an age header, with the identities of `source`
 * (checked against `recipients`, when known, before a byte is decrypted); passes it on as it is
 * otherwise. Decryption errors (an `AgeError` of age_stream.ts) surface when the result is read.
 *
 * @throws {CredentialError} see {@linkcode IdentitySource.require}; `stream` is cancelled
 */
export async function decryptIfAge(
  stream: ReadableStream<Uint8Array>,
  what: string,
  source: IdentitySource | undefined,
  recipients?: readonly string[],
): Promise<PlainContent> {
  const peeked = await peekStream(stream);
  if (!isAgeHeader(peeked.head)) return { stream: peeked.stream };
  let identities: AgeIdentities;
  try {
    identities = await (source ?? new IdentitySource(undefined)).require(what, recipients);
  } catch (e) {
    await peeked.stream.cancel().catch(() => {});
    throw e;
  }
  return { stream: peeked.stream.pipeThrough(decryptStream(identities, what)), identities };
}
