/**
 * The text of the one mail a run sends: a subject that says host, result and counts, and a
 * plain-text body with every failed item and its error, stale databases, what was skipped,
 * sizes and durations, and the tail of the log. Redacted as a whole before it leaves.
 *
 * @module
 */
import { redact } from "../redact.ts";
import { itemName, type RunReport } from "./report.ts";

/** A mail ready to send. */
export interface MailText {
  /** Subject line. */
  subject: string;
  /** Plain-text body. */
  text: string;
}

/** `1.5 MiB`. */
function bytes(n: number | undefined): string {
  if (n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`;
}

function age(s: number | undefined): string {
  if (s === undefined) return "never backed up successfully";
  const h = Math.floor(s / 3600);
  return h >= 48 ? `${Math.floor(h / 24)} days old` : `${h} h old`;
}

/** The subject: `[vya-backupdb] db1: 2 of 14 failed`. */
export function mailSubject(r: RunReport): string {
  const c = r.counts;
  let what: string;
  if (r.interrupted) what = `interrupted after ${c.total} items (${c.failed} failed)`;
  else if (r.error !== undefined && c.total === 0) what = `run failed (exit ${r.exit_code})`;
  else if (c.failed > 0) what = `${c.failed} of ${c.total} failed`;
  else if (r.exit_code !== 0) what = `run failed (exit ${r.exit_code})`;
  else what = `${c.total} of ${c.total} ok`;
  if (c.stale > 0) what += `, ${c.stale} stale`;
  return redact(`[vya-backupdb] ${r.host}: ${what}`);
}

/** Subject and body of a run's mail. */
export function formatMail(r: RunReport): MailText {
  const lines: string[] = [];
  lines.push(
    `vya-backupdb ${r.version} on ${r.host}: ${r.result}, exit code ${r.exit_code}` +
      (r.interrupted ? " (interrupted by a signal)" : ""),
    `Run: ${r.started_at} to ${r.finished_at} (${seconds(r.duration_ms)})`,
    `Items: ${r.counts.ok} ok, ${r.counts.failed} failed, ${r.counts.stale} stale`,
  );
  if (r.error !== undefined) lines.push("", `The run stopped: ${r.error}`);
  const failed = r.items.filter((i) => i.status === "failed");
  if (failed.length) {
    lines.push("", "FAILED:");
    for (const i of failed) lines.push(`  ${itemName(i)}: ${i.error ?? "no reason recorded"}`);
  }
  if (r.stale.length) {
    lines.push("", "STALE (newest good backup older than alerts.max_age):");
    for (const s of r.stale) {
      const name = itemName(s);
      lines.push(
        `  ${name}: ${age(s.age_seconds)}` + (s.newest_good_at ? ` (${s.newest_good_at})` : ""),
      );
    }
  }
  if (r.skipped.length) {
    lines.push("", "SKIPPED:");
    for (const s of r.skipped) lines.push(`  ${s}`);
  }
  const ok = r.items.filter((i) => i.status === "ok");
  if (ok.length) {
    lines.push("", "OK:");
    for (const i of ok) {
      lines.push(
        `  ${itemName(i)}: ${bytes(i.bytes)} (${bytes(i.raw_bytes)} raw) in ${
          seconds(i.duration_ms)
        }`,
      );
    }
  }
  if (r.log_tail.length) {
    lines.push("", "Last log lines:");
    for (const l of r.log_tail) lines.push(`  ${l}`);
  }
  return { subject: mailSubject(r), text: redact(lines.join("\n") + "\n") };
}
