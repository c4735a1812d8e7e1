/**
 * Finds the client tools (dump and restore) for one instance and says why each was chosen.
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
import type { EngineType, ToolsConfig } from "../config/types.ts";
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

/** Where to look besides the configuration; tests point these at fixture folders. */
export interface SearchOptions {
  /** Folder holding `<major>/bin` (Debian layout). Default /usr/lib/postgresql. */
  debianRoot?: string;
  /** Prefix of `<prefix><major>/bin` (RHEL layout). Default /usr/pgsql-. */
  rhelPrefix?: string;
  /** The search path. Default: $PATH (or /usr/local/bin:/usr/bin:/bin when unreadable). */
  path?: string;
}

interface Candidate {
  path: string;
  source: string;
}

const PG_ROLES: Record<string, ToolRole> = {
  pg_dump: "dump",
  pg_dumpall: "dumpall",
  psql: "client",
};

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Runs `<tool> --version`; undefined when it does not run. */
async function versionOf(path: string): Promise<string | undefined> {
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

/** The major of a PostgreSQL tool from its `--version` line ("pg_dump (PostgreSQL) 15.18 ..."). */
export function pgToolMajor(version: string): number | undefined {
  // Before 10 the major was two numbers (9.6); it reads as 9, too old for any supported server.
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(version) ?? /\b(\d+)\.\d+/.exec(version);
  return match ? Number(match[1]) : undefined;
}

function searchPath(options: SearchOptions): string[] {
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

async function numberedDirs(parent: string, prefix: string): Promise<number[]> {
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

async function realPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path;
  }
}

/** Reports an explicitly configured path: it must exist, run, and (PostgreSQL) be new enough. */
async function explicitTool(
  report: ToolReport,
  name: string,
  path: string,
  pgServerMajor?: number,
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
  if (pgServerMajor !== undefined) {
    const major = pgToolMajor(version);
    if (major === undefined || major < pgServerMajor) {
      report.problem = `tools.${name} (${path}) is ${version}; a server ${pgServerMajor} ` +
        `needs ${name} ${pgServerMajor} or newer`;
      report.version = version;
      return report;
    }
    report.major = major;
  }
  return { ...report, path, version, reason: `tools.${name}` };
}

async function findPgTool(
  name: string,
  serverMajor: number,
  tools: ToolsConfig,
  options: SearchOptions,
): Promise<ToolReport> {
  const report: ToolReport = { role: PG_ROLES[name], names: [name], searched: [] };
  const explicit = tools.paths[name];
  if (explicit) return explicitTool(report, name, explicit, serverMajor);

  const candidates: Candidate[] = [];
  if (tools.dir) {
    candidates.push({ path: `${tools.dir}/${name}`, source: `tools.dir` });
    report.searched.push(`tools.dir (${tools.dir})`);
  }
  const debian = options.debianRoot ?? "/usr/lib/postgresql";
  for (const major of await numberedDirs(debian, "")) {
    candidates.push({ path: `${debian}/${major}/bin/${name}`, source: "Debian layout" });
  }
  report.searched.push(`${debian}/<major>/bin`);
  const rhel = options.rhelPrefix ?? "/usr/pgsql-";
  const rhelParent = rhel.slice(0, rhel.lastIndexOf("/")) || "/";
  const rhelBase = rhel.slice(rhel.lastIndexOf("/") + 1);
  for (const major of await numberedDirs(rhelParent, rhelBase)) {
    candidates.push({ path: `${rhel}${major}/bin/${name}`, source: "RHEL layout" });
  }
  report.searched.push(`${rhel}<major>/bin`);
  const dirs = searchPath(options);
  for (const dir of dirs) candidates.push({ path: `${dir}/${name}`, source: "PATH" });
  report.searched.push(`PATH (${dirs.join(":")})`);

  // tools.dir is a deliberate choice: when it holds a fitting tool, it wins over the defaults.
  const found: { candidate: Candidate; version: string; major: number }[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (!(await isExecutable(candidate.path))) continue;
    const real = await realPath(candidate.path);
    // Debian's /usr/bin/pg_dump is a wrapper script; it is kept (it may be the only one) but a
    // binary reached twice through symlinks is run once.
    if (seen.has(real)) continue;
    seen.add(real);
    const version = await versionOf(candidate.path);
    const major = version ? pgToolMajor(version) : undefined;
    if (version && major !== undefined) found.push({ candidate, version, major });
  }
  const fits = found.filter((f) => f.major >= serverMajor);
  const fromDir = fits.find((f) => f.candidate.source === "tools.dir");
  const chosen = fromDir ??
    fits.reduce<typeof fits[number] | undefined>(
      (best, f) => (best === undefined || f.major < best.major ? f : best),
      undefined,
    );
  if (chosen) {
    return {
      ...report,
      path: chosen.candidate.path,
      version: chosen.version,
      major: chosen.major,
      reason: chosen.candidate.source === "tools.dir"
        ? `found in tools.dir`
        : `oldest PostgreSQL ${name} >= server ${serverMajor} (${chosen.candidate.source})`,
    };
  }
  const seenList = found.length
    ? `found only ${found.map((f) => `${name} ${f.major} (${f.candidate.path})`).join(", ")}`
    : `found no ${name}`;
  report.problem = `no ${name} for PostgreSQL ${serverMajor} or newer: ${seenList}; looked in ` +
    `${report.searched.join(", ")}. Install the PostgreSQL ${serverMajor} client ` +
    `(Debian: postgresql-client-${serverMajor}) or set tools.dir or tools.${name} in the instance's configuration`;
  return report;
}

/** Whether a MySQL-named tool is really a MariaDB build (Debian's mysqldump is mariadb-dump). */
export function isMariadbBuild(version: string): boolean {
  return /mariadb/i.test(version);
}

async function findMyTool(
  role: ToolRole,
  names: string[],
  engine: "mysql" | "mariadb",
  tools: ToolsConfig,
  options: SearchOptions,
): Promise<ToolReport> {
  const report: ToolReport = { role, names, searched: [] };
  for (const name of names) {
    const explicit = tools.paths[name];
    if (explicit) return explicitTool(report, name, explicit);
  }
  const dirs: { dir: string; source: string }[] = [];
  if (tools.dir) {
    dirs.push({ dir: tools.dir, source: "tools.dir" });
    report.searched.push(`tools.dir (${tools.dir})`);
  }
  const path = searchPath(options);
  for (const dir of path) dirs.push({ dir, source: "PATH" });
  report.searched.push(`PATH (${path.join(":")})`);
  // Preferred name first across all folders, then the other name: a server's own product's tool
  // beats the other product's tool that happens to come earlier on PATH. For a MySQL server the
  // name is not enough: Debian's /usr/bin/mysqldump is MariaDB's, which lacks MySQL's options
  // (--set-gtid-purged), so MySQL's own build wins wherever it is and MariaDB's is the fallback.
  let fallback: { path: string; version: string; name: string; source: string } | undefined;
  for (const name of names) {
    for (const { dir, source } of dirs) {
      const candidate = `${dir}/${name}`;
      if (!(await isExecutable(candidate))) continue;
      const version = await versionOf(candidate);
      if (!version) continue;
      if (engine === "mysql" && isMariadbBuild(version)) {
        fallback ??= { path: candidate, version, name, source };
        continue;
      }
      return {
        ...report,
        path: candidate,
        version,
        reason: name === names[0] ? `${name} found in ${source}` : `${name} found in ${source} ` +
          `(no ${names[0]})`,
      };
    }
  }
  if (fallback) {
    // Same wording as above when the other product's name was taken; a MariaDB build answering
    // to MySQL's name says so, since `check` is where a sysadmin learns which tool runs.
    const why = fallback.name === names[0]
      ? `a MariaDB build; no MySQL ${names[0]} found`
      : `no ${names[0]}`;
    return {
      ...report,
      path: fallback.path,
      version: fallback.version,
      reason: `${fallback.name} found in ${fallback.source} (${why})`,
    };
  }
  report.problem = `no ${names.join(" or ")} found; looked in ${report.searched.join(", ")}. ` +
    `Install the ${names[0].startsWith("mariadb") ? "MariaDB" : "MySQL"} client ` +
    `or set tools.dir or tools.${names[0]} in the instance's configuration`;
  return report;
}

/**
 * Finds the dump and restore tools for an instance.
 *
 * @param engine the engine as detected from the server (`mysql` vs `mariadb` matters)
 * @param serverMajor the server's major version (PostgreSQL: tools must be at least this)
 * @param tools the instance's `tools` configuration
 * @param options search locations (tests only)
 */
export async function findTools(
  engine: EngineType,
  serverMajor: number,
  tools: ToolsConfig,
  options: SearchOptions = {},
): Promise<ToolSet> {
  const set: ToolSet = { engine, serverMajor, tools: {}, problems: [] };
  if (engine === "postgresql") {
    for (const name of Object.keys(PG_ROLES)) {
      set.tools[PG_ROLES[name]] = await findPgTool(name, serverMajor, tools, options);
    }
  } else {
    const maria = engine === "mariadb";
    set.tools.dump = await findMyTool(
      "dump",
      maria ? ["mariadb-dump", "mysqldump"] : ["mysqldump", "mariadb-dump"],
      engine,
      tools,
      options,
    );
    set.tools.client = await findMyTool(
      "client",
      maria ? ["mariadb", "mysql"] : ["mysql", "mariadb"],
      engine,
      tools,
      options,
    );
  }
  for (const report of Object.values(set.tools)) {
    if (report?.problem) set.problems.push(report.problem);
  }
  return set;
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
