/**
 * A backup run: every selected database of every selected instance, each into its own file,
 * one failure never costing the others.
 *
 * The run takes the storage lock, sweeps partial files that crashed runs left, then for each
 * instance connects, lists and selects databases, and dumps them (up to `jobs` at once, largest
 * first). Progress and results are reported through callbacks; nothing here prints.
 *
 * @module
 */
import type { Config, ConnectionParams, InstanceConfig } from "../config/types.ts";
import {
  ConfigError,
  type ErrorKind,
  InterruptedError,
  type ItemOutcome,
  kindOf,
  VyaError,
} from "../errors.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { withTimeout } from "../timeout.ts";
import { VERSION } from "../version.ts";
import { codecFor } from "../stream/codecs.ts";
import type { DatabaseInfo, EngineAdapter, ObjectCounts, ServerVersion } from "../engines/types.ts";
import { connect, type Engine, engineFor, selectDatabases } from "../engines/mod.ts";
import type { DumpCommand } from "../dump/types.ts";
import { type BackupPaths, databaseBackupKeys, encodeName } from "../storage/layout.ts";
import {
  type BackupMetadata,
  finishedFields,
  pendingMetadata,
  writeFailureMetadata,
  writeMetadata,
} from "../storage/metadata.ts";
import { openStorage } from "../storage/open.ts";
import { keyBase, type Storage } from "../storage/storage.ts";
import { sweepPartials } from "../storage/writer.ts";
import { type StreamDumpOptions, type StreamDumpResult, streamDumpToFile } from "./stream_dump.ts";
import { type DumpTool, resolveDumpTool } from "./tools.ts";

/** What to back up and how. */
export interface BackupRequest {
  /** The effective configuration. */
  config: Config;
  /** Instances to back up, in order. */
  instances: InstanceConfig[];
  /** Only these databases (one instance only); a name that does not exist fails that name. */
  databases?: string[];
  /** List what would be done; write nothing. */
  dryRun?: boolean;
  /**
   * A run with no instance, or an instance whose selection matches no database, is not an
   * error (by default the first is a configuration error, exit 3, and the second fails that
   * instance: a backup that silently backs up nothing is how data gets lost).
   */
  allowEmpty?: boolean;
  /** Databases dumped at once (default: config.backup.jobs). */
  jobs?: number;
  /** Host name recorded in paths and metadata. */
  hostname: string;
  /** Where backups go (default: the storage of `config.storage`). */
  storage?: Storage;
  /** Where the run's lock is taken (default: `storage`; the local folder when streaming to S3). */
  lockStorage?: Storage;
  /** Where a failure record goes when `storage` refuses it (a remote streamed to, when down). */
  failureFallback?: Storage;
  /** Decrypts the instances' credentials. */
  credentials: { connectionParams(instance: InstanceConfig): Promise<ConnectionParams> };
  /** Logger (progress lines go through the callbacks). */
  log: Logger;
  /** Aborts the run: children are killed, partial files removed. */
  signal?: AbortSignal;
  /** Called as a database starts, progresses and ends. */
  events?: BackupEvents;
  /**
   * Runs after a database's backup is committed locally (the off-host upload hooks in here). A
   * throw fails the item with its message; the local backup stays as it is.
   */
  afterCommit?: (keys: BackupPaths, signal?: AbortSignal) => Promise<void>;
  /** Runs after an instance's databases, with its connection (users backup hooks in here). */
  afterInstance?: (ctx: InstanceContext) => Promise<ItemResult[]>;
  /**
   * Runs right after each database's or users backup's result, under the run's lock (not in a
   * dry run): retention's `prune: after_backup` hooks in here. Must not throw.
   */
  afterItem?: (result: ItemResult) => Promise<void>;
}

/** Progress callbacks. */
export interface BackupEvents {
  /** A database dump starts. */
  start?(instance: string, database: string, sizeBytes: number): void;
  /** Uncompressed bytes dumped so far. */
  progress?(instance: string, database: string, rawBytes: number): void;
  /** A database is done (ok or failed). */
  done?(result: ItemResult): void;
}

/** What an instance hook gets. */
export interface InstanceContext {
  /** The instance. */
  instance: InstanceConfig;
  /** Open driver connection. */
  adapter: EngineAdapter;
  /** Connection parameters (with the password). */
  params: ConnectionParams;
  /** Server version. */
  version: ServerVersion;
  /** The run's request. */
  request: BackupRequest;
}

/** The result of one item: a database or an instance's users. */
export interface ItemResult {
  /** Instance id. */
  instance: string;
  /** Database name; `(users)` for a users backup; absent for an instance-level failure. */
  database?: string;
  /** Outcome; `planned` in a dry run. */
  status: "ok" | "failed" | "planned";
  /** Server-reported size in bytes. */
  size_bytes?: number;
  /** Path of the backup file (the target path in a dry run). */
  path?: string;
  /** Bytes of the file. */
  bytes?: number;
  /** Uncompressed bytes. */
  raw_bytes?: number;
  /** Hex SHA-256 of the file. */
  sha256?: string;
  /** Wall time. */
  duration_ms?: number;
  /** Why it failed (redacted). */
  error?: string;
  /** Why it failed, as an error kind (absent: `failed`); it decides the exit code. */
  kind?: ErrorKind;
}

/** The whole run's results. */
export interface RunSummary {
  /** ISO-8601 UTC. */
  started_at: string;
  /** ISO-8601 UTC. */
  finished_at: string;
  /** Whether nothing was written. */
  dry_run: boolean;
  /** Every item, in the order finished. */
  results: ItemResult[];
}

/** An item's result as the exit-code policy sees it (a planned item counts as done). */
export function itemOutcome(r: ItemResult): ItemOutcome {
  return r.status === "failed" ? { status: "failed", kind: r.kind ?? "failed" } : { status: "ok" };
}

/** Runs a backup. Throws only for what stops the whole run (lock, interruption). */
export async function runBackup(request: BackupRequest): Promise<RunSummary> {
  const startedAt = new Date();
  const results: ItemResult[] = [];
  const record = (r: ItemResult) => {
    results.push(r);
    request.events?.done?.(r);
  };
  const storage = request.storage ?? openStorage(request.config.storage);
  request = { ...request, storage };
  if (request.instances.length === 0 && !request.allowEmpty) {
    throw new ConfigError("nothing to back up: the configuration has no enabled instance", {
      hint: "add or enable an instance, or pass --allow-empty if an empty run is intended",
    });
  }
  // The lock, and the partial files it guards, are local even when backups stream to a remote.
  const home = request.lockStorage ?? storage;
  let release = async () => {};
  if (!request.dryRun) {
    const lock = await home.lock();
    release = lock.release;
  }
  try {
    if (!request.dryRun) {
      await sweepPartials(home, encodeName(request.hostname), request.log);
    }
    for (const instance of request.instances) {
      request.signal?.throwIfAborted();
      await backupInstance(instance, request, record);
    }
  } catch (e) {
    if (request.signal?.aborted) throw new InterruptedError("backup interrupted", { cause: e });
    throw e;
  } finally {
    await release();
  }
  return {
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    dry_run: request.dryRun ?? false,
    results,
  };
}

async function backupInstance(
  instance: InstanceConfig,
  request: BackupRequest,
  record: (r: ItemResult) => void,
): Promise<void> {
  let adapter: EngineAdapter | undefined;
  // What this instance still owes the summary: if the instance fails half-way, each of these is
  // named as not backed up instead of vanishing from the report.
  const pending = new Set<string>();
  const usersPending = request.afterInstance !== undefined && !request.databases?.length &&
    instance.users.backup;
  let usersDone = false;
  let ahead: Lookahead<DatabaseInfo, Inspected> | undefined;
  try {
    const params = await request.credentials.connectionParams(instance);
    adapter = await connect(instance.type, params);
    const version = await adapter.serverVersion();
    const engine = engineFor(version);
    // Databases named on the command line: only they are sized.
    const all = await adapter.listDatabases(
      request.databases?.length ? { sizeOf: request.databases } : undefined,
    );
    const chosen = chooseDatabases(instance, request, engine, all, record);
    for (const db of chosen) pending.add(db.name);
    const order = [...chosen].sort((a, b) => b.sizeBytes - a.sizeBytes);
    const held = adapter;
    // The next database's catalog queries run while this one dumps: with hundreds of small
    // databases they would otherwise add up to a large part of the run. The first one's run
    // while the dump tool is found.
    const lookahead = new Lookahead(order, (db) => inspectBeforeDump(db, held, instance, request));
    ahead = lookahead;
    if (!request.dryRun) lookahead.prime();
    const tool = await resolveDumpTool(instance, version);
    const startedAt = new Date();
    const jobs = Math.max(1, request.jobs ?? request.config.backup.jobs);
    await pool(order, jobs, async (db, i, free) => {
      if (request.signal?.aborted) return;
      const result = await backupDatabase(db, {
        free,
        instance,
        request,
        adapter: held,
        params,
        version,
        tool,
        startedAt,
        inspected: request.dryRun ? undefined : lookahead.take(i),
      });
      pending.delete(db.name);
      record(result);
      if (!request.dryRun) await request.afterItem?.(result);
    });
    request.signal?.throwIfAborted();
    // A backup of named databases is not a backup of the server: users only with the rest.
    if (request.afterInstance && !request.databases?.length) {
      usersDone = true;
      for (
        const r of await request.afterInstance({ instance, adapter, params, version, request })
      ) {
        record(r);
        if (!request.dryRun) await request.afterItem?.(r);
      }
    }
  } catch (e) {
    if (request.signal?.aborted) throw e;
    const skipped = [...pending, ...(usersPending && !usersDone ? [USERS_ITEM] : [])];
    recordInstanceFailure(e, instance, request, skipped, record);
  } finally {
    // Inspections started ahead for databases never dumped (a failure, an interrupt) give their
    // connections back before the adapter closes: one still opening would outlive it. Bounded
    // like the close itself: a server that stopped answering must not hold up the exit.
    if (ahead) {
      await withTimeout(ahead.abandon((i) => i.release()), 5_000, "inspections").catch(() => {});
    }
    await adapter?.close().catch(() => {});
  }
}

/**
 * The databases of `all` this run backs up: the instance's selection, or the names the request
 * gives (each name that is a system database or absent is recorded as failed).
 */
function chooseDatabases(
  instance: InstanceConfig,
  request: BackupRequest,
  engine: Engine,
  all: DatabaseInfo[],
  record: (r: ItemResult) => void,
): DatabaseInfo[] {
  let chosen = selectDatabases(
    engine,
    all,
    instance.databases.include,
    instance.databases.exclude,
  );
  if (request.databases?.length) {
    chosen = [];
    // A name given twice would be dumped twice into the same file name.
    for (const name of new Set(request.databases)) {
      const found = all.find((d) => d.name === name);
      if (engine.isSystemDatabase(name)) {
        // Naming a system database does not make it user data: it is never backed up.
        record({
          instance: instance.id,
          database: name,
          status: "failed",
          error: `"${name}" is a system database of ${instance.id}; it is never backed up`,
        });
      } else if (!found) {
        record({
          instance: instance.id,
          database: name,
          status: "failed",
          error: `database "${name}" does not exist on ${instance.id}`,
        });
      } else {
        chosen.push(found);
      }
    }
  }
  if (chosen.length === 0 && !request.databases?.length) {
    const what = `no database of instance ${instance.id} matches the selection` +
      ` (include: ${JSON.stringify(instance.databases.include)},` +
      ` exclude: ${JSON.stringify(instance.databases.exclude)}; ${all.length} on the server)`;
    if (request.allowEmpty) {
      request.log.warn(what, { instance: instance.id });
    } else {
      // Exit 1/2, not 3: the configuration is valid, the server's databases are what changed.
      request.log.error(what, { instance: instance.id });
      record({ instance: instance.id, status: "failed", error: what });
    }
  }
  return chosen;
}

/** Logs why an instance failed and records each item it still owed (or the instance itself). */
function recordInstanceFailure(
  e: unknown,
  instance: InstanceConfig,
  request: BackupRequest,
  skipped: string[],
  record: (r: ItemResult) => void,
): void {
  // A credential or client tool problem fails this instance only; its kind makes the exit
  // code 3 when every failure of the run is of that sort.
  const kind = kindOf(e);
  const message = redact(e instanceof Error ? e.message : String(e));
  const hint = e instanceof VyaError && e.hint ? ` (${e.hint})` : "";
  request.log.error(`instance ${instance.id}: ${message}${hint}`, { instance: instance.id });
  if (skipped.length === 0) {
    record({
      instance: instance.id,
      status: "failed",
      error: message,
      kind,
    });
  }
  for (const database of skipped) {
    record({
      instance: instance.id,
      database,
      status: "failed",
      error: `not backed up: ${message}`,
      kind,
    });
  }
}

/** The item name of an instance's users backup in results. */
const USERS_ITEM = "(users)";

interface DatabaseJob {
  instance: InstanceConfig;
  request: BackupRequest;
  adapter: EngineAdapter;
  params: ConnectionParams;
  version: ServerVersion;
  tool: DumpTool;
  startedAt: Date;
  /** What the server said of the database before the dump (absent in a dry run). */
  inspected?: Promise<Inspected>;
  /** Lets the next database's dump start: this one's data is written, its commit remains. */
  free?: () => void;
}

/**
 * Backs up one database. Never throws but for an interruption: whatever fails (paths, the
 * storage, the server, the tool) fails this database only, with its reason in the result.
 */
async function backupDatabase(db: DatabaseInfo, job: DatabaseJob): Promise<ItemResult> {
  try {
    return await backupDatabaseOnce(db, job);
  } catch (e) {
    if (job.request.signal?.aborted) throw e;
    const message = redact(e instanceof Error ? e.message : String(e));
    job.request.log.error(`backup of ${job.instance.id}/${db.name} failed: ${message}`, {
      instance: job.instance.id,
      database: db.name,
    });
    return {
      instance: job.instance.id,
      database: db.name,
      status: "failed",
      size_bytes: db.sizeBytes,
      error: message,
    };
  } finally {
    // However the item ended, its held connection goes (a no-op when already given back).
    await job.inspected?.then((i) => i.release(), () => {});
  }
}

async function backupDatabaseOnce(db: DatabaseInfo, job: DatabaseJob): Promise<ItemResult> {
  const { instance, request, version } = job;
  const config = request.config;
  const format = config.storage.compression.format;
  const level = config.storage.compression.level;
  const storage = request.storage!;
  const recipients = config.storage.encryption?.recipients;
  const pathsAt = (at: Date) =>
    databaseBackupKeys(request.hostname, instance.id, db.name, at, format, !!recipients?.length);
  let started = new Date();
  let paths = pathsAt(started);
  if (!request.dryRun) ({ started, paths } = await freeStem(db, job, pathsAt));
  const base: ItemResult = {
    instance: instance.id,
    database: db.name,
    status: "planned",
    size_bytes: db.sizeBytes,
    path: storage.locate(paths.dump),
  };
  if (request.dryRun) return base;
  request.events?.start?.(instance.id, db.name, db.sizeBytes);
  const meta = initialMetadata(db, job, started);
  try {
    const inspected = await job.inspected!;
    meta.objects = inspected.objects;
    meta.database_properties = inspected.properties;
    const restoreWarning = inspected.restoreWarning;
    const snapshot = await shareSnapshot(job, db.name);
    // In the dump's own snapshot the counts read what the dump reads: they need not wait for it,
    // and the object counts taken before it are taken again there (a large object or table
    // created in between would make verify fail a good backup).
    let counted = snapshot ? countRows(job, db.name, { objects: true }) : undefined;
    let stderr = "";
    const dumpOptions: Omit<StreamDumpOptions, "command"> = {
      storage,
      target: paths,
      codec: codecFor(format),
      level,
      threads: compressionThreads(config),
      recipients,
      signal: request.signal,
      sizeHint: db.sizeBytes,
      stallTimeoutMs: config.backup.stall_timeout * 1000,
      onProgress: (raw) => request.events?.progress?.(instance.id, db.name, raw),
      onStderr: (text) => stderr = text,
      // Written before the dump gets its final name: a complete-looking dump has metadata.
      beforeRename: async (written) => {
        // The dump is durable under its partial name: the next dump may start meanwhile.
        job.free?.();
        Object.assign(meta, finishedFields(started), {
          status: "ok",
          raw_bytes: written.rawBytes,
          file: {
            name: keyBase(paths.dump),
            bytes: written.fileBytes,
            sha256: written.sha256,
          },
        });
        const rows = await (counted ?? countRows(job, db.name));
        // The counts were the last query on the database: its held connection (and the
        // snapshot, which the dump no longer needs) goes.
        (await job.inspected!).release();
        if (rows.tables) meta.tables = rows.tables;
        if (rows.objects) meta.objects = { ...rows.objects };
        const warnings = [...(meta.warnings ?? []), ...dumpWarnings(stderr, engineFor(version))];
        if (rows.warning) warnings.push(logged(job, db.name, rows.warning));
        if (restoreWarning) warnings.push(restoreWarning);
        if (warnings.length) meta.warnings = warnings;
        await writeMetadata(storage, paths.metadata, meta);
      },
    };
    const result = await dumpInSnapshot(job, db, meta, snapshot, dumpOptions, () => {
      counted = undefined;
    });
    return await afterCommit(job, db, paths, {
      ...base,
      status: "ok",
      bytes: result.fileBytes,
      raw_bytes: result.rawBytes,
      sha256: result.sha256,
      duration_ms: meta.duration_ms,
    });
  } catch (e) {
    if (request.signal?.aborted) throw e;
    return await failedItem(job, { base, meta, paths, started }, e);
  }
}

/** Records a database's failed backup (metadata, log) and returns its item. */
async function failedItem(
  job: DatabaseJob,
  item: { base: ItemResult; meta: BackupMetadata; paths: BackupPaths; started: Date },
  e: unknown,
): Promise<ItemResult> {
  const { request, instance } = job;
  const { base, meta } = item;
  const message = redact(e instanceof Error ? e.message : String(e));
  Object.assign(meta, finishedFields(item.started), {
    status: "failed",
    error: message,
    file: null,
  });
  await writeFailureMetadata(
    request.storage!,
    item.paths,
    meta,
    request.log,
    request.failureFallback,
  );
  request.log.error(`backup of ${instance.id}/${base.database} failed: ${message}`, {
    instance: instance.id,
    database: base.database,
  });
  return {
    ...base,
    status: "failed",
    path: undefined,
    error: message,
    duration_ms: meta.duration_ms,
  };
}

/**
 * The first stem (of this second or a later one) whose dump and metadata keys are free: stems
 * have one-second resolution, and a run in the same second as an earlier one would replace that
 * backup, or mark it failed beside its good dump. When the storage cannot be asked (a remote
 * streamed to is down), the failure is recorded in the request's fallback, never on a storage
 * where the key could not be checked free, and rethrown.
 */
async function freeStem(
  db: DatabaseInfo,
  job: DatabaseJob,
  pathsAt: (at: Date) => BackupPaths,
): Promise<{ started: Date; paths: BackupPaths }> {
  const storage = job.request.storage!;
  let started = new Date();
  let paths = pathsAt(started);
  try {
    while (await exists(storage, paths.dump) || await exists(storage, paths.metadata)) {
      await new Promise((resolve) => setTimeout(resolve, 1000 - started.getUTCMilliseconds()));
      started = new Date();
      paths = pathsAt(started);
    }
    return { started, paths };
  } catch (e) {
    const fallback = job.request.failureFallback;
    if (fallback && !job.request.signal?.aborted) {
      const meta = initialMetadata(db, job, started);
      meta.error = redact(e instanceof Error ? e.message : String(e));
      await writeFailureMetadata(fallback, paths, meta, job.request.log);
    }
    throw e;
  }
}

/**
 * Runs the request's afterCommit hook on a committed backup. Its failure fails the item but is
 * kept out of backupDatabaseOnce's catch, which would mark the good local backup failed.
 */
async function afterCommit(
  job: DatabaseJob,
  db: DatabaseInfo,
  paths: BackupPaths,
  done: ItemResult,
): Promise<ItemResult> {
  try {
    await job.request.afterCommit?.(paths, job.request.signal);
    return done;
  } catch (e) {
    if (job.request.signal?.aborted) throw e;
    const error = redact(e instanceof Error ? e.message : String(e));
    job.request.log.error(`${job.instance.id}/${db.name}: ${error}`, {
      instance: job.instance.id,
      database: db.name,
    });
    return { ...done, status: "failed", error };
  }
}

/** How long the per-table row counts may take before the backup goes on without them. */
const ROW_COUNT_TIMEOUT_MS = 60_000;

/**
 * Per-table row counts for `verify --restore`: in the dump's snapshot while it runs where the
 * engine shares one (PostgreSQL), right after the dump otherwise. They never hold up the dump
 * behind a lock, and a count that cannot be taken costs the backup nothing but a warning
 * (verify then compares what it has). With `objects` (in the snapshot) the object counts are
 * taken too; where they fail, the ones taken before the dump stay. Never rejects; the caller
 * logs the warning, since counts started beside a dump that then fails are never used.
 */
async function countRows(
  job: DatabaseJob,
  database: string,
  options: { objects?: boolean } = {},
): Promise<{ tables?: BackupMetadata["tables"]; objects?: ObjectCounts; warning?: string }> {
  const objects = options.objects
    ? job.adapter.objectCounts(database).catch(() => undefined)
    : undefined;
  try {
    const tables = await withTimeout(
      job.adapter.tableRows(database),
      ROW_COUNT_TIMEOUT_MS,
      `row counts of ${database}`,
    );
    return { tables, objects: await objects };
  } catch (e) {
    return {
      // Taken first (one query at a time in the snapshot), and bounded by their own timeouts.
      objects: await objects,
      warning: `row counts not recorded: ${redact(e instanceof Error ? e.message : String(e))}`,
    };
  }
}

/** A warning of one database, logged, for its metadata. */
function logged(job: DatabaseJob, database: string, warning: string): string {
  job.request.log.warn(warning, { instance: job.instance.id, database });
  return warning;
}

/**
 * A snapshot of the database for its dump and row counts to share, or undefined (the engine
 * shares none, or the server would not export one: the dump then takes its own, and the
 * counts follow it as before).
 */
async function shareSnapshot(
  job: DatabaseJob,
  database: string,
): Promise<{ id: string; end(): Promise<void> } | undefined> {
  const opening = job.adapter.shareSnapshot?.(database) ?? Promise.resolve(undefined);
  try {
    return await withTimeout(opening, ROW_COUNT_TIMEOUT_MS, `a snapshot of ${database}`);
  } catch (e) {
    // One that opens after all must not be the one the counts read: the dump runs without it.
    opening.then((late) => late?.end(), () => {});
    job.request.log.debug(
      `no snapshot shared with the dump of ${database}: ` +
        redact(e instanceof Error ? e.message : String(e)),
      { instance: job.instance.id, database },
    );
    return undefined;
  }
}

/**
 * Runs the dump in the shared snapshot (or its own where none is shared). A dump that could not
 * import it (the exporting session ended first, or the host name led pg_dump to another server)
 * runs once more in a snapshot of its own, with a warning; `onRetry` then drops the counts taken
 * in the shared one, which the dump no longer matches.
 */
async function dumpInSnapshot(
  job: DatabaseJob,
  db: DatabaseInfo,
  meta: BackupMetadata,
  snapshot: { id: string; end(): Promise<void> } | undefined,
  options: Omit<StreamDumpOptions, "command">,
  onRetry: () => void,
): Promise<StreamDumpResult> {
  const dump = async (snapshotId?: string) => {
    const command = await dumpCommandFor(job, db, snapshotId);
    meta.dump.options = command.options;
    return await streamDumpToFile({ ...options, command });
  };
  try {
    return await dump(snapshot?.id);
  } catch (e) {
    if (!snapshot || !isSnapshotRefused(e) || job.request.signal?.aborted) throw e;
    onRetry();
    await snapshot.end();
    const why = "the dump could not import the snapshot its row counts were taken in " +
      "(invalid snapshot identifier: the exporting session ended, or the host name leads to " +
      "more than one server); dumped again in a snapshot of its own";
    meta.warnings = [...(meta.warnings ?? []), logged(job, db.name, why)];
    return await dump(undefined);
  }
}

/** A dump that failed because pg_dump could not import the snapshot it was given. */
function isSnapshotRefused(e: unknown): boolean {
  return e instanceof Error && /invalid snapshot identifier/.test(e.message);
}

/** The metadata of a dump about to start: failed until the dump proves otherwise. */
function initialMetadata(db: DatabaseInfo, job: DatabaseJob, started: Date): BackupMetadata {
  const { instance, request, version, tool } = job;
  const { format, level } = request.config.storage.compression;
  return pendingMetadata({
    kind: "database",
    server: version,
    hostname: request.hostname,
    instance: instance.id,
    database: db.name,
    started,
    compression: { format, level },
    recipients: request.config.storage.encryption?.recipients,
    dump: { tool: tool.name, path: tool.path, tool_version: tool.version, options: [] },
    toolVersion: VERSION,
  });
}

/** What the server says of a database before it is dumped. */
interface Inspected {
  objects: BackupMetadata["objects"];
  properties: BackupMetadata["database_properties"];
  restoreWarning?: string;
  /** Gives the database's held connection back (idempotent). */
  release(): void;
}

/**
 * What the server says of the database before it is dumped: refuses a half-restored one, and
 * returns its object counts and properties and (logged) the engine's restore warning. Holds a
 * connection to the database (see EngineAdapter.hold) until the row counts after the dump.
 */
async function inspectBeforeDump(
  db: DatabaseInfo,
  adapter: EngineAdapter,
  instance: InstanceConfig,
  request: BackupRequest,
): Promise<Inspected> {
  const release = adapter.hold?.(db.name) ?? (() => {});
  try {
    // A half-restored copy backed up as "ok" would pass for a good backup (and let retention
    // delete the real ones): it is refused.
    if (await adapter.restoreMark(db.name)) {
      throw new VyaError(
        `${db.name} carries the mark of a restore that never finished: it holds part of a ` +
          `dump at most and is not backed up; restore it again, or drop it`,
        "failed",
      );
    }
    const objects = { ...(await adapter.objectCounts(db.name)) };
    const properties = await adapter.databaseProperties(db.name);
    const restoreWarning = await adapter.restoreWarning?.(db.name);
    if (restoreWarning) {
      request.log.warn(restoreWarning, { instance: instance.id, database: db.name });
    }
    return { objects, properties, restoreWarning, release };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Starts `prepare` for an item when the item before it is taken, so it runs while that one
 * works; each item's promise is created once. A promise never taken (an interrupted run)
 * never reports an unhandled rejection.
 */
class Lookahead<T, R> {
  readonly #items: T[];
  readonly #prepare: (item: T) => Promise<R>;
  readonly #started = new Map<number, Promise<R>>();

  constructor(items: T[], prepare: (item: T) => Promise<R>) {
    this.#items = items;
    this.#prepare = prepare;
  }

  #start(i: number): Promise<R> | undefined {
    if (i >= this.#items.length) return undefined;
    let p = this.#started.get(i);
    if (!p) {
      p = this.#prepare(this.#items[i]);
      p.catch(() => {});
      this.#started.set(i, p);
    }
    return p;
  }

  /** Starts the first item's preparation before it is taken. */
  prime(): void {
    this.#start(0);
  }

  /** Waits for the preparations started and never taken, and hands each result to `discard`. */
  async abandon(discard: (result: R) => void): Promise<void> {
    const left = [...this.#started.values()];
    this.#started.clear();
    for (const p of left) await p.then(discard, () => {});
  }

  /** The item's prepared result; starts the next item's. */
  take(i: number): Promise<R> {
    const p = this.#start(i)!;
    this.#started.delete(i);
    this.#start(i + 1);
    return p;
  }
}

/** Whether anything (a file, or a folder planted there) holds the key: never written over. */
async function exists(storage: Storage, key: string): Promise<boolean> {
  return await storage.exists(key);
}

/**
 * Databases smaller than this (as the server reports them) dump without the big stdout buffer:
 * its `stdbuf` wrapper costs an exec per database, which a server of hundreds of small
 * databases feels, and a small dump is few reads anyway.
 */
const BUFFERED_DUMP_FROM_BYTES = 64 * 1024 * 1024;

function dumpCommandFor(
  job: DatabaseJob,
  db: DatabaseInfo,
  snapshot?: string,
): Promise<DumpCommand> {
  const tuning = {
    nice: job.request.config.backup.nice,
    ionice: job.request.config.backup.ionice,
    bufferOutput: db.sizeBytes >= BUFFERED_DUMP_FROM_BYTES,
    snapshot,
  };
  return engineFor(job.version).dumpCommand(job.tool, job.params, db.name, tuning);
}

/** Threads for compression: the configured number, or one per core. */
export function compressionThreads(config: Config): number {
  const configured = config.storage.compression.threads;
  if (configured > 0) return configured;
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}

function dumpWarnings(stderr: string, engine: Engine): string[] {
  const warnings = stderr.split("\n").map((l) => l.trim()).filter((l) => /warning/i.test(l));
  return [...warnings, ...engine.dumpCaveats];
}

/**
 * Runs `work` over `items`, at most `limit` at a time; an item that calls its `free` lets the
 * next one start while it finishes (a dump that is written and only commits its sidecars
 * holds no dump slot). Waits for every started item before throwing the first error: an
 * interrupted run must not exit while another dump is still removing its partial file and its
 * options file.
 */
async function pool<T>(
  items: T[],
  limit: number,
  work: (item: T, index: number, free: () => void) => Promise<void>,
): Promise<void> {
  let next = 0;
  let slots = limit;
  let failure: { reason: unknown } | undefined;
  const running = new Set<Promise<void>>();
  await new Promise<void>((allDone) => {
    const launch = () => {
      while (slots > 0 && next < items.length && !failure) {
        slots--;
        const i = next++;
        let freed = false;
        const free = () => {
          if (freed) return;
          freed = true;
          slots++;
          launch();
        };
        const p: Promise<void> = work(items[i], i, free)
          .catch((e) => {
            failure ??= { reason: e };
          })
          .finally(() => {
            free();
            running.delete(p);
            if (running.size === 0) allDone();
          });
        running.add(p);
      }
    };
    launch();
    if (running.size === 0) allDone();
  });
  if (failure) throw failure.reason;
}
