/**
 * Users backup of an instance: every account as the statements that recreate it, one section
 * per account, written compressed (and age-encrypted with storage.encryption) and checksummed
 * with metadata listing the accounts (never a hash).
 *
 * Two entry points: {@linkcode usersAfterInstance} plugs into a backup run's `afterInstance`
 * hook (so `backup --all` takes users where `users.backup` is true), and
 * {@linkcode backupUsersOfInstances} is the standalone `users backup`.
 *
 * @module
 */
import type { Config, ConnectionParams, InstanceConfig } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { VERSION } from "../version.ts";
import { codecFor } from "../stream/codecs.ts";
import { connect, engineFor } from "../engines/mod.ts";
import type { ServerVersion } from "../engines/types.ts";
import { kindOf } from "../errors.ts";
import { usersBackupKeys } from "../storage/layout.ts";
import { openStorage } from "../storage/open.ts";
import { keyBase, type Storage } from "../storage/storage.ts";
import {
  type BackupMetadata,
  finishedFields,
  pendingMetadata,
  writeFailureMetadata,
  writeMetadata,
} from "../storage/metadata.ts";
import { writeBackupStream } from "../backup/stream_dump.ts";
import { compressionThreads, type InstanceContext, type ItemResult } from "../backup/run.ts";
import { formatUsersFile, USERS_FORMAT_VERSION, type UsersFile } from "./format.ts";
import { registerHashes } from "./mask.ts";
import type { AccountSummary } from "./summary.ts";

/** The `database` value of a users item in run results. */
export const USERS_ITEM = "(users)";

/** What a users backup of one instance needs. */
export interface UsersBackupOptions {
  /** The effective configuration (storage and compression). */
  config: Config;
  /** The instance. */
  instance: InstanceConfig;
  /** Its connection parameters (password registered with the redactor). */
  params: ConnectionParams;
  /** Its server version (flavor decides the method). */
  version: ServerVersion;
  /** Host name in the storage path and metadata. */
  hostname: string;
  /** Logger. */
  log: Logger;
  /** Read the accounts, write nothing. */
  dryRun?: boolean;
  /** Leave password hashes out (accounts come back without password, MySQL ones locked). */
  noPasswords?: boolean;
  /** Aborts the write. */
  signal?: AbortSignal;
  /** Where the backup goes (default: the storage of `config.storage`). */
  storage?: Storage;
  /** Where the failure record goes when `storage` refuses it. */
  failureFallback?: Storage;
}

interface Collected {
  file: UsersFile;
  summaries: AccountSummary[];
  warnings: string[];
  dump: BackupMetadata["dump"];
}

async function collect(o: UsersBackupOptions, takenAt: Date): Promise<Collected> {
  const header = {
    format: USERS_FORMAT_VERSION,
    engine: o.version.flavor,
    server_version: o.version.full,
    instance: o.instance.id,
    taken_at: takenAt.toISOString(),
  };
  const got = await engineFor(o.version).collectUsers({
    params: o.params,
    serverMajor: o.version.major,
    tools: o.instance.tools,
    exclude: o.instance.users.exclude,
    noPasswords: o.noPasswords,
  });
  return {
    file: { header, preamble: got.preamble, sections: got.sections },
    summaries: got.summaries,
    warnings: got.warnings,
    dump: got.dump,
  };
}

/** The metadata of a users backup about to start: failed until the file proves otherwise. */
function initialUsersMetadata(o: UsersBackupOptions, started: Date): BackupMetadata {
  const { format, level } = o.config.storage.compression;
  return pendingMetadata({
    kind: "users",
    server: o.version,
    hostname: o.hostname,
    instance: o.instance.id,
    started,
    compression: { format, level },
    recipients: o.config.storage.encryption?.recipients,
    dump: { tool: "", path: "", tool_version: "", options: [] },
    toolVersion: VERSION,
  });
}

/**
 * Backs up the accounts of one instance. Never throws for a failure of the instance's users
 * (it is returned as a failed item and recorded in failed metadata); throws only when
 * interrupted.
 */
export async function backupUsers(o: UsersBackupOptions): Promise<ItemResult> {
  const config = o.config;
  const format = config.storage.compression.format;
  const level = config.storage.compression.level;
  const started = new Date();
  const storage = o.storage ?? openStorage(config.storage);
  const recipients = config.storage.encryption?.recipients;
  const paths = usersBackupKeys(o.hostname, o.instance.id, started, format, !!recipients?.length);
  const where = storage.locate(paths.dump);
  const base: ItemResult = { instance: o.instance.id, database: USERS_ITEM, status: "planned" };
  const meta = initialUsersMetadata(o, started);
  try {
    if (o.dryRun) {
      // Only the catalog: what would be backed up, without running pg_dumpall.
      const accounts = await listAccounts(o);
      o.log.info(
        `users of ${o.instance.id}: would back up ${accounts.length} account(s) to ${where}`,
        { accounts: accounts.join(", ") },
      );
      return { ...base, path: where };
    }
    const got = await collect(o, started);
    registerHashes(got.file.sections.flatMap((s) => s.steps.map((st) => st.sql)));
    const text = formatUsersFile(got.file);
    const threads = compressionThreads(config);
    const written = await writeBackupStream(
      ReadableStream.from([new TextEncoder().encode(text)]),
      {
        storage,
        target: paths,
        codec: codecFor(format),
        level,
        threads,
        recipients,
        signal: o.signal,
        // Written before the file gets its final name: a complete-looking file has metadata.
        beforeRename: async (w) => {
          Object.assign(meta, {
            status: "ok",
            ...finishedFields(started),
            raw_bytes: w.rawBytes,
            file: { name: keyBase(paths.dump), bytes: w.fileBytes, sha256: w.sha256 },
            dump: got.dump,
            objects: {
              accounts: got.summaries.filter((s) => s.kind === "user").length,
              roles: got.summaries.filter((s) => s.kind === "role" && !s.pseudo).length,
            },
            accounts: got.summaries,
          });
          if (got.warnings.length) meta.warnings = got.warnings;
          await writeMetadata(storage, paths.metadata, meta);
        },
      },
    );
    o.log.info(
      `users of ${o.instance.id}: ${got.summaries.length} account(s) backed up to ${where}`,
    );
    return {
      ...base,
      status: "ok",
      path: where,
      bytes: written.fileBytes,
      raw_bytes: written.rawBytes,
      sha256: written.sha256,
      duration_ms: meta.duration_ms,
    };
  } catch (e) {
    if (o.signal?.aborted) throw e;
    const message = redact(e instanceof Error ? e.message : String(e));
    Object.assign(meta, {
      status: "failed",
      error: message,
      file: null,
      ...finishedFields(started),
    });
    await writeFailureMetadata(storage, paths, meta, o.log, o.failureFallback);
    o.log.error(`users backup of ${o.instance.id} failed: ${message}`, {
      instance: o.instance.id,
    });
    return {
      ...base,
      status: "failed",
      error: message,
      kind: kindOf(e),
      duration_ms: meta.duration_ms,
    };
  }
}

function listAccounts(o: UsersBackupOptions): Promise<string[]> {
  return engineFor(o.version).listAccounts(o.params, o.instance.users.exclude);
}

/**
 * The `afterInstance` hook of a backup run: backs up the instance's users when its
 * `users.backup` is true (nothing otherwise). Dry runs report the planned file.
 */
export async function usersAfterInstance(ctx: InstanceContext): Promise<ItemResult[]> {
  if (!ctx.instance.users.backup) return [];
  return [
    await backupUsers({
      config: ctx.request.config,
      instance: ctx.instance,
      params: ctx.params,
      version: ctx.version,
      hostname: ctx.request.hostname,
      log: ctx.request.log,
      dryRun: ctx.request.dryRun,
      signal: ctx.request.signal,
      storage: ctx.request.storage,
      failureFallback: ctx.request.failureFallback,
    }),
  ];
}

/** What the standalone `users backup` needs. */
export interface UsersBackupRequest {
  /** The effective configuration. */
  config: Config;
  /** Instances to take users of. */
  instances: InstanceConfig[];
  /** Host name in paths and metadata. */
  hostname: string;
  /** Decrypts the instances' credentials. */
  credentials: { connectionParams(instance: InstanceConfig): Promise<ConnectionParams> };
  /** Logger. */
  log: Logger;
  /** Write nothing. */
  dryRun?: boolean;
  /** Leave password hashes out. */
  noPasswords?: boolean;
  /** Aborts the run. */
  signal?: AbortSignal;
  /** Where backups go (default: the storage of `config.storage`). */
  storage?: Storage;
}

/**
 * Backs up the users of each instance under the storage lock (not taken in a dry run). An
 * instance that cannot be reached is a failed item; the others go on.
 */
export async function backupUsersOfInstances(req: UsersBackupRequest): Promise<ItemResult[]> {
  const results: ItemResult[] = [];
  const storage = req.storage ?? openStorage(req.config.storage);
  let release = async () => {};
  if (!req.dryRun) release = (await storage.lock()).release;
  try {
    for (const instance of req.instances) {
      req.signal?.throwIfAborted();
      try {
        const params = await req.credentials.connectionParams(instance);
        const adapter = await connect(instance.type, params);
        let version: ServerVersion;
        try {
          version = await adapter.serverVersion();
        } finally {
          await adapter.close().catch(() => {});
        }
        results.push(
          await backupUsers({
            config: req.config,
            instance,
            params,
            version,
            hostname: req.hostname,
            log: req.log,
            dryRun: req.dryRun,
            noPasswords: req.noPasswords,
            signal: req.signal,
            storage,
          }),
        );
      } catch (e) {
        if (req.signal?.aborted) throw e;
        const message = redact(e instanceof Error ? e.message : String(e));
        req.log.error(`instance ${instance.id}: ${message}`, { instance: instance.id });
        // A credential or permission problem has the kind that makes the exit code 3, as in
        // `backup`.
        results.push({
          instance: instance.id,
          database: USERS_ITEM,
          status: "failed",
          error: message,
          kind: kindOf(e),
        });
      }
    }
  } finally {
    await release();
  }
  return results;
}
