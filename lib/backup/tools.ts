/**
 * The dump tool chosen for an instance's server, as recorded in each backup's metadata.
 *
 * @module
 */
import { basename } from "node:path";
import type { InstanceConfig } from "../config/types.ts";
import type { ServerVersion } from "../engines/types.ts";
import { findTools } from "../engines/mod.ts";
import { requireTools } from "../tools/find.ts";

/** The chosen dump tool. */
export interface DumpTool {
  /** pg_dump, mariadb-dump or mysqldump. */
  name: string;
  /** Absolute path. */
  path: string;
  /** First line of its `--version`. */
  version: string;
}

/**
 * Finds the dump tool for the server (see lib/tools/find.ts and each engine's tools.ts for the rules).
 *
 * @throws {ConfigError} naming the tool and version needed and where it looked
 */
export async function resolveDumpTool(
  instance: InstanceConfig,
  version: ServerVersion,
): Promise<DumpTool> {
  // Only the dump tool: every other candidate would cost a `--version` run per backup.
  const set = await findTools(version.flavor, version.major, instance.tools, { roles: ["dump"] });
  const path = requireTools(set).dump!;
  const report = set.tools.dump!;
  return { name: basename(path), path, version: report.version ?? "unknown" };
}
