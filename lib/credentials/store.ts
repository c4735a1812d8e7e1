/**
 * The credentials file, in the format of the original tool so existing files keep working:
 * `{"<id>": {"username": "<plain>", "password": "<Fernet token or plain>", "encrypted": bool}}`.
 * The file is 0600 in a 0700 folder; it is refused when other users can read it.
 *
 * @module
 */
import { dirname } from "node:path";
import { CredentialError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { redactor } from "../redact.ts";
import { FernetError } from "../crypto/fernet.ts";
import type { CredentialKey } from "../crypto/keys.ts";
import { ensurePrivateDir, readPrivateFile, writeFileAtomic } from "../secure_fs.ts";

/** One entry as stored on disk. */
export interface StoredEntry {
  /** Login name, in plain text. */
  username: string;
  /** A Fernet token when `encrypted`, else the password itself. */
  password: string;
  /** Whether `password` is a Fernet token. */
  encrypted: boolean;
}

/** The whole credentials file: entries by id. */
export type CredentialStore = Record<string, StoredEntry>;

/** What {@linkcode listEntries} shows: never the password. */
export interface EntrySummary {
  /** Entry id, referenced by `credential:` in the configuration. */
  id: string;
  /** Login name. */
  username: string;
  /** Whether the password is encrypted (false = plain text in the file). */
  encrypted: boolean;
}

/** A decrypted login. The password is registered with the redactor. */
export interface Credential {
  /** Login name. */
  username: string;
  /** Password in clear. */
  password: string;
}

const WHAT = "credentials file";

/** The largest credentials file read: thousands of entries, far more than any install has. */
export const MAX_STORE_BYTES = 1024 * 1024;

/**
 * Parses the text of a credentials file and checks its shape.
 *
 * @param file named in error messages
 * @throws {CredentialError} on malformed JSON or a wrong shape; the message never quotes the
 *   content, since it may hold passwords
 */
export function parseStore(text: string, file: string): CredentialStore {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text around the error, which can be a password: keep the position.
    const match = /position (\d+)/.exec(String(error));
    const where = match ? ` (${lineColumn(text, Number(match[1]))})` : "";
    throw new CredentialError(`${WHAT} ${file} is not valid JSON${where}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new CredentialError(`${WHAT} ${file} must hold a JSON object of entries by id`);
  }
  const store: CredentialStore = {};
  for (const [id, value] of Object.entries(data)) {
    const entry = value as Record<string, unknown>;
    if (
      typeof entry !== "object" || entry === null || Array.isArray(entry) ||
      typeof entry.username !== "string" || typeof entry.password !== "string" ||
      (entry.encrypted !== undefined && typeof entry.encrypted !== "boolean")
    ) {
      throw new CredentialError(
        `${WHAT} ${file}: entry "${id}" must be an object with string "username" and ` +
          `"password" and a boolean "encrypted"`,
      );
    }
    // Files written by hand may omit "encrypted"; a Fernet token always starts with "gAAAAA".
    const encrypted = entry.encrypted ?? entry.password.startsWith("gAAAAA");
    store[id] = { username: entry.username, password: entry.password, encrypted };
  }
  return store;
}

function lineColumn(text: string, position: number): string {
  const before = text.slice(0, position).split("\n");
  return `line ${before.length}, column ${before[before.length - 1].length + 1}`;
}

/**
 * Reads and checks the credentials file.
 *
 * @throws {CredentialError} when it is missing, readable by others, or malformed
 */
export async function readStore(file: string): Promise<CredentialStore> {
  return parseStore(await readPrivateFile(file, WHAT, MAX_STORE_BYTES), file);
}

async function readStoreOrEmpty(file: string): Promise<CredentialStore> {
  try {
    await Deno.lstat(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  return await readStore(file);
}

/**
 * Writes the whole credentials file atomically, 0600; missing folders are created 0700.
 * An existing folder is left as it is: the user chose it and it may hold other files.
 */
export async function writeStore(file: string, store: CredentialStore): Promise<void> {
  await ensurePrivateDir(dirname(file), { tighten: false });
  await writeFileAtomic(file, JSON.stringify(store, null, 2) + "\n", { mode: 0o600 });
}

/** Lists the entries (ids, usernames, whether encrypted), sorted by id. Never the passwords. */
export async function listEntries(file: string): Promise<EntrySummary[]> {
  const store = await readStore(file);
  return Object.entries(store)
    .map(([id, e]) => ({ id, username: e.username, encrypted: e.encrypted }))
    .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Adds or replaces an entry, encrypting its password with the key. Creates the file when it
 * does not exist.
 *
 * @throws {CredentialError} when the id is empty or the existing file is unsafe or malformed
 */
export async function setEntry(
  file: string,
  id: string,
  credential: Credential,
  key: CredentialKey,
): Promise<void> {
  if (id.trim() === "") throw new CredentialError("a credential id must not be empty");
  redactor.addSecret(credential.password);
  const store = await readStoreOrEmpty(file);
  store[id] = {
    username: credential.username,
    password: await key.fernet.encrypt(credential.password),
    encrypted: true,
  };
  await writeStore(file, store);
}

/**
 * Removes an entry.
 *
 * @throws {CredentialError} when the id is not in the file
 */
export async function removeEntry(file: string, id: string): Promise<void> {
  const store = await readStore(file);
  if (!Object.hasOwn(store, id)) throw missingEntry(file, id);
  delete store[id];
  await writeStore(file, store);
}

function missingEntry(file: string, id: string): CredentialError {
  return new CredentialError(`no credential "${id}" in ${WHAT} ${file}`, {
    hint: "list the ids in the file, or add this one",
  });
}

/**
 * Rethrows a Fernet failure on a stored token as a credential error that says what to do; any
 * other error is rethrown as it is. The token is never part of the message.
 *
 * @param what the token's role, e.g. `the password of credential "db1"`
 */
export function throwDecryptionError(
  what: string,
  file: string,
  key: CredentialKey,
  error: unknown,
): never {
  if (!(error instanceof FernetError)) throw error;
  if (error.reason === "hmac") {
    throw new CredentialError(
      `${what} in ${file} does not decrypt under ${key.source}: encrypted on another host or ` +
        `with another key`,
      {
        hint: "use the key it was encrypted with (credentials.key_file), or set it again here",
        cause: error,
      },
    );
  }
  throw new CredentialError(`${what} in ${file} is not a valid Fernet token: ${error.message}`, {
    cause: error,
  });
}

/**
 * Returns the login of an entry with the password decrypted and registered with the redactor.
 * A plain-text password is accepted with a warning, as the original tool allowed it.
 *
 * @throws {CredentialError} when the file is unsafe or malformed, the id is missing, or the
 *   password does not decrypt
 */
export async function getCredential(
  file: string,
  id: string,
  key: CredentialKey,
  logger: Logger,
): Promise<Credential> {
  const store = await readStore(file);
  if (!Object.hasOwn(store, id)) throw missingEntry(file, id);
  const entry = store[id];
  let password: string;
  if (entry.encrypted) {
    try {
      password = await key.fernet.decryptText(entry.password);
    } catch (error) {
      throwDecryptionError(`the password of credential "${id}"`, file, key, error);
    }
  } else {
    password = entry.password;
    logger.warn(`credential "${id}" is stored in plain text in ${file}`, {
      hint: "set it again to store it encrypted",
    });
  }
  redactor.addSecret(password);
  return { username: entry.username, password };
}
