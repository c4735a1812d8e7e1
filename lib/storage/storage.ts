/**
 * The one interface every place where backups are kept implements, after restic's `Backend`:
 * a flat namespace of keys (`/`-separated, relative to the storage root, never starting with `/`
 * or holding `..`) that can be listed, stat'ed, read as a stream, written atomically and removed,
 * plus the storage's lock. The catalog, metadata and the backup writer only use this, so an
 * S3-compatible bucket is one more implementation ({@linkcode LocalStorage} is the first).
 *
 * @module
 */

/** One stored object (a regular file locally). */
export interface StoredObject {
  /** Its key, relative to the storage root. */
  key: string;
  /** Bytes. */
  size: number;
  /** Last modification, when the storage knows it (never used to date a backup). */
  mtime?: Date;
}

/**
 * An object being written: content goes to `writable`, and the object appears under its key only
 * on {@linkcode AtomicWriter.commit} (locally: `<key>.partial`, fsync, rename, fsync of the
 * folder). Until then, and after {@linkcode AtomicWriter.abort}, nothing is under the key.
 */
export interface AtomicWriter extends AsyncDisposable {
  /** The key the object gets on commit. */
  readonly key: string;
  /** Takes the content; closing it does not commit. */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Makes the content durable without giving it its key, so what must exist first (checksum,
   * metadata) can be written before. Idempotent; commit seals too.
   */
  seal(): Promise<void>;
  /** Gives the object its key (replacing an existing one atomically). */
  commit(): Promise<void>;
  /** Discards the content; a no-op after commit, safe to call twice. */
  abort(): Promise<void>;
}

/** A held storage lock. */
export interface StorageLock {
  /** Where the lock is, for messages. */
  readonly location: string;
  /** Releases it (idempotent). */
  release(): Promise<void>;
}

/** Options of {@linkcode Storage.create}. */
export interface CreateOptions {
  /**
   * A rough estimate of the object's size, which the content may exceed several times (the
   * server's size of a database being dumped): S3 sizes its upload parts by it.
   */
  sizeHint?: number;
}

/** Options of {@linkcode Storage.writeAtomic}. */
export interface WriteAtomicOptions {
  /** Fail with `Deno.errors.AlreadyExists` rather than replace an existing object. */
  exclusive?: boolean;
}

/** A place where backups are kept. Every method takes keys relative to the storage root. */
export interface Storage {
  /** "local", later "s3". */
  readonly kind: string;
  /** The storage root as a person would name it (a folder, `s3://bucket/prefix`). */
  readonly location: string;
  /** Where a key is, as a person would name it (locally: the absolute path, usable as a file). */
  locate(key: string): string;
  /**
   * Every object below the folder `prefix` ("" = everything), at any depth, in no particular
   * order. Only regular objects: locally, symlinks, FIFOs and devices are skipped and never
   * followed. A missing folder lists nothing.
   */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** The names of the immediate sub-folders of `prefix` ("" = the root), sorted. */
  folders(prefix: string): Promise<string[]>;
  /** The object under `key`, or undefined when there is none (or it is not a regular object). */
  stat(key: string): Promise<StoredObject | undefined>;
  /**
   * Whether anything is under `key`, of whatever type (locally a folder or a symlink planted at
   * a backup's name counts): a name that is taken is never written over.
   */
  exists(key: string): Promise<boolean>;
  /** Reads the object as a stream. Throws `Deno.errors.NotFound` when it is missing. */
  open(key: string): Promise<ReadableStream<Uint8Array>>;
  /**
   * Reads a small object whole (metadata, checksum); undefined when missing. Throws when it is
   * larger than `maxBytes` (default 16 MiB): a sidecar that big is not one.
   */
  readSmall(key: string, maxBytes?: number): Promise<Uint8Array | undefined>;
  /** Starts writing an object atomically (see {@linkcode AtomicWriter}). */
  create(key: string, options?: CreateOptions): Promise<AtomicWriter>;
  /** Writes a small object whole so that readers see the old content or all of the new one. */
  writeAtomic(key: string, data: Uint8Array | string, options?: WriteAtomicOptions): Promise<void>;
  /** Removes the object; a missing one is not an error. */
  remove(key: string): Promise<void>;
  /** Takes the storage's lock (one writing run at a time); throws LockError when held. */
  lock(): Promise<StorageLock>;
}

/** Largest sidecar {@linkcode Storage.readSmall} reads by default. */
export const SMALL_OBJECT_LIMIT = 16 * 1024 * 1024;

/** Joins key segments with `/`, skipping empty ones. */
export function joinKey(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/** The folder part of a key ("" at the root). */
export function keyDir(key: string): string {
  const i = key.lastIndexOf("/");
  return i < 0 ? "" : key.slice(0, i);
}

/** The last segment of a key. */
export function keyBase(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/**
 * Throws unless `key` is a well-formed relative key: no empty, `.` or `..` segment, no leading
 * `/`, no NUL. Layout keys are built from encoded names, so this only ever fails on a bug or a
 * hostile caller, and then nothing outside the storage is touched.
 */
export function assertKey(key: string, allowRoot = false): void {
  if (key === "" && allowRoot) return;
  if (key.includes("\0") || key.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new Error(`invalid storage key ${JSON.stringify(key)}`);
  }
}
