/**
 * The mark a restore leaves in its target until the load has completely gone through: a
 * database holding it is never complete, whatever its tables say. A killed run (kill -9, the
 * OOM killer, a crash of the machine) cannot clean up after itself; its mark tells the next
 * restore, `info` and a person with a SQL client that the database is a half-loaded copy, and
 * lets the next restore into that name replace it without `--force`.
 *
 * The engines keep it where their users see it: PostgreSQL in the database's comment,
 * MySQL/MariaDB as the comment of a table of its own in the target (see the target servers).
 *
 * @module
 */

/** What the mark records. */
export interface RestoreMarker {
  /** The run that set it (random, per run). */
  run: string;
  /** When that run started, ISO-8601 UTC. */
  started_at: string;
  /** The file being restored (its name only). */
  file: string;
  /** Whether that run created the database (false: it loaded into an existing empty one). */
  created: boolean;
}

/** How every mark's text begins. */
export const MARKER_PREFIX = "vya-backupdb: INCOMPLETE RESTORE, do not use; ";

/** The table that carries the mark on MySQL/MariaDB. */
export const MARKER_TABLE = "_vya_restore_incomplete";

/** The text of a mark. */
export function markerText(marker: RestoreMarker): string {
  return MARKER_PREFIX + JSON.stringify(marker);
}

/** Reads a mark from a comment; undefined when the text is no mark. */
export function parseMarker(text: string | null | undefined): RestoreMarker | undefined {
  if (!text?.startsWith(MARKER_PREFIX)) return undefined;
  try {
    const value = JSON.parse(text.slice(MARKER_PREFIX.length));
    if (typeof value?.run === "string" && typeof value?.started_at === "string") {
      return {
        run: value.run,
        started_at: value.started_at,
        file: String(value.file ?? ""),
        created: value.created === true,
      };
    }
  } catch {
    // A comment that starts like a mark but is no JSON: still a mark, of an unknown run.
  }
  return { run: "", started_at: "", file: "", created: false };
}
