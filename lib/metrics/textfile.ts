/**
 * The Prometheus text exposition format, written by hand (a dozen gauges do not need a
 * library), and its atomic placement for node_exporter's textfile collector.
 *
 * @module
 */
import { writeFileAtomic } from "../secure_fs.ts";

/** One sample of a family. */
export interface Sample {
  /** Label names and values. */
  labels: Record<string, string>;
  /** The value. */
  value: number;
}

/** A metric family: name, HELP, TYPE and its samples. */
export interface MetricFamily {
  /** `vya_backupdb_…`, with its unit suffix. */
  name: string;
  /** One line of help. */
  help: string;
  /** Only gauges are written: every value is a state as of the last run. */
  type: "gauge";
  /** Samples (a family without samples is left out). */
  samples: Sample[];
}

const escapeHelp = (s: string) => s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
const escapeLabel = (s: string) =>
  s.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** The families as exposition text: HELP, TYPE, then one line per sample. */
export function renderMetrics(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(",");
      out.push(`${f.name}${labels ? `{${labels}}` : ""} ${formatValue(s.value)}`);
    }
  }
  return out.join("\n") + "\n";
}

/**
 * Writes the textfile atomically (temporary file in the same folder, fsync, rename): the
 * collector reads either the previous run's file or this one, never half of one. Mode 0644:
 * node_exporter usually runs as another user, and the file holds no secret (names, sizes,
 * timestamps and status codes only).
 */
export async function writeMetricsFile(
  path: string,
  families: readonly MetricFamily[],
): Promise<void> {
  await writeFileAtomic(path, renderMetrics(families), { mode: 0o644 });
}
