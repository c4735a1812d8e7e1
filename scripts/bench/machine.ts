/**
 * What the benchmark ran on: cores, CPU model, memory, tool versions.
 *
 * @module
 */

/** The machine and tool versions. */
export interface MachineInfo {
  /** Logical cores. */
  cores: number;
  /** From /proc/cpuinfo. */
  cpuModel: string;
  /** From /proc/meminfo, GiB. */
  memoryGiB: number;
  /** uname -r. */
  kernel: string;
  /** Tool name to first line of its --version. */
  versions: Record<string, string>;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout.length ? out.stdout : out.stderr);
    return text.trim().split("\n")[0];
  } catch {
    return "not found";
  }
}

/** Reads the machine's description. */
export async function machineInfo(pgBin: string): Promise<MachineInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  return {
    cores: navigator.hardwareConcurrency,
    cpuModel: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round(memKiB / 1024 / 1024 * 10) / 10,
    kernel: (await Deno.readTextFile("/proc/sys/kernel/osrelease")).trim(),
    versions: {
      deno: `deno ${Deno.version.deno} (v8 ${Deno.version.v8})`,
      pg_dump: await firstLine(`${pgBin}/pg_dump`, ["--version"]),
      "mariadb-dump": await firstLine("mariadb-dump", ["--version"]),
      gzip: await firstLine("gzip", ["--version"]),
      zstd: await firstLine("zstd", ["--version"]),
    },
  };
}
