/**
 * age keys: X25519 recipients (`age1…`, public) and identity files (`AGE-SECRET-KEY-1…`,
 * secret) in the format of the age CLI, read under the same rules as the credentials file.
 *
 * Only X25519 is accepted: it is what Debian's `age` (1.1) and every other age implementation
 * can decrypt, so a backup can always be restored by hand without this tool.
 *
 * @module
 */
import type { Decrypter } from "age-encryption";
import { dirname } from "node:path";
import { ConfigError, CredentialError } from "../errors.ts";
import { bech32Bytes } from "./bech32.ts";
import { redactor } from "../redact.ts";
import { ensurePrivateDir, readPrivateFile, writeFileAtomic } from "../secure_fs.ts";

const WHAT = "identity file";

/** An X25519 key is 32 bytes, in recipients and identities alike. */
const KEY_BYTES = 32;

/** The age package's module. */
export type AgePackage = typeof import("age-encryption");

/**
 * The age package, loaded on first use: a run that neither encrypts nor decrypts never pays for
 * it (about 5 MiB of memory); keys are checked by {@linkcode bech32Bytes} without it.
 */
export function agePackage(): Promise<AgePackage> {
  return import("age-encryption");
}

/** The largest identity file read: thousands of keys and comments, far more than any real one. */
export const MAX_IDENTITY_FILE_BYTES = 64 * 1024;

/**
 * Whether `s` is a valid age X25519 recipient: `age1` + bech32 of 32 bytes. The post-quantum
 * (`age1pq1…`), tag and plugin recipients are refused: Debian's age cannot decrypt them.
 */
export function isRecipient(s: string): boolean {
  return /^age1[02-9ac-hj-np-z]{58}$/.test(s) && bech32Bytes(s, "age")?.length === KEY_BYTES;
}

/**
 * Checks a list of recipients.
 *
 * @param where what names them in a message, e.g. `storage.encryption.recipients`
 * @throws {ConfigError} naming the first string that is not an X25519 recipient (recipients
 *   are public, so quoting it is safe), or when the list is empty
 */
export function parseRecipients(list: readonly string[], where: string): string[] {
  if (list.length === 0) throw new ConfigError(`${where}: expected at least one age recipient`);
  for (const [i, r] of list.entries()) {
    if (!isRecipient(r)) {
      throw new ConfigError(
        `${where}[${i}]: "${r}" is not an age X25519 recipient (age1 followed by 58 characters)`,
        { hint: "age-keygen -y KEYFILE (or the '# public key:' line of the key file) prints it" },
      );
    }
  }
  return [...list];
}

/**
 * The identities of one identity file. The secret keys stay inside: the object prints, logs
 * and serializes as its file and public keys only.
 */
export class AgeIdentities {
  /** The file they were read from, for messages. */
  readonly file: string;
  /** The public recipient of each identity, in file order (safe to show). */
  readonly recipients: readonly string[];
  readonly #keys: readonly string[];
  readonly #age: AgePackage;

  private constructor(
    file: string,
    keys: string[],
    recipients: string[],
    age: AgePackage,
  ) {
    this.file = file;
    this.#keys = keys;
    this.recipients = recipients;
    this.#age = age;
  }

  /** Builds the set from identity strings already checked by {@linkcode parseIdentityText}. */
  static async of(file: string, keys: string[]): Promise<AgeIdentities> {
    const age = await agePackage();
    const recipients = await Promise.all(keys.map((k) => age.identityToRecipient(k)));
    return new AgeIdentities(file, keys, recipients, age);
  }

  /** A decrypter of the package loaded with every identity (for lib/crypto only). */
  decrypter(): Decrypter {
    const d = new this.#age.Decrypter();
    for (const k of this.#keys) d.addIdentity(k);
    return d;
  }

  /** What JSON shows: never a key. */
  toJSON(): { file: string; recipients: readonly string[] } {
    return { file: this.file, recipients: this.recipients };
  }

  /** What `console.log` and Deno.inspect show: never a key. */
  [Symbol.for("Deno.customInspect")](): string {
    return `AgeIdentities(${this.file}: ${this.recipients.join(", ")})`;
  }
}

/**
 * Parses the text of an identity file as the age CLI does: one identity per line, blank lines
 * and `#` comments ignored.
 *
 * @throws {CredentialError} naming the file and line of a line that is no X25519 identity (never
 *   quoting it: it may be a mangled key), or when the file holds none
 */
export function parseIdentityText(text: string, file: string): string[] {
  const keys: string[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!isIdentity(line)) {
      throw new CredentialError(
        `${WHAT} ${file} line ${i + 1} is not an age X25519 identity (AGE-SECRET-KEY-1…)`,
        { hint: "make one with age-keygen or 'vya-backupdb credentials age-keygen'" },
      );
    }
    redactor.addSecret(line);
    keys.push(line);
  }
  if (keys.length === 0) throw new CredentialError(`${WHAT} ${file} holds no identity`);
  return keys;
}

function isIdentity(line: string): boolean {
  return line.startsWith("AGE-SECRET-KEY-1") &&
    bech32Bytes(line, "AGE-SECRET-KEY-")?.length === KEY_BYTES;
}

/**
 * Reads an identity file: refused like the credentials file when other users can read it or it
 * belongs to another user (with the chmod/chown to run), when missing, too large or malformed.
 *
 * @throws {CredentialError}
 */
export async function readIdentityFile(path: string): Promise<AgeIdentities> {
  const text = await readPrivateFile(path, WHAT, MAX_IDENTITY_FILE_BYTES);
  return await AgeIdentities.of(path, parseIdentityText(text, path));
}

/**
 * Writes a new X25519 identity to `path` as `age-keygen -o` does (0600, atomically, missing
 * folders created 0700) and returns its public recipient.
 *
 * @throws {CredentialError} when the file exists: replacing it would make every backup
 *   encrypted to it unreadable
 */
export async function generateIdentityFile(path: string, now = new Date()): Promise<string> {
  const age = await agePackage();
  const identity = await age.generateX25519Identity();
  redactor.addSecret(identity);
  const recipient = await age.identityToRecipient(identity);
  const created = now.toISOString().replace(/\.\d+Z$/, "Z");
  const text = `# created: ${created}\n# public key: ${recipient}\n${identity}\n`;
  await ensurePrivateDir(dirname(path), { tighten: false });
  try {
    await writeFileAtomic(path, text, { mode: 0o600, exclusive: true });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new CredentialError(`${WHAT} already exists: ${path}`, {
        hint: "refusing to overwrite it: backups encrypted to it would become unreadable",
        cause: error,
      });
    }
    throw error;
  }
  return recipient;
}
