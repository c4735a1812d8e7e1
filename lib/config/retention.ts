/**
 * The retention settings of the configuration: one block at the top, per instance and per
 * database (`instances[].retention_overrides.<database>`), merged key by key, the most specific
 * winning; and `alerts`.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { policyKeepsSomething } from "../storage/retention.ts";
import { parseDurationSeconds } from "./duration.ts";
import type { RetentionFile } from "./schema.ts";
import type { Config, RetentionConfig, RetentionSettings } from "./types.ts";

/**
 * Default `prune`: after_backup. A policy someone wrote down is meant to be applied; a cleanup
 * that silently never runs is how disks fill. It is safe because prune then runs only right
 * after that database's own backup succeeded, and a file without any `retention:` block has no
 * policy at all, so nothing is deleted by upgrading.
 */
export const DEFAULT_PRUNE_MODE = "after_backup" as const;

/** Default `min_keep`. */
export const DEFAULT_MIN_KEEP = 1;

/** A retention block as the schema outputs it (keep_within still as written). */
export type RetentionBlock = RetentionFile;

/** Turns a validated block into settings: only the keys it sets, keep_within in seconds. */
export function toRetentionSettings(
  block: RetentionBlock | undefined,
): RetentionSettings | undefined {
  if (block === undefined) return undefined;
  const out: RetentionSettings = {};
  for (const [key, value] of Object.entries(block)) {
    if (value === undefined) continue;
    (out as Record<string, unknown>)[key] = key === "keep_within"
      ? parseDurationSeconds(value)
      : value;
  }
  return out;
}

/** The zone of this machine, the default `timezone`. */
export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC";
}

/**
 * The effective retention of a database of an instance (or, without `database`, of the
 * instance's users backups): the top-level block, overridden by the instance's `retention:`,
 * overridden by `retention_overrides.<database>`, key by key. Undefined when none of them
 * exists: then nothing is pruned. Throws a ConfigError for an unknown instance.
 */
export function retentionFor(
  config: Config,
  instanceId: string,
  database?: string,
): RetentionConfig | undefined {
  const instance = config.instances.find((i) => i.id === instanceId);
  if (!instance) throw new ConfigError(`unknown instance "${instanceId}"`);
  return withDefaults([
    config.retention,
    instance.retention,
    database === undefined ? undefined : instance.retention_overrides?.[database],
  ]);
}

/**
 * The retention of the remote copy (`storage.remote`) of a database (or, without `database`,
 * of an instance's users backups). `storage.remote.retention` is the remote's whole policy,
 * instead of the local one (over the defaults only, the same for every database: a bucket
 * usually keeps longer, and mixing its keys with per-database local overrides would make the
 * remote's effective policy impossible to read off the file). Without it the local policy
 * applies remotely as it stands, so a configured retention never leaves the bucket growing
 * forever; without either, nothing is pruned remotely. Undefined without a remote. Throws a
 * ConfigError for an unknown instance.
 */
export function remoteRetentionFor(
  config: Config,
  instanceId: string,
  database?: string,
): RetentionConfig | undefined {
  const local = retentionFor(config, instanceId, database);
  const remote = config.storage.remote;
  if (!remote) return undefined;
  return remote.retention ? withDefaults([remote.retention]) : local;
}

/** The defaults overridden by `layers` in order, key by key; undefined without any layer. */
function withDefaults(
  layers: (RetentionSettings | undefined)[],
): RetentionConfig | undefined {
  const present = layers.filter((l): l is RetentionSettings => l !== undefined);
  if (present.length === 0) return undefined;
  return Object.assign(
    {
      keep_last: 0,
      keep_daily: 0,
      keep_weekly: 0,
      keep_monthly: 0,
      keep_yearly: 0,
      keep_within: 0,
      min_keep: DEFAULT_MIN_KEEP,
      timezone: systemTimeZone(),
      prune: DEFAULT_PRUNE_MODE,
    },
    ...present,
  );
}

/** A problem of the merged retention settings, at a path of the file. */
export interface RetentionProblem {
  /** Path of the block that makes the policy empty, e.g. `["instances", 0, "retention"]`. */
  path: (string | number)[];
  /** What is wrong. */
  message: string;
}

/**
 * Every place where the merged policy of an instance (its users backups and the databases
 * without an override) or of an overridden database keeps nothing, reported at the most
 * specific block that takes part: an empty policy is a configuration error before anything is
 * deleted. A top-level block is only judged through the instances that use it.
 */
export function retentionProblems(config: Config): RetentionProblem[] {
  const problems: RetentionProblem[] = [];
  const message = "this retention keeps nothing (after merging): set at least one of " +
    "keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within";
  const empty = (id: string, db?: string) => {
    const r = retentionFor(config, id, db);
    return r !== undefined && !policyKeepsSomething(r);
  };
  const remote = config.storage.remote?.retention;
  if (remote && !policyKeepsSomething(withDefaults([remote])!)) {
    problems.push({ path: ["storage", "remote", "retention"], message });
  }
  config.instances.forEach((instance, i) => {
    const where = instance.retention ? ["instances", i, "retention"] : ["retention"];
    if (empty(instance.id) && !problems.some((p) => p.path.join() === where.join())) {
      problems.push({ path: where, message });
    }
    for (const db of Object.keys(instance.retention_overrides ?? {})) {
      if (empty(instance.id, db)) {
        problems.push({ path: ["instances", i, "retention_overrides", db], message });
      }
    }
  });
  return problems;
}
