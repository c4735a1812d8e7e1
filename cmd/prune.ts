/**
 * `prune`, `pin FILE`, `unpin FILE`: retention applied to the storage, and the marks that
 * exempt a backup from it.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { argument, command, constant, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { choice, string } from "@optique/core/valueparser";
import type { Config, InstanceConfig } from "../lib/config/types.ts";
import { ConfigError, ExitCode, OptionError, runExitCode } from "../lib/errors.ts";
import { setPinned } from "../lib/prune/pin.ts";
import { remoteRetentionFor } from "../lib/config/retention.ts";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { label, type PolicyLookup, type PruneItem, pruneStorage } from "../lib/prune/run.ts";
import {
  openRemoteStorage,
  openStorage,
  type ReadFrom,
  type RemoteCredentials,
} from "../lib/storage/open.ts";
import type { Storage, StorageLock } from "../lib/storage/storage.ts";
import type { Context } from "./context.ts";
import { UsageError } from "./usage.ts";
import { withInterruption } from "./signals.ts";
import { InterruptedError } from "../lib/errors.ts";

/** What `prune` parses to. */
export interface PruneArgs {
  /** The command's name. */
  command: "prune";
  /** `--instance ID`. */
  instance?: string;
  /** `--database NAME`. */
  database?: string;
  /** `--dry-run`. */
  dryRun?: boolean;
  /** `--from local|remote`; absent: both (the remote when storage.remote is configured). */
  from?: ReadFrom;
}

/** What `pin` / `unpin` parse to. */
export interface PinArgs {
  /** The command's name. */
  command: "pin" | "unpin";
  /** The backup's dump (or a sidecar). */
  file: string;
}

/** Parser of `prune`. */
export const pruneCommand: Parser<"sync", PruneArgs, unknown> = command(
  "prune",
  object({
    command: constant("prune" as const),
    instance: optional(option("--instance", string({ metavar: "ID" }), {
      description: message`Only this instance (default: every configured instance).`,
    })),
    database: optional(option("--database", string({ metavar: "NAME" }), {
      description: message`Only this database (with --instance; no users backups then).`,
    })),
    dryRun: optional(option("--dry-run", {
      description: message`Print the decisions; remove nothing.`,
    })),
    from: optional(option("--from", choice(["local", "remote"] as const), {
      description: message`Prune only the local folder, or only the remote copy \
(storage.remote, by storage.remote.retention, else the local policy). Default: both.`,
    })),
  }),
  {
    brief: message`Apply the retention policy: remove the backups it no longer keeps.`,
    description: message`For every database folder of the storage (and each instance's users \
backups) with a retention policy, prints one line per backup, keep or remove, with its reasons, \
and removes what is not kept: never a pinned, future-dated, bad or the newest good backup, \
never fewer than min_keep good ones, and only files of the tool's own naming pattern. Prunes the \
local folder and the remote copy (storage.remote) unless --from names one. Takes each storage's \
lock. Exit: 0 done, 1 some database's prune failed, 2 all failed, 3 configuration, \
4 locked, 64 usage, 130 interrupted.`,
  },
);

const fileArgument = () =>
  argument(string({ metavar: "FILE" }), {
    description: message`The backup's dump file (or its .metadata.json) in the storage, or its \
s3://bucket/prefix/… location on the remote copy.`,
  });

/** Parser of `pin`. */
export const pinCommand: Parser<"sync", PinArgs, unknown> = command(
  "pin",
  object({ command: constant("pin" as const), file: fileArgument() }),
  { brief: message`Pin a backup: retention never removes it.` },
);

/** Parser of `unpin`. */
export const unpinCommand: Parser<"sync", PinArgs, unknown> = command(
  "unpin",
  object({ command: constant("unpin" as const), file: fileArgument() }),
  { brief: message`Unpin a backup: retention decides about it again.` },
);

/** The instances `prune` looks at: every configured one, disabled ones too (no server is used). */
function pruneInstances(config: Config, id: string | undefined): InstanceConfig[] {
  if (id === undefined) return config.instances;
  const found = config.instances.find((i) => i.id === id);
  if (!found) {
    const known = config.instances.map((i) => i.id);
    throw new ConfigError(
      `unknown instance "${id}"` + (known.length ? `; configured: ${known.join(", ")}` : ""),
    );
  }
  return [found];
}

/** One storage to prune and the policies it is pruned by. */
interface PruneTarget {
  /** Which. */
  from: ReadFrom;
  /** The storage. */
  storage: Storage;
  /** Its policies. */
  policy?: PolicyLookup;
  /** The local folder's remote copy: what is not uploaded yet is kept locally. */
  uploadsTo?: Storage;
}

/**
 * The storages `prune` works on: `--from` when given, else the local folder and, when
 * storage.remote is configured, the remote too (a retention policy is meant for every copy).
 */
function pruneTargets(
  config: Config,
  credentials: RemoteCredentials,
  from: ReadFrom | undefined,
): PruneTarget[] {
  const remote = openRemoteStorage(config.storage, credentials);
  if (from === "remote" && !remote) {
    throw new OptionError("there is no remote to prune: storage.remote is not configured", {
      flag: "--from",
      reason: "use --from local, or configure storage.remote",
    });
  }
  const targets: PruneTarget[] = [];
  if (from !== "remote") {
    const uploadsTo = config.storage.keep_local ? remote : undefined;
    targets.push({ from: "local", storage: openStorage(config.storage), uploadsTo });
  }
  if (from !== "local" && remote) {
    targets.push({ from: "remote", storage: remote, policy: remoteRetentionFor });
  }
  return targets;
}

/** Runs `prune`. */
export async function runPrune(parsed: PruneArgs, ctx: Context): Promise<number> {
  if (parsed.database !== undefined && parsed.instance === undefined) {
    throw new UsageError("--database needs --instance");
  }
  const { config } = await ctx.loadConfig();
  const instances = pruneInstances(config, parsed.instance);
  const targets = pruneTargets(
    config,
    new CredentialResolver(config.credentials, ctx.log),
    parsed.from,
  );
  const locks: StorageLock[] = [];
  let items: PruneItem[] | undefined;
  try {
    // Every lock first: a prune that stops at a held lock has removed nothing anywhere.
    if (!parsed.dryRun) { for (const t of targets) locks.push(await t.storage.lock()); }
    items = await withInterruption(async (signal) => {
      const all: PruneItem[] = [];
      for (const t of targets) {
        all.push(
          ...await pruneStorage({
            config,
            storage: t.storage,
            policy: t.policy,
            uploadsTo: t.uploadsTo,
            hostname: Deno.hostname(),
            instances,
            database: parsed.database,
            dryRun: parsed.dryRun,
            log: ctx.log,
            signal,
          }),
        );
      }
      return all;
    });
  } finally {
    for (const lock of locks.reverse()) await lock.release();
  }
  if (items === undefined) throw new InterruptedError("prune interrupted");
  const local = targets.find((t) => t.from === "local")?.storage.location;
  printPrune(ctx, items, parsed.dryRun ?? false, local);
  if (items.every((i) => i.status === "no_policy")) {
    ctx.log.warn("no retention policy applies: nothing removed (see README, Retention)");
  }
  return runExitCode(
    items.map((i) =>
      i.status === "failed" ? { status: "failed", kind: i.errorKind ?? "failed" } : { status: "ok" }
    ),
  );
}

function printPrune(
  ctx: Context,
  items: PruneItem[],
  dryRun: boolean,
  localLocation: string | undefined,
): void {
  if (ctx.json) {
    ctx.outJson({
      dry_run: dryRun,
      items: items.map((i) => ({
        from: i.location === localLocation ? "local" : "remote",
        location: i.location,
        instance: i.instance,
        database: i.database ?? null,
        kind: i.kind,
        status: i.status,
        error: i.error,
        kept: i.decisions.filter((d) => d.action === "keep").length,
        removed: i.removed,
        decisions: i.decisions.map((d) => ({
          action: d.action,
          reasons: d.reasons,
          stem: d.entry.stem,
          started_at: d.entry.started_at.toISOString(),
          state: d.entry.state,
          pinned: d.entry.pinned,
          files: Object.values(d.entry.paths),
        })),
      })),
    });
    return;
  }
  for (const item of items) {
    for (const d of item.decisions) {
      const file = d.entry.paths.dump ?? d.entry.paths.metadata ?? d.entry.paths.sha256 ??
        d.entry.paths.partial;
      ctx.out(
        `${d.action.padEnd(6)}  ${label(item)}  ${d.entry.started_at.toISOString()}  ${file}` +
          (d.reasons.length ? `  ${d.reasons.join(", ")}` : ""),
      );
    }
    const kept = item.decisions.filter((d) => d.action === "keep").length;
    const planned = item.decisions.length - kept;
    // The local folder's lines read as before; the remote's say where they are.
    const what = label(item) + (item.location === localLocation ? "" : ` on ${item.location}`);
    if (item.status === "no_policy") {
      ctx.out(`${what}: no retention policy, nothing removed`);
    } else if (item.status === "failed") {
      ctx.out(`FAILED  ${what}: ${item.error} (${item.removed} of ${planned} removed)`);
    } else if (dryRun) {
      ctx.out(`${what}: ${kept} kept, ${planned} would be removed (dry run)`);
    } else {
      ctx.out(`${what}: ${kept} kept, ${item.removed} removed`);
    }
  }
}

/** Runs `pin` or `unpin`. */
export async function runPin(parsed: PinArgs, ctx: Context): Promise<number> {
  const { config } = await ctx.loadConfig();
  // A location on the remote (`s3://bucket/prefix/…`, as prune and restore --list print it)
  // pins the remote copy; anything else is a file of the local folder.
  const remote = openRemoteStorage(
    config.storage,
    new CredentialResolver(config.credentials, ctx.log),
  );
  const storage = remote && parsed.file.startsWith(`${remote.location}/`)
    ? remote
    : openStorage(config.storage);
  const lock = await storage.lock();
  try {
    const pinned = parsed.command === "pin";
    const r = await setPinned(storage, parsed.file, pinned);
    if (ctx.json) {
      ctx.outJson({ file: r.file, metadata: r.metadataFile, pinned, changed: r.changed });
    } else {
      const state = pinned ? "pinned" : "unpinned";
      ctx.out(`${r.changed ? state : `already ${state}`}  ${r.file}`);
    }
    return ExitCode.OK;
  } finally {
    await lock.release();
  }
}
