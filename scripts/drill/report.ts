/**
 * The kill drill's record of every kill and re-run, and the table it prints.
 *
 * @module
 */

/** What one kill found, and what the re-run after it did. */
export interface KillRecord {
  engine: "pg" | "my";
  /** 1-based number of the point within its engine. */
  n: number;
  /** "appear" or the planned fraction of a whole restore, as drawn. */
  planned: string;
  /** What the target was before this restore started: absent, or marked by the last kill. */
  before: string;
  /** Seconds after the restore's start at which the kill was sent. */
  killedAt: number;
  /** That, as a percentage of a whole restore's duration. */
  percent: number;
  /** Exit code when the restore had finished before the kill (then nothing was killed). */
  finishedFirst?: number;
  /** What the target was after the kill: absent, marked, unmarked-empty, complete, UNMARKED. */
  state: string;
  /** Tables of the dump in the target (the mark's table not counted). */
  tables: number;
  /** Whether the drill comparison took the target for the source. */
  equal: boolean;
  /** What a `restore --dry-run` into it said it would do. */
  restoreView: string;
  /** The re-run: "left for the next point", or its outcome. */
  rerun: string;
  /** Problems; empty when the point passed. */
  failures: string[];
}

const pad = (s: string, n: number) => s + " ".repeat(Math.max(0, n - s.length));

/** A markdown table of the records. */
export function renderTable(records: KillRecord[]): string {
  const head = [
    "engine",
    "#",
    "point",
    "killed at",
    "% of D",
    "T before",
    "state found",
    "tables",
    "cmp = src",
    "restore --dry-run",
    "re-run",
    "result",
  ];
  const rows = records.map((r) => [
    r.engine,
    String(r.n),
    r.planned,
    `${r.killedAt.toFixed(2)} s`,
    `${r.percent.toFixed(0)} %`,
    r.before,
    r.finishedFirst === undefined ? r.state : `${r.state} (exited ${r.finishedFirst} first)`,
    String(r.tables),
    r.equal ? "equal" : "differs",
    r.restoreView,
    r.rerun,
    r.failures.length ? `FAIL: ${r.failures.join("; ")}` : "ok",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => pad(c, widths[i])).join(" | ")} |`;
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
