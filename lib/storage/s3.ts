/**
 * {@linkcode Storage} on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, B2, Wasabi…), the
 * second implementation after the local folder, like restic's backends.
 *
 * Every key lives under a required, non-empty `prefix`: nothing outside it is ever listed,
 * written or deleted. Objects are written with a streaming multipart upload
 * (`@aws-sdk/lib-storage`), which makes nothing visible until the upload completes and is
 * aborted on failure; each object carries its SHA-256 in `x-amz-meta-sha256`.
 *
 * S3 has no rename: an {@linkcode AtomicWriter} of this storage makes its object visible when it
 * is sealed (the upload completes), not at commit. A backup's commit point on S3 is therefore its
 * metadata object, written last: the catalog only calls a backup good when the metadata is
 * there and says ok, so a dump without it is never taken for a backup.
 *
 * The SDK reads `AWS_*` variables, `~/.aws/config` and `~/.aws/credentials` for every setting it
 * is not given. Everything is passed explicitly here (credentials included) so that none is read,
 * and the CLI's permission set (no `homedir`, an env allow-list without `AWS_*`) makes any read
 * that is still attempted fail loudly in the tests instead of silently changing behaviour. The
 * SDK is imported on first use, after {@linkcode guardProcessEnv}: it reads `process.env` as its
 * modules load, and local-only runs never load it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import { LockError, VyaError } from "../errors.ts";
import { guardProcessEnv } from "../node_env.ts";
import { processAlive } from "./lock.ts";
import { collect } from "../stream/gc.ts";
import { redact } from "../redact.ts";
import { VERSION } from "../version.ts";
import {
  assertKey,
  type AtomicWriter,
  type CreateOptions,
  SMALL_OBJECT_LIMIT,
  type Storage,
  type StorageLock,
  type StoredObject,
  type WriteAtomicOptions,
} from "./storage.ts";

/** Where the bucket is and how to log in. */
export interface S3Settings {
  /** `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`. */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Bucket name. */
  bucket: string;
  /** Key prefix of everything this tool owns, e.g. `db/` (a trailing `/` is implied). */
  prefix: string;
  /** Path-style URLs (`endpoint/bucket/key`), needed by most self-hosted servers. */
  pathStyle: boolean;
  /** The access key id and secret, resolved when first needed (decrypted credentials). */
  credentials: () => Promise<{ accessKeyId: string; secretAccessKey: string }>;
}

/** The largest object S3 stores, and the most parts one upload may have. */
export const S3_MAX_OBJECT_BYTES = 5 * 1024 ** 4;
/** Parts per multipart upload at most. */
export const S3_MAX_PARTS = 10_000;
const MIN_PART = 8 * 1024 * 1024;
/** Part size when the size is not known in advance (fits 640 GiB in 10,000 parts). */
const UNKNOWN_SIZE_PART = 64 * 1024 * 1024;

/**
 * The part size for an object of `bytes` (undefined: unknown): at least 8 MiB, grown (in whole
 * MiB) so the object fits in 10,000 parts; a 5 TiB object gets 525 MiB parts.
 */
export function partSizeFor(bytes?: number): number {
  if (bytes === undefined) return UNKNOWN_SIZE_PART;
  const mib = 1024 * 1024;
  return Math.max(MIN_PART, Math.ceil(bytes / S3_MAX_PARTS / mib) * mib);
}

/** Normalises a configured prefix to `a/b/`; throws for an empty or malformed one. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, "").replace(/\/+$/, "");
  if (trimmed === "") throw new Error("the S3 prefix must not be empty");
  assertKey(trimmed);
  return `${trimmed}/`;
}

/** Name of the lock object under the prefix. */
export const S3_LOCK_KEY = ".vya-backupdb.lock";
/** A lock object older than this is stale and taken over (no run lasts that long). */
export const S3_LOCK_STALE_MS = 24 * 3600 * 1000;

/** The head of an object: its size and the SHA-256 recorded with it. */
export interface S3ObjectHead extends StoredObject {
  /** `x-amz-meta-sha256`, when the object carries one. */
  sha256?: string;
}

/** How long a run given up waits for the server to take AbortMultipartUpload. */
const ABORT_UPLOAD_TIMEOUT_MS = 10_000;

/** Options of {@linkcode S3Storage.create}. */
export interface S3CreateOptions extends CreateOptions {
  /** Size of the object when known: the part size grows to fit it in 10,000 parts. */
  expectedBytes?: number;
  /** Hex SHA-256 recorded as `x-amz-meta-sha256`. */
  sha256?: string;
}

type Sdk = typeof import("@aws-sdk/client-s3");

/** The storage of an S3 bucket below a prefix. */
export class S3Storage implements Storage {
  /** Always "s3". */
  readonly kind = "s3";
  /** `s3://bucket/prefix`. */
  readonly location: string;
  readonly #settings: S3Settings;
  readonly #root: string;
  #client?: Promise<{ sdk: Sdk; client: S3Client }>;

  /** A storage of `settings` (nothing is contacted until first use). */
  constructor(settings: S3Settings) {
    this.#settings = settings;
    this.#root = normalizePrefix(settings.prefix);
    this.location = `s3://${settings.bucket}/${this.#root.slice(0, -1)}`;
  }

  /** The bucket. */
  get bucket(): string {
    return this.#settings.bucket;
  }

  /** The object key in the bucket of a storage key. */
  objectKey(key: string): string {
    assertKey(key, true);
    return key === "" ? this.#root : this.#root + key;
  }

  locate(key: string): string {
    return `s3://${this.#settings.bucket}/${this.objectKey(key)}`;
  }

  async #sdk(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.#client ??= (async () => {
      // A credential entry that is missing or cannot be decrypted is the configuration's error
      // (exit 3, naming the entry), not a failure of the remote: resolved here, outside the
      // calls whose errors are reported as the remote's.
      await this.#settings.credentials();
      guardProcessEnv();
      const sdk = await import("@aws-sdk/client-s3");
      const s = this.#settings;
      const client = new sdk.S3Client({
        endpoint: s.endpoint,
        region: s.region,
        forcePathStyle: s.pathStyle,
        credentials: s.credentials,
        // Each of these would otherwise be looked up in AWS_* variables and ~/.aws files.
        defaultsMode: "standard",
        retryMode: "standard",
        maxAttempts: 3,
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        useDualstackEndpoint: false,
        useFipsEndpoint: false,
        useArnRegion: false,
        disableS3ExpressSessionAuth: true,
        authSchemePreference: [],
        sigv4aSigningRegionSet: [],
        userAgentAppId: "vya-backupdb",
        defaultUserAgentProvider: () => Promise.resolve([["vya-backupdb", VERSION]]),
        // An unreachable endpoint fails in seconds, a stalled transfer within a minute.
        requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
        ...({ disableClockSkewCorrection: false } as Record<string, unknown>),
      });
      return { sdk, client };
    })();
    return await this.#client;
  }

  /** Runs an SDK call, turning its failure into a redacted error that names the remote. */
  async #call<T>(what: string, key: string, run: (c: S3Client, sdk: Sdk) => Promise<T>) {
    const { sdk, client } = await this.#sdk();
    try {
      return await run(client, sdk);
    } catch (e) {
      throw remoteError(`${what} ${this.locate(key)}`, e);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const base = prefix === "" ? this.#root : `${this.objectKey(prefix)}/`;
    let token: string | undefined;
    do {
      const page = await this.#call("listing", prefix, (c, sdk) =>
        c.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: base,
            ContinuationToken: token,
          }),
        ));
      for (const o of page.Contents ?? []) {
        const key = this.#relative(o.Key);
        if (key === undefined) continue;
        yield { key, size: o.Size ?? 0, mtime: o.LastModified };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** The storage key of an object key, or undefined for what is not a well-formed key of ours. */
  #relative(objectKey: string | undefined): string | undefined {
    if (!objectKey?.startsWith(this.#root)) return undefined;
    const key = objectKey.slice(this.#root.length);
    try {
      assertKey(key);
      return key;
    } catch {
      return undefined; // `a//b`, a folder marker `a/`: not an object this tool wrote
    }
  }

  /**
   * Derived from the full listing below `prefix` rather than a delimiter listing: some servers
   * (s3rver among them) leave out common prefixes that hold no object directly, and a missing
   * host or instance folder would hide its backups.
   */
  async folders(prefix: string): Promise<string[]> {
    const names = new Set<string>();
    const skip = prefix === "" ? 0 : prefix.length + 1;
    for await (const o of this.list(prefix)) {
      const rest = o.key.slice(skip);
      const slash = rest.indexOf("/");
      if (slash > 0) names.add(rest.slice(0, slash));
    }
    return [...names].sort();
  }

  /** Size, date and recorded SHA-256 of an object, or undefined when there is none. */
  async head(key: string): Promise<S3ObjectHead | undefined> {
    try {
      const h = await this.#call(
        "reading",
        key,
        (c, sdk) =>
          c.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })),
      );
      return {
        key,
        size: h.ContentLength ?? 0,
        mtime: h.LastModified,
        sha256: h.Metadata?.sha256,
      };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** HEAD on the bucket: throws a RemoteError (with its HTTP status) when it is not usable. */
  async headBucket(): Promise<void> {
    await this.#call(
      "reaching the bucket",
      "",
      (c, sdk) => c.send(new sdk.HeadBucketCommand({ Bucket: this.bucket })),
    );
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const h = await this.head(key);
    return h && { key: h.key, size: h.size, mtime: h.mtime };
  }

  async exists(key: string): Promise<boolean> {
    if (await this.stat(key)) return true;
    // Something below `key/` takes the name too, as a folder does locally.
    for await (const _ of this.list(key)) return true;
    return false;
  }

  async open(key: string): Promise<ReadableStream<Uint8Array>> {
    try {
      const r = await this.#call(
        "reading",
        key,
        (c, sdk) =>
          c.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })),
      );
      if (!r.Body) throw new Error("empty response");
      return r.Body.transformToWebStream() as ReadableStream<Uint8Array>;
    } catch (e) {
      if (isNotFound(e)) throw new Deno.errors.NotFound(`${this.locate(key)} does not exist`);
      throw e;
    }
  }

  async readSmall(key: string, maxBytes = SMALL_OBJECT_LIMIT): Promise<Uint8Array | undefined> {
    try {
      const r = await this.#call(
        "reading",
        key,
        (c, sdk) =>
          c.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })),
      );
      if ((r.ContentLength ?? 0) > maxBytes) {
        await r.Body?.transformToWebStream().cancel();
        throw new Error(`${this.locate(key)} is larger than ${maxBytes} bytes`);
      }
      return r.Body ? await r.Body.transformToByteArray() : new Uint8Array();
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * Starts a streaming multipart upload to `key`. The object appears when the upload completes,
   * at {@linkcode AtomicWriter.seal} (S3 has no rename: see the module doc), which then confirms
   * by a HEAD that the server holds as many bytes as were written. Closing the writable does not
   * end the upload: a dump whose tool failed after its last byte must never complete into an
   * object. A failed or aborted upload is aborted on the server (AbortMultipartUpload is sent
   * and awaited, bounded), and abort after seal (but before commit) deletes the object again.
   */
  async create(key: string, options: S3CreateOptions = {}): Promise<AtomicWriter> {
    const { client, sdk } = await this.#sdk();
    const { Upload } = await import("@aws-sdk/lib-storage");
    // Erroring the pipe through its controller fails a write blocked on backpressure at once;
    // aborting its writable would wait for that write, which a dead upload never takes.
    let pipeControl!: TransformStreamDefaultController<Uint8Array>;
    const pipe = new TransformStream<Uint8Array, Uint8Array>({
      start: (c) => {
        pipeControl = c;
      },
    });
    const breakPipe = (reason: unknown) => {
      try {
        pipeControl.error(reason);
      } catch { /* already closed */ }
    };
    // A size hint is an estimate the dump may exceed (text is larger than the server's pages).
    const partSize = partSizeFor(
      options.expectedBytes ?? (options.sizeHint ? options.sizeHint * 4 : undefined),
    );
    const body = uploadWritable(pipe.writable.getWriter(), partSize, breakPipe);
    const upload = new Upload({
      client,
      params: {
        Bucket: this.bucket,
        Key: this.objectKey(key),
        Body: pipe.readable,
        Metadata: options.sha256 ? { sha256: options.sha256 } : undefined,
      },
      partSize,
      queueSize: 1,
      leavePartsOnError: false,
    });
    const done = upload.done().then(() => {}, (e) => {
      throw remoteError(`uploading ${this.locate(key)}`, e);
    });
    // A failed upload stops reading its body: the writer must see the failure, not block.
    done.catch((e) => breakPipe(e));
    let state: "open" | "sealed" | "committed" | "aborted" = "open";
    const abort = async () => {
      if (state === "aborted" || state === "committed") return;
      const was = state;
      state = "aborted";
      if (was === "open") {
        // The broken body fails the upload, and the SDK then sends AbortMultipartUpload itself
        // before `done` settles; a part still in flight to a hung server is not waited for.
        breakPipe(new Error("upload aborted"));
        if (!(await settlesWithin(done, ABORT_UPLOAD_TIMEOUT_MS))) {
          await upload.abort().catch(() => {});
          await this.#abortUpload(sdk, client, key, upload.uploadId);
        }
      } else {
        // At worst the object stays without metadata: listed as an orphan, never as a backup.
        await this.remove(key).catch(() => {});
      }
    };
    const seal = async () => {
      if (state === "sealed" || state === "committed") return;
      if (state === "aborted") throw new Error(`${this.locate(key)}: upload was aborted`);
      await body.end().catch(() => {}); // an errored body: `done` says why
      await done;
      state = "sealed";
      const head = await this.head(key);
      if (head?.size !== body.written()) {
        throw new RemoteError(
          `${this.locate(key)} holds ${head?.size ?? "no"} bytes after the upload, not the ` +
            `${body.written()} sent`,
        );
      }
    };
    return {
      key,
      writable: body.writable,
      seal,
      commit: async () => {
        await seal();
        state = "committed";
      },
      abort,
      [Symbol.asyncDispose]: async () => {
        if (state === "open") await abort();
      },
    };
  }

  /**
   * Sends AbortMultipartUpload for an upload that did not settle in time, and waits for it
   * (bounded): the SDK's `Upload.abort()` only stops its loop and sends the abort later, in the
   * background, which an interrupted run exits before (an abort while the upload is still being
   * created is left to that background abort). A failure is ignored: the parts then stay until the bucket's
   * lifecycle rule removes them, and are never listed as an object.
   */
  async #abortUpload(sdk: Sdk, client: S3Client, key: string, uploadId?: string): Promise<void> {
    if (!uploadId) return; // no multipart upload was started (or the SDK sent a single PUT)
    const cmd = new sdk.AbortMultipartUploadCommand({
      Bucket: this.bucket,
      Key: this.objectKey(key),
      UploadId: uploadId,
    });
    await client.send(cmd, { abortSignal: AbortSignal.timeout(ABORT_UPLOAD_TIMEOUT_MS) })
      .catch(() => {});
  }

  async writeAtomic(
    key: string,
    data: Uint8Array | string,
    options: WriteAtomicOptions = {},
  ): Promise<void> {
    const body = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const sha256 = createHash("sha256").update(body).digest("hex");
    try {
      await this.#call("writing", key, (c, sdk) =>
        c.send(
          new sdk.PutObjectCommand({
            Bucket: this.bucket,
            Key: this.objectKey(key),
            Body: body,
            ContentLength: body.length,
            Metadata: { sha256 },
            // A conditional write where the server supports it (AWS since 2024); others ignore it.
            IfNoneMatch: options.exclusive ? "*" : undefined,
          }),
        ));
    } catch (e) {
      if (statusOf(e) === 412) {
        throw new Deno.errors.AlreadyExists(`${this.locate(key)} already exists`);
      }
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    await this.#call(
      "deleting",
      key,
      (c, sdk) =>
        c.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })),
    );
  }

  /**
   * Takes the lock object `PREFIX.vya-backupdb.lock`, holding the owner's host, PID, a random
   * run id and the time. S3 has no flock: the object is written with `If-None-Match: *` (atomic
   * on AWS S3 and servers with conditional writes; elsewhere the last writer wins) and read back,
   * and only a lock that still names this run is held. A lock older than 24 h is stale and taken
   * over, since its holder cannot be asked whether it still lives. See the README for the limits.
   */
  async lock(): Promise<StorageLock> {
    const runId = crypto.randomUUID();
    const body = JSON.stringify({
      host: Deno.hostname(),
      pid: Deno.pid,
      run_id: runId,
      created_at: new Date().toISOString(),
    });
    const location = this.locate(S3_LOCK_KEY);
    for (let attempt = 0; attempt < 2; attempt++) {
      const held = await this.#readLock();
      if (held && Date.now() - held.at < S3_LOCK_STALE_MS && !(await heldByDeadProcess(held))) {
        throw new LockError(
          `another vya-backupdb run (${held.owner}) holds the lock ${location}`,
          { hint: `wait for it; a lock older than 24 h is taken over, or delete ${location}` },
        );
      }
      if (held) await this.remove(S3_LOCK_KEY);
      try {
        await this.writeAtomic(S3_LOCK_KEY, body, { exclusive: true });
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) continue;
        throw e;
      }
      const now = await this.#readLock();
      if (now?.runId !== runId) continue;
      let released = false;
      return {
        location,
        release: async () => {
          if (released) return;
          released = true;
          if ((await this.#readLock().catch(() => undefined))?.runId === runId) {
            await this.remove(S3_LOCK_KEY).catch(() => {});
          }
        },
      };
    }
    throw new LockError(`could not take the lock ${location}: it keeps changing hands`);
  }

  async #readLock(): Promise<HeldLock | undefined> {
    const raw = await this.readSmall(S3_LOCK_KEY, 64 * 1024);
    if (!raw) return undefined;
    try {
      const v = JSON.parse(new TextDecoder().decode(raw));
      const at = Date.parse(v.created_at);
      return {
        owner: `host ${v.host}, PID ${v.pid}, since ${v.created_at}`,
        host: typeof v.host === "string" ? v.host : undefined,
        pid: Number.isSafeInteger(v.pid) ? v.pid : undefined,
        runId: typeof v.run_id === "string" ? v.run_id : undefined,
        at: Number.isFinite(at) ? at : 0,
      };
    } catch {
      return { owner: "unreadable lock object", at: 0 };
    }
  }
}

/** The lock object as read back. */
interface HeldLock {
  /** Who holds it, for messages. */
  owner: string;
  /** Its host and PID, when readable. */
  host?: string;
  pid?: number;
  /** The holder's run id. */
  runId?: string;
  /** When it was taken (ms; 0 when unreadable). */
  at: number;
}

/**
 * Whether the lock was taken on this host by a process that is gone (a `kill -9` mid-prune):
 * such a lock is stale at once, as the local lock file is, instead of blocking for 24 h. A
 * holder on another host cannot be asked and counts as alive.
 */
async function heldByDeadProcess(held: HeldLock): Promise<boolean> {
  if (held.host !== Deno.hostname() || held.pid === undefined || held.pid === Deno.pid) {
    return false;
  }
  return !(await processAlive(held.pid));
}

/**
 * The writable side of an upload's body: counts the bytes, and closing it does not end the body
 * (`end` does, at seal): a stream that ended is not yet a complete object.
 */
function uploadWritable(
  body: WritableStreamDefaultWriter<Uint8Array>,
  partSize: number,
  breakPipe: (reason: unknown) => void,
): { writable: WritableStream<Uint8Array>; written: () => number; end: () => Promise<void> } {
  let written = 0;
  let sinceCollect = 0;
  const writable = new WritableStream<Uint8Array>({
    write: async (chunk) => {
      written += chunk.byteLength;
      sinceCollect += chunk.byteLength;
      // Each part is copied into one large buffer (the SDK's, then the request's), which only a
      // full collection frees: without one per part, memory grows with the object.
      if (sinceCollect >= partSize) {
        sinceCollect = 0;
        collect(true);
      }
      await body.write(chunk);
    },
    close: () => {},
    abort: (reason) => breakPipe(reason),
  });
  return { writable, written: () => written, end: () => body.close() };
}

/** Whether `p` settles (either way) within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A failure of the remote: kind `failed`, message naming the remote, redacted. */
export class RemoteError extends VyaError {
  /** The HTTP status, when the server answered. */
  readonly status?: number;
  /** Creates one. */
  constructor(message: string, status?: number, options: { cause?: unknown } = {}) {
    super(message, "failed", options);
    this.name = "RemoteError";
    this.status = status;
  }
}

/**
 * The error of a failed remote operation: what was done where, the server's error code and
 * message (or the network failure), run through the redaction layer. The SDK's own error
 * carries the request (signed headers included) and is kept only as `cause`, never printed.
 */
export function remoteError(what: string, e: unknown): Error {
  if (e instanceof RemoteError || e instanceof Deno.errors.NotFound) return e;
  const err = e as { name?: string; message?: string; code?: string; $metadata?: unknown };
  const status = statusOf(e);
  let reason: string;
  if (status !== undefined) {
    const name = err.name && err.name !== "Error" ? err.name : "error";
    reason = `${name} (HTTP ${status})${err.message ? `: ${err.message}` : ""}`;
  } else {
    reason = `${err.code ?? err.name ?? "error"}: ${err.message ?? String(e)}`;
  }
  return new RemoteError(redact(`${what} failed: ${reason}`), status, { cause: e });
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return typeof s === "number" ? s : (e as RemoteError)?.status;
}

function isNotFound(e: unknown): boolean {
  const name = (e as { name?: string })?.name ?? (e as { cause?: { name?: string } })?.cause?.name;
  return statusOf(e) === 404 || name === "NotFound" || name === "NoSuchKey";
}
