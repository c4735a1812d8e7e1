/**
 * A MySQL/MariaDB client options file holding the password, so it never appears in argv and
 * the deprecated `MYSQL_PWD` is not needed — and never rests on disk either.
 *
 * The "file" is a named pipe (FIFO, mode 0600) in a fresh 0700 folder. The `[client]` section
 * is written into the pipe when the client opens it, and the pipe is unlinked at that moment: a
 * FIFO has no content on disk, so a `kill -9` of this process at any point leaves at most an
 * empty pipe node, never the password. Measured (strace) with mariadb-dump and mariadb 10.11,
 * mysqldump and mysql 9.7: each opens its `--defaults-file` exactly once, after a stat, so one
 * serving per client is enough; a second open would fail with "not found", loudly.
 *
 * Folders of dead processes are swept on the first call of a run (../../owned_temp_dir.ts).
 *
 * @module
 */
import { join } from "node:path";
import { makeOwnedTempDir } from "../../owned_temp_dir.ts";
import type { ConnectionParams } from "../../config/types.ts";

/** A written options file and how to get rid of it. */
export interface OptionsFile {
  /** Path to pass as `--defaults-file=PATH` (must be the first argument). */
  path: string;
  /** Removes the pipe and its folder (idempotent); releases the pipe if nobody opened it. */
  remove(): Promise<void>;
}

/** Prefix of the private folders; the sweep only ever looks at these (and legacy ones). */
const PREFIX = "vya-opt-";

/** Quotes a value for a MySQL option file: the reader strips the outer quotes and unescapes. */
export function quoteOptionValue(value: string): string {
  const escaped = value
    .replaceAll("\\", "\\\\")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r")
    .replaceAll("\t", "\\t")
    // An unescaped quote would end the quoted value early, and a `#` after it would then start
    // a comment, cutting the password short.
    .replaceAll('"', '\\"');
  return `"${escaped}"`;
}

/** The `[client]` section for these parameters. */
export function optionsBody(params: ConnectionParams): string {
  return [
    "[client]",
    `host=${quoteOptionValue(params.host)}`,
    `port=${params.port}`,
    `user=${quoteOptionValue(params.user)}`,
    `password=${quoteOptionValue(params.password)}`,
    "protocol=TCP",
    "",
  ].join("\n");
}

/**
 * Makes a `[client]` options source with host, port, user and password for one client run.
 * Being passed with `--defaults-file`, it also keeps /etc/mysql/my.cnf and ~/.my.cnf out.
 */
export async function writeOptionsFile(params: ConnectionParams): Promise<OptionsFile> {
  const dir = await makeOwnedTempDir(PREFIX, { legacy: true });
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  const path = join(dir, "client.cnf");
  try {
    await makeFifo(path);
  } catch (e) {
    await removeDir();
    throw e;
  }
  const body = new TextEncoder().encode(optionsBody(params));
  let opened = false;
  // Opening a FIFO for writing blocks until a reader (the client) opens it.
  const serving = Deno.open(path, { write: true }).then(async (pipe) => {
    opened = true;
    // The client holds it open now: the name can go at once.
    await Deno.remove(path).catch(() => {});
    try {
      await pipe.write(body);
    } catch {
      // The reader went away (killed client, or our own release in remove()): nothing to do.
    } finally {
      pipe.close();
    }
  }, () => {});
  let removed = false;
  return {
    path,
    remove: async () => {
      if (removed) return;
      removed = true;
      if (!opened) {
        // Nobody opened it (the client never started): open it read-write ourselves, which on
        // Linux never blocks and counts as a reader, so the pending writer is released and its
        // data dropped with the pipe.
        try {
          using _ = await Deno.open(path, { read: true, write: true });
          await serving;
        } catch {
          // Already gone.
        }
      }
      await serving;
      await removeDir();
    },
  };
}

async function makeFifo(path: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("mkfifo", {
      args: ["-m", "0600", path],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new Error(`cannot run mkfifo (coreutils) for the client options pipe: ${e}`);
  }
  if (!out.success) {
    throw new Error(`mkfifo failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}
