/**
 * Child processes of the official client tools: how they are started (niceness, secrets kept
 * out of argv) and how their stderr is collected (bounded, redacted).
 *
 * @module
 */
import { redact } from "./redact.ts";
import { concatBytes } from "./stream/bytes.ts";

/** How to start one client tool. */
export interface ChildSpec {
  /** Executable path or name. */
  cmd: string;
  /** Arguments. Never a password: secrets go through `env` or an options file. */
  args: string[];
  /** Extra environment for the child (e.g. PGPASSWORD). */
  env?: Record<string, string>;
  /** Niceness 1-19 through `nice`; 0 leaves the priority alone. */
  nice?: number;
  /** I/O class through `ionice`. */
  ionice?: "none" | "idle" | "best-effort";
  /**
   * Give the child's stdout a 1 MiB stdio buffer (through coreutils' `stdbuf`, when present).
   * Dump tools write through an 8 KiB buffer, so the reader gets ~10^5 small chunks per GB and
   * pays for each; with the big buffer every read takes a full 64 KiB pipe.
   */
  bufferOutput?: boolean;
  /** stdin of the child. */
  stdin?: "piped" | "null";
  /** stdout of the child. */
  stdout?: "piped" | "null";
}

/** A running child with its stderr being collected. */
export interface RunningChild {
  /** The process. */
  process: Deno.ChildProcess;
  /** The command line as shown to users (no secrets by construction, redacted anyway). */
  display: string;
  /** The collected stderr (at most the last 64 KiB), redacted; resolves when stderr closes. */
  stderr: Promise<string>;
  /** Sends SIGTERM, then SIGKILL after `graceMs` if the child has not exited. */
  kill(graceMs?: number): void;
}

const STDERR_LIMIT = 64 * 1024;

const found = new Map<string, string | null>();

/** The first of `paths` that is a file, or null when none is (or none is readable under the flags). */
function findHelper(paths: string[]): string | null {
  const key = paths.join(":");
  if (found.has(key)) return found.get(key)!;
  let hit: string | null = null;
  for (const path of paths) {
    try {
      if (Deno.statSync(path).isFile) {
        hit = path;
        break;
      }
    } catch {
      // Absent, or not readable under narrow flags: the child runs without this helper.
    }
  }
  found.set(key, hit);
  return hit;
}

/**
 * Wraps the command in `stdbuf`, `ionice` and `nice` when asked, and always in util-linux's
 * `setpriv --pdeathsig KILL` when present: a child of a run that is killed (kill -9, the OOM
 * killer) dies with it instead of going on, e.g. a psql still executing what it had read, or a
 * dump still holding a snapshot open on the server.
 */
export function commandLine(spec: ChildSpec): { cmd: string; args: string[] } {
  let cmd = spec.cmd;
  let args = spec.args;
  const buffer = spec.bufferOutput ? findHelper(["/usr/bin/stdbuf", "/bin/stdbuf"]) : null;
  if (buffer) {
    args = ["-o", "1M", cmd, ...args];
    cmd = buffer;
  }
  if (spec.ionice && spec.ionice !== "none") {
    args = ["-c", spec.ionice === "idle" ? "3" : "2", cmd, ...args];
    cmd = "ionice";
  }
  if (spec.nice && spec.nice > 0) {
    args = ["-n", String(spec.nice), cmd, ...args];
    cmd = "nice";
  }
  // The death signal survives the exec of nice/ionice/stdbuf, so setpriv goes outermost: it is
  // the direct child of this process.
  const setpriv = findHelper(["/usr/bin/setpriv", "/bin/setpriv"]);
  if (setpriv) {
    args = ["--pdeathsig", "KILL", "--", cmd, ...args];
    cmd = setpriv;
  }
  return { cmd, args };
}

/** Starts a child. stderr is always collected; stdin/stdout as the spec says (piped default). */
export function startChild(spec: ChildSpec): RunningChild {
  const { cmd, args } = commandLine(spec);
  const process = new Deno.Command(cmd, {
    args,
    env: spec.env,
    stdin: spec.stdin ?? "null",
    stdout: spec.stdout ?? "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  process.status.then(() => exited = true, () => exited = true);
  return {
    process,
    display: redact([cmd, ...args].join(" ")),
    stderr: collectTail(process.stderr, STDERR_LIMIT).then(redact),
    kill(graceMs = 3000) {
      if (exited) return;
      try {
        process.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        if (!exited) {
          try {
            process.kill("SIGKILL");
          } catch { /* already gone */ }
        }
      }, graceMs);
      process.status.finally(() => clearTimeout(timer));
    },
  };
}

/** Reads a stream to the end, keeping only the last `limit` bytes, as text. */
export async function collectTail(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let dropped = false;
  for await (const chunk of stream) {
    chunks.push(chunk);
    size += chunk.length;
    while (size - chunks[0].length >= limit && chunks.length > 1) {
      size -= chunks.shift()!.length;
      dropped = true;
    }
  }
  const text = new TextDecoder().decode(concatBytes(chunks));
  return dropped ? "…" + text : text;
}

/** Runs a tool to completion and returns its stdout, throwing with its stderr on failure. */
export async function runTool(
  spec: ChildSpec & { input?: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { cmd, args } = commandLine(spec);
  const child = new Deno.Command(cmd, {
    args,
    env: spec.env,
    stdin: spec.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (spec.input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(spec.input));
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: redact(new TextDecoder().decode(out.stderr)),
  };
}
