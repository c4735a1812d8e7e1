/**
 * mysqldump / mariadb-dump of one database, without `--databases` (no CREATE DATABASE or USE in
 * the file, so it restores under any name). The password goes in a 0600 options file.
 *
 * @module
 */
import type { ConnectionParams } from "../config/types.ts";
import type { DumpCommand } from "./types.ts";
import { writeOptionsFile } from "./options_file.ts";

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
 * Builds the dump command. MySQL (not MariaDB) servers also get `--set-gtid-purged=OFF`, so a
 * dump of a GTID-enabled server restores into another server without touching its GTID state,
 * and `--no-tablespaces`, which otherwise needs the PROCESS privilege.
 */
export async function mysqlDumpCommand(
  toolPath: string,
  tool: "mysqldump" | "mariadb-dump",
  flavor: "mysql" | "mariadb",
  params: ConnectionParams,
  database: string,
  tuning: { nice?: number; ionice?: "none" | "idle" | "best-effort" } = {},
): Promise<DumpCommand> {
  const options = [...MYSQL_DUMP_OPTIONS];
  if (flavor === "mysql" && tool === "mysqldump") {
    options.push("--set-gtid-purged=OFF", "--no-tablespaces");
  }
  const file = await writeOptionsFile(params);
  return {
    child: {
      cmd: toolPath,
      // --defaults-file must come first; the database name last, after every option.
      args: [`--defaults-file=${file.path}`, ...options, "--", database],
      ...tuning,
    },
    tool,
    options,
    completionMarker: "-- Dump completed",
    cleanup: file.remove,
  };
}
