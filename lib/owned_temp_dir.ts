/**
 * Private temporary folders owned by one process (the MySQL client options pipes, a restore's
 * download and spool): 0700 under $TMPDIR, each holding a file naming the owner PID, so that the
 * folders a `kill -9` left behind are removed by a later run instead of outliving it. Only
 * folders of this tool (`vya-…`) and of this user are ever looked at.
 *
 * @module
 */
import { dirname, join } from "node:path";

/** The file in an owned folder naming the PID that owns it. */
const OWNER_FILE = "owner";

/** Prefixes already swept by this process (one sweep per kind and run is enough). */
const swept = new Set<string>();

/** Options of {@linkcode makeOwnedTempDir}. */
export interface OwnedTempDirOptions {
  /**
   * Also sweep the folders of older versions of this tool (`vya-*` holding only a plain
   * `client.cnf`, older than a minute): the options files before they named their owner.
   */
  legacy?: boolean;
}

/**
 * Makes a fresh 0700 folder named `<prefix>…` owned by this process; the first call of a run for
 * a prefix sweeps dead runs' folders of that prefix (best effort).
 */
export async function makeOwnedTempDir(
  prefix: string,
  options: OwnedTempDirOptions = {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await Deno.chmod(dir, 0o700);
    await Deno.writeTextFile(join(dir, OWNER_FILE), `${Deno.pid}\n`, {
      mode: 0o600,
      createNew: true,
    });
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  if (!swept.has(prefix)) {
    swept.add(prefix);
    // Whose folders are ours: the owner of the one just made (Deno.uid() needs --allow-sys).
    const uid = (await Deno.lstat(dir)).uid;
    await sweepStaleFolders(dirname(dir), uid, prefix, options.legacy ?? false)
      .catch(() => {});
  }
  return dir;
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
 * Removes the folders named `<prefix>…` whose owner process is gone (its pid is not running, or
 * is running a process started after the folder was made: a reused pid), and with `legacy` the
 * folders of older versions of this tool (`vya-*` holding only a plain `client.cnf`) older than
 * a minute. Only folders of `uid`; anything else in the temporary folder is left alone. Best
 * effort: returns how many.
 */
async function sweepStaleFolders(
  tmp: string,
  uid: number | null,
  prefix: string,
  legacy: boolean,
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
      if (entry.name.startsWith(prefix) && names.includes(OWNER_FILE)) {
        const owner = join(dir, OWNER_FILE);
        const pid = Number((await Deno.readTextFile(owner)).trim());
        const madeAt = (await Deno.lstat(owner)).mtime?.getTime() ?? 0;
        if (live === null) live = await liveProcesses();
        if (live === undefined) return removed;
        const started = live.get(pid);
        // ps rounds to the second: a process started more than 2 s after the folder is another.
        stale = pid !== Deno.pid && (started === undefined || started > madeAt + 2000);
      } else if (legacy && names.length === 1 && names[0] === "client.cnf") {
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
