/**
 * The metrics of the tool as of the end of a run: one set of series per database (and users
 * backup) of every enabled instance, from this run's results and the backup history, plus the
 * run's own exit code and times. A database that this run did not touch keeps the values of
 * its newest recorded backup, so a run of one database does not make the others vanish (an
 * absent series fires no alert).
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { USERS_ITEM } from "../users/backup.ts";
import type { BackupHistory } from "../notify/history.ts";
import type { RunReport } from "../notify/report.ts";
import type { MetricFamily, Sample } from "./textfile.ts";

const P = "vya_backupdb";
const ts = (d: Date | string) => (typeof d === "string" ? Date.parse(d) : d.getTime()) / 1000;

/** Extra per-run facts the report does not carry. */
export interface RunMetricsExtra {
  /** Notifications of this run that could not be delivered. */
  notificationFailures: number;
}

/** The metric families of the run `report`. */
export async function buildRunMetrics(
  report: RunReport,
  config: Config,
  history: BackupHistory,
  extra: RunMetricsExtra,
): Promise<MetricFamily[]> {
  const fam = (name: string, help: string): MetricFamily => ({
    name: `${P}_${name}`,
    help,
    type: "gauge",
    samples: [],
  });
  const attempt = fam("last_attempt_timestamp_seconds", "Start of the newest backup attempt.");
  const success = fam(
    "last_success_timestamp_seconds",
    "Start of the newest good backup (0: never).",
  );
  const status = fam("last_status", "Newest backup attempt: 1 ok, 0 failed.");
  const size = fam("last_success_size_bytes", "Bytes of the newest good backup file.");
  const raw = fam("last_success_raw_size_bytes", "Uncompressed bytes of the newest good backup.");
  const duration = fam("last_success_duration_seconds", "Wall time of the newest good backup.");
  const kept = fam("backups_kept", "Good backups kept in storage.");
  const verifyAt = fam(
    "last_verify_timestamp_seconds",
    "When the newest good backup was verified.",
  );
  const verifyOk = fam(
    "last_verify_status",
    "Verification of the newest good backup: 1 ok, 0 failed.",
  );

  const runStart = ts(report.started_at);
  const failedInstances = new Set(
    report.items.filter((i) => i.kind === "instance" && i.status === "failed").map((i) =>
      i.instance
    ),
  );
  for (const inst of config.instances.filter((i) => i.enabled)) {
    const inRun = new Map(
      report.items.filter((i) => i.instance === inst.id && i.kind !== "instance").map((
        i,
      ) => [i.kind === "users" ? USERS_ITEM : i.database!, i]),
    );
    const names = new Set([...inRun.keys(), ...await history.databases(inst.id)]);
    for (const name of [...names].sort()) {
      const labels: Record<string, string> = name === USERS_ITEM
        ? { instance: inst.id, kind: "users" }
        : { instance: inst.id, database: name, kind: "database" };
      const add = (f: MetricFamily, value: number) => f.samples.push({ labels, value } as Sample);
      const item = inRun.get(name);
      const newest = await history.newest(inst.id, name);
      const good = await history.newestGood(inst.id, name);
      // An instance that failed as a whole attempted (and failed) every database it has.
      const attemptedNow = item !== undefined || failedInstances.has(inst.id);
      const ok = item ? item.status === "ok" : attemptedNow ? false : newest?.status === "ok";
      add(
        attempt,
        attemptedNow ? Math.max(runStart, newest ? ts(newest.at) : 0) : newest ? ts(newest.at) : 0,
      );
      add(status, ok ? 1 : 0);
      add(success, good ? ts(good.at) : 0);
      add(kept, await history.count(inst.id, name));
      if (good) {
        if (good.bytes !== undefined) add(size, good.bytes);
        if (good.raw_bytes !== undefined) add(raw, good.raw_bytes);
        if (good.duration_ms !== undefined) add(duration, good.duration_ms / 1000);
        if (good.verified_at) {
          add(verifyAt, ts(good.verified_at));
          add(verifyOk, good.verify_ok ? 1 : 0);
        }
      }
    }
  }
  const run = (name: string, help: string, value: number): MetricFamily => ({
    ...fam(name, help),
    samples: [{ labels: {}, value }],
  });
  return [
    attempt,
    success,
    status,
    size,
    raw,
    duration,
    kept,
    verifyAt,
    verifyOk,
    run("last_run_exit_code", "Exit code of the newest run (130: interrupted).", report.exit_code),
    run("last_run_start_timestamp_seconds", "Start of the newest run.", runStart),
    run("last_run_end_timestamp_seconds", "End of the newest run.", ts(report.finished_at)),
    run("last_run_items_failed", "Items that failed in the newest run.", report.counts.failed),
    run("last_run_stale", "Stale databases found by the newest run.", report.counts.stale),
    run(
      "last_run_notification_failures",
      "Notifications of the newest run that could not be delivered.",
      extra.notificationFailures,
    ),
  ];
}
