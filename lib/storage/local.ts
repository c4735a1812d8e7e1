/**
 * {@linkcode Storage} on a local folder (`storage.path`): keys are paths below it, folders are
 * made 0700 and files 0600, objects are written as `.partial` + fsync + rename
 * ({@linkcode PartialFile}) or through a temporary file ({@linkcode writeFileAtomic}), and the
 * lock is the hard-linked PID file of lib/storage/lock.ts.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { ensurePrivateDir, syncDir, writeFileAtomic } from "../secure_fs.ts";
import { PartialFile } from "../stream/partial_file.ts";
import { acquireLock } from "./lock.ts";
import {
  assertKey,
  type AtomicWriter,
  joinKey,
  SMALL_OBJECT_LIMIT,
  type Storage,
  type StorageLock,
  type StoredObject,
  type WriteAtomicOptions,
} from "./storage.ts";

/** The storage of a local folder. */
export class LocalStorage implements Storage {
  /** Always "local". */
  readonly kind = "local";
  /** The absolute path of the storage folder. */
  readonly location: string;

  /** A storage rooted at `root` (made absolute; need not exist yet). */
  constructor(root: string) {
    this.location = resolve(root);
  }

  /** The absolute path of a key. */
  locate(key: string): string {
    assertKey(key, true);
    return key === "" ? this.location : join(this.location, ...key.split("/"));
  }

  /**
   * The key of an absolute (or relative to the working folder) path inside this storage, or
   * undefined when the path is outside it.
   */
  keyOf(path: string): string | undefined {
    const abs = resolve(path);
    if (!abs.startsWith(this.location + "/")) return undefined;
    return abs.slice(this.location.length + 1);
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const walk = async function* (
      self: LocalStorage,
      key: string,
    ): AsyncGenerator<StoredObject> {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(self.locate(key)));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
        throw e;
      }
      for (const e of entries) {
        const child = joinKey(key, e.name);
        // readDir does not follow symlinks: a link planted in the tree is neither listed nor
        // walked, so nothing outside the storage is ever reached through it.
        if (e.isDirectory) yield* walk(self, child);
        else if (e.isFile) {
          const info = await self.stat(child);
          if (info) yield info;
        }
      }
    };
    yield* walk(this, prefix);
  }

  async folders(prefix: string): Promise<string[]> {
    try {
      const out: string[] = [];
      for await (const e of Deno.readDir(this.locate(prefix))) {
        if (e.isDirectory) out.push(e.name);
      }
      return out.sort();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
      throw e;
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const info = await Deno.lstat(this.locate(key));
      if (!info.isFile) return undefined;
      return { key, size: info.size, mtime: info.mtime ?? undefined };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw e;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await Deno.lstat(this.locate(key));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
      throw e;
    }
  }

  async open(key: string): Promise<ReadableStream<Uint8Array>> {
    const file = await Deno.open(this.locate(key), { read: true });
    return file.readable;
  }

  async readSmall(key: string, maxBytes = SMALL_OBJECT_LIMIT): Promise<Uint8Array | undefined> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.locate(key), { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw e;
    }
    try {
      const info = await file.stat();
      if (!info.isFile) throw new Error(`${this.locate(key)} is not a regular file`);
      if (info.size > maxBytes) {
        throw new Error(`${this.locate(key)} is larger than ${maxBytes} bytes`);
      }
      const buf = new Uint8Array(info.size);
      let got = 0;
      while (got < buf.length) {
        const n = await file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      file.close();
    }
  }

  async create(key: string): Promise<AtomicWriter> {
    const path = this.locate(key);
    await ensurePrivateDir(dirname(path));
    const file = await PartialFile.create(path);
    return {
      key,
      writable: file.writable,
      seal: () => file.seal(),
      commit: () => file.commit(),
      abort: () => file.abort(),
      [Symbol.asyncDispose]: () => file.abort(),
    };
  }

  async writeAtomic(
    key: string,
    data: Uint8Array | string,
    options: WriteAtomicOptions = {},
  ): Promise<void> {
    const path = this.locate(key);
    await ensurePrivateDir(dirname(path));
    await writeFileAtomic(path, data, { mode: 0o600, exclusive: options.exclusive });
  }

  async remove(key: string): Promise<void> {
    const path = this.locate(key);
    try {
      await Deno.remove(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      return;
    }
    // Durable before the next removal: prune's order (dump, .sha256, metadata) must hold on
    // disk after a power loss too, not only after a kill.
    await syncDir(dirname(path));
  }

  async lock(): Promise<StorageLock> {
    // The storage folder is the user's: created if missing, but never tightened.
    await ensurePrivateDir(this.location, { tighten: false });
    const lock = await acquireLock(this.location);
    return { location: lock.path, release: lock.release };
  }
}

/**
 * A file named by the user (`restore --file`, `users restore --file`), anywhere: the storage of
 * its folder and its key in it, so its sidecars are found and read the same way as in the tree.
 */
export function localFile(path: string): { storage: LocalStorage; key: string } {
  const abs = resolve(path);
  return { storage: new LocalStorage(dirname(abs)), key: basename(abs) };
}
