/**
 * `backup`: every selected database into its own streamed, compressed, checksummed file.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { multiple, optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { integer, string } from "@optique/core/valueparser";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import {
  errorText,
  EXIT_CODE_OF_KIND,
  InterruptedError,
  kindOf,
  runExitCode,
} from "../lib/errors.ts";
import { startRunAlerts } from "../lib/notify/run_alerts.ts";
import { afterBackupPruner } from "../lib/prune/after_backup.ts";
import { pruneRemoteAfterBackup } from "../lib/prune/remote_after_backup.ts";
import { remotePolicyOf } from "../lib/prune/pending.ts";
import { openStorage } from "../lib/storage/open.ts";
import { UsageError } from "./usage.ts";
import { usersAfterInstance } from "../lib/users/backup.ts";
import { itemOutcome, type ItemResult, runBackup, type RunSummary } from "../lib/backup/run.ts";
import { backupTargets, offHostCopies } from "../lib/backup/upload.ts";
import type { Context } from "./context.ts";
import { pickInstances } from "./instances.ts";
import { formatBytes, ProgressLine } from "./progress.ts";
import { withInterruption } from "./signals.ts";
import { nightlyVerify, verifyFailureLine } from "../lib/verify/nightly.ts";
import type { VerifyOutcome } from "../lib/verify/verify.ts";

/** Parser of the `backup` command. */
export const backupCommand: Parser<"sync", BackupParsed, unknown> = command(
  "backup",
  object({
    command: constant("backup" as const),
    instance: optional(option("--instance", string({ metavar: "ID" }), {
      description: message`Back up this instance.`,
    })),
    all: optional(option("--all", {
      description: message`Back up every enabled instance of the configuration.`,
    })),
    databases: multiple(option("--database", string({ metavar: "NAME" }), {
      description: message`Only this database (repeatable; with --instance). A name that does \
not exist fails that name.`,
    })),
    jobs: optional(option("--jobs", integer({ min: 1, max: 64, metavar: "N" }), {
      description: message`Databases dumped at once (default: backup.jobs, 1).`,
    })),
    allowEmpty: optional(option("--allow-empty", {
      description: message`A run with no enabled instance, or an instance whose selection \
matches no database, is not an error (by default: exit 3, and that instance fails).`,
    })),
    dryRun: optional(option("--dry-run", {
      description: message`Connect and list what would be backed up, with target paths; write \
nothing.`,
    })),
  }),
  {
    brief: message`Back up databases: one compressed, checksummed file per database.`,
    description: message`Dumps each selected database with the server's own tool (pg_dump, \
mariadb-dump/mysqldump) and streams it through compression and SHA-256 into \
{storage}/{host}/{instance}/{database}/{YYYY-MM-DD}/{database}_{YYYYMMDDTHHMMSSZ}.sql.gz \
(.sql.gz.age, age-encrypted, with storage.encryption), with a .sha256 (sha256sum -c works) and a .metadata.json beside it. The file is written as \
.partial and renamed only once the tool succeeded and printed its completion marker. One \
database failing never stops the others. A lock per storage path makes a concurrent run exit 4. \
A dump that sends nothing for backup.stall_timeout (default 10m) is killed and fails. \
Exit: 0 all ok, 1 some failed, 2 all failed, 3 configuration/credential/permission error (every \
failure of that sort) or nothing to back up (see --allow-empty), 4 locked, 64 usage, \
130 interrupted.`,
  },
);

/** The parsed `backup` command line. */
export type BackupParsed = {
  command: "backup";
  instance?: string;
  all?: boolean;
  databases: readonly string[];
  jobs?: number;
  allowEmpty?: boolean;
  dryRun?: boolean;
};

/** Runs `backup`. */
export async function runBackupCommand(parsed: BackupParsed, ctx: Context): Promise<number> {
  const { config } = await ctx.loadConfig();
  const instances = pickInstances(config, parsed);
  if (parsed.databases.length && !parsed.instance) {
    throw new UsageError("--database needs --instance");
  }
  const progress = new ProgressLine(!ctx.json && !ctx.globals.quiet);
  const started = new Map<string, number>();
  const credentials = new CredentialResolver(config.credentials, ctx.log);
  // Notifications and metrics: a hook as the run starts, one as it ends, however it ends.
  const alerts = parsed.dryRun
    ? undefined
    : startRunAlerts({ config, hostname: Deno.hostname(), log: ctx.log, credentials });
  const log = alerts?.log ?? ctx.log;
  const storage = openStorage(config.storage);
  // The catch-up uploads only what the remote's own policy would keep.
  const offHost = parsed.dryRun
    ? undefined
    : offHostCopies(config.storage, credentials, log, (i, d) => remotePolicyOf(config, i, d));
  // Retention `prune: after_backup`: each database right after its own successful backup,
  // keeping what the catch-up (after the run) has still to upload.
  const uploadsTo = offHost && !offHost.streamed ? offHost.remote : undefined;
  const pruner = parsed.dryRun
    ? undefined
    : afterBackupPruner({ config, storage, hostname: Deno.hostname(), log, uploadsTo });
  const done: ItemResult[] = [];
  const summary = await withInterruption((signal) =>
    runBackup({
      config,
      instances,
      databases: parsed.databases.length ? [...parsed.databases] : undefined,
      dryRun: parsed.dryRun,
      allowEmpty: parsed.allowEmpty,
      jobs: parsed.jobs,
      hostname: Deno.hostname(),
      ...backupTargets(storage, offHost),
      credentials,
      log,
      signal,
      afterInstance: usersAfterInstance,
      afterItem: pruner?.afterItem,
      events: {
        start: (instance, database) => started.set(`${instance}/${database}`, performance.now()),
        progress: (instance, database, raw) => {
          const t0 = started.get(`${instance}/${database}`) ?? performance.now();
          const rate = raw / Math.max(0.001, (performance.now() - t0) / 1000);
          progress.update(
            `${instance}/${database}: ${formatBytes(raw)} dumped, ${formatBytes(rate)}/s`,
          );
        },
        done: (r) => {
          done.push(r);
          progress.clear();
          logResult(ctx, r);
        },
      },
    })
  ).catch(async (e) => {
    await alerts?.finish({
      results: done,
      exitCode: EXIT_CODE_OF_KIND[kindOf(e)],
      error: errorText(e),
      skipped: pruner?.skipped(done),
    });
    throw e;
  });
  if (summary === undefined) {
    await alerts?.finish({
      results: done,
      exitCode: EXIT_CODE_OF_KIND.interrupted,
      interrupted: true,
      skipped: pruner?.skipped(done),
    });
    throw new InterruptedError("backup interrupted; partial files removed");
  }
  await offHost?.catchUp(summary.results, Deno.hostname(), instances.map((i) => i.id));
  // The remote's `prune: after_backup`, once every upload of the run is over.
  const remotePrune = offHost && await pruneRemoteAfterBackup(
    { config, remote: offHost.remote, hostname: Deno.hostname(), log },
    summary.results,
  );
  printSummary(ctx, summary);
  let code: number = runExitCode(summary.results.map(itemOutcome));
  const verified = parsed.dryRun ? [] : await withInterruption((signal) =>
    nightlyVerify({
      config,
      hostname: Deno.hostname(),
      results: summary.results,
      servers: { params: (i) => credentials.connectionParams(i) },
      log,
      signal,
      credentials,
    })
  ).catch(async (e) => {
    // The backups are done: their report goes out whatever the verification did.
    await alerts?.finish({
      results: summary.results,
      exitCode: EXIT_CODE_OF_KIND[kindOf(e)],
      error: errorText(e),
      skipped: pruner?.skipped(summary.results),
    });
    throw e;
  });
  if (verified === undefined) {
    await alerts?.finish({
      results: summary.results,
      exitCode: EXIT_CODE_OF_KIND.interrupted,
      interrupted: true,
      skipped: pruner?.skipped(summary.results),
    });
    throw new InterruptedError("verification interrupted");
  }
  const verifyFailures = printVerified(ctx, verified);
  // A backup that does not verify is a failed night, whatever the dumps did.
  if (verifyFailures.length && code === 0) code = 1;
  const skipped = [
    ...(pruner?.skipped(summary.results) ?? []),
    ...(remotePrune?.lines ?? []),
    ...verifyFailures,
  ];
  await alerts?.finish({ results: summary.results, exitCode: code, skipped });
  return code;
}

function printVerified(ctx: Context, verified: VerifyOutcome[]): string[] {
  const lines: string[] = [];
  for (const v of verified) {
    const line = verifyFailureLine(v);
    if (line) lines.push(line);
    if (ctx.json) continue;
    if (line) ctx.out(line);
    else ctx.out(`verified ${v.instance}/${v.database} (${v.kind})  ${v.file}`);
  }
  return lines;
}

function logResult(ctx: Context, r: ItemResult): void {
  const what = r.database === undefined ? r.instance : `${r.instance}/${r.database}`;
  if (r.status === "ok") {
    ctx.log.info(`ok ${what}`, {
      bytes: r.bytes,
      raw_bytes: r.raw_bytes,
      seconds: r.duration_ms !== undefined ? +(r.duration_ms / 1000).toFixed(1) : undefined,
    });
  } else if (r.status === "planned") {
    ctx.log.debug(`would back up ${what}`);
  }
  // Failures were logged where they happened, with their reason.
}

function printSummary(ctx: Context, summary: RunSummary): void {
  if (ctx.json) {
    ctx.outJson(summary);
    return;
  }
  for (const r of summary.results) {
    const what = r.database === undefined
      ? `${r.instance} (instance)`
      : `${r.instance}/${r.database}`;
    if (r.status === "planned") {
      ctx.out(`would back up ${what} (${formatBytes(r.size_bytes ?? 0)}) -> ${r.path}`);
    } else if (r.status === "ok") {
      ctx.out(
        `ok      ${what}  ${formatBytes(r.bytes ?? 0)} (${formatBytes(r.raw_bytes ?? 0)} raw) ` +
          `in ${((r.duration_ms ?? 0) / 1000).toFixed(1)}s  ${r.path}`,
      );
    } else {
      ctx.out(`FAILED  ${what}: ${r.error}`);
    }
  }
  const failed = summary.results.filter((r) => r.status === "failed").length;
  if (!summary.dry_run) {
    ctx.out(`${summary.results.length - failed} ok, ${failed} failed`);
  }
}
