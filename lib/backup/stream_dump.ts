/**
 * The data path of every backup: the dump tool's stdout → byte counter → compression →
 * age encryption (when recipients are given) → SHA-256 → the storage's atomic writer (lib/storage/writer.ts: `.partial`, fsync, `.sha256`,
 * metadata, rename), all Web Streams with back-pressure. Nothing is held in memory beyond the
 * streams' small buffers.
 *
 * The file gets its final name only when the tool exited 0 AND printed its completion marker:
 * a dump cut short by a dead server or a killed child never looks like a backup.
 *
 * @module
 */
import { InterruptedError, VyaError } from "../errors.ts";
import { startChild } from "../process.ts";
import { HashingSink } from "../stream/sha256.ts";
import { youngCollector } from "../stream/gc.ts";
import { StallWatchdog } from "../stream/stall.ts";
import type { Codec } from "../stream/codecs.ts";
import { encryptStream } from "../crypto/age_stream.ts";
import type { DumpCommand } from "../dump/types.ts";
import type { BackupPaths } from "../storage/layout.ts";
import type { Storage } from "../storage/storage.ts";
import { createBackupWriter } from "../storage/writer.ts";

/** What to dump where. */
export interface StreamDumpOptions extends Omit<WriteBackupOptions, "beforeCommit" | "watchdog"> {
  /** The prepared dump command. */
  command: DumpCommand;
  /**
   * The dump fails, its tool killed, when it sends no byte for this long (0 or absent: never):
   * a stopped server or a dead network would otherwise hang the run, and its lock, forever.
   */
  stallTimeoutMs?: number;
  /** Gets the tool's (redacted) stderr once it exited, before `beforeRename` runs. */
  onStderr?: (stderr: string) => void;
}

/** A completed, durable dump file. */
export interface StreamDumpResult extends WrittenBackup {
  /** The tool's stderr (redacted), for warnings. */
  stderr: string;
}

/** The dump tool failed; the message says how, with its (redacted) stderr. */
export class DumpError extends VyaError {
  /** Creates the error. */
  constructor(message: string) {
    super(message, "failed");
    this.name = "DumpError";
  }
}

const TAIL_BYTES = 4096;

/**
 * The first stage after the source: counts the uncompressed bytes, reports progress (at most
 * twice a second) and keeps the last bytes, where a dump tool's completion marker is.
 */
class RawTap extends TransformStream<Uint8Array, Uint8Array> {
  #bytes = 0;
  #tail = new Uint8Array(0);

  constructor(onProgress?: (rawBytes: number) => void, watchdog?: StallWatchdog) {
    let self: RawTap | undefined = undefined;
    let last = 0;
    const collect = youngCollector(16 * 1024 * 1024);
    super({
      transform(chunk, controller) {
        const tap = self!;
        watchdog?.touch();
        tap.#bytes += chunk.byteLength;
        tap.#keepTail(chunk);
        collect(chunk.byteLength);
        if (onProgress) {
          const now = performance.now();
          if (now - last >= 500) {
            last = now;
            onProgress(tap.#bytes);
          }
        }
        controller.enqueue(chunk);
      },
      flush() {
        onProgress?.(self!.#bytes);
      },
    });
    self = this;
  }

  #keepTail(chunk: Uint8Array): void {
    if (chunk.length >= TAIL_BYTES) {
      this.#tail = chunk.slice(chunk.length - TAIL_BYTES);
      return;
    }
    const merged = new Uint8Array(Math.min(TAIL_BYTES, this.#tail.length + chunk.length));
    const fromOld = merged.length - chunk.length;
    merged.set(this.#tail.subarray(this.#tail.length - fromOld), 0);
    merged.set(chunk, fromOld);
    this.#tail = merged;
  }

  /** Uncompressed bytes seen. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The last bytes seen, as text. */
  get tailText(): string {
    return new TextDecoder().decode(this.#tail);
  }
}

/** Where and how {@linkcode writeBackupStream} writes. */
export interface WriteBackupOptions {
  /** The storage written to. */
  storage: Storage;
  /** The keys of the backup's files in it. */
  target: BackupPaths;
  /** Compression codec. */
  codec: Codec;
  /** Compression level (ignored by none). */
  level: number;
  /** Compression threads. */
  threads: number;
  /**
   * age X25519 recipients: the compressed stream is encrypted to them, and the checksum covers
   * the encrypted file as stored. Absent: not encrypted.
   */
  recipients?: readonly string[];
  /** Aborts the write: the partial file is removed. */
  signal?: AbortSignal;
  /** A rough estimate of the stored size (the database's size): S3 sizes its parts by it. */
  sizeHint?: number;
  /** Called with the uncompressed byte count as data flows. */
  onProgress?: (rawBytes: number) => void;
  /**
   * Runs once the content has been written and before the file gets its final name, with the
   * last 4 KiB of the uncompressed content; throwing here discards the file. The dump path
   * checks the tool's exit status and completion marker here.
   */
  beforeCommit?: (tail: string) => Promise<void>;
  /**
   * Runs once the content is durable and its `.sha256` written, before the file gets its final
   * name: the caller writes the metadata here. Throwing discards the file and the checksum.
   */
  beforeRename?: (written: WrittenBackup) => Promise<void>;
  /** Touched on every chunk of the source, so its owner sees when the data stops flowing. */
  watchdog?: StallWatchdog;
}

/** A written, durable backup file. */
export interface WrittenBackup {
  /** Uncompressed bytes. */
  rawBytes: number;
  /** Bytes of the file on disk. */
  fileBytes: number;
  /** Hex SHA-256 of the file on disk. */
  sha256: string;
}

/**
 * Writes a stream as a backup file: compressed, hashed, as `<file>.partial` renamed into place
 * only when complete, then its `.sha256`. On any failure the partial file is removed.
 * Content produced in-process (the SQL of a users backup) is written through this too.
 */
export async function writeBackupStream(
  source: ReadableStream<Uint8Array>,
  options: WriteBackupOptions,
): Promise<WrittenBackup> {
  const { storage, target, codec, level, threads, signal } = options;
  signal?.throwIfAborted();
  const where = storage.locate(target.dump);
  // Before the file is created: bad recipients fail without leaving a .partial.
  const encrypt = options.recipients?.length ? encryptStream(options.recipients) : undefined;
  const file = await createBackupWriter(storage, target, { sizeHint: options.sizeHint });
  try {
    const raw = new RawTap(options.onProgress, options.watchdog);
    const sink = new HashingSink(file.writable);
    try {
      // As few stages as possible: every stage costs per chunk, and a dump is ~10^5 chunks/GB.
      const counted = source.pipeThrough(raw);
      const compressed = codec.format === "none"
        ? counted
        : counted.pipeThrough(codec.compress(level, { threads }));
      const stored = encrypt ? compressed.pipeThrough(encrypt) : compressed;
      await stored.pipeTo(sink.writable, { signal });
    } catch (e) {
      if (signal?.aborted) throw new InterruptedError("backup interrupted", { cause: e });
      throw new DumpError(`writing ${where} failed: ${errorText(e)}`);
    }
    await options.beforeCommit?.(raw.tailText);
    const written = { rawBytes: raw.bytes, fileBytes: sink.bytes, sha256: sink.hex() };
    // The dump gets its final name last: a dump under its final name always has its .sha256
    // and (through beforeRename) its metadata, even when the disk fills while they are written.
    try {
      await file.commit(written.sha256, () => options.beforeRename?.(written) ?? Promise.resolve());
    } catch (e) {
      if (e instanceof VyaError) throw e;
      throw new DumpError(`committing ${where} failed: ${errorText(e)}`);
    }
    return written;
  } finally {
    await file.abort();
  }
}

/** Runs the dump into its final file. Throws DumpError (or InterruptedError) and leaves no file. */
export async function streamDumpToFile(options: StreamDumpOptions): Promise<StreamDumpResult> {
  const { command, signal } = options;
  let child: ReturnType<typeof startChild> | undefined;
  const onAbort = () => child?.kill(1000);
  signal?.addEventListener("abort", onAbort, { once: true });
  let stderrText = "";
  const watchdog = new StallWatchdog(options.stallTimeoutMs ?? 0, () => child?.kill(1000));
  const stalled = () =>
    watchdog.stalled &&
    new DumpError(
      `${command.tool}: ${watchdog.stalled.message} (killed; see backup.stall_timeout)`,
    );
  try {
    // Inside the try: an abort before the start must still remove the command's options file.
    signal?.throwIfAborted();
    try {
      child = startChild(command.child);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new DumpError(`${command.child.cmd}: not found`);
      throw e;
    }
    const running = child;
    const written = await writeBackupStream(running.process.stdout, {
      ...options,
      watchdog,
      beforeCommit: async (tail) => {
        const [status, stderr] = await Promise.all([running.process.status, running.stderr]);
        stderrText = stderr.trim();
        options.onStderr?.(stderrText);
        if (signal?.aborted) throw new InterruptedError("backup interrupted");
        const stall = stalled();
        if (stall) throw stall;
        watchdog.stop();
        if (!status.success) {
          const how = status.signal
            ? `was killed by ${status.signal}`
            : `exited with code ${status.code}`;
          throw new DumpError(
            `${command.tool} ${how}${stderrText ? `: ${lastLines(stderrText)}` : ""}`,
          );
        }
        if (!tail.includes(command.completionMarker)) {
          throw new DumpError(
            `${command.tool} exited 0 but its output lacks the completion marker ` +
              `"${command.completionMarker}": the dump is incomplete`,
          );
        }
      },
    });
    return { ...written, stderr: stderrText };
  } catch (e) {
    child?.kill(1000);
    const stall = stalled();
    if (stall && !signal?.aborted) throw stall;
    // A write failure is often caused by the tool dying: its stderr says why.
    if (e instanceof DumpError && child && !stderrText) {
      const [status, stderr] = await Promise.all([child.process.status, child.stderr]);
      const detail = stderr.trim();
      if (!status.success && detail) {
        throw new DumpError(`${command.tool} failed: ${lastLines(detail)} (${e.message})`);
      }
    }
    throw e;
  } finally {
    watchdog.stop();
    signal?.removeEventListener("abort", onAbort);
    await command.cleanup();
  }
}

function errorText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

function lastLines(text: string, count = 5): string {
  return text.split("\n").filter((l) => l.trim()).slice(-count).join(" | ");
}
