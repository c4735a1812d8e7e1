/**
 * What a dump of one database needs from its engine: the command that writes it to stdout and
 * the marker that proves the tool reached the end.
 *
 * @module
 */
import type { ChildSpec } from "../process.ts";

/** A prepared dump command. */
export interface DumpCommand {
  /** The child to start; its stdout is the dump. */
  child: ChildSpec;
  /** Tool name for metadata (pg_dump, mariadb-dump, mysqldump). */
  tool: string;
  /** The options recorded in metadata (no connection details, no secrets). */
  options: string[];
  /** Text the dump's last lines must contain when the tool finished. */
  completionMarker: string;
  /** Removes anything the command needed on disk (options file). */
  cleanup(): Promise<void>;
}
