/**
 * Finding the PostgreSQL client tools for a server: pg_dump, pg_dumpall and psql of at least
 * the server's major (the oldest such, so the dump stays readable by the server's own tools),
 * from the instance's configuration, the Debian and RHEL layouts, then PATH.
 *
 * @module
 */
import type { ToolsConfig } from "../../config/types.ts";
import {
  type Candidate,
  explicitTool,
  isExecutable,
  numberedDirs,
  realPath,
  type SearchOptions,
  searchPath,
  type ToolReport,
  type ToolRole,
  type ToolSet,
  versionOf,
  wanted,
} from "../../tools/find.ts";

const PG_ROLES: Record<string, ToolRole> = {
  pg_dump: "dump",
  pg_dumpall: "dumpall",
  psql: "client",
};

/** The major of a PostgreSQL tool from its `--version` line ("pg_dump (PostgreSQL) 15.18 ..."). */
export function pgToolMajor(version: string): number | undefined {
  // Before 10 the major was two numbers (9.6); it reads as 9, too old for any supported server.
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(version) ?? /\b(\d+)\.\d+/.exec(version);
  return match ? Number(match[1]) : undefined;
}

async function findPgTool(
  name: string,
  serverMajor: number,
  tools: ToolsConfig,
  options: SearchOptions,
): Promise<ToolReport> {
  const report: ToolReport = { role: PG_ROLES[name], names: [name], searched: [] };
  const explicit = tools.paths[name];
  if (explicit) {
    return explicitTool(report, name, explicit, (version, r) => {
      const major = pgToolMajor(version);
      if (major === undefined || major < serverMajor) {
        return `tools.${name} (${explicit}) is ${version}; a server ${serverMajor} ` +
          `needs ${name} ${serverMajor} or newer`;
      }
      r.major = major;
    });
  }

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
  const runnable: Candidate[] = [];
  const seen = new Set<string>();
  const debianFound = candidates.some((c) => c.source === "Debian layout");
  for (const candidate of candidates) {
    if (!(await isExecutable(candidate.path))) continue;
    const real = await realPath(candidate.path);
    // A binary reached twice through symlinks is run once. Debian's /usr/bin/pg_dump is
    // postgresql-common's pg_wrapper, a Perl script that runs one of the Debian layout's
    // binaries: asking it costs a quarter second and finds nothing new when those are
    // candidates already; without them it is kept (it may be the only one).
    if (seen.has(real) || (debianFound && real.endsWith("/postgresql-common/pg_wrapper"))) {
      continue;
    }
    seen.add(real);
    runnable.push(candidate);
  }
  // Asked at once: each answer is a process start, mostly waiting.
  const answers = await Promise.all(runnable.map((c) => versionOf(c.path)));
  const found: { candidate: Candidate; version: string; major: number }[] = [];
  runnable.forEach((candidate, i) => {
    const version = answers[i];
    const major = version ? pgToolMajor(version) : undefined;
    if (version && major !== undefined) found.push({ candidate, version, major });
  });
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

/** Finds pg_dump, pg_dumpall and psql for a server of major `serverMajor`. */
export async function findPgTools(
  serverMajor: number,
  tools: ToolsConfig,
  options: SearchOptions = {},
): Promise<ToolSet> {
  const set: ToolSet = { engine: "postgresql", serverMajor, tools: {}, problems: [] };
  const names = Object.keys(PG_ROLES).filter((name) => wanted(options, PG_ROLES[name]));
  const reports = await Promise.all(
    names.map((name) => findPgTool(name, serverMajor, tools, options)),
  );
  names.forEach((name, i) => set.tools[PG_ROLES[name]] = reports[i]);
  for (const report of Object.values(set.tools)) {
    if (report?.problem) set.problems.push(report.problem);
  }
  return set;
}
