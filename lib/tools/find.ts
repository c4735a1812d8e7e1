/**
 * What finding the client tools (dump and restore) for one instance reports, and the search
 * helpers each engine's discovery is built from (lib/engines/postgres/tools.ts,
 * lib/engines/mysql/tools.ts; `Engine.findTools` chooses).
 *
 * Order: an explicit path (`tools: { pg_dump: … }`) wins, then `tools.dir`, then the usual places. For
 * PostgreSQL, pg_dump refuses servers newer than itself and newer tools write syntax older psql
 * cannot read, so the OLDEST major that is at least the server's is chosen among
 * /usr/lib/postgresql/<major>/bin (Debian), /usr/pgsql-<major>/bin (RHEL) and PATH.
 *
 * Not finding a tool is data (the `check` command reports it); {@linkcode requireTools} turns it
 * into a {@linkcode ConfigError} for commands that cannot go on.
 *
 * @module
 */
import type { EngineType } from "../config/types.ts";
import { ConfigError } from "../errors.ts";

/** What a tool is used for. */
export type ToolRole = "dump" | "dumpall" | "client";

/** The outcome of looking for one tool. */
export interface ToolReport {
  /** What the tool is used for. */
  role: ToolRole;
  /** Tool names acceptable for this role, preferred first (e.g. `mariadb-dump`, `mysqldump`). */
  names: string[];
  /** Absolute path of the chosen tool; absent when none fits. */
  path?: string;
  /** First line of the tool's `--version` output. */
  version?: string;
  /** PostgreSQL tools: the tool's major version. */
  major?: number;
  /** Why this tool was chosen (e.g. "tools.pg_dump", "oldest PostgreSQL client >= 15"). */
  reason?: string;
  /** When none fits: what is needed, what was found and where it looked. */
  problem?: string;
  /** Every place looked at, in order. */
  searched: string[];
}

/** The tools of one instance. */
export interface ToolSet {
  /** Engine the tools are for (as detected from the server). */
  engine: EngineType;
  /** Server major version the tools must support. */
  serverMajor: number;
  /** One report per role: PostgreSQL dump, dumpall, client; MySQL/MariaDB dump, client. */
  tools: Partial<Record<ToolRole, ToolReport>>;
  /** Problems of all roles; empty when every tool was found. */
  problems: string[];
}

/** The candidates of one name: path and where it was found. */
export interface Candidate {
  /** Path to the tool. */
  path: string;
  /** Where it was found (tools.dir, Debian layout, PATH, ...). */
  source: string;
}

/** Where to look besides the configuration; tests point these at fixture folders. */
export interface SearchOptions {
  /** Folder holding `<major>/bin` (Debian layout). Default /usr/lib/postgresql. */
  debianRoot?: string;
  /** Prefix of `<prefix><major>/bin` (RHEL layout). Default /usr/pgsql-. */
  rhelPrefix?: string;
  /** The search path. Default: $PATH (or /usr/local/bin:/usr/bin:/bin when unreadable). */
  path?: string;
  /**
   * Only these roles are looked for (default: every role of the engine): each candidate costs a
   * `--version` run, and a backup needs only the dump tool.
   */
  roles?: readonly ToolRole[];
}

/** Whether `role` is to be looked for under `options`. */
export function wanted(options: SearchOptions, role: ToolRole): boolean {
  return options.roles === undefined || options.roles.includes(role);
}

/** Whether `path` is a regular file with an execute bit. */
export async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** `--version` answers of this process, by path, size and modification time. */
const versions = new Map<string, Promise<string | undefined>>();

/**
 * Runs `<tool> --version`; undefined when it does not run. Asked once per binary and process
 * (a run discovers the tools of every instance, and its users backup again): a binary replaced
 * meanwhile has another size or time and is asked again.
 */
export async function versionOf(path: string): Promise<string | undefined> {
  let key = path;
  try {
    const info = await Deno.stat(path);
    key = `${path}\0${info.size}\0${info.mtime?.getTime()}`;
  } catch {
    return undefined;
  }
  let answer = versions.get(key);
  if (!answer) versions.set(key, answer = runVersion(path));
  return await answer;
}

async function runVersion(path: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(path, {
      args: ["--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) return undefined;
    return new TextDecoder().decode(out.stdout).split("\n")[0].trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The folders of the search path (absolute ones only, each once), from `options` or $PATH. */
export function searchPath(options: SearchOptions): string[] {
  let path = options.path;
  if (path === undefined) {
    try {
      path = Deno.env.get("PATH");
    } catch {
      path = undefined;
    }
  }
  const dirs = (path ?? "/usr/local/bin:/usr/bin:/bin").split(":").filter((d) => d.startsWith("/"));
  return [...new Set(dirs)];
}

/** The numbers N of the entries `<prefix>N` in `parent`, ascending (none when it is absent). */
export async function numberedDirs(parent: string, prefix: string): Promise<number[]> {
  const majors: number[] = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      if (!entry.name.startsWith(prefix)) continue;
      const n = Number(entry.name.slice(prefix.length));
      if (Number.isInteger(n) && n > 0) majors.push(n);
    }
  } catch {
    // folder absent: nothing there
  }
  return majors.sort((a, b) => a - b);
}

/** The path with symlinks resolved, or as given when it cannot be. */
export async function realPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path;
  }
}

/**
 * Reports an explicitly configured path: it must exist, run, and pass the engine's `vet` of its
 * version (PostgreSQL: new enough for the server), which returns the problem or nothing.
 */
export async function explicitTool(
  report: ToolReport,
  name: string,
  path: string,
  vet?: (version: string, report: ToolReport) => string | undefined,
): Promise<ToolReport> {
  report.searched.push(`tools.${name} (${path})`);
  if (!(await isExecutable(path))) {
    report.problem = `tools.${name} is ${path}, which is not an executable file`;
    return report;
  }
  const version = await versionOf(path);
  if (!version) {
    report.problem = `tools.${name} (${path}) does not run: \`${path} --version\` failed`;
    return report;
  }
  const problem = vet?.(version, report);
  if (problem) {
    report.problem = problem;
    report.version = version;
    return report;
  }
  return { ...report, path, version, reason: `tools.${name}` };
}

/**
 * Returns the chosen path per role, or throws a {@linkcode ConfigError} naming every missing
 * tool, what it needs and where it looked.
 */
export function requireTools(set: ToolSet): Partial<Record<ToolRole, string>> {
  if (set.problems.length > 0) {
    throw new ConfigError(set.problems.join("; "), {
      hint: "install the matching client tools, or set the instance's tools.dir (a folder) or " +
        "tools.<name> (e.g. tools: { pg_dump: /opt/pg17/bin/pg_dump })",
    });
  }
  const paths: Partial<Record<ToolRole, string>> = {};
  for (const [role, report] of Object.entries(set.tools)) {
    if (report?.path) paths[role as ToolRole] = report.path;
  }
  return paths;
}
