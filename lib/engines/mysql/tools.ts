/**
 * Finding the MySQL/MariaDB client tools for a server: the dump tool and the client, the
 * server's own product's build preferred (see {@linkcode MysqlFacts.toolNames}).
 *
 * @module
 */
import type { ToolsConfig } from "../../config/types.ts";
import {
  explicitTool,
  isExecutable,
  type SearchOptions,
  searchPath,
  type ToolReport,
  type ToolRole,
  type ToolSet,
  versionOf,
  wanted,
} from "../../tools/find.ts";
import { isMariadbVersion, type MysqlFacts } from "./flavour.ts";

async function findMyTool(
  role: ToolRole,
  names: string[],
  facts: MysqlFacts,
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
      if (facts.ownBuildPreferred && isMariadbVersion(version)) {
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
    `Install the ${facts.product} client ` +
    `or set tools.dir or tools.${names[0]} in the instance's configuration`;
  return report;
}

/** Finds the dump tool and the client for a server of this product. */
export async function findMysqlTools(
  facts: MysqlFacts,
  serverMajor: number,
  tools: ToolsConfig,
  options: SearchOptions = {},
): Promise<ToolSet> {
  const set: ToolSet = { engine: facts.flavor, serverMajor, tools: {}, problems: [] };
  const [dump, client] = await Promise.all([
    wanted(options, "dump")
      ? findMyTool("dump", [...facts.toolNames.dump], facts, tools, options)
      : undefined,
    wanted(options, "client")
      ? findMyTool("client", [...facts.toolNames.client], facts, tools, options)
      : undefined,
  ]);
  if (dump) set.tools.dump = dump;
  if (client) set.tools.client = client;
  for (const report of Object.values(set.tools)) {
    if (report?.problem) set.problems.push(report.problem);
  }
  return set;
}
