/**
 * Finding and reading users backup files: the latest good one of an instance, its checksum
 * verified (streamed) before anything of it is used.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { VyaError } from "../errors.ts";
import { instanceDir, parseStem } from "../backup/layout.ts";
import { readMetadata } from "../backup/metadata.ts";
import { detectCodec } from "../stream/codecs.ts";
import { sha256File } from "../stream/sha256.ts";
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
 * The newest users backup of an instance whose metadata says `ok`; undefined when there is
 * none.
 */
export async function latestUsersBackup(
  storage: string,
  hostname: string,
  instance: string,
): Promise<string | undefined> {
  const dir = instanceDir(storage, hostname, instance);
  const candidates: { path: string; at: number; stem: string }[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !/^users_.*\.sql(\.gz|\.zst)?$/.test(entry.name)) continue;
      const parsed = parseStem(entry.name);
      if (!parsed || parsed.name !== "users") continue;
      candidates.push({ path: join(dir, entry.name), at: parsed.at.getTime(), stem: parsed.stem });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  candidates.sort((a, b) => b.at - a.at);
  for (const c of candidates) {
    const meta = await readMetadata(join(dir, `${c.stem}.metadata.json`));
    if (meta?.status === "ok" && meta.kind === "users") return c.path;
  }
  return undefined;
}

/** Verifies a file against its `.sha256` (sha256sum format). */
export async function verifyChecksum(path: string): Promise<string> {
  const parsed = parseStem(basename(path));
  const sumPath = parsed ? join(dirname(path), `${parsed.stem}.sha256`) : `${path}.sha256`;
  let expected: string;
  try {
    expected = (await Deno.readTextFile(sumPath)).trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsersFileError(`${path}: checksum file ${sumPath} is missing`);
    }
    throw e;
  }
  let actual: string;
  try {
    actual = await sha256File(path);
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

/** Reads a users backup: checksum first, then decompress and parse. Hashes get registered. */
export async function readUsersBackup(path: string): Promise<UsersFile> {
  await verifyChecksum(path);
  const codec = detectCodec(path);
  const file = await Deno.open(path, { read: true });
  let text: string;
  try {
    text = await new Response(file.readable.pipeThrough(codec.decompress())).text();
  } catch (e) {
    throw new UsersFileError(`${path}: cannot decompress: ${(e as Error).message}`);
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
