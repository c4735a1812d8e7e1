/**
 * The two hooks a backup run calls: {@linkcode startRunAlerts} as it starts (start webhooks)
 * and {@linkcode RunAlerts.finish} as it ends, however it ends (ok, failed, interrupted, or
 * stopped by an error): stale check, one mail, end webhooks, then the metrics textfile. Nothing
 * here throws or changes the run's exit code; what fails is logged and counted.
 *
 * @module
 */
import type { ItemResult } from "../backup/run.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { buildRunMetrics } from "../metrics/run_metrics.ts";
import { writeMetricsFile } from "../metrics/textfile.ts";
import { redact } from "../redact.ts";
import { type BackupHistory, catalogHistory } from "./history.ts";
import { openReadStorage, openStorage } from "../storage/open.ts";
import { LogTail } from "./log_tail.ts";
import { type Delivery, Notifier } from "./notifier.ts";
import { buildRunReport, type RunReport } from "./report.ts";
import type { SmtpLogin } from "./smtp.ts";
import { findStale } from "./stale.ts";

/** What the hooks need. */
export interface RunAlertsOptions {
  /** The effective configuration. */
  config: Config;
  /** Host name of paths and subjects. */
  hostname: string;
  /** The command's logger (wrapped: the mail carries its tail). */
  log: Logger;
  /** Decrypts the SMTP login. */
  credentials: { credential(id: string): Promise<SmtpLogin> };
  /** Backup history (default: the storage listing). Read after the run. */
  history?: () => BackupHistory;
}

/** How a run ended. */
export interface RunEnd {
  /** Every item recorded, also when the run was interrupted or stopped. */
  results: readonly ItemResult[];
  /** The exit code the command returns. */
  exitCode: number;
  /** A signal interrupted the run. */
  interrupted?: boolean;
  /** Why the run stopped as a whole (lock, configuration). */
  error?: string;
  /** What was left out on purpose or failed besides the items ("retention skipped for shop: today's backup failed", "verify failed for …"), one line each. */
  skipped?: string[];
}

/** What the end hook did. */
export interface RunAlertsOutcome {
  /** The report sent. */
  report: RunReport;
  /** Every notification delivery. */
  deliveries: Delivery[];
  /** Whether the metrics file was written (undefined: none configured). */
  metricsWritten?: boolean;
}

/** The hooks of one run. */
export interface RunAlerts {
  /** The logger the run should use: the command's, with its tail kept for the mail. */
  log: Logger;
  /** The end hook. Never throws. */
  finish(end: RunEnd): Promise<RunAlertsOutcome>;
}

/** Starts the alerts of a run: hits the start webhooks (in the background). */
export function startRunAlerts(o: RunAlertsOptions): RunAlerts {
  const startedAt = new Date();
  const tail = new LogTail();
  const log = tail.wrap(o.log, "info");
  const notifier = new Notifier(o.config.notify, {
    host: o.hostname,
    credentials: o.credentials,
    log: o.log,
  });
  notifier.start();
  return {
    log,
    async finish(end) {
      // The storage `info` reads by default: with keep_local: false, the remote's own listing.
      const history = o.history?.() ??
        catalogHistory(await openReadStorage(o.config.storage, o.credentials), o.hostname, {
          storage: openStorage(o.config.storage),
          onError: (e, instance) =>
            o.log.warn(
              `backup history of ${instance} read from the local folder: ` +
                redact(e instanceof Error ? e.message : String(e)),
            ),
        });
      let stale: Awaited<ReturnType<typeof findStale>> = [];
      try {
        stale = await findStale(o.config, history);
      } catch (e) {
        o.log.warn(`stale check failed: ${redact((e as Error).message)}`);
      }
      const report = buildRunReport({
        host: o.hostname,
        startedAt,
        finishedAt: new Date(),
        results: end.results,
        exitCode: end.exitCode,
        interrupted: end.interrupted,
        error: end.error,
        stale,
        skipped: end.skipped,
        logTail: tail.lines(),
      });
      for (const s of stale) {
        o.log.warn(
          `stale: ${s.instance}${s.database === undefined ? " (users)" : "/" + s.database}: ` +
            (s.newest_good_at ? `newest good backup from ${s.newest_good_at}` : "no good backup"),
        );
      }
      const deliveries = notifier.configured ? await notifier.finish(report) : [];
      let metricsWritten: boolean | undefined;
      const textfile = o.config.metrics.textfile;
      if (textfile) {
        try {
          const families = await buildRunMetrics(report, o.config, history, {
            notificationFailures: deliveries.filter((d) => !d.ok).length,
          });
          await writeMetricsFile(textfile, families);
          metricsWritten = true;
        } catch (e) {
          metricsWritten = false;
          o.log.error(`metrics file ${textfile} not written: ${redact((e as Error).message)}`);
        }
      }
      return { report, deliveries, metricsWritten };
    },
  };
}
