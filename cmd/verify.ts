/**
 * `verify`: reads backups back (checksum, decompression, completion marker), or restores them
 * into a scratch database and compares what the server holds with the metadata (`--restore`),
 * and records the result beside each backup.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import { choice, string } from "@optique/core/valueparser";
import type { Parser } from "@optique/core/parser";
import { ConfigError, InterruptedError, runExitCode } from "../lib/errors.ts";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { openReadStorage, type ReadFrom } from "../lib/storage/open.ts";
import { itemOfFile, selectItems, type VerifyItem } from "../lib/verify/items.ts";
import { verifyItemOutcome, verifyRun } from "../lib/verify/run.ts";
import type { VerifyOutcome } from "../lib/verify/verify.ts";
import type { Context } from "./context.ts";
import { findInstance } from "./instances.ts";
import { withInterruption } from "./signals.ts";
import { UsageError } from "./usage.ts";

/** Parser of the `verify` command. */
export const verifyCommand: Parser<"sync", VerifyArgs, unknown> = command(
  "verify",
  object({
    command: constant("verify" as const),
    instance: optional(option("--instance", string({ metavar: "ID" }), {
      description: message`Only this instance's backups (default: every configured instance).`,
    })),
    database: optional(option("--database", string({ metavar: "NAME" }), {
      description: message`Only this database's backups.`,
    })),
    latest: optional(option("--latest", {
      description: message`The newest backup of each database, even a broken one (default).`,
    })),
    all: optional(option("--all", {
      description: message`Every backup of each database (failure records left out).`,
    })),
    file: optional(option("--file", string({ metavar: "PATH" }), {
      description: message`This backup file.`,
    })),
    from: optional(option("--from", choice(["local", "remote"] as const), {
      description: message`Verify the backups of the local folder or of storage.remote (S3). \
Default: local when storage.path exists, else remote. From S3 each backup is downloaded into a \
private temporary folder (checked against its SHA-256 on the way), read or restored from there, \
and removed; the result is recorded in the remote metadata.`,
    })),
    restore: optional(option("--restore", {
      description: message`Restore each backup into a scratch database (vya_verify_<db>_<stamp>, \
on its instance or the instance's verify.instance), compare tables, views, routines, triggers, \
sequences and per-table rows with its metadata, then drop the scratch database.`,
    })),
  }),
  {
    brief: message`Verify backups: read them back whole, or restore them into a scratch database.`,
    description: message`Default: each backup's metadata, size and .sha256 must agree, and the \
whole file is read (SHA-256, decompression, the dump tool's completion marker); no server is \
touched. The result is written into the backup's metadata (verified_at, verify). Exit: 0 every \
backup verified; 1 a backup failed verification (or some could not be verified); 2 none could be \
verified (server unreachable); 3 configuration error, nothing to verify, or (--restore) the \
restore was refused (missing roles); 64 usage; 130 interrupted (a scratch database is dropped).`,
  },
);

/** The parsed `verify` command line. */
export type VerifyArgs = {
  command: "verify";
  instance?: string;
  database?: string;
  latest?: boolean;
  all?: boolean;
  file?: string;
  restore?: boolean;
  from?: ReadFrom;
};

/** Runs `verify`. */
export async function runVerify(args: VerifyArgs, ctx: Context): Promise<number> {
  if ([args.latest, args.all, args.file !== undefined].filter(Boolean).length > 1) {
    throw new UsageError("verify takes at most one of --latest, --all or --file PATH");
  }
  if (args.file !== undefined && args.from === "remote") {
    throw new UsageError("--file names a local file; with --from remote use --latest or --all");
  }
  const { config } = await ctx.loadConfig();
  const credentials = new CredentialResolver(config.credentials, ctx.log);
  const storage = args.file !== undefined
    ? await openReadStorage(config.storage, credentials, "local")
    : await openReadStorage(config.storage, credentials, args.from);
  const instance = args.instance === undefined ? undefined : findInstance(config, args.instance);
  let items: VerifyItem[];
  if (args.file !== undefined) items = [await itemOfFile(args.file, storage)];
  else {
    const instances = instance ? [instance.id] : config.instances.map((i) => i.id);
    items = await selectItems(storage, {
      hostname: Deno.hostname(),
      instances,
      database: args.database,
      all: args.all,
    });
    if (items.length === 0) {
      throw new ConfigError(
        `no backups to verify${args.database ? ` of ${args.database}` : ""} on ` +
          (instance ? `instance ${instance.id}` : "any configured instance"),
        { hint: `looked under ${storage.location}/${Deno.hostname()}` },
      );
    }
  }
  const outcomes: VerifyOutcome[] = [];
  const done = await withInterruption((signal) =>
    verifyRun(items, {
      config,
      storage,
      kind: args.restore ? "restore" : "checksum",
      servers: { params: (i) => credentials.connectionParams(i) },
      instance: instance?.id,
      log: ctx.log,
      signal,
      onOutcome: (o) => {
        outcomes.push(o);
        if (!ctx.json) ctx.out(describe(o));
      },
    })
  );
  if (done === undefined) throw new InterruptedError("verify interrupted");
  if (ctx.json) ctx.outJson(outcomes);
  else {
    const bad = outcomes.filter((o) => o.result !== "ok").length;
    ctx.out(`${outcomes.length - bad} verified, ${bad} not`);
  }
  return runExitCode(outcomes.map(verifyItemOutcome));
}

function describe(o: VerifyOutcome): string {
  const what = o.database ? `${o.instance}/${o.database} ${o.started_at ?? ""}` : o.file;
  const head = o.result === "ok" ? "ok    " : o.result === "failed" ? "FAILED" : "ERROR ";
  return `${head}  ${what.trim()}  (${o.kind})  ${o.file}` + (o.error ? `: ${o.error}` : "");
}
