/**
 * mysqldump / mariadb-dump of one database, without `--databases` (no CREATE DATABASE or USE in
 * the file, so it restores under any name). The password goes in a 0600 options file.
 *
 * @module
 */
import type { ConnectionParams } from "../../config/types.ts";
import type { DumpCommand } from "../../dump/types.ts";
import { writeOptionsFile } from "./options_file.ts";
import type { DumpTuning } from "../types.ts";
import { isMariadbVersion, type MysqlFacts } from "./flavour.ts";

/** Options every MySQL/MariaDB dump gets, recorded in metadata. */
export const MYSQL_DUMP_OPTIONS = [
  "--single-transaction",
  "--routines",
  "--triggers",
  "--events",
  "--hex-blob",
  "--default-character-set=utf8mb4",
  "--quick",
  "--skip-lock-tables",
];

/**
 * Whether a tool is MySQL's own mysqldump: the name is not enough, Debian's /usr/bin/mysqldump is
 * MariaDB's mariadb-dump, which refuses MySQL's options ("unknown variable 'set-gtid-purged'").
 */
async function isMysqlBuild(toolPath: string, tool: string): Promise<boolean> {
  if (tool !== "mysqldump") return false;
  try {
    const out = await new Deno.Command(toolPath, {
      args: ["--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success && !isMariadbVersion(new TextDecoder().decode(out.stdout));
  } catch {
    return false;
  }
}

/** Text the last lines of a complete mysqldump / mariadb-dump output contain. */
export const MYSQL_COMPLETION_MARKER = "-- Dump completed";

/**
 * Builds the dump command. MySQL (not MariaDB) servers get `--no-tablespaces`, which otherwise
 * needs the PROCESS privilege, and, when dumped with MySQL's own mysqldump,
 * `--set-gtid-purged=OFF`, so a dump of a GTID-enabled server restores into another server
 * without touching its GTID state. MariaDB's tool (the fallback when no MySQL client is
 * installed) does not know that option and writes no GTID state anyway.
 */
export async function mysqlDumpCommand(
  toolPath: string,
  tool: string,
  facts: MysqlFacts,
  params: ConnectionParams,
  database: string,
  tuning: DumpTuning = {},
): Promise<DumpCommand> {
  const options = [...MYSQL_DUMP_OPTIONS];
  // Both builds know --no-tablespaces; only MySQL's own knows --set-gtid-purged.
  if (facts.dumpGtidPurgedOff && await isMysqlBuild(toolPath, tool)) {
    options.push("--set-gtid-purged=OFF");
  }
  if (facts.dumpNoTablespaces) options.push("--no-tablespaces");
  const file = await writeOptionsFile(params);
  // No snapshot is shared on these servers: the dump takes its own (--single-transaction).
  const { snapshot: _none, ...process } = tuning;
  return {
    child: {
      cmd: toolPath,
      // --defaults-file must come first; the database name last, after every option.
      args: [`--defaults-file=${file.path}`, ...options, "--", database],
      bufferOutput: true,
      ...process,
    },
    tool,
    options,
    completionMarker: MYSQL_COMPLETION_MARKER,
    cleanup: file.remove,
  };
}
