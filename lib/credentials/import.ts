/**
 * Reads the credential stores of the original Python tool so users can bring their logins over:
 * `.secrets/credentials.json` (same format as ours) and `.secrets/vault.json.enc` (the whole
 * file one Fernet token, holding JSON whose usernames and passwords are Fernet tokens again).
 *
 * @module
 */
import { join } from "node:path";
import { CredentialError } from "../errors.ts";
import { redactor } from "../redact.ts";
import type { CredentialKey } from "../crypto/keys.ts";
import { readPrivateFile } from "../secure_fs.ts";
import { MAX_STORE_BYTES, parseStore, throwDecryptionError } from "./store.ts";

/** One login read from an original store, password in clear (registered with the redactor). */
export interface ImportedEntry {
  /** Entry id. */
  id: string;
  /** Login name. */
  username: string;
  /** Password in clear. */
  password: string;
}

/** The original tool's file names inside its `.secrets` folder, newest format first. */
const ORIGINAL_FILES = ["vault.json.enc", "credentials.json"];

/**
 * Reads an original store and returns its entries decrypted, sorted by id. `fromPath` is a file
 * in either format (told apart by content) or a `.secrets` folder, in which case both files are
 * read when present and the vault wins on ids found in both (it is the newer store).
 *
 * @param key the key the original tool used: normally the host key ({@linkcode loadKey} without
 *   a key file)
 * @throws {CredentialError} when nothing is found, a file is readable by others, is in neither
 *   format, or does not decrypt under the key
 */
export async function importOriginal(
  fromPath: string,
  key: CredentialKey,
): Promise<ImportedEntry[]> {
  const info = await Deno.stat(fromPath).catch((error) => {
    if (error instanceof Deno.errors.NotFound) {
      throw new CredentialError(`nothing to import: ${fromPath} does not exist`);
    }
    throw error;
  });
  const files = info.isDirectory
    ? (await existing(ORIGINAL_FILES.map((name) => join(fromPath, name)))).reverse()
    : [fromPath];
  if (files.length === 0) {
    throw new CredentialError(
      `nothing to import: ${fromPath} holds neither ${ORIGINAL_FILES.join(" nor ")}`,
    );
  }
  const byId = new Map<string, ImportedEntry>();
  // Oldest format first, so the vault's entries replace the older ones.
  for (const file of files) {
    for (const entry of await importFile(file, key)) byId.set(entry.id, entry);
  }
  return [...byId.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

async function existing(paths: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    try {
      await Deno.stat(path);
      found.push(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return found;
}

async function importFile(file: string, key: CredentialKey): Promise<ImportedEntry[]> {
  const text = (await readPrivateFile(file, "credentials file to import", MAX_STORE_BYTES))
    .trim();
  if (text.startsWith("{")) return await importCredentialsJson(text, file, key);
  // Every Fernet token starts with the version byte 0x80 and a timestamp below 2^32.
  if (text.startsWith("gAAAAA")) return await importVault(text, file, key);
  throw new CredentialError(
    `${file} is neither a credentials JSON file nor an encrypted vault of the original tool`,
  );
}

async function importCredentialsJson(
  text: string,
  file: string,
  key: CredentialKey,
): Promise<ImportedEntry[]> {
  const entries: ImportedEntry[] = [];
  for (const [id, entry] of Object.entries(parseStore(text, file))) {
    let password = entry.password;
    if (entry.encrypted) {
      password = await decryptField(entry.password, `the password of "${id}"`, file, key);
    }
    redactor.addSecret(password);
    entries.push({ id, username: entry.username, password });
  }
  return entries;
}

async function importVault(
  token: string,
  file: string,
  key: CredentialKey,
): Promise<ImportedEntry[]> {
  const text = await decryptField(token, "the vault", file, key);
  let vault: unknown;
  try {
    vault = JSON.parse(text);
  } catch {
    throw new CredentialError(`the vault ${file} decrypts but does not hold JSON`);
  }
  const credentials = (vault as { credentials?: unknown } | null)?.credentials;
  if (typeof credentials !== "object" || credentials === null || Array.isArray(credentials)) {
    throw new CredentialError(`the vault ${file} has no "credentials" object`);
  }
  const entries: ImportedEntry[] = [];
  for (const [id, value] of Object.entries(credentials)) {
    const entry = value as Record<string, unknown> | null;
    if (typeof entry?.username !== "string" || typeof entry?.password !== "string") {
      throw new CredentialError(
        `the vault ${file}: entry "${id}" must have string "username" and "password" tokens`,
      );
    }
    const username = await decryptField(entry.username, `the username of "${id}"`, file, key);
    const password = await decryptField(entry.password, `the password of "${id}"`, file, key);
    redactor.addSecret(password);
    entries.push({ id, username, password });
  }
  return entries;
}

async function decryptField(
  token: string,
  what: string,
  file: string,
  key: CredentialKey,
): Promise<string> {
  try {
    return await key.fernet.decryptText(token);
  } catch (error) {
    throwDecryptionError(what, file, key, error);
  }
}
