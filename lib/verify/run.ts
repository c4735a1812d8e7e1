/**
 * A verification run over several backups: each is verified (lib/verify/verify.ts), its result
 * written into its metadata under the storage lock, and the run's exit code follows from the
 * outcomes. Also the nightly step (`backup.verify`) and its rotation.
 *
 * @module
 */
import { identitySource } from "../crypto/identity_source.ts";
import { familyOfType } from "../engines/family.ts";
import type { Config, ConnectionParams, InstanceConfig } from "../config/types.ts";
import { ConfigError, type ItemOutcome, LockError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { listCatalog } from "../storage/catalog.ts";
import { updateMetadata } from "../storage/metadata.ts";
import type { Storage } from "../storage/storage.ts";
import type { VerifyItem } from "./items.ts";
import { verifyItem, type VerifyKind, type VerifyOutcome } from "./verify.ts";

/** How a verification run reaches servers (restore kind only). */
export interface VerifyServers {
  /** The login of an instance. */
  params(instance: InstanceConfig): Promise<ConnectionParams>;
}

/** What {@linkcode verifyRun} needs. */
export interface VerifyRunOptions {
  /** The effective configuration. */
  config: Config;
  /** The configured storage (the lock is taken there to record results). */
  storage: Storage;
  /** How. */
  kind: VerifyKind;
  /** Logins, for the restore kind. */
  servers?: VerifyServers;
  /** For a file outside the layout: the instance given on the command line. */
  instance?: string;
  /** Logger. */
  log: Logger;
  /** SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /** Called after each backup. */
  onOutcome?: (o: VerifyOutcome) => void;
}

/** Verifies every item in turn and records each result. Throws only when interrupted. */
export async function verifyRun(
  items: VerifyItem[],
  o: VerifyRunOptions,
): Promise<VerifyOutcome[]> {
  const outcomes: VerifyOutcome[] = [];
  const identities = identitySource(o.config.storage.encryption);
  for (const item of items) {
    o.signal?.throwIfAborted();
    const restore = o.kind === "restore"
      ? await restoreOptions(o, o.instance ?? item.instance)
      : undefined;
    const outcome = await verifyItem(item, {
      kind: o.kind,
      restore,
      log: o.log,
      signal: o.signal,
      identities,
    });
    if (outcome.result !== "error" && item.recordable && item.metadataKey) {
      outcome.recorded = await record(o.storage, item, outcome, o.log);
    }
    outcomes.push(outcome);
    o.onOutcome?.(outcome);
  }
  return outcomes;
}

/**
 * The instance a backup of `instanceId` is restored onto: its `verify.instance` when set (of
 * the same engine family), else itself.
 */
export function verifyTargetOf(config: Config, instanceId: string): InstanceConfig {
  const own = config.instances.find((i) => i.id === instanceId);
  if (!own) {
    throw new ConfigError(`instance ${instanceId} is not in the configuration`, {
      hint: "verify --restore restores onto a configured instance (give --instance ID)",
    });
  }
  const other = own.verify?.instance;
  if (other === undefined) return own;
  const target = config.instances.find((i) => i.id === other);
  if (!target || familyOfType(target.type) !== familyOfType(own.type)) {
    throw new ConfigError(
      `instances.${own.id}.verify.instance: ${other} is ${
        target ? `a ${target.type} instance` : "not a configured instance"
      }; it must be one of the same engine as ${own.id} (${own.type})`,
    );
  }
  return target;
}

async function restoreOptions(o: VerifyRunOptions, instanceId: string | undefined) {
  if (instanceId === undefined) {
    throw new ConfigError("the file does not say which instance it was backed up from", {
      hint: "give --instance ID to restore it onto",
    });
  }
  const target = verifyTargetOf(o.config, instanceId);
  return {
    target,
    params: await o.servers!.params(target),
    separate: target.id !== instanceId,
    stallTimeoutMs: o.config.backup.stall_timeout * 1000,
    jobs: o.config.restore.jobs,
    spoolLimit: o.config.restore.spool_limit,
  };
}

/** Writes the outcome into the metadata, under the storage lock; false when it could not. */
async function record(
  storage: Storage,
  item: VerifyItem,
  outcome: VerifyOutcome,
  log: Logger,
): Promise<boolean> {
  let lock;
  try {
    lock = await storage.lock();
  } catch (e) {
    if (!(e instanceof LockError)) throw e;
    log.warn(`result not recorded in ${item.metadataKey}: ${e.message}`);
    return false;
  }
  try {
    await updateMetadata(storage, item.metadataKey!, (m) => {
      m.verified_at = new Date().toISOString();
      m.verify = outcome.result === "ok"
        ? { result: "ok", kind: outcome.kind }
        : { result: "failed", kind: outcome.kind, error: outcome.error };
    });
    return true;
  } catch (e) {
    log.warn(`result not recorded for ${item.label}: ${redact((e as Error).message)}`);
    return false;
  } finally {
    await lock.release();
  }
}

/**
 * The exit-code view of outcomes: a backup that failed verification counts as "differs" (exit
 * 1 whatever the others did: the data is at risk, the tool worked); one that could not be
 * verified as failed of its kind.
 */
export function verifyItemOutcome(o: VerifyOutcome): ItemOutcome {
  if (o.result === "ok") return { status: "ok" };
  if (o.result === "failed") return { status: "differs" };
  return { status: "failed", kind: o.error_kind ?? "failed" };
}

/**
 * Of the databases given, the one whose newest restore verification is the oldest (never
 * verified by a restore first; ties in the order given): the nightly `restore` rotation.
 */
export async function leastRecentlyRestored(
  storage: Storage,
  hostname: string,
  databases: { instance: string; database: string }[],
): Promise<{ instance: string; database: string } | undefined> {
  let best: { instance: string; database: string } | undefined;
  let bestAt = Infinity;
  for (const d of databases) {
    const entries = await listCatalog(storage, { hostname, ...d });
    let last = -Infinity;
    for (const e of entries) {
      const v = e.metadata?.verify;
      const at = e.metadata?.verified_at ? Date.parse(e.metadata.verified_at) : NaN;
      if (v?.kind === "restore" && at > last) last = at;
    }
    if (last < bestAt) {
      best = d;
      bestAt = last;
    }
  }
  return best;
}
