/**
 * Where the Fernet key for credentials comes from: a key file, or the key the original tool
 * derives from the host name.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { CredentialError } from "../errors.ts";
import { ensurePrivateDir, readPrivateFile, writeFileAtomic } from "../secure_fs.ts";
import { base64UrlEncode, Fernet, FernetError, generateKey } from "./fernet.ts";

/** A loaded key and a description of where it came from, for error messages. */
export interface CredentialKey {
  /** The key, ready to encrypt and decrypt. */
  fernet: Fernet;
  /** Where the key came from, e.g. `the host key of "db1"` or `the key file /etc/x.key`. */
  source: string;
}

/** Options of {@linkcode loadKey}. */
export interface LoadKeyOptions {
  /** Absolute path of a key file; absent = the key derived from the host name. */
  keyFile?: string;
  /** Host name for the derived key (default: `Deno.hostname()`). */
  hostname?: string;
}

/**
 * The original tool's key: url-safe base64 (with padding) of SHA-256 over the UTF-8 host name.
 * Anyone who knows the host name can derive it: it hides passwords from casual reading only.
 */
export function hostKey(hostname: string = Deno.hostname()): string {
  return base64UrlEncode(new Uint8Array(createHash("sha256").update(hostname, "utf8").digest()));
}

/**
 * Writes a new random Fernet key to `path` (0600, atomically; missing folders created 0700).
 *
 * @throws {CredentialError} when the file already exists: overwriting a key would make every
 *   password encrypted with it unreadable
 */
export async function generateKeyFile(path: string): Promise<void> {
  await ensurePrivateDir(dirname(path), { tighten: false });
  try {
    await writeFileAtomic(path, generateKey() + "\n", { mode: 0o600, exclusive: true });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new CredentialError(`key file already exists: ${path}`, {
        hint: "refusing to overwrite it: passwords encrypted with it would become unreadable",
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * Loads the credentials key: the key file when given (it must be private to its owner),
 * otherwise the host-name key.
 *
 * @throws {CredentialError} when the key file is missing, readable by others or not a key
 */
export async function loadKey(options: LoadKeyOptions = {}): Promise<CredentialKey> {
  if (options.keyFile === undefined) {
    const hostname = options.hostname ?? Deno.hostname();
    return {
      fernet: await Fernet.fromKey(hostKey(hostname)),
      source: `the host key of "${hostname}"`,
    };
  }
  const path = options.keyFile;
  // A key is 44 characters; a few KiB leave room for comments or CRLF, nothing more.
  const text = await readPrivateFile(path, "key file", 4096);
  try {
    return { fernet: await Fernet.fromKey(text.trim()), source: `the key file ${path}` };
  } catch (error) {
    if (error instanceof FernetError) {
      throw new CredentialError(
        `key file ${path} does not hold a Fernet key (32 bytes in url-safe base64)`,
        { cause: error },
      );
    }
    throw error;
  }
}
