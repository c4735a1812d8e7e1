/**
 * `restore`: list the backups of a database, or restore one (the newest good one, or a file)
 * under its own name or a new one.
 *
 * @module
 */
import { type IdentitySource, identitySource } from "../lib/crypto/identity_source.ts";
import type { ConnectionParams, InstanceConfig } from "../lib/config/types.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import { choice, integer, string } from "@optique/core/valueparser";
import type { Parser } from "@optique/core/parser";
import { errorText, ExitCode, InterruptedError, runExitCode } from "../lib/errors.ts";
import { UsageError } from "./usage.ts";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { type CatalogEntry, checkEntry, listCatalog, listHosts } from "../lib/storage/catalog.ts";
import { openReadStorage, type ReadFrom } from "../lib/storage/open.ts";
import { downloadLatest, downloadLatestUsers } from "../lib/restore/remote_source.ts";
import type { Storage } from "../lib/storage/storage.ts";
import { restore } from "../lib/restore/restore.ts";
import type { Context } from "./context.ts";
import { findInstance } from "./instances.ts";
import { formatBytes, ProgressLine } from "./progress.ts";
import { formatTable } from "./table.ts";
import { withInterruption } from "./signals.ts";
import { selectSource } from "../lib/restore/source.ts";
import { hostnameIfPermitted } from "../lib/storage/layout.ts";
import { applyWaitingGrants } from "../lib/users/restore.ts";

/** Parser of the `restore` command. */
export const restoreCommand: Parser<"sync", RestoreArgs, unknown> = command(
  "restore",
  object({
    command: constant("restore" as const),
    instance: option("--instance", string({ metavar: "ID" }), {
      description: message`Instance to list backups of and restore into.`,
    }),
    database: optional(option("--database", string({ metavar: "NAME" }), {
      description: message`Database whose backups are listed or restored.`,
    })),
    list: optional(option("--list", {
      description: message`List backups newest first: date, status, size, compression and \
whether the checksum verifies. Without --database: every database of the instance. Exits 1 when \
a backup recorded as ok does not verify.`,
    })),
    latest: optional(option("--latest", {
      description: message`Restore the newest backup whose metadata says ok and whose checksum \
verifies; failed or corrupted ones are skipped and named.`,
    })),
    file: optional(option("--file", string({ metavar: "PATH" }), {
      description: message`Restore this file: a backup of this tool (its metadata beside it is \
used; an age-encrypted one is decrypted with storage.encryption.identity_file), a bare \
.sql/.sql.gz/.sql.zst dump, or a file of the original tool (needs --target).`,
    })),
    from: optional(option("--from", choice(["local", "remote"] as const), {
      description: message`Read backups from the local folder or from storage.remote (S3). \
Default: local when storage.path exists, else remote. From S3 the chosen backup is downloaded \
into a private temporary folder and verified before the server is touched.`,
    })),
    target: optional(option("--target", string({ metavar: "NAME" }), {
      description: message`Database to restore into. Default: the backup's own database.`,
    })),
    force: optional(option("--force", {
      description: message`Drop and recreate a target database that holds tables, views or \
routines (otherwise it is left alone and the restore refused).`,
    })),
    dryRun: optional(option("--dry-run", {
      description: message`Verify the file, check the server and the target, and say what \
would be done; change nothing.`,
    })),
    noOwner: optional(option("--no-owner", {
      description: message`Skip ownership: the database and its objects belong to the \
connecting user (PostgreSQL: ALTER … OWNER TO statements are left out).`,
    })),
    noSingleTransaction: optional(option("--no-single-transaction", {
      description: message`PostgreSQL: do not load in one transaction. For databases with more \
relations than the server can lock at once (restore says when); until the load ends the target \
holds part of the data and is marked incomplete, and a failed load drops it.`,
    })),
    ignoreMissingDefiners: optional(option("--ignore-missing-definers", {
      description: message`MySQL/MariaDB: load although accounts named as DEFINER of views, \
routines, triggers or events do not exist on the server (those objects fail at first use until \
the accounts are created).`,
    })),
    jobs: optional(option("--jobs", integer({ min: 1, max: 64, metavar: "N" }), {
      description: message`Load the database over N server sessions: table data and indexes of \
different tables load at once (README "Restore"). Default: restore.jobs, else 1 (one session; \
on PostgreSQL one transaction). Fewer when the server has fewer connections free.`,
    })),
    lockWait: optional(option("--lock-wait", integer({ min: 1, metavar: "SECONDS" }), {
      description: message`How long dropping a target (--force, or one left incomplete) may wait \
for other sessions' locks before the restore stops with nothing changed. Default: 60.`,
    })),
  }),
  {
    brief: message`List backups, or restore a database from one.`,
    description: message`The file is verified before the server is touched: its SHA-256 against \
the metadata (or, without metadata, a full decompression and the dump's completion marker), and \
its engine. The target is created with the captured properties (PostgreSQL owner, encoding, \
locale, connection limit, comment, grants, settings; MySQL character set and collation). A \
restore that fails part-way drops the database it created; one that is killed leaves it marked \
incomplete, and the next restore into that name replaces it. Exit 0 restored; 1 the load failed \
(the server's message names the line); 2 the server could not be reached; 3 the file is \
missing, corrupted, truncated or for another engine, the target name is too long or not empty \
(without --force), roles or DEFINER accounts are missing, the database has more relations than \
one transaction can lock, or configuration/credential error; 4 another restore into the same \
target is running; 64 usage error (also a file that does not say its database, without \
--target).`,
  },
);

/** The parsed `restore` command line. */
export type RestoreArgs = {
  command: "restore";
  instance: string;
  database?: string;
  list?: boolean;
  latest?: boolean;
  file?: string;
  from?: ReadFrom;
  target?: string;
  force?: boolean;
  dryRun?: boolean;
  noOwner?: boolean;
  noSingleTransaction?: boolean;
  ignoreMissingDefiners?: boolean;
  lockWait?: number;
  jobs?: number;
};

function human(bytes: number | undefined): string {
  return bytes === undefined ? "-" : formatBytes(bytes);
}

function progressPrinter(
  ctx: Context,
): (phase: string, n: number, total: number, detail?: string) => void {
  const line = new ProgressLine(!ctx.json && !ctx.globals.quiet);
  return (phase, n, total, detail) => {
    const pct = total > 0 ? Math.floor((n / total) * 100) : 0;
    if (n >= total) {
      line.clear();
      return;
    }
    line.update(
      `${phase === "verify" ? "verifying" : "restoring"} ${pct}% (${human(n)} of ${human(total)})` +
        (detail ? ` · ${detail}` : ""),
    );
  };
}

/** Runs `restore`. */
export async function runRestore(args: RestoreArgs, ctx: Context): Promise<number> {
  const modes = [args.list, args.latest, args.file !== undefined].filter(Boolean).length;
  if (modes !== 1) {
    throw new UsageError("restore needs exactly one of --list, --latest or --file PATH");
  }
  if (args.latest && args.database === undefined) {
    throw new UsageError("restore --latest needs --database NAME");
  }
  const { config } = await ctx.loadConfig();
  const instance = findInstance(config, args.instance);
  const credentials = new CredentialResolver(config.credentials, ctx.log);
  const storage = await openReadStorage(config.storage, credentials, args.from);
  if (args.list) {
    // Listing reads the storage only: without --allow-sys=hostname every host folder is listed.
    const own = hostnameIfPermitted();
    const hosts = own === undefined ? await listHosts(storage) : [own];
    const entries = [];
    for (const host of hosts) {
      const query = {
        hostname: host,
        instance: instance.id,
        database: args.database,
        kind: "database" as const,
      };
      // Unfinished writes are no backups: they are not listed (prune removes them).
      entries.push(...(await listCatalog(storage, query)).filter((e) => e.state !== "partial"));
    }
    entries.sort((a, b) => b.started_at.getTime() - a.started_at.getTime());
    return await list(ctx, storage, entries);
  }
  const hostname = Deno.hostname();

  // From S3 the backup is downloaded and verified first; the folder goes when the restore ends.
  const remote = args.latest && storage.kind !== "local"
    ? await withInterruption((signal) =>
      downloadLatest(
        storage,
        { hostname, instance: instance.id, database: args.database! },
        ctx.log,
        signal,
      )
    )
    : undefined;
  if (args.latest && storage.kind !== "local" && !remote) {
    throw new InterruptedError("restore interrupted while downloading; nothing was changed");
  }
  await using _download = remote?.download;
  const source = remote?.source ?? await selectSource(
    args.latest
      ? {
        latest: true,
        storage,
        hostname,
        instance: instance.id,
        database: args.database!,
      }
      : { file: args.file!, target: args.target, database: args.database },
    ctx.log,
  );

  const params = await credentials.connectionParams(instance);
  // Read only when the backup is encrypted: a plain restore never needs the key file.
  const identities = identitySource(config.storage.encryption);
  const result = await withInterruption((signal) =>
    restore({
      instance,
      params,
      source,
      target: args.target ?? (source.metadata ? undefined : args.database),
      force: args.force ?? false,
      dryRun: args.dryRun ?? false,
      noOwner: args.noOwner ?? false,
      singleTransaction: !(args.noSingleTransaction ?? false),
      ignoreMissingDefiners: args.ignoreMissingDefiners ?? false,
      lockWaitSeconds: args.lockWait,
      jobs: args.jobs ?? config.restore.jobs,
      spoolLimit: config.restore.spool_limit,
      stallTimeoutMs: config.backup.stall_timeout * 1000,
      identities,
      log: ctx.log,
      onProgress: progressPrinter(ctx),
      signal,
    })
  );
  if (result === undefined) throw new InterruptedError("restore interrupted");
  if (result.status !== "planned") {
    await applyGrantsWaitingFor(result.target, {
      ctx,
      storage,
      instance,
      params,
      hostname,
      identities,
      localPath: config.storage.path,
    });
  }
  if (ctx.json) ctx.outJson(result);
  else if (result.status === "planned") {
    ctx.out(
      `dry run: nothing changed. Would restore ${result.file} into ${result.target} on ` +
        `${result.instance}:`,
    );
    for (const a of result.actions) ctx.out(`  - ${a}`);
  } else {
    ctx.out(
      `restored ${result.file} into ${result.target} on ${result.instance} ` +
        `(${human(result.raw_bytes)} of SQL in ${(result.duration_ms / 1000).toFixed(1)} s)`,
    );
  }
  return ExitCode.OK;
}

/**
 * Table, column and routine grants of a users restore wait for their database: they are
 * applied from the users backup of the storage this restore read (downloaded when remote).
 * The database is restored by then, so a failure here is a warning naming what to run, never
 * the restore's exit code. applyWaitingGrants logs what it applied and every grant that failed.
 */
async function applyGrantsWaitingFor(target: string, o: {
  ctx: Context;
  storage: Storage;
  instance: InstanceConfig;
  params: ConnectionParams;
  hostname: string;
  identities: IdentitySource;
  localPath: string;
}): Promise<void> {
  const remote = o.storage.kind !== "local";
  const done = await withInterruption(async (signal) => {
    await using users = remote
      ? await downloadLatestUsers(o.storage, o.hostname, o.instance.id, signal)
      : undefined;
    if (remote && !users) return true;
    await applyWaitingGrants(o.instance, o.params, target, o.ctx.log, {
      storage: o.localPath,
      file: users?.path,
      hostname: o.hostname,
      identities: o.identities,
    });
    return true;
  }).catch((e) => {
    o.ctx.log.warn(
      `${target} is restored, but the grants waiting for it were not applied: ${errorText(e)} ` +
        `(apply them with \`users restore --instance ${o.instance.id}\`)`,
    );
    return true;
  });
  if (done === undefined) throw new InterruptedError("interrupted after the restore");
}

async function list(ctx: Context, storage: Storage, entries: CatalogEntry[]): Promise<number> {
  const rows = [];
  for (const e of entries) {
    // A remote backup is not downloaded to be listed: its checksum is checked on restore.
    const check = e.keys.dump && e.metadata?.status === "ok" && storage.kind === "local"
      ? await checkEntry(storage, e)
      : undefined;
    rows.push({
      database: e.database ?? "",
      started_at: e.started_at.toISOString(),
      status: e.status,
      bytes: e.bytes ?? null,
      compression: e.compression,
      encrypted: e.encrypted,
      checksum: check ? (check.ok ? "ok" : "bad") : "-",
      problem: check && !check.ok ? check.reason : e.metadata?.error ?? null,
      file: e.paths.dump ?? null,
      metadata: e.metadata ? e.paths.metadata! : null,
    });
  }
  // A backup that says ok but does not verify is data at risk: exit 1 so monitoring sees it.
  // Recorded failures (status failed) are history, not a new problem.
  const code = runExitCode(rows.map((r) => ({ status: r.checksum === "bad" ? "differs" : "ok" })));
  if (ctx.json) {
    ctx.outJson(rows);
    return code;
  }
  if (rows.length === 0) {
    ctx.out("no backups found");
    return code;
  }
  const table = [[
    "DATABASE",
    "STARTED (UTC)",
    "STATUS",
    "SIZE",
    "COMPRESSION",
    "CHECKSUM",
    "FILE",
  ]];
  for (const r of rows) {
    table.push([
      r.database,
      r.started_at.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      r.status,
      human(r.bytes ?? undefined),
      r.compression + (r.encrypted ? "+age" : ""),
      r.checksum + (r.problem ? ` (${r.problem})` : ""),
      r.file ?? "-",
    ]);
  }
  for (const line of formatTable(table)) ctx.out(line);
  return code;
}
