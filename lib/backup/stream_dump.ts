/**
 * The data path of every backup: the dump tool's stdout → byte counter → compression →
 * SHA-256 → `<file>.partial`, all Web Streams with back-pressure, then fsync and rename, then
 * the `.sha256` file. Nothing is held in memory beyond the streams' small buffers.
 *
 * The file gets its final name only when the tool exited 0 AND printed its completion marker:
 * a dump cut short by a dead server or a killed child never looks like a backup.
 *
 * @module
 */
import { basename } from "node:path";
import { InterruptedError, VyaError } from "../errors.ts";
import { ensurePrivateDir, writeFileAtomic } from "../secure_fs.ts";
import { startChild } from "../process.ts";
import { ByteCounter } from "../stream/counter.ts";
import { Sha256Stream } from "../stream/sha256.ts";
import { PartialFile } from "../stream/partial_file.ts";
import type { Codec } from "../stream/codecs.ts";
import type { DumpCommand } from "../dump/types.ts";
import type { BackupPaths } from "./layout.ts";
import { sha256Line } from "./metadata.ts";

/** What to dump where. */
export interface StreamDumpOptions extends Omit<WriteBackupOptions, "beforeCommit"> {
  /** The prepared dump command. */
  command: DumpCommand;
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
    super(message, 1);
    this.name = "DumpError";
  }
}

const TAIL_BYTES = 4096;

/** Keeps the last bytes that flowed through, to look for the completion marker. */
class TailKeeper extends TransformStream<Uint8Array, Uint8Array> {
  #tail = new Uint8Array(0);

  constructor() {
    let self: TailKeeper | undefined = undefined;
    super({
      transform(chunk, controller) {
        const keep = self!;
        if (chunk.length >= TAIL_BYTES) {
          keep.#tail = chunk.slice(chunk.length - TAIL_BYTES);
        } else {
          const merged = new Uint8Array(Math.min(TAIL_BYTES, keep.#tail.length + chunk.length));
          const fromOld = merged.length - chunk.length;
          merged.set(keep.#tail.subarray(keep.#tail.length - fromOld), 0);
          merged.set(chunk, fromOld);
          keep.#tail = merged;
        }
        controller.enqueue(chunk);
      },
    });
    self = this;
  }

  get text(): string {
    return new TextDecoder().decode(this.#tail);
  }
}

/** Where and how {@linkcode writeBackupStream} writes. */
export interface WriteBackupOptions {
  /** Where the files go. */
  target: BackupPaths;
  /** Compression codec. */
  codec: Codec;
  /** Compression level (ignored by none). */
  level: number;
  /** Compression threads. */
  threads: number;
  /** Aborts the write: the partial file is removed. */
  signal?: AbortSignal;
  /** Called with the uncompressed byte count as data flows. */
  onProgress?: (rawBytes: number) => void;
  /**
   * Runs once the content has been written and before the file gets its final name; throwing
   * here discards the file. The dump path checks the tool's exit status and marker here.
   */
  beforeCommit?: () => Promise<void>;
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
  const { target, codec, level, threads, signal } = options;
  signal?.throwIfAborted();
  await ensurePrivateDir(target.dir);
  const file = await PartialFile.create(target.dump);
  try {
    const raw = new ByteCounter({ onProgress: options.onProgress });
    const sha = new Sha256Stream();
    const written = new ByteCounter();
    try {
      await source
        .pipeThrough(raw)
        .pipeThrough(codec.compress(level, { threads }))
        .pipeThrough(sha)
        .pipeThrough(written)
        .pipeTo(file.writable, { signal });
    } catch (e) {
      if (signal?.aborted) throw new InterruptedError("backup interrupted", { cause: e });
      throw new DumpError(`writing ${target.dump} failed: ${errorText(e)}`);
    }
    await options.beforeCommit?.();
    await file.commit();
    const sha256 = await sha.digest;
    await writeFileAtomic(target.sha256, sha256Line(sha256, basename(target.dump)));
    return { rawBytes: raw.bytes, fileBytes: written.bytes, sha256 };
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
    const tail = new TailKeeper();
    const written = await writeBackupStream(running.process.stdout.pipeThrough(tail), {
      ...options,
      beforeCommit: async () => {
        const [status, stderr] = await Promise.all([running.process.status, running.stderr]);
        stderrText = stderr.trim();
        if (signal?.aborted) throw new InterruptedError("backup interrupted");
        if (!status.success) {
          const how = status.signal
            ? `was killed by ${status.signal}`
            : `exited with code ${status.code}`;
          throw new DumpError(
            `${command.tool} ${how}${stderrText ? `: ${lastLines(stderrText)}` : ""}`,
          );
        }
        if (!tail.text.includes(command.completionMarker)) {
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
