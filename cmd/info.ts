/**
 * `info`: the state of the backups of every configured database, from the storage alone, as a
 * table per instance or the documented JSON; its exit code is a monitoring check.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import { choice, string } from "@optique/core/valueparser";
import type { Parser } from "@optique/core/parser";
import { freshnessExitCode } from "../lib/errors.ts";
import { buildInfo, type InfoInstance, type InfoItem, type InfoReport } from "../lib/info/info.ts";
import { listHosts } from "../lib/storage/catalog.ts";
import { hostnameIfPermitted } from "../lib/storage/layout.ts";
import { openReadStorage, type ReadFrom } from "../lib/storage/open.ts";
import { RemoteError } from "../lib/storage/s3.ts";
import type { Storage } from "../lib/storage/storage.ts";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { ConfigError, VyaError } from "../lib/errors.ts";
import type { Context } from "./context.ts";
import { findInstance } from "./instances.ts";
import { formatBytes } from "./progress.ts";
import { formatTable } from "./table.ts";
import { UsageError } from "./usage.ts";

/** The parsed `info` command line. */
export type InfoArgs = { command: "info"; instance?: string; database?: string; from?: ReadFrom };

/** Parser of the `info` command. */
export const infoCommand: Parser<"sync", InfoArgs, unknown> = command(
  "info",
  object({
    command: constant("info" as const),
    instance: optional(option("--instance", string({ metavar: "ID" }), {
      description: message`Only this instance. Default: every enabled instance.`,
    })),
    database: optional(option("--database", string({ metavar: "NAME" }), {
      description: message`Only this database of --instance (its users backups are left out).`,
    })),
    from: optional(option("--from", choice(["local", "remote"] as const), {
      description: message`Judge the local folder or the remote copy (storage.remote, S3: its \
own listing, read with its credential). Default: local when storage.path exists and \
keep_local is not false, else remote.`,
    })),
  }),
  {
    brief: message`Show the state of the backups; exit code for monitoring.`,
    description: message`Per configured database (the databases stored for the instance that \
its selection still takes, and the plain names of databases.include) and per instance's users \
backups: the newest good backup (time, age, size, compression, verification), how many good \
ones are kept, the oldest, the newest failure when newer, pinned backups and damaged or \
orphaned files. Reads the storage only: no database server (the remote needs its credential). \
Exit 0 all fresh; 1 a newest good backup older than alerts.max_age or a newer attempt that \
failed; 2 a configured database or enabled instance with no good backup at all, or the remote \
cannot be read; 3 configuration error.`,
  },
);

/** Runs `info`. */
export async function runInfo(args: InfoArgs, ctx: Context): Promise<number> {
  if (args.database !== undefined && args.instance === undefined) {
    throw new UsageError("--database needs --instance");
  }
  const { config } = await ctx.loadConfig();
  if (!config.storage.keep_local && args.from === "local") {
    // Judging from an empty local tree would report every database as never backed up.
    throw new ConfigError(
      "info --from local reads the local storage, which storage.keep_local: false leaves " +
        "empty (it holds only backups not uploaded yet)",
      { hint: "use info --from remote (the default with keep_local: false)" },
    );
  }
  const instances = args.instance === undefined
    ? config.instances.filter((i) => i.enabled)
    : [findInstance(config, args.instance)];
  const credentials = new CredentialResolver(config.credentials, ctx.log);
  const storage = await openReadStorage(config.storage, credentials, args.from);
  const report = await readingRemote(storage, async () => {
    // Reading needs no host name: without --allow-sys=hostname every host folder is read.
    const own = hostnameIfPermitted();
    const hosts = own === undefined ? await listHosts(storage) : [own];
    return await buildInfo({ config, storage, hosts, instances, database: args.database });
  });
  const code = freshnessExitCode(report.instances.map((i) => i.status));
  if (ctx.json) ctx.outJson({ ...report, exit_code: code });
  else printReport(ctx, report);
  return code;
}

/**
 * Runs `read`; a remote that cannot be read is exit 2 (CRITICAL to a monitoring check: nothing
 * can be said about the copies), not the 1 of a failed item.
 */
async function readingRemote<T>(storage: Storage, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (storage.kind === "local" || !(e instanceof RemoteError)) throw e;
    throw new VyaError(e.message, "unreachable", { cause: e });
  }
}

const STATUS_TEXT = { fresh: "fresh", failed: "FAILED", stale: "STALE", never: "NEVER" } as const;

function printReport(ctx: Context, report: InfoReport): void {
  const items = report.instances.flatMap((i) => i.items);
  const count = (s: InfoItem["status"]) => items.filter((i) => i.status === s).length;
  const empty = report.instances.filter((i) => i.items.every((x) => x.kind === "users")).length;
  const parts = [
    `${count("fresh")} fresh`,
    count("failed") && `${count("failed")} last attempt failed`,
    count("stale") && `${count("stale")} stale`,
    count("never") && `${count("never")} never backed up`,
    empty && `${empty} instance(s) without any database backup`,
  ].filter(Boolean);
  ctx.out(`${parts.join(", ")} (alerts.max_age ${age(report.max_age_seconds)})`);
  for (const inst of report.instances) printInstance(ctx, inst);
}

function printInstance(ctx: Context, inst: InfoInstance): void {
  ctx.out("");
  ctx.out(`${inst.instance} (${inst.type}): ${STATUS_TEXT[inst.status]}`);
  const rows = [[
    "DATABASE",
    "STATUS",
    "NEWEST GOOD (UTC)",
    "AGE",
    "SIZE",
    "COMPR",
    "VERIFIED",
    "KEPT",
    "OLDEST GOOD (UTC)",
  ]];
  const notes: string[] = [];
  for (const it of inst.items) {
    const g = it.newest_good;
    const name = it.database ?? "(users)";
    rows.push([
      name,
      STATUS_TEXT[it.status],
      g ? time(g.started_at) : "-",
      g ? age(g.age_seconds) : "-",
      g?.bytes != null ? formatBytes(g.bytes) : "-",
      g?.compression ?? "-",
      g?.verify ? `${g.verify.result} (${g.verify.kind}) ${time(g.verify.verified_at)}` : "never",
      String(it.good_count),
      it.oldest_good ? time(it.oldest_good.started_at) : "-",
    ]);
    const f = it.newest_failure;
    if (f) notes.push(`${name}: last attempt failed ${time(f.started_at)}: ${f.error}`);
    for (const p of it.pinned) notes.push(`${name}: pinned ${time(p.started_at)}  ${p.file ?? ""}`);
    for (const p of it.problems) {
      notes.push(`${name}: ${p.state} ${time(p.started_at)}: ${p.error}  ${p.file ?? ""}`);
    }
  }
  if (!inst.items.some((i) => i.kind === "database")) {
    notes.push("no database backed up yet (and no plain name in databases.include)");
  }
  if (inst.items.length) { for (const line of formatTable(rows)) ctx.out(line); }
  for (const n of notes) ctx.out(`  ${n.trimEnd()}`);
}

function time(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** A compact age: minutes below an hour, hours below two days, then days. */
function age(seconds: number): string {
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}
