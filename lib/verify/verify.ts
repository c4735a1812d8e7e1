/**
 * One verification of one backup, as `verify`, and the nightly run, do it:
 *
 * - `checksum`: the metadata is valid and says ok, the dump is there with the recorded size,
 *   its `.sha256` names the recorded digest, and the whole file is read once through
 *   lib/restore/inspect.ts (SHA-256, full decompression, dump banner, completion marker).
 *   No server is touched.
 * - `restore`: the same file checks, then the backup is restored (lib/restore, scratch mode)
 *   into `vya_verify_<db>_<stamp>` on its instance or the instance's `verify.instance`, what the
 *   server reports is compared with the metadata (lib/verify/compare.ts), and the scratch
 *   database is dropped however that ends.
 *
 * A finding about the backup is `failed` and recorded beside it (`verified_at`, `verify`);
 * not being able to look (server unreachable, missing roles, a lock) is `error`, not recorded:
 * it says nothing about the backup.
 *
 * @module
 */
import type { IdentitySource } from "../crypto/identity_source.ts";
import type { ConnectionParams, InstanceConfig } from "../config/types.ts";
import { type ErrorKind, kindOf, VyaError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { inspectDump } from "../restore/inspect.ts";
import { BadBackupError, RestoreFailedError } from "../restore/errors.ts";
import { restore } from "../restore/restore.ts";
import { type DownloadedBackup, downloadEntry } from "../restore/remote_source.ts";
import { recordedSha256, sidecarsOf } from "../storage/catalog.ts";
import type { VerifyRecord } from "../storage/metadata.ts";
import { compareRestored } from "./compare.ts";
import type { VerifyItem } from "./items.ts";
import { scratchName } from "./scratch_name.ts";

/** How a backup is verified. */
export type VerifyKind = VerifyRecord["kind"];

/** The outcome of verifying one backup. */
export interface VerifyOutcome {
  /** Instance id, when known. */
  instance?: string;
  /** Database, when known. */
  database?: string;
  /** The backup's start, ISO-8601. */
  started_at?: string;
  /** The file (the dump's path, else its metadata's). */
  file: string;
  /** How it was verified. */
  kind: VerifyKind;
  /** ok; failed (the backup is wrong); error (it could not be verified). */
  result: "ok" | "failed" | "error";
  /** Why not ok (redacted). */
  error?: string;
  /** For `error`: what sort of failure stopped it (decides the exit code). */
  error_kind?: ErrorKind;
  /** What was checked, in order. */
  checked: string[];
  /** The scratch database restored into (restore kind). */
  scratch?: string;
  /** The instance restored into (restore kind). */
  restored_on?: string;
  /** Whether the result was written into the metadata. */
  recorded: boolean;
}

/** A finding about the backup itself. */
export class VerifyFailedError extends VyaError {
  /** Creates the finding. */
  constructor(message: string) {
    super(message, "failed");
    this.name = "VerifyFailedError";
  }
}

/** Where and how to restore, for the restore kind. */
export interface RestoreVerifyOptions {
  /** The instance restored into (the backup's own, or its `verify.instance`). */
  target: InstanceConfig;
  /** Its login. */
  params: ConnectionParams;
  /** Whether `target` is another instance than the backup's (ownership is then skipped). */
  separate: boolean;
  /** backup.stall_timeout in ms. */
  stallTimeoutMs: number;
  /** restore.jobs: sessions the scratch restore loads over (default 1). */
  jobs?: number;
  /** restore.spool_limit. */
  spoolLimit?: number;
}

/** What {@linkcode verifyItem} needs. */
export interface VerifyOptions {
  /** How. */
  kind: VerifyKind;
  /** For the restore kind. */
  restore?: RestoreVerifyOptions;
  /** Logger. */
  log: Logger;
  /** SIGINT/SIGTERM: stops reading, kills a load, and the scratch database is dropped. */
  signal?: AbortSignal;
  /** storage.encryption.identity_file: an age-encrypted backup is decrypted with it. */
  identities?: IdentitySource;
}

/** Verifies one backup. Throws only when interrupted (the signal's reason). */
export async function verifyItem(item: VerifyItem, o: VerifyOptions): Promise<VerifyOutcome> {
  const outcome: VerifyOutcome = {
    instance: item.instance,
    database: item.database,
    started_at: item.startedAt?.toISOString(),
    file: item.label,
    kind: o.kind,
    result: "ok",
    checked: [],
    recorded: false,
  };
  try {
    await checkFiles(item, outcome);
    await using local = await localCopy(item, outcome);
    const path = local?.path ?? item.storage.locate(item.dumpKey!);
    if (o.kind === "restore") await restoreCheck(item, path, o, outcome);
    else {
      await inspectDump(path, {
        expectedSha256: item.metadata?.file?.sha256,
        signal: o.signal,
        identities: o.identities,
        recipients: item.metadata?.encryption?.recipients,
      });
      outcome.checked.push(
        "whole file read: sha256, decompression, dump banner, completion marker",
      );
    }
  } catch (e) {
    if (o.signal?.aborted) throw o.signal.reason ?? e;
    const finding = e instanceof VerifyFailedError || e instanceof BadBackupError ||
      e instanceof RestoreFailedError;
    outcome.result = finding ? "failed" : "error";
    outcome.error = redact(e instanceof Error ? e.message : String(e));
    if (!finding) outcome.error_kind = kindOf(e);
  }
  return outcome;
}

/** The cheap checks: metadata, files present, sizes and recorded digests agree. */
async function checkFiles(item: VerifyItem, outcome: VerifyOutcome): Promise<void> {
  const meta = item.metadata;
  if (item.metadataProblem) {
    throw new VerifyFailedError(`its metadata is not valid: ${item.metadataProblem}`);
  }
  if (!meta) {
    if (item.metadataKey !== undefined || item.recordable) {
      throw new VerifyFailedError("it has no metadata");
    }
  } else {
    if (meta.kind !== "database") throw new VerifyFailedError(`it is a ${meta.kind} backup`);
    if (meta.status !== "ok" || !meta.file) {
      throw new VerifyFailedError(`it is recorded as failed: ${meta.error ?? meta.status}`);
    }
  }
  if (item.dumpKey === undefined || !await item.storage.exists(item.dumpKey)) {
    throw new VerifyFailedError(
      `the dump file is missing${
        meta?.file ? ` (${meta.file.name}, recorded in its metadata)` : ""
      }`,
    );
  }
  const size = (await item.storage.stat(item.dumpKey))?.size;
  if (meta?.file && size !== meta.file.bytes) {
    throw new VerifyFailedError(
      `the dump has ${size} bytes, its metadata records ${meta.file.bytes}`,
    );
  }
  const recorded = await recordedSha256(sidecarsOf(item.storage, item.dumpKey)).catch(() =>
    undefined
  );
  if (recorded === undefined) {
    if (meta) throw new VerifyFailedError("its .sha256 file is missing");
  } else if (meta?.file && recorded !== meta.file.sha256) {
    throw new VerifyFailedError(
      `its .sha256 file (${recorded}) disagrees with its metadata (${meta.file.sha256})`,
    );
  }
  outcome.checked.push(meta ? "metadata, size and .sha256 agree" : "no metadata: file only");
}

/**
 * A backup on a remote storage, downloaded into a private temporary folder and checked against
 * its recorded SHA-256 on the way (a mismatch is a finding); undefined for a local one. The
 * whole-file checks then read that copy exactly as they read a local file, and the restore
 * kind loads those same verified bytes.
 */
async function localCopy(
  item: VerifyItem,
  outcome: VerifyOutcome,
): Promise<DownloadedBackup | undefined> {
  if (item.storage.kind === "local") return undefined;
  if (!item.entry) throw new VerifyFailedError("it is not a backup of the remote's catalog");
  const copy = await downloadEntry(item.storage, item.entry);
  outcome.checked.push(`downloaded from ${item.storage.location}: sha256 as recorded`);
  return copy;
}

async function restoreCheck(
  item: VerifyItem,
  path: string,
  o: VerifyOptions,
  outcome: VerifyOutcome,
) {
  const r = o.restore!;
  const meta = item.metadata;
  if (!meta || !item.database || !item.stamp) {
    throw new VerifyFailedError("it has no metadata to compare a restore with");
  }
  const target = await scratchName(item.database, item.stamp);
  outcome.scratch = target;
  outcome.restored_on = r.target.id;
  let problems: string[] = [];
  await restore({
    instance: r.target,
    params: r.params,
    source: { path, metadata: meta },
    target,
    // Another server need not have the backup's roles and DEFINER accounts: the check is
    // about the data, which loads the same without them.
    noOwner: r.separate,
    ignoreMissingDefiners: true,
    stallTimeoutMs: r.stallTimeoutMs,
    jobs: r.jobs,
    spoolLimit: r.spoolLimit,
    log: o.log,
    signal: o.signal,
    identities: o.identities,
    scratch: async (adapter, name) => {
      o.signal?.throwIfAborted();
      const objects = await adapter.objectCounts(name);
      o.signal?.throwIfAborted();
      const tables = await adapter.tableRows(name, { exactMaxBytes: Infinity });
      const c = compareRestored(meta, objects, tables);
      outcome.checked.push(
        "whole file read: sha256, decompression, dump banner, completion marker",
        `restored into ${name} on ${r.target.id}`,
        ...c.checked,
      );
      problems = c.problems;
    },
  });
  outcome.checked.push(`scratch database ${target} dropped`);
  if (problems.length) {
    throw new VerifyFailedError(
      `the restore differs from the backup's metadata: ${problems.slice(0, 10).join("; ")}` +
        (problems.length > 10 ? `; and ${problems.length - 10} more` : ""),
    );
  }
}
