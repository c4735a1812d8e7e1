/**
 * Finding and reading users backup files: the latest good one of an instance, its checksum
 * verified (streamed) before anything of it is used.
 *
 * @module
 */
import { VyaError } from "../errors.ts";
import {
  latestUsersEntry,
  metadataBeside,
  recordedSha256,
  type Sidecars,
  sidecarsOfFile,
} from "../storage/catalog.ts";
import { openStorage } from "../storage/open.ts";
import { decryptIfAge, type IdentitySource } from "../crypto/identity_source.ts";
import { detectCodec } from "../stream/codecs.ts";
import { peekStream } from "../stream/peek.ts";
import { sha256Readable } from "../stream/sha256.ts";
import { parseUsersFile, type UsersFile, UsersFormatError } from "./format.ts";
import { registerHashes } from "./mask.ts";

/**
 * A users backup file could not be found, verified or read: refused before anything changed
 * (exit 3, as for an unusable dump).
 */
export class UsersFileError extends VyaError {
  /** Creates the error. */
  constructor(message: string, hint?: string) {
    super(message, "refused", { hint });
    this.name = "UsersFileError";
  }
}

/**
 * The path of the newest users backup of an instance whose metadata says `ok` (see
 * {@linkcode latestUsersEntry}); undefined when there is none.
 */
export async function latestUsersBackup(
  storage: string,
  hostname: string,
  instance: string,
): Promise<string | undefined> {
  const entry = await latestUsersEntry(openStorage({ path: storage }), hostname, instance);
  return entry?.paths.dump;
}

/** Verifies a file against its `.sha256` (sha256sum format); returns the hex digest. */
export async function verifyChecksum(path: string): Promise<string> {
  const sidecars: Sidecars = sidecarsOfFile(path);
  const sumPath = sidecars.storage.locate(sidecars.sha256);
  const expected = await recordedSha256(sidecars);
  if (expected === undefined) {
    throw new UsersFileError(`${path}: checksum file ${sumPath} is missing`);
  }
  let actual: string;
  try {
    actual = await sha256Readable(await sidecars.storage.open(sidecars.key));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsersFileError(`${path} does not exist`);
    throw e;
  }
  if (actual !== expected) {
    throw new UsersFileError(
      `${path}: checksum mismatch (expected ${expected}, file has ${actual}); the file is damaged`,
      "restore from another backup (--file PATH)",
    );
  }
  return actual;
}

/**
 * Reads a users backup: checksum first, then decrypt (an age file, with `identities`; its
 * metadata's recipients checked first), decompress and parse. Hashes get registered.
 *
 * @throws {CredentialError} an encrypted file without a (matching) identity, before any server
 */
export async function readUsersBackup(
  path: string,
  identities?: IdentitySource,
): Promise<UsersFile> {
  await verifyChecksum(path);
  const { storage, key } = sidecarsOfFile(path);
  const recipients = (await metadataBeside(path))?.encryption?.recipients;
  const plain = await decryptIfAge(await storage.open(key), path, identities, recipients);
  let text: string;
  try {
    // The compression is read from the content: the name of an encrypted file ends in .age.
    const peeked = await peekStream(plain.stream);
    const codec = plain.identities ? detectCodec(peeked.head) : detectCodec(path);
    text = await new Response(peeked.stream.pipeThrough(codec.decompress())).text();
  } catch (e) {
    const what = plain.identities ? "cannot decrypt and decompress" : "cannot decompress";
    throw new UsersFileError(`${path}: ${what}: ${(e as Error).message}`);
  }
  try {
    const parsed = parseUsersFile(text);
    registerHashes(parsed.sections.flatMap((s) => s.steps.map((st) => st.sql)));
    return parsed;
  } catch (e) {
    if (e instanceof UsersFormatError) throw new UsersFileError(`${path}: ${e.message}`);
    throw e;
  }
}
