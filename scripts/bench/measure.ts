/**
 * Runs one contender and measures it.
 *
 * - Wall time: the script's own monotonic clock around the whole process.
 * - Client CPU: `/usr/bin/time` wraps the command; its user+sys are the wait4() rusage of the
 *   process and every descendant it reaped, i.e. the whole client tree (deno + pg_dump, or
 *   bash + pg_dump + gzip). Server-side CPU is not part of that tree; it is read separately
 *   from /proc (see {@linkcode serverCpuSeconds}).
 * - Peak RSS: `/usr/bin/time`'s %M is the largest max-RSS among the process and its reaped
 *   descendants (the kernel takes the max, not the sum). For vya that is the deno process
 *   (pg_dump's is ~10-30 MB, measured separately on the bare dump).
 *
 * @module
 */

/** One measured run. */
export interface Sample {
  /** Wall seconds. */
  wall: number;
  /** User CPU seconds of the client process tree. */
  user: number;
  /** System CPU seconds of the client process tree. */
  sys: number;
  /** Peak RSS of the largest process of the client tree, in MiB. */
  rssMiB: number;
  /** CPU seconds the database server spent meanwhile. */
  serverCpu: number;
  /**
   * CPU seconds the rest of the machine spent meanwhile (all busy time from /proc/stat minus
   * client and server): other work running at the same time skews the measurement; anything
   * above a few percent of `wall * cores` means the run was disturbed.
   */
  otherCpu: number;
}

/** Busy (non-idle, non-iowait) seconds of all cores since boot. */
function machineBusySeconds(): number {
  const line = (readText("/proc/stat") ?? "").split("\n")[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already inside user)
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK;
}

const CLK_TCK = 100;

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** utime+stime+cutime+cstime of a process, in clock ticks (0 if it is gone). */
function ticks(pid: number): number {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14-17 of stat(5); f[0] is field 3.
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const stat = readText(`/proc/${e.name}/stat`);
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) kids.push(Number(e.name));
  }
  return kids;
}

/**
 * CPU seconds used so far by a server: its own time, what it reaped from exited children
 * (PostgreSQL backends are reaped by the postmaster), and its live children (background
 * workers, current backends). A difference of two readings is the CPU spent in between.
 */
export function serverCpuSeconds(pid: number): number {
  let total = ticks(pid);
  for (const kid of childrenOf(pid)) total += ticks(kid);
  return total / CLK_TCK;
}

/** Runs `argv` under /usr/bin/time and measures it; throws with its stderr when it fails. */
export async function timed(
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string; serverPid: number; timeFile: string },
): Promise<Sample> {
  const cpuBefore = serverCpuSeconds(options.serverPid);
  const busyBefore = machineBusySeconds();
  const start = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%U %S %M", "-o", options.timeFile, ...argv],
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - start) / 1000;
  // Let the backend that served the connection be reaped before the second reading.
  await new Promise((r) => setTimeout(r, 150));
  const serverCpu = serverCpuSeconds(options.serverPid) - cpuBefore;
  const busy = machineBusySeconds() - busyBefore;
  if (out.code !== 0) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-8).join("\n");
    throw new Error(`${argv.slice(0, 6).join(" ")} … exited ${out.code}:\n${err}`);
  }
  const lines = (await Deno.readTextFile(options.timeFile)).trim().split("\n");
  const [user, sys, rssKiB] = lines[lines.length - 1].split(" ").map(Number);
  const otherCpu = Math.max(0, busy - user - sys - serverCpu);
  return { wall, user, sys, rssMiB: rssKiB / 1024, serverCpu, otherCpu };
}

/** The median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
