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
 * Folders of dead processes (a pid file inside says whose) are swept on the first call of a run.
 *
 * @module
 */
import { dirname, join } from "node:path";
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
/** The file inside a folder naming its owner process: `<pid> <start time in clock ticks>`. */
/** The file in a private temporary folder naming the PID that owns it (see the sweep). */
export const OWNER_FILE = "owner";

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

let swept = false;

/**
 * Makes a `[client]` options source with host, port, user and password for one client run.
 * Being passed with `--defaults-file`, it also keeps /etc/mysql/my.cnf and ~/.my.cnf out.
 */
export async function writeOptionsFile(params: ConnectionParams): Promise<OptionsFile> {
  const dir = await Deno.makeTempDir({ prefix: PREFIX });
  await Deno.chmod(dir, 0o700);
  if (!swept) {
    swept = true;
    // Whose folders are ours: the owner of the one just made (Deno.uid() needs --allow-sys).
    const uid = (await Deno.lstat(dir)).uid;
    await sweepStaleOptionFolders(dirname(dir), uid).catch(() => {});
  }
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  const path = join(dir, "client.cnf");
  try {
    await Deno.writeTextFile(join(dir, OWNER_FILE), `${Deno.pid}\n`, {
      mode: 0o600,
      createNew: true,
    });
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

/**
 * Start times (ms since the epoch, to the second) of the live processes, from `ps` (reading
 * /proc needs --allow-all in Deno); undefined when ps cannot be run.
 */
async function liveProcesses(): Promise<Map<number, number> | undefined> {
  try {
    const out = await new Deno.Command("ps", {
      args: ["-e", "-o", "pid=,etimes="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const now = Date.now();
    const live = new Map<number, number>();
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const [pid, elapsed] = line.trim().split(/\s+/).map(Number);
      if (pid > 0 && Number.isFinite(elapsed)) live.set(pid, now - elapsed * 1000);
    }
    return live;
  } catch {
    return undefined;
  }
}

/**
 * Removes option folders whose owner process is gone (its pid is not running, or is running a
 * process started after the folder was made: a reused pid), and folders of older versions of
 * this tool (`vya-*` holding only a plain `client.cnf`) older than a minute. Only folders of
 * `uid`; anything else in the temporary folder is left alone. Best effort: returns how many.
 */
export async function sweepStaleOptionFolders(
  tmp: string,
  uid: number | null,
  prefixes: readonly string[] = [PREFIX],
): Promise<number> {
  let removed = 0;
  let live: Map<number, number> | undefined | null = null;
  for await (const entry of Deno.readDir(tmp)) {
    if (!entry.isDirectory || !entry.name.startsWith("vya-")) continue;
    const dir = join(tmp, entry.name);
    try {
      const st = await Deno.lstat(dir);
      if (uid !== null && st.uid !== uid) continue;
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      let stale = false;
      if (prefixes.some((p) => entry.name.startsWith(p)) && names.includes(OWNER_FILE)) {
        const owner = join(dir, OWNER_FILE);
        const pid = Number((await Deno.readTextFile(owner)).trim());
        const madeAt = (await Deno.lstat(owner)).mtime?.getTime() ?? 0;
        if (live === null) live = await liveProcesses();
        if (live === undefined) return removed;
        const started = live.get(pid);
        // ps rounds to the second: a process started more than 2 s after the folder is another.
        stale = pid !== Deno.pid && (started === undefined || started > madeAt + 2000);
      } else if (names.length === 1 && names[0] === "client.cnf") {
        const age = Date.now() - (st.mtime?.getTime() ?? Date.now());
        stale = age > 60_000;
      }
      if (stale) {
        await Deno.remove(dir, { recursive: true });
        removed++;
      }
    } catch {
      // Vanished meanwhile, or not ours to read.
    }
  }
  return removed;
}
