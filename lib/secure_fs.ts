/**
 * File-system helpers for files that hold secrets or backups: private folders, atomic private
 * writes, and an ssh-style refusal of files other users can read.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { ConfigError, CredentialError } from "./errors.ts";

/** Options of {@linkcode ensurePrivateDir}. */
export interface EnsurePrivateDirOptions {
  /**
   * chmod 0700 the leaf folder even when it already existed (default true). Pass false for a
   * folder the user chose and may share with other files (e.g. the parent of a credentials file):
   * tightening `/etc` by accident would break the system.
   */
  tighten?: boolean;
}

/**
 * Creates a folder and its missing parents (0700 for every folder it creates) and, unless told
 * otherwise, makes the leaf 0700 even if it already existed.
 */
export async function ensurePrivateDir(
  path: string,
  options: EnsurePrivateDirOptions = {},
): Promise<void> {
  // mkdir's mode is filtered by the umask; 0700 has no group/other bits, so the umask cannot
  // widen it, and the explicit chmod below covers a umask that narrows the owner bits.
  let created = false;
  try {
    try {
      await Deno.mkdir(path, { recursive: false, mode: 0o700 });
      created = true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        await Deno.mkdir(path, { recursive: true, mode: 0o700 });
        created = true;
      } else if (!(error instanceof Deno.errors.AlreadyExists)) {
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotADirectory) {
      throw new ConfigError(`cannot create the folder ${path}: a parent of it is a file`, {
        cause: error,
      });
    }
    throw error;
  }
  const info = await Deno.stat(path);
  if (!info.isDirectory) throw new ConfigError(`${path} exists and is not a folder`);
  if ((created || (options.tighten ?? true)) && Deno.build.os !== "windows") {
    await Deno.chmod(path, 0o700);
  }
}

/** Options of {@linkcode writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Permission bits of the file (default 0o600), applied regardless of the umask. */
  mode?: number;
  /** Fail with `Deno.errors.AlreadyExists` instead of replacing an existing file. */
  exclusive?: boolean;
}

/**
 * Writes a file so that readers see either the old content or the whole new one: a temporary
 * file in the same folder is written, fsynced, then renamed over the target; the folder is
 * fsynced afterwards (best effort) so the rename survives a crash.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const dir = dirname(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const suffix = crypto.getRandomValues(new Uint32Array(2)).join("");
  const tmp = join(dir, `.${basename(path)}.${suffix}.tmp`);
  // createNew: never follow or reuse a file someone planted under the temporary name.
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    try {
      if (Deno.build.os !== "windows") await Deno.chmod(tmp, mode);
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    if (options.exclusive) {
      // link() fails when the target exists, which rename() would silently replace.
      await Deno.link(tmp, path);
      await Deno.remove(tmp);
    } else {
      await Deno.rename(tmp, path);
    }
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  await syncDir(dir);
}

/** Makes a folder's entries durable (fsync of the folder); a no-op where that is impossible. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some platforms and file systems cannot fsync a folder; the data itself is already synced.
  }
}

/**
 * Throws a {@linkcode CredentialError} when the file is missing, belongs to another user than
 * the one running, or other users have any access to it (the rules ssh applies to private
 * keys), with the `chown` or `chmod 600` to run.
 *
 * @param path the file to check
 * @param what what the file is, for the message (e.g. "credentials file")
 */
export async function assertPrivateFile(path: string, what: string): Promise<Deno.FileInfo> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CredentialError(`${what} not found: ${path}`, { cause: error });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new CredentialError(`${what} cannot be read: ${path}`, { cause: error });
    }
    throw error;
  }
  if (!info.isFile) throw new CredentialError(`${what} is not a regular file: ${path}`);
  // Windows reports no mode bits or owners; there is nothing to check.
  if (info.mode === null || info.uid === null) return info;
  // As ssh does: a secret file must belong to the user running, root included. A file another
  // user owns can be rewritten by them (their own key, their own server address).
  const me = Deno.uid();
  if (me !== null && info.uid !== me) {
    const owner = userName(info.uid);
    const self = userName(me);
    throw new CredentialError(
      `${what} ${path} is owned by ${owner ?? "uid " + info.uid}${
        owner ? ` (uid ${info.uid})` : ""
      }` +
        `, not by ${
          self ?? "uid " + me
        }, the user running vya-backupdb: it must belong to that user`,
      { hint: `chown ${self ?? me} ${path}` },
    );
  }
  const mode = info.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CredentialError(
      `${what} ${path} is accessible by other users (permissions ${
        mode.toString(8).padStart(4, "0")
      }); it must be readable by its owner only`,
      { hint: `chmod 600 ${path}` },
    );
  }
  return info;
}

/**
 * Reads a file that holds secrets as text: checked with {@linkcode assertPrivateFile}, and at
 * most `maxBytes` of it (a credentials or key file is small; a huge one is a mistake and must
 * not cost the memory). The open file is checked to be the one that was inspected.
 */
export async function readPrivateFile(
  path: string,
  what: string,
  maxBytes: number,
): Promise<string> {
  const checked = await assertPrivateFile(path, what);
  using file = await Deno.open(path, { read: true });
  const opened = await file.stat();
  if (opened.ino !== checked.ino || opened.dev !== checked.dev) {
    throw new CredentialError(`${what} ${path} changed while it was being read`);
  }
  const buf = new Uint8Array(maxBytes + 1);
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (got > maxBytes) {
    throw new CredentialError(
      `${what} ${path} is larger than ${formatLimit(maxBytes)}: it cannot be one (wrong file?)`,
    );
  }
  return new TextDecoder().decode(buf.subarray(0, got));
}

function formatLimit(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : `${bytes / 1024} KiB`;
}

/** The login name of a uid from /etc/passwd, when it may be read and has one. */
function userName(uid: number): string | undefined {
  if (Deno.permissions.querySync({ name: "read", path: "/etc/passwd" }).state !== "granted") {
    return undefined;
  }
  try {
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const [name, , id] = line.split(":");
      if (id !== undefined && Number(id) === uid && name) return name;
    }
  } catch {
    // No /etc/passwd (a container, another OS): the uid is named instead.
  }
  return undefined;
}
