/**
 * One run at a time per storage path: a lock file holding the owner's PID.
 *
 * The file is created by a hard link, which fails when it exists, so two runs cannot both
 * take it. A lock whose process
 * is gone (or is a zombie) is stale and taken over, so a `kill -9` never blocks the next night.
 *
 * @module
 */
import { join } from "node:path";
import { LockError } from "../errors.ts";

/** Name of the lock file inside the storage folder. */
export const LOCK_FILE = ".vya-backupdb.lock";

/** A held lock. */
export interface Lock {
  /** Path of the lock file. */
  path: string;
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

/**
 * Whether a process is alive. Zombies count as dead: kill -0 succeeds on them.
 *
 * /proc is read directly when allowed; under the CLI's permission set Deno refuses
 * `/proc/<pid>/…` without --allow-all, so `ps` is asked instead (and `kill -0` where ps is
 * missing). When nothing can tell, the holder is taken as alive: two runs at once are worse
 * than a stale lock the user is told about.
 */
export async function processAlive(pid: number): Promise<boolean> {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
  }
  const ask = async (cmd: string, args: string[]) =>
    await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "null" })
      .output();
  try {
    const out = await ask("ps", ["-o", "stat=", "-p", String(pid)]);
    const state = new TextDecoder().decode(out.stdout).trim();
    return out.success && state !== "" && !state.startsWith("Z") && !state.startsWith("X");
  } catch { /* no ps */ }
  try {
    return (await ask("sh", ["-c", 'kill -0 "$1" 2>/dev/null', "sh", String(pid)])).success;
  } catch {
    return true;
  }
}

/**
 * Takes the lock of `storageDir` (which must exist). Throws LockError naming the holder's PID
 * when another live run has it.
 */
export async function acquireLock(storageDir: string): Promise<Lock> {
  const path = join(storageDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    // The PID is written to a private file first and hard-linked into place, so the lock file
    // never exists without its holder's PID in it (a half-written lock would look stale).
    const temp = `${path}.${Deno.pid}`;
    await Deno.writeTextFile(temp, `${Deno.pid}\n`, { mode: 0o600 });
    try {
      await Deno.link(temp, path);
      let released = false;
      return {
        path,
        release: async () => {
          if (released) return;
          released = true;
          await Deno.remove(path).catch(() => {});
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    } finally {
      await Deno.remove(temp).catch(() => {});
    }
    const holder = await readHolder(path);
    if (holder !== undefined && holder !== Deno.pid && await processAlive(holder)) {
      throw new LockError(`another vya-backupdb run (PID ${holder}) holds the lock ${path}`, {
        hint:
          "wait for it to finish; the lock is taken over automatically once that process is gone",
      });
    }
    // Stale: the holder died without releasing. Remove and retry the atomic create.
    await Deno.remove(path).catch(() => {});
  }
  throw new LockError(`could not take the lock ${path}: it keeps changing hands`);
}

async function readHolder(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await Deno.readTextFile(path)).trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
