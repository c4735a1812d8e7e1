/**
 * The benchmark's results: their JSON shape, and the markdown tables with the pass/fail targets.
 *
 * @module
 */
import type { Sample } from "./measure.ts";
import type { MachineInfo } from "./machine.ts";
import { SLICES } from "./data.ts";
import { projectionLines, restoreTargets } from "./restore_report.ts";
import { type FixedCostRow, fixedCostTargets, renderFixedCost } from "./fixed_cost.ts";

/** One contender's medians over the repetitions. */
export interface Row {
  /** backup or restore. */
  kind: "backup" | "restore";
  /** Engine. */
  engine: "postgresql" | "mariadb";
  /** Codec name (gzip1, gzip6, zstd3, none; `-` for the bare dump). */
  codec: string;
  /** Who: vya-backupdb, or the shell command. */
  contender: string;
  /** Uncompressed bytes the row processed, when not the whole dataset's dump (encryption). */
  inputBytes?: number;
  /** Every repetition. */
  runs?: Sample[];
  /** Medians (RSS: the maximum). */
  median: {
    wall: number;
    mbps: number;
    cpu: number;
    serverCpu: number;
    otherCpu: number;
    rssMiB: number;
    outBytes: number;
  };
}

/** Everything the run measured. */
export interface BenchResults {
  /** ISO start time. */
  started: string;
  /** ISO end time. */
  finished?: string;
  /** The machine. */
  machine: MachineInfo;
  /** Parameters. */
  params: {
    sizeBytes: number;
    reps: number;
    engines: string[];
    codecs: string[];
    restore: boolean;
  };
  /** The generated databases. */
  data: {
    engine: string;
    database: string;
    rowsPerTable: number;
    dumpBytes: number;
    gzip6Ratio?: number;
  }[];
  /** Medians per contender. */
  rows: Row[];
  /** `backup --all` with jobs 1 and 2. */
  jobs: {
    engine: string;
    databases: number;
    dumpBytesEach: number;
    jobs: number;
    codec: string;
    wall: number;
    cpu: number;
    serverCpu: number;
    rssMiB: number;
  }[];
  /** Many small databases and one one-row database against the shell (fixed_cost.ts). */
  fixedCost?: FixedCostRow[];
  /** Pass/fail of the targets (filled by renderMarkdown). */
  targets?: Target[];
}

/** One target's outcome. */
export interface Target {
  /** What is required. */
  name: string;
  /** Engine. */
  engine: string;
  /** Measured value. */
  value: number;
  /** Required value. */
  required: number;
  /** `>=`, `<` or `<=`. */
  op: ">=" | "<" | "<=";
  /** Whether it passes. */
  pass: boolean;
}

const f1 = (x: number) => x.toFixed(1);
/** Table cells hold shell pipes: escape them or they split the cell. */
const cell = (text: string) => text.replaceAll("|", "\\|");
const f2 = (x: number) => x.toFixed(2);

function find(r: BenchResults, kind: string, engine: string, codec: string, who: RegExp) {
  return r.rows.find((x) =>
    x.kind === kind && x.engine === engine && x.codec === codec && who.test(x.contender)
  );
}

/** The shell pipeline a row is compared with, if any. */
function baseline(r: BenchResults, row: Row): Row | undefined {
  if (row.codec.endsWith("+age")) {
    // Our age row against the shell's age pipeline; the "no age" rows are references only.
    if (!/^vya.*age/.test(row.contender) || /no age/.test(row.contender)) return undefined;
    return find(r, row.kind, row.engine, row.codec, /^(zstd -3 < f \| age|age -d)/);
  }
  if (row.codec.endsWith("+s3")) {
    if (!/^vya/.test(row.contender)) return undefined;
    return find(r, row.kind, row.engine, row.codec, /upload_file/);
  }
  if (row.kind === "restore") return find(r, "restore", row.engine, row.codec, /^gzip -dc/);
  if (row.codec === "-") return undefined;
  return find(r, "backup", row.engine, row.codec, /^dump (\||> f$)/);
}

function computeTargets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const sizeLabel = `${r.params.sizeBytes / 1e9} GB`;
  for (const engine of r.params.engines) {
    const vs = (codec: string, name: string, required: number) => {
      const vya = find(r, "backup", engine, codec, /^vya/);
      const pipe = find(r, "backup", engine, codec, /^dump (\||> f$)/);
      if (!vya || !pipe) return;
      const value = vya.median.mbps / pipe.median.mbps;
      out.push({ name, engine, value, required, op: ">=", pass: value >= required });
    };
    vs("gzip6", "gzip-6 backup vs `dump | gzip -6`", 2.0);
    vs("gzip1", "gzip-1 backup vs `dump | gzip -1`", 1.0);
    vs("none", "none backup vs `dump > f`", 1.0);
    const z = find(r, "backup", engine, "zstd3", /^vya/);
    const bare = find(r, "backup", engine, "-", /^bare/);
    if (z && bare) {
      const value = z.median.mbps / bare.median.mbps;
      out.push({
        name: "zstd-3 backup vs bare `dump > /dev/null`",
        engine,
        value,
        required: 0.8,
        op: ">=",
        pass: value >= 0.8,
      });
    }
    const rss = Math.max(
      ...r.rows.filter((x) =>
        x.engine === engine && /^vya/.test(x.contender) && !x.codec.endsWith("+s3")
      ).map((x) => x.median.rssMiB),
    );
    const s3Rss = Math.max(
      ...r.rows.filter((x) =>
        x.engine === engine && /^vya/.test(x.contender) && x.codec.endsWith("+s3")
      ).map((x) => x.median.rssMiB),
    );
    if (Number.isFinite(s3Rss)) {
      out.push({
        name: `vya peak RSS backing up to S3 at ${sizeLabel} (MiB)`,
        engine,
        value: s3Rss,
        required: 200,
        op: "<",
        pass: s3Rss < 200,
      });
    }
    if (Number.isFinite(rss)) {
      out.push({
        name: `vya peak RSS at ${sizeLabel} (MiB)`,
        engine,
        value: rss,
        required: 150,
        op: "<",
        pass: rss < 150,
      });
    }
  }
  out.push(...restoreTargets(r));
  return out;
}

/** Renders the tables (and fills `r.targets`). */
export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(
    `Machine: ${m.cores} cores, ${m.cpuModel}, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}; ` +
      Object.values(m.versions).join("; ") + ".",
  );
  lines.push("");
  lines.push(
    `Dataset: ${
      r.data.map((d) =>
        `${d.engine} ${
          f1(d.dumpBytes / 1e6)
        } MB uncompressed dump (${d.rowsPerTable} rows in orders and events, plus ${SLICES.length} slice tables of 1/${
          SLICES[0]
        } to 1/${SLICES[SLICES.length - 1]} of orders` +
        (d.gzip6Ratio ? `, gzip -6 ratio ${f2(d.gzip6Ratio)}x)` : ")")
      ).join("; ")
    }. ${r.params.reps} repetition(s), medians; contenders alternate order each repetition.`,
  );
  lines.push("");
  lines.push(
    "| engine | codec | contender | MB/s | vs shell | wall s | client CPU s | server CPU s | other CPU s | peak RSS MiB | output MB | ratio |",
  );
  lines.push("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const dumpBytes = (engine: string) => r.data.find((d) => d.engine === engine)?.dumpBytes ?? 0;
  for (const row of r.rows) {
    const base = baseline(r, row);
    const vs = base ? `${f2(row.median.mbps / base.median.mbps)}x` : "";
    const out = row.median.outBytes;
    lines.push(
      `| ${row.engine} | ${row.kind === "restore" ? `restore ${row.codec}` : row.codec} | ` +
        `${cell(row.contender)} | ${f1(row.median.mbps)} | ${vs} | ${f1(row.median.wall)} | ` +
        `${f1(row.median.cpu)} | ${f1(row.median.serverCpu)} | ${f1(row.median.otherCpu ?? 0)} | ` +
        `${row.median.rssMiB.toFixed(0)} | ` +
        `${out ? f1(out / 1e6) : ""} | ${
          out ? f2((row.inputBytes ?? dumpBytes(row.engine)) / out) + "x" : ""
        } |`,
    );
  }
  lines.push(...renderFixedCost(r.fixedCost ?? []));
  r.targets = [...computeTargets(r), ...fixedCostTargets(r.fixedCost ?? [])];
  if (r.targets.length) {
    lines.push("");
    lines.push("| target | engine | measured | required | pass |");
    lines.push("|---|---|---:|---:|---|");
    for (const t of r.targets) {
      lines.push(
        `| ${cell(t.name)} | ${t.engine} | ${f2(t.value)} | ${t.op} ${t.required} | ${
          t.pass ? "PASS" : "FAIL"
        } |`,
      );
    }
  }
  lines.push(...projectionLines(r));
  if (r.jobs.length) {
    lines.push("");
    lines.push(
      "| engine | `backup --all`, 8 databases | dump MB each | jobs | wall s | client CPU s | server CPU s | peak RSS MiB |",
    );
    lines.push("|---|---|---:|---:|---:|---:|---:|---:|");
    for (const j of r.jobs) {
      lines.push(
        `| ${j.engine} | ${j.codec} | ${f1(j.dumpBytesEach / 1e6)} | ${j.jobs} | ${f1(j.wall)} | ` +
          `${f1(j.cpu)} | ${f1(j.serverCpu)} | ${j.rssMiB.toFixed(0)} |`,
      );
    }
  }
  lines.push("");
  lines.push(
    "MB/s: uncompressed dump MB (10^6 bytes) per wall second, process start to exit. Client CPU: " +
      "user+sys of the whole client process tree (deno + dump tool, or bash + dump + compressor) " +
      "from /usr/bin/time. Server CPU: the database server's processes, from /proc. Other CPU: " +
      "everything else the machine ran meanwhile (/proc/stat busy time minus client and server): " +
      "well above 0 means the measurement was disturbed by other load. Peak RSS: " +
      "/usr/bin/time %M, the largest single process of the tree (for vya the deno process).",
  );
  return lines.join("\n") + "\n";
}
