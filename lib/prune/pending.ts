/**
 * Which good local backups are still due for the remote copy (`storage.remote` with
 * `keep_local: true`): good locally, not good remotely, and kept by the remote's own policy
 * when it is applied to the remote's good backups plus these. The upload catch-up sends exactly
 * these, and a local prune keeps exactly these ("not uploaded yet"), so the two never disagree:
 * what the remote would prune at once is neither uploaded again nor held locally forever.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { remoteRetentionFor } from "../config/retention.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { type CatalogEntry, listCatalog } from "../storage/catalog.ts";
import { applyRetention, type RetentionPolicy } from "../storage/retention.ts";
import { keyDir, type Storage } from "../storage/storage.ts";
import type { PruneDecision } from "./plan.ts";

/** Reason of a good local backup kept because the remote does not have it yet. */
export const NOT_UPLOADED_REASON = "not uploaded yet";

/**
 * The entries of `local` (one database's, or one instance's users backups) due for upload, in
 * their order. `remote`: the same scope's entries on the remote. Without a policy: every good
 * local entry not good remotely.
 */
export function dueForUpload(
  local: readonly CatalogEntry[],
  remote: readonly CatalogEntry[],
  policy: RetentionPolicy | undefined,
  now: Date,
): CatalogEntry[] {
  const there = new Set(remote.filter((e) => e.state === "good").map((e) => e.keys.dump!));
  const missing = local.filter((e) => e.state === "good" && !there.has(e.keys.dump!));
  if (!policy || missing.length === 0) return missing;
  const candidates = [
    ...remote.filter((e) => e.state === "good").map((e) => ({ entry: e, pending: false })),
    ...missing.map((e) => ({ entry: e, pending: true })),
  ].map((c) => ({
    ...c,
    id: c.entry.keys.dump!,
    startedAt: c.entry.started_at,
    good: true,
    pinned: c.entry.pinned,
  }));
  const kept = new Set(
    applyRetention(candidates, policy, now)
      .filter((d) => d.action === "keep" && d.backup.pending).map((d) => d.backup.id),
  );
  return missing.filter((e) => kept.has(e.keys.dump!));
}

/**
 * The group an entry's policy is decided in: its database folder, or the instance's users
 * backups. The same key locally and remotely (the layout is the same).
 */
export function policyGroup(e: CatalogEntry): string {
  const key = (e.keys.dump ?? e.keys.metadata ?? e.keys.sha256 ?? e.keys.partial)!;
  return e.kind === "users" ? "users" : keyDir(keyDir(key));
}

/** The remote's policy of an entry's scope; undefined without one (or an unknown instance). */
export function remotePolicyOf(
  config: Config,
  instance: string,
  database?: string,
): RetentionPolicy | undefined {
  try {
    return remoteRetentionFor(config, instance, database);
  } catch {
    return undefined; // an instance the configuration does not have: no policy, upload all
  }
}

/** Where a local prune looks for what is uploaded already. */
export interface UploadedCheck {
  /** The effective configuration (the remote's policy). */
  config: Config;
  /** The remote copy of this local storage. */
  remote: Storage;
  /** The host folder. */
  hostname: string;
  /** Logger: says when the remote could not be listed. */
  log: Logger;
}

/**
 * A local prune's plan with every good backup still due for the remote kept
 * ({@linkcode NOT_UPLOADED_REASON}): the local copy is the only one until the upload catch-up
 * has sent it, and it goes at the first prune after that. When the remote cannot be listed,
 * nothing is known uploaded: every good backup the plan would remove is kept, and the log says
 * so. The remote is listed only when the plan removes a good backup.
 */
export async function keepNotUploaded(
  check: UploadedCheck,
  scope: { instance: string; database?: string; label: string },
  plan: PruneDecision[],
  now: Date,
): Promise<PruneDecision[]> {
  const removing = plan.filter((d) => d.action === "remove" && d.entry.state === "good");
  if (removing.length === 0) return plan;
  let keep: Set<CatalogEntry>;
  let reason = NOT_UPLOADED_REASON;
  try {
    const remote = await listCatalog(check.remote, {
      hostname: check.hostname,
      instance: scope.instance,
      ...(scope.database === undefined ? { kind: "users" as const } : { database: scope.database }),
    });
    const policy = remotePolicyOf(check.config, scope.instance, scope.database);
    const local = plan.map((d) => d.entry);
    keep = new Set();
    for (const group of new Set(local.map(policyGroup))) {
      const mine = local.filter((e) => policyGroup(e) === group);
      const there = remote.filter((e) => policyGroup(e) === group);
      for (const e of dueForUpload(mine, there, policy, now)) keep.add(e);
    }
  } catch (e) {
    const why = redact(e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ");
    check.log.warn(
      `prune of ${scope.label}: ${check.remote.location} could not be listed (${why}): ` +
        `every good local backup is kept, since none is known uploaded`,
      { instance: scope.instance },
    );
    keep = new Set(removing.map((d) => d.entry));
    reason = `${NOT_UPLOADED_REASON} (the remote could not be listed)`;
  }
  return plan.map((d) =>
    d.action === "remove" && keep.has(d.entry) ? { ...d, action: "keep", reasons: [reason] } : d
  );
}
