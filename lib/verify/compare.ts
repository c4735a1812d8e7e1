/**
 * What a restored scratch database must show to pass `verify --restore`: the objects and the
 * per-table rows the backup's metadata recorded on the server just before the dump. Pure, so
 * the tolerance rules are tested alone.
 *
 * Exact counts (`COUNT(*)`, tables up to 64 MiB) must match exactly. Estimated ones (bigger
 * tables: PostgreSQL `reltuples`, InnoDB `TABLE_ROWS`, which can be off by half) only catch
 * gross loss: the restored count may differ by up to {@linkcode ESTIMATE_TOLERANCE} of the
 * estimate or {@linkcode ESTIMATE_SLACK_ROWS} rows, whichever is more.
 *
 * @module
 */
import type { ObjectCounts, TableRows } from "../engines/types.ts";
import type { BackupMetadata } from "../storage/metadata.ts";
import { MARKER_TABLE } from "../restore/marker.ts";

/** Relative difference allowed between an estimated row count and the restored one. */
export const ESTIMATE_TOLERANCE = 0.5;
/** Rows an estimate may be off by, whatever its size. */
export const ESTIMATE_SLACK_ROWS = 1000;

/** What the comparison found. */
export interface Comparison {
  /** Differences that fail the verification, one sentence each. */
  problems: string[];
  /** What was compared, for the report. */
  checked: string[];
}

/**
 * Compares a restored database with its backup's metadata. The scratch database still carries
 * the restore's mark (on MySQL/MariaDB a table of its own): it is not counted.
 */
export function compareRestored(
  meta: BackupMetadata,
  objects: ObjectCounts,
  tables: Record<string, TableRows>,
): Comparison {
  const problems: string[] = [];
  const checked: string[] = [];
  const restored = { ...tables };
  const counts = { ...objects } as unknown as Record<string, number | undefined>;
  if (MARKER_TABLE in restored) {
    delete restored[MARKER_TABLE];
    counts.tables = (counts.tables ?? 1) - 1;
  }
  for (const [kind, n] of Object.entries(meta.objects ?? {})) {
    const got = counts[kind];
    if (got === undefined) continue;
    if (got !== n) problems.push(`the backup recorded ${n} ${kind}, the restore holds ${got}`);
  }
  if (meta.objects) checked.push(`objects (${describe(meta.objects)})`);
  if (!meta.tables) {
    checked.push("no row counts recorded (backup made before they were): rows not compared");
    return { problems, checked };
  }
  let exact = 0;
  let estimated = 0;
  for (const [name, want] of Object.entries(meta.tables)) {
    const got = restored[name];
    if (!got) {
      problems.push(`table ${name} is missing from the restore`);
      continue;
    }
    if (want.exact) {
      exact++;
      if (got.rows !== want.rows) {
        problems.push(`table ${name}: ${want.rows} rows backed up, ${got.rows} restored`);
      }
    } else {
      estimated++;
      const slack = Math.max(ESTIMATE_SLACK_ROWS, want.rows * ESTIMATE_TOLERANCE);
      if (Math.abs(got.rows - want.rows) > slack) {
        problems.push(
          `table ${name}: about ${want.rows} rows backed up (estimate), ${got.rows} restored`,
        );
      }
    }
  }
  // A table the backup could not count (no estimate, and its count timed out, waited for a lock
  // or found it rewritten) has no record; the object counts above still say whether the
  // restore holds one table too many.
  const uncounted = Object.keys(restored).filter((name) => !(name in meta.tables!)).length;
  checked.push(
    `rows of ${exact} table(s) exactly, ${estimated} by estimate` +
      (uncounted ? `, ${uncounted} not counted at backup time` : ""),
  );
  return { problems, checked };
}

function describe(counts: Record<string, number>): string {
  return Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
}
