/**
 * The verification step of a nightly run (`backup.verify`): after the backups, each database
 * backed up ok in this run has its new backup verified; with `restore`, one of them (the one
 * whose last restore verification is the oldest, or that never had one) is restored into a
 * scratch database instead, so over as many nights as there are databases every one is
 * test-restored.
 *
 * @module
 */
import type { ItemResult } from "../backup/run.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { openReadStorage, openStorage, type RemoteCredentials } from "../storage/open.ts";
import { kindOf } from "../errors.ts";
import { redact } from "../redact.ts";
import { USERS_ITEM } from "../users/backup.ts";
import { selectItems } from "./items.ts";
import { leastRecentlyRestored, verifyRun, type VerifyServers } from "./run.ts";
import type { VerifyOutcome } from "./verify.ts";

/** What the nightly step needs. */
export interface NightlyVerifyOptions {
  /** The effective configuration (`backup.verify` decides). */
  config: Config;
  /** Host folder. */
  hostname: string;
  /** The run's results: only databases backed up ok are verified. */
  results: readonly ItemResult[];
  /** Logins. */
  servers: VerifyServers;
  /** Logger. */
  log: Logger;
  /** SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /**
   * The remote's credential: with it the backups are verified where `info` reads them by
   * default (with keep_local: false, the remote, each downloaded into a private folder).
   */
  credentials?: RemoteCredentials;
}

/** Verifies this run's new backups as configured; [] with `backup.verify: none`. */
export async function nightlyVerify(o: NightlyVerifyOptions): Promise<VerifyOutcome[]> {
  const mode = o.config.backup.verify;
  if (mode === "none") return [];
  const storage = o.credentials
    ? await openReadStorage(o.config.storage, o.credentials)
    : openStorage(o.config.storage);
  const databases = o.results
    .filter((r) => r.status === "ok" && r.database !== undefined && r.database !== USERS_ITEM)
    .map((r) => ({ instance: r.instance, database: r.database! }));
  // A storage that cannot be listed (a remote gone down after the uploads) makes each database
  // an outcome "could not verify", never an exception that would cost the run its report.
  const restored = mode === "restore"
    ? await leastRecentlyRestored(storage, o.hostname, databases).catch(() => undefined)
    : undefined;
  const outcomes: VerifyOutcome[] = [];
  for (const d of databases) {
    const kind = restored?.instance === d.instance && restored.database === d.database
      ? "restore"
      : "checksum";
    try {
      const items = await selectItems(storage, {
        hostname: o.hostname,
        instances: [d.instance],
        database: d.database,
      });
      outcomes.push(
        ...await verifyRun(items, {
          config: o.config,
          storage,
          kind,
          servers: o.servers,
          log: o.log,
          signal: o.signal,
        }),
      );
    } catch (e) {
      if (o.signal?.aborted) throw e;
      outcomes.push({
        ...d,
        file: storage.location,
        kind,
        result: "error",
        error: redact(e instanceof Error ? e.message : String(e)),
        error_kind: kindOf(e),
        checked: [],
        recorded: false,
      });
    }
  }
  return outcomes;
}

/** The report line of an outcome that did not pass (RunReport `skipped`), else undefined. */
export function verifyFailureLine(v: VerifyOutcome): string | undefined {
  if (v.result === "ok") return undefined;
  const what = `${v.instance}/${v.database}`;
  return v.result === "failed"
    ? `verify failed for ${what} (${v.kind}): ${v.error}`
    : `verify failed for ${what} (${v.kind}, could not verify): ${v.error}`;
}
