/**
 * Which file a restore reads: the newest good backup of a database in the storage (naming
 * every newer one that is skipped, and why), or a file the user names (this tool's, with its
 * metadata beside it; a bare dump; or a file of the original tool, which needs a target name).
 *
 * @module
 */
import { basename, resolve } from "node:path";
import { ConfigError, OptionError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { listCatalog, metadataBeside, pickLatest } from "../storage/catalog.ts";
import type { Storage } from "../storage/storage.ts";
import { assertBackupFile } from "./inspect.ts";
import type { RestoreSource } from "./restore.ts";

/** Where to find the backup. */
export type SourceRequest =
  /** The newest good backup of `database` of this host and instance. */
  | { latest: true; storage: Storage; hostname: string; instance: string; database: string }
  /** A named file; `target` and `database` are what the user gave, for the checks. */
  | { file: string; target?: string; database?: string };

/** Picks the file; throws ConfigError (no usable backup), BadBackupError or OptionError. */
export async function selectSource(request: SourceRequest, log: Logger): Promise<RestoreSource> {
  if ("latest" in request) {
    const { storage, hostname, instance, database } = request;
    const entries = (await listCatalog(storage, { hostname, instance, database }))
      .filter((e) => e.state !== "partial");
    const { chosen, sha256, skipped } = await pickLatest(storage, entries);
    for (const s of skipped) {
      log.warn(`skipped backup of ${s.entry.started_at.toISOString()}: ${s.reason}`, {
        file: s.entry.paths.dump ?? s.entry.paths.metadata ?? s.entry.paths.sha256,
      });
    }
    if (!chosen) {
      throw new ConfigError(
        `no usable backup of ${database} on instance ${instance}` +
          (entries.length ? ` (${entries.length} found, none verifies)` : " (none found)"),
        { hint: `looked under ${storage.location}/${hostname}/${instance}` },
      );
    }
    log.info(`using the backup of ${chosen.started_at.toISOString()}: ${chosen.paths.dump}`);
    return { path: chosen.paths.dump!, metadata: chosen.metadata, verifiedSha256: sha256 };
  }
  const path = resolve(request.file);
  // Missing, a folder, a FIFO or a device: said first, before anything reads or warns.
  await assertBackupFile(path);
  const metadata = await metadataBeside(path);
  const originalName = metadata ? undefined : originalToolName(basename(path));
  if (originalName !== undefined && request.target === undefined) {
    throw new OptionError(`${basename(path)} is a file of the original tool`, {
      flag: "--target NAME",
      reason: "name the database to restore into",
    });
  }
  if (metadata && request.database !== undefined && metadata.database !== request.database) {
    log.warn(`${basename(path)} is a backup of ${metadata.database}, not ${request.database}`);
  }
  return { path, metadata, originalName, original: originalName !== undefined };
}

/** The database name in an original-tool file name, if the name is one. */
export function originalToolName(fileName: string): string | undefined {
  const a = /^\d{8}_\d{6}_(?:mysql|postgresql)_(.+)\.(?:sql|zip)$/.exec(fileName);
  if (a) return a[1];
  const b = /^(.+)_\d{8}_\d{6}\.sql\.gz$/.exec(fileName);
  return b?.[1];
}
