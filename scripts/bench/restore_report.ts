/**
 * The restore rows' targets (issue 15) and the projection of the measured speeds onto the
 * original tool's 48.5 GB database.
 *
 * @module
 */
import type { BenchResults, Row, Target } from "./report.ts";
import { pgRestoreLabel, RESTORE_JOBS, vyaRestoreLabel } from "./restore_rows.ts";

/** The original tool's largest database (uncompressed dump), which took it 3 hours. */
export const ORIGINAL_DUMP_BYTES = 48.5e9;

/** restore jobs N against the shell pipeline: what each job count must reach, per engine. */
const REQUIRED: Record<number, Record<string, number>> = {
  1: { postgresql: 1.0, mariadb: 1.0 },
  2: { postgresql: 1.5, mariadb: 1.3 },
};

function restoreRow(r: BenchResults, engine: string, contender: string): Row | undefined {
  return r.rows.find((x) =>
    x.kind === "restore" && x.engine === engine && x.contender === contender
  );
}

function shellRow(r: BenchResults, engine: string): Row | undefined {
  return r.rows.find((x) =>
    x.kind === "restore" && x.engine === engine && /^gzip -dc/.test(x.contender)
  );
}

/** restore --jobs N vs `gzip -dc | client`; jobs 4 is stated (required 0: informational). */
export function restoreTargets(r: BenchResults): Target[] {
  const out: Target[] = [];
  for (const engine of r.params.engines) {
    const shell = shellRow(r, engine);
    if (!shell) continue;
    for (const jobs of RESTORE_JOBS) {
      const row = restoreRow(r, engine, vyaRestoreLabel(jobs));
      const required = REQUIRED[jobs]?.[engine];
      if (!row) {
        if (required !== undefined) {
          out.push({
            name: `restore --jobs ${jobs} vs \`gzip -dc | client\` (not available: not measured)`,
            engine,
            value: NaN,
            required,
            op: ">=",
            pass: false,
          });
        }
        continue;
      }
      const value = row.median.mbps / shell.median.mbps;
      out.push({
        name: `restore --jobs ${jobs} vs \`gzip -dc | client\`` +
          (required === undefined ? " (stated, no target)" : ""),
        engine,
        value,
        required: required ?? 0,
        op: ">=",
        pass: value >= (required ?? 0),
      });
    }
  }
  return out;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "-";
  const m = Math.round(seconds / 60);
  return m < 90 ? `${m} min` : `${(seconds / 3600).toFixed(1)} h`;
}

/**
 * Markdown lines: how long the original tool's 48.5 GB database would take to back up and to
 * restore at the speeds measured here (uncompressed dump MB/s; a linear projection).
 */
export function projectionLines(r: BenchResults): string[] {
  const rows: string[] = [];
  const add = (engine: string, what: string, row: Row | undefined) => {
    if (!row) return;
    rows.push(
      `| ${engine} | ${what.replaceAll("|", "\\|")} | ${row.median.mbps.toFixed(1)} | ` +
        `${duration(ORIGINAL_DUMP_BYTES / 1e6 / row.median.mbps)} |`,
    );
  };
  for (const engine of r.params.engines) {
    const backup = (who: RegExp, codec: string) =>
      r.rows.find((x) =>
        x.kind === "backup" && x.engine === engine && x.codec === codec && who.test(x.contender)
      );
    add(engine, "backup gzip-6, vya-backupdb", backup(/^vya/, "gzip6"));
    add(engine, "backup gzip-6, `dump | gzip -6 > f`", backup(/^dump \|/, "gzip6"));
    add(
      engine,
      "backup gzip-6, the old tool's `dump > f && gzip -6 f`",
      backup(/&& gzip/, "gzip6"),
    );
    add(engine, "backup zstd-3, vya-backupdb", backup(/^vya-backupdb$/, "zstd3"));
    for (const jobs of RESTORE_JOBS) {
      add(
        engine,
        `restore, ${vyaRestoreLabel(jobs)}`,
        restoreRow(r, engine, vyaRestoreLabel(jobs)),
      );
    }
    add(engine, "restore, `gzip -dc f | client`", shellRow(r, engine));
    for (const jobs of RESTORE_JOBS) {
      add(engine, `restore, ${pgRestoreLabel(jobs)}`, restoreRow(r, engine, pgRestoreLabel(jobs)));
    }
  }
  if (rows.length === 0) return [];
  return [
    "",
    `Projection for the original tool's ${ORIGINAL_DUMP_BYTES / 1e9} GB database (3 hours with ` +
    "gzip -6 in two passes), from the MB/s measured above:",
    "",
    "| engine | what | MB/s | 48.5 GB in |",
    "|---|---|---:|---:|",
    ...rows,
  ];
}
