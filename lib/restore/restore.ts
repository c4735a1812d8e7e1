/**
 * One restore, as four steps in the order that keeps a server safe:
 *
 * 1. {@linkcode verifySource}: the file is read end to end (checksum, decryption of an age file
 *    with the configured identity, decompression, banner, completion marker) before any
 *    connection. A restore that creates its target from a backup with metadata reads only the
 *    file's start here ({@linkcode peekSource}), and the rest as it loads: each of these checks
 *    is then made before the mark is removed, and a failure drops the database it created.
 * 2. {@linkcode readTarget} and {@linkcode checkNeeds}: the restore lock on the target name is
 *    taken on the server, and the target, its mark, the roles and DEFINER accounts the dump
 *    needs and the server's lock capacity are read. Nothing changes yet; every refusal here
 *    exits 3.
 * 3. {@linkcode planRestore}: what will be done, as sentences (also what `--dry-run` prints).
 * 4. {@linkcode applyPlan}: the target is (re)created with its captured properties and marked
 *    incomplete, the dump streamed into the engine's own client, and the mark removed only once
 *    every byte has gone through and verified: on PostgreSQL in the load's own transaction,
 *    which the restore commits itself. A load that fails drops the database this run created,
 *    and only if it still carries this run's mark; a run that is killed leaves the mark, so the
 *    half-loaded copy never looks complete and the next restore into it replaces it.
 *
 * @module
 */
import { basename } from "node:path";
import type { ConnectionParams, InstanceConfig } from "../config/types.ts";
import type { BackupMetadata } from "../storage/metadata.ts";
import { type Logger, silentLogger } from "../log.ts";
import { redact } from "../redact.ts";
import { startChild } from "../process.ts";
import { connect, type Engine, engineFor, engineOf, familyOf } from "../engines/mod.ts";
import type { EngineAdapter, EngineFamily, ObjectCounts, ServerVersion } from "../engines/types.ts";
import { requireTools } from "../tools/find.ts";
import { ByteCounter } from "../stream/counter.ts";
import { fileChunks } from "../stream/file_chunks.ts";
import { decryptStream } from "../crypto/age_stream.ts";
import type { IdentitySource } from "../crypto/identity_source.ts";
import { sha256File, Sha256Stream } from "../stream/sha256.ts";
import { type DumpFacts, DumpFilter, type DumpFilterOptions } from "./dump_filter.ts";
import { parallelLoad } from "./parallel/load.ts";
import { BadBackupError, RestoreFailedError, RestoreRefusedError } from "./errors.ts";
import {
  assertComplete,
  COMPLETION_TAIL,
  type DumpInspection,
  inspectDump,
  openDump,
  peekDump,
  TailKeeper,
} from "./inspect.ts";
import type { TargetServer } from "./target.ts";
import type { RestoreMarker } from "./marker.ts";
import { LockError, OptionError, VyaError } from "../errors.ts";
import { formatDuration } from "../stream/stall.ts";
import { withTimeout } from "../timeout.ts";

/** A backup file to restore, with what is known about it. */
export interface RestoreSource {
  /** The dump file. */
  path: string;
  /** Its metadata, when it has some. */
  metadata?: BackupMetadata;
  /** Database name from an original-tool file name. */
  originalName?: string;
  /** The file follows the original tool's naming. */
  original?: boolean;
  /**
   * The SHA-256 of the file, computed by this run as it picked (`--latest`) or downloaded it:
   * the check of the file against its metadata before a load is not read again (a file changed
   * since is still caught by the hash taken during the load).
   */
  verifiedSha256?: string;
}

/** What to restore where. */
export interface RestoreRequest {
  /** The instance restored into. */
  instance: InstanceConfig;
  /** Its connection parameters (password decrypted). */
  params: ConnectionParams;
  /** The backup. */
  source: RestoreSource;
  /** Target database; default: the backup's database. */
  target?: string;
  /** Drop and recreate a target that holds objects. */
  force?: boolean;
  /** Check and describe; change nothing. */
  dryRun?: boolean;
  /** Skip ownership (the database and its objects belong to the connecting user). */
  noOwner?: boolean;
  /**
   * PostgreSQL: load in one transaction (default true). Off for databases with more relations
   * than the server can lock at once; the target's mark then shows a cut-short load.
   */
  singleTransaction?: boolean;
  /** MySQL/MariaDB: load although DEFINER accounts of the dump are missing on the server. */
  ignoreMissingDefiners?: boolean;
  /** How long dropping a target may wait for other sessions' locks (default 60 s). */
  lockWaitSeconds?: number;
  /**
   * A load that makes no progress this long (the client reads nothing and the server runs no
   * statement for the target, or does not answer) is ended as failed; 0 or absent: never.
   */
  stallTimeoutMs?: number;
  /** The identity file an age-encrypted backup is decrypted with (absent: refused). */
  identities?: IdentitySource;
  /** Logger. */
  log: Logger;
  /**
   * Progress: bytes of the file read in each phase; with jobs > 1 also the tables loaded
   * (`12/40 tables, loading: a, b`).
   */
  onProgress?: (phase: "verify" | "restore", bytes: number, total: number, detail?: string) => void;
  /**
   * Server sessions one database is loaded over (default 1: one session, on PostgreSQL in one
   * transaction). Fewer when the server has fewer connections free, or the dump holds large
   * objects.
   */
  jobs?: number;
  /** jobs > 1: bytes read ahead into the private spool folder and not yet loaded. */
  spoolLimit?: number;
  /** Aborts the load (the client is killed, a created target dropped). */
  signal?: AbortSignal;
  /**
   * A scratch restore (`verify --restore`): the target must not exist (or be one left marked by
   * an interrupted run), keeps its mark while `scratch` looks at the loaded database, and is
   * dropped afterwards however that ends, by the same rule as a failed load (only if this run
   * created it and it still carries this run's mark).
   */
  scratch?: (adapter: EngineAdapter, target: string) => Promise<void>;
}

/** What a restore did (or, in a dry run, would do). */
export interface RestoreResult {
  /** restored, or planned in a dry run. */
  status: "restored" | "planned";
  /** Instance id. */
  instance: string;
  /** Target database. */
  target: string;
  /** Database the backup was taken of, when known. */
  source_database?: string;
  /** The file. */
  file: string;
  /** postgresql or mysql (the dump's family). */
  engine: EngineFamily;
  /** Hex SHA-256 of the file (verified against the metadata when there is one). */
  sha256: string;
  /** Whether the file had metadata. */
  has_metadata: boolean;
  /** Bytes of the file and of the SQL in it. */
  bytes: number;
  /** Uncompressed bytes. */
  raw_bytes: number;
  /** Whether the target existed before. */
  target_existed: boolean;
  /** Steps, in order, as sentences. */
  actions: string[];
  /** Things the user should know. */
  warnings: string[];
  /** Objects counted in the target after the restore. */
  objects?: ObjectCounts;
  /** Wall time. */
  duration_ms: number;
}

/** Default of {@linkcode RestoreRequest.lockWaitSeconds}. */
export const DEFAULT_LOCK_WAIT_SECONDS = 60;

function isEmpty(c: ObjectCounts): boolean {
  return c.tables + c.views + c.routines + (c.sequences ?? 0) + (c.events ?? 0) +
      (c.large_objects ?? 0) === 0;
}

function describeCounts(c: ObjectCounts): string {
  return Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ") ||
    "no objects";
}

/** Runs a restore. Throws the errors of lib/restore/errors.ts (and ConnectError, ConfigError). */
export async function restore(request: RestoreRequest): Promise<RestoreResult> {
  const started = Date.now();
  const notes = new Notes(request.log);
  // Where the file may be read only as it loads, the server connection opens while its
  // checksum is taken. A file that fails is told first all the same, and an unreachable server
  // only once the file is known to be good.
  const early = mayPeek(request) ? connectServer(request) : undefined;
  early?.catch(() => {});
  // Not awaited: an interrupt must not wait for a server that does not answer.
  const closeEarly = () => void early?.then((c) => c.adapter.close(), () => {});
  let source: VerifiedSource;
  try {
    const peeked = early && await peekSource(request, early);
    if (peeked) source = peeked;
    else {
      // The whole file is read first, which can take minutes: a connection idle that long may
      // be gone (MySQL's wait_timeout), so the server is asked once the file is good.
      closeEarly();
      source = await verifySource(request, notes);
    }
  } catch (e) {
    closeEarly();
    throw e;
  }
  const connecting = source.streamed ? early! : connectServer(request);
  let session: Session;
  try {
    session = await openSession(request, source, await connecting);
  } catch (e) {
    throw await explainStreamed(e, request, source);
  }
  let loading = false;
  try {
    let state = await readTarget(session, request, source, notes);
    if (source.streamed && !await streamable(session, request, source, state)) {
      source = await verifySource(request, notes);
      // The verify took time: the target is read again right before it is changed.
      state = await readTarget(session, request, source, notes);
    }
    for (const warning of source.deferred ?? []) notes.warn(warning);
    await checkNeeds(session, request, source, state, notes);
    const plan = planRestore(session, request, source, state, notes);
    const result = (status: RestoreResult["status"]): RestoreResult => ({
      status,
      instance: request.instance.id,
      target: source.target,
      source_database: source.meta?.database ?? request.source.originalName,
      file: request.source.path,
      engine: source.engine,
      sha256: source.inspection.sha256,
      has_metadata: source.meta !== undefined,
      bytes: source.inspection.bytes,
      raw_bytes: source.inspection.rawBytes,
      target_existed: state.exists,
      actions: plan.actions,
      warnings: notes.warnings,
      duration_ms: Date.now() - started,
    });
    if (request.dryRun) return result("planned");
    loading = true;
    await applyPlan(session, request, source, state, plan, notes);
    const done = result("restored");
    if (request.scratch) return done;
    done.objects = await session.adapter.objectCounts(source.target).catch(() => undefined);
    compareCounts(source.meta, done.objects, source.target, notes);
    done.duration_ms = Date.now() - started;
    return done;
  } catch (e) {
    throw await explainStreamed(e, request, source, loading ? session : undefined);
  } finally {
    await session.close();
  }
}

/**
 * A restore that read the file only as it loaded it, and failed: the error the verify-first
 * order would have given instead, if any. The file is read whole now (a damaged, foreign or
 * changed file is told as such, exit 2 or 3, like before any change), and after a failed load
 * the needs the load ran into (a missing role, too many relations for one transaction) are
 * told as the same refusals. The database the run created is dropped already.
 */
async function explainStreamed(
  error: unknown,
  request: RestoreRequest,
  source: VerifiedSource,
  loaded?: Session,
): Promise<unknown> {
  if (
    !source.streamed || request.signal?.aborted || error instanceof LoadStalledError ||
    error instanceof BadBackupError // the verify pass's own refusal already
  ) {
    return error;
  }
  const quiet = new Notes(silentLogger);
  let full: VerifiedSource;
  try {
    full = await verifySource(request, quiet);
  } catch (refusal) {
    return refusal;
  }
  if (!loaded) return error;
  const needs = async () => {
    await checkRoles(loaded, request, full);
    await checkDefiners(loaded, request, full, quiet);
    await checkLockCapacity(loaded, request, full);
  };
  return await withTimeout(needs(), CLEANUP_MS, "checking the dump's needs").then(
    () => error,
    (refusal) => refusal instanceof RestoreRefusedError ? refusal : error,
  );
}

/** A load its watch ended (see `backup.stall_timeout`): the server may not answer at all. */
class LoadStalledError extends RestoreFailedError {}

/** Warnings, kept for the result and logged as they come. */
class Notes {
  readonly warnings: string[] = [];
  constructor(readonly log: Logger) {}
  warn(message: string): void {
    this.warnings.push(message);
    this.log.warn(message);
  }
}

/** A file that has been read end to end and may be restored. */
export interface VerifiedSource {
  /** What reading it found. */
  inspection: DumpInspection;
  /** Its metadata, when it has some. */
  meta?: BackupMetadata;
  /** The dump's engine family. */
  engine: EngineFamily;
  /** The database restored into. */
  target: string;
  /** The original tool's header is left out. */
  skipHeader: boolean;
  /**
   * Only the start of the file has been read ({@linkcode peekSource}): the load reads it once,
   * checking what the verify pass would have checked as it goes.
   */
  streamed?: boolean;
  /** Warnings about the file, told once it is known that the load streams it. */
  deferred?: string[];
}

/**
 * A restore that creates its target reads the file once, as it loads it, instead of twice
 * (verify, then load): a backup of this tool's with metadata (the checksum to hold it to), one
 * session, not a dry run or a scratch restore. Everything the verify pass looks at before the
 * server is touched is looked at as the load reads, and anything wrong ends the load before
 * its mark is removed, so that the new database is dropped: the checksum and the completion
 * marker at the end (PostgreSQL: before the COMMIT is sent), a statement that would leave the
 * target before it is sent, DEFINER accounts at the end. Undefined when the file must be read
 * first (see also {@linkcode streamable}).
 */
async function peekSource(
  request: RestoreRequest,
  connecting: Promise<ConnectedServer>,
): Promise<VerifiedSource | undefined> {
  const meta = request.source.metadata;
  // Called only where mayPeek said yes: the metadata has its file.
  if (!meta?.file) return undefined;
  // An existing target is read and changed only after the whole file verified, as always.
  const target = request.target ?? meta.database;
  if (!target || await targetExists(connecting, target)) return undefined;
  // The checksum still gates: nothing of a file that is not the recorded one is ever sent. It
  // reads only the compressed bytes, a fraction of the cost of decompressing them.
  const { path, verifiedSha256 } = request.source;
  const bytes = meta.file.bytes;
  if (verifiedSha256) request.log.debug(`${path}: checksum verified as the file was picked`);
  const sha256 = verifiedSha256 ?? await sha256File(path, {
    onBytes: request.onProgress && ((n) => request.onProgress!("verify", n, bytes)),
    signal: request.signal,
  }).catch((e) => {
    if (request.signal?.aborted) throw e;
    return undefined; // unreadable: the verify pass says why
  });
  if (sha256 !== meta.file.sha256) return undefined;
  const inspection = await peekDump(path, {
    expectedSha256: meta.file.sha256,
    identities: request.identities,
    recipients: meta.encryption?.recipients,
  });
  if (!inspection || inspection.bytes !== meta.file.bytes) return undefined;
  const notes = new Notes(silentLogger);
  try {
    const source = judgeSource(request, inspection, notes);
    return { ...source, streamed: true, deferred: notes.warnings };
  } catch {
    return undefined; // the verify pass tells what is wrong
  }
}

/** Whether the server has a database of exactly that name (no database is sized for it). */
async function databaseExists(adapter: EngineAdapter, name: string): Promise<boolean> {
  return (await adapter.listDatabases({ sizeOf: [] })).some((d) => d.name === name);
}

/**
 * Whether the file may be loaded as it is read, as far as the request and the metadata tell: a
 * good database backup with its object counts, not a dry run or a verification, and (with
 * several sessions) no large objects that would need the whole file first.
 */
function mayPeek(request: RestoreRequest): boolean {
  const meta = request.source.metadata;
  if (request.dryRun || request.scratch) return false;
  if (meta?.kind !== "database" || meta.status !== "ok" || !meta.file || !meta.objects) {
    return false;
  }
  return (request.jobs ?? 1) === 1 ||
    !sessionsNeedWholeFile(familyOf(request.instance.type), meta);
}

/** Whether database `name` exists, asked over the connection being opened. */
async function targetExists(
  connecting: Promise<ConnectedServer>,
  name: string,
): Promise<boolean> {
  try {
    return await databaseExists((await connecting).adapter, name);
  } catch {
    return true; // not known: the file is read first, and the connection's error told after
  }
}

/**
 * Whether a load may stream the file it has only peeked at: the target still does not exist
 * (it did not a moment ago, see {@linkcode peekSource}), and on PostgreSQL in one transaction,
 * the relations the metadata counts fit well within the server's lock table (the exact count is
 * only known from a read of the whole file).
 */
async function streamable(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  state: TargetState,
): Promise<boolean> {
  if (state.exists) return false;
  if (!session.server.transactional || request.singleTransaction === false) return true;
  const o = source.meta?.objects ?? {};
  const estimate = 3 * (o.tables ?? 0) + (o.sequences ?? 0) + (o.views ?? 0);
  const capacity = await session.server.lockCapacity().catch(() => undefined);
  // Indexes are not counted in the metadata: a wide margin for them (a table with up to a dozen
  // indexes). Past it the whole file is read first and counted exactly; guessing wrong would
  // fill the server's lock table for every session until the load failed.
  return capacity !== undefined && 5 * estimate < capacity;
}

/** Step 1: reads the file before any connection; throws BadBackupError when it is unusable. */
async function verifySource(
  request: RestoreRequest,
  notes: Notes,
): Promise<VerifiedSource> {
  const { source } = request;
  const meta = source.metadata;
  if (meta) {
    if (meta.kind !== "database") {
      throw new BadBackupError(`${source.path} is a ${meta.kind} backup, not a database backup`);
    }
    if (meta.status !== "ok" || !meta.file) {
      throw new BadBackupError(
        `${source.path} is a failed backup: ${meta.error ?? "status " + meta.status}`,
      );
    }
  }
  const inspection = await inspectDump(source.path, {
    expectedSha256: meta?.file?.sha256,
    onProgress: request.onProgress && ((n, t) => request.onProgress!("verify", n, t)),
    signal: request.signal,
    identities: request.identities,
    recipients: meta?.encryption?.recipients,
  });
  return judgeSource(request, inspection, notes);
}

/** What a read of the file (whole, or its start) says about restoring it; throws refusals. */
function judgeSource(
  request: RestoreRequest,
  inspection: DumpInspection,
  notes: Notes,
): VerifiedSource {
  const { instance, source } = request;
  const meta = source.metadata;
  if (meta && (meta.encryption !== undefined) !== inspection.encrypted) {
    throw new BadBackupError(
      `${source.path}: its metadata says it is ${meta.encryption ? "" : "not "}encrypted, ` +
        `but the file is ${inspection.encrypted ? "" : "not "}an age file`,
    );
  }
  if (!meta) {
    notes.warn(
      `${source.path} has no metadata: integrity is checked by decompressing it entirely ` +
        `and looking for the dump tool's completion marker; the database is created with the ` +
        `server's defaults`,
    );
  }
  const engine = inspection.facts.dialect!.family;
  const foreign = inspection.facts.foreign;
  if (foreign) {
    throw new BadBackupError(
      `${source.path}, line ${foreign.line}: \`${foreign.text}\` would leave the target ` +
        `database (or run a command on this machine); this is no plain dump of one database ` +
        `(a dump made with pg_dump --create or mysqldump --databases holds such statements)`,
      {
        hint: "dump the database alone (this tool's backups never hold such statements), or " +
          "load the file with the client yourself",
      },
    );
  }
  if (meta && familyOf(meta.engine) !== engine) {
    throw new BadBackupError(
      `${source.path}: metadata says ${meta.engine} but the file holds a ${engine} dump`,
    );
  }
  if (engine !== familyOf(instance.type)) {
    throw new BadBackupError(
      `${source.path} is a ${engineOf(engine).label} dump ` +
        `(${inspection.facts.banner}); instance ${instance.id} is ${instance.type}`,
    );
  }
  const target = request.target ?? meta?.database ?? source.originalName;
  if (target === undefined || target === "") {
    throw new OptionError(`${source.path} does not say which database it holds`, {
      flag: "--target NAME",
      reason: "name the database to restore into",
    });
  }
  const header = inspection.facts.headerStatements;
  if (header.length > 0) {
    notes.warn(
      `the file starts with a header of ${header.length} statement(s) before the dump ` +
        `(${[...new Set(header)].join(", ")}); it is skipped: the database is created by ` +
        `this restore and users by \`users restore\``,
    );
  }
  return { inspection, meta, engine, target, skipHeader: header.length > 0 };
}

/** The open connections of a restore. */
interface Session {
  engine: Engine;
  adapter: EngineAdapter;
  server: TargetServer;
  serverMajor: number;
  client: string;
  close(): Promise<void>;
}

/** The instance's server, connected: its adapter, version and engine. */
interface ConnectedServer {
  adapter: EngineAdapter;
  version: ServerVersion;
  engine: Engine;
}

async function connectServer(request: RestoreRequest): Promise<ConnectedServer> {
  const adapter = await connect(request.instance.type, request.params);
  try {
    const version = await adapter.serverVersion();
    return { adapter, version, engine: engineFor(version) };
  } catch (e) {
    await adapter.close();
    throw e;
  }
}

/** The session of the restore on `connected` (closed on failure): client tool, target. */
async function openSession(
  request: RestoreRequest,
  source: VerifiedSource,
  connected: ConnectedServer,
): Promise<Session> {
  const { instance } = request;
  const { adapter, version, engine } = connected;
  let server: TargetServer | undefined;
  try {
    if (engine.family !== source.engine) {
      throw new BadBackupError(
        `${request.source.path} is a ${source.engine} dump but ${instance.id} runs ` +
          `${version.flavor}`,
      );
    }
    // A load needs the client only: every other tool would cost its `--version` runs. The
    // target's connection opens meanwhile.
    const [found, opened] = await Promise.allSettled([
      engine.findTools(version.major, instance.tools, { roles: ["client"] }),
      engine.openRestoreTarget(request.params, version.major),
    ]);
    if (opened.status === "fulfilled") server = opened.value;
    if (found.status === "rejected") throw found.reason;
    const tools = requireTools(found.value);
    if (opened.status === "rejected") throw opened.reason;
    const s = opened.value;
    return {
      engine,
      adapter,
      server: s,
      serverMajor: version.major,
      client: tools.client!,
      close: async () => {
        await s.close();
        await withTimeout(adapter.close(), 5000, "closing the connection").catch(() => {});
      },
    };
  } catch (e) {
    await server?.close();
    await adapter.close();
    throw e;
  }
}

/** What the target looks like before anything changes. */
export interface TargetState {
  /** The database exists. */
  exists: boolean;
  /** What it holds, when it exists. */
  counts?: ObjectCounts;
  /** It holds tables, views, routines… */
  hasObjects: boolean;
  /** It carries the mark of a restore that never finished. */
  marker?: RestoreMarker;
  /** Other sessions connected to it. */
  sessions: number;
  /** Its comment (PostgreSQL), to put back when a load into it is rolled back. */
  comment?: string;
  /** Sessions the load runs over (1: today's one-session load). */
  jobs: number;
}

/**
 * Step 2a: takes the restore lock and reads the target. Throws RestoreRefusedError (exit 3) or
 * LockError (exit 4); nothing changes.
 */
async function readTarget(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  notes: Notes,
): Promise<TargetState> {
  const { server, adapter } = session;
  const { instance } = request;
  const target = source.target;
  const problem = server.nameProblem(target);
  if (problem) {
    throw new RestoreRefusedError(`cannot restore into ${target}: ${problem}`, {
      hint: "choose a shorter --target",
    });
  }
  if (!await server.lockTarget(target)) {
    throw new LockError(
      `another restore into ${target} on ${instance.id} is running; nothing was changed`,
      { hint: "wait for it to finish, or restore under another name with --target NAME" },
    );
  }
  const exists = await databaseExists(adapter, target);
  const state: TargetState = { exists, hasObjects: false, sessions: 0, jobs: 1 };
  if (exists) {
    state.marker = await server.readMarker(target);
    // Before counting: the count's own connection to the target is no other session.
    state.sessions = await server.sessionsUsing(target);
    state.counts = await adapter.objectCounts(target);
    state.hasObjects = !isEmpty(state.counts);
    state.comment = state.marker ? undefined : await server.comment(target);
  }
  if (state.marker && !state.marker.created && !request.force) {
    // The mark of a load into a database that existed before: it may hold more than the dump.
    throw new RestoreRefusedError(
      `database ${target} on ${instance.id} carries the mark of an unfinished restore into a ` +
        `database that existed before it; it is left alone`,
      { hint: "replace it with --force, or restore under another name with --target NAME" },
    );
  }
  if (state.marker) {
    notes.warn(
      `database ${target} on ${instance.id} was left incomplete by an interrupted restore` +
        `${state.marker.started_at ? ` (started ${state.marker.started_at}` : " ("}` +
        `${state.marker.file ? `, file ${state.marker.file})` : ")"}; it is dropped and ` +
        `restored again`,
    );
  } else if (exists && request.scratch) {
    throw new RestoreRefusedError(
      `scratch database ${target} already exists on ${instance.id}; it is left alone`,
    );
  } else if (state.hasObjects && !request.force) {
    throw new RestoreRefusedError(
      `database ${target} already exists on ${instance.id} and holds ` +
        `${describeCounts(state.counts!)}; it is left alone`,
      { hint: "restore under another name with --target NAME, or replace it with --force" },
    );
  }
  return state;
}

/**
 * Step 2b: checks what the dump needs of the server (roles, DEFINER accounts, lock capacity)
 * as far as the file has been read, and settles the sessions of the load. Throws
 * RestoreRefusedError (exit 3); nothing changes.
 */
async function checkNeeds(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  state: TargetState,
  notes: Notes,
): Promise<void> {
  await checkRoles(session, request, source);
  await checkDefiners(session, request, source, notes);
  state.jobs = await sessionsFor(session, request, source, notes);
  if (state.jobs === 1) await checkLockCapacity(session, request, source);
}

/**
 * How many sessions the load may use: what was asked, within the connections the server has
 * free (each session is one), and 1 for a PostgreSQL dump with large objects (pg_dump loads
 * them in a transaction of its own between the data and the indexes). Never refuses.
 */
async function sessionsFor(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  notes: Notes,
): Promise<number> {
  const asked = Math.max(1, Math.floor(request.jobs ?? 1));
  if (asked === 1) return 1;
  if (source.inspection.facts.largeObjects) {
    notes.warn(`using 1 session: the dump holds large objects, which load in one session`);
    return 1;
  }
  const room = await session.server.freeConnections().catch(() => undefined);
  if (room !== undefined && room.free < asked) {
    const n = Math.max(1, room.free);
    notes.warn(
      `using ${n} session${n === 1 ? "" : "s"}: ${room.limit} leaves ${Math.max(0, room.free)} ` +
        `free on ${request.instance.id} (${asked} asked)`,
    );
    return n;
  }
  return asked;
}

async function checkRoles(session: Session, request: RestoreRequest, source: VerifiedSource) {
  const facts = source.inspection.facts;
  const noOwner = request.noOwner ?? false;
  const needed = new Set([
    ...session.engine.propertyRoles(source.meta?.database_properties ?? {}, noOwner),
    ...facts.privilegeRoles,
    ...(noOwner ? [] : facts.ownerRoles),
  ]);
  if (!session.engine.ownership || needed.size === 0) return;
  const missing = await session.server.missingRoles([...needed]);
  if (missing.length) {
    throw new RestoreRefusedError(
      `role(s) missing on ${request.instance.id}: ${missing.join(", ")}; the backup assigns ` +
        `ownership or privileges to them`,
      {
        hint: "create them first with `users restore` (from this instance's users backup)" +
          (noOwner ? "" : ", or skip ownership with --no-owner"),
      },
    );
  }
}

async function checkDefiners(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  notes: Notes,
) {
  const definers = [...source.inspection.facts.definers.values()];
  if (definers.length === 0) return;
  const missing = await session.server.missingDefiners(definers);
  if (missing === undefined) {
    notes.warn(
      `could not read the accounts of ${request.instance.id} to check the dump's DEFINER ` +
        `accounts (${definers.length}); views, routines, triggers and events whose definer is ` +
        `missing fail at first use`,
    );
    return;
  }
  if (missing.length === 0) return;
  const what = `views, routines, triggers or events of the dump run as account(s) missing on ` +
    `${request.instance.id}: ${missing.join(", ")}`;
  if (request.ignoreMissingDefiners) {
    notes.warn(
      `${what}; they are loaded anyway (--ignore-missing-definers) and fail at first ` +
        `use until the accounts exist`,
    );
    return;
  }
  throw new RestoreRefusedError(
    `${what}; they would load and then fail at first use ` +
      `(ERROR 1449: The user specified as a definer does not exist)`,
    {
      hint: `create the accounts first with \`users restore --instance ${request.instance.id} ` +
        `--user NAME@HOST\` (from this instance's users backup), or load anyway with ` +
        `--ignore-missing-definers`,
    },
  );
}

async function checkLockCapacity(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
) {
  if (!session.server.transactional || request.singleTransaction === false) return;
  const relations = source.inspection.facts.relations;
  const capacity = await session.server.lockCapacity();
  if (capacity === undefined || relations <= capacity) return;
  throw new RestoreRefusedError(
    `${request.source.path} creates about ${relations} relations (tables with their TOAST ` +
      `tables, indexes, sequences, views); restoring it in one transaction locks each of them ` +
      `until the end, and ${request.instance.id} can lock ${capacity} at once ` +
      `(max_locks_per_transaction × (max_connections + max_prepared_transactions)), so the load ` +
      `would fail with "out of shared memory"`,
    {
      hint: `restore with --no-single-transaction (the target stays marked incomplete until ` +
        `the load ends, and is dropped if it fails), or raise max_locks_per_transaction until ` +
        `that product exceeds ${relations}, and restart the server`,
    },
  );
}

/** Step 3: what will be done. */
export interface RestorePlan {
  /** Why the existing target is dropped first, if it is. */
  drop?: "force" | "interrupted";
  /** Whether the target is created. */
  create: boolean;
  /** The statements that create it. */
  createStatements: string[];
  /** The mark the target carries until the load is complete. */
  marker: RestoreMarker;
  /** PostgreSQL: the load runs in one transaction the restore commits. */
  ownTransaction: boolean;
  /** The comment the database is left with (PostgreSQL). */
  finalComment?: string;
  /** Every step, as sentences. */
  actions: string[];
}

function planRestore(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  state: TargetState,
  notes: Notes,
): RestorePlan {
  const { server } = session;
  const { inspection, meta, target } = source;
  const where = `${target} on ${request.instance.id}`;
  const wait = request.lockWaitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS;
  const drop = state.marker ? "interrupted" : state.hasObjects ? "force" : undefined;
  const create = !state.exists || drop !== undefined;
  const createStatements = create
    ? server.createStatements(target, meta?.database_properties, { noOwner: request.noOwner })
    : [];
  const ownTransaction = server.transactional && request.singleTransaction !== false &&
    state.jobs === 1;
  const actions = [
    source.streamed
      ? `read ${request.source.path} once, as it is loaded (${inspection.bytes} bytes; its ` +
        `sha256 ${inspection.sha256} from its metadata, the completion marker and what the ` +
        `dump needs of the server are checked before the mark is removed)`
      : `verified ${request.source.path} (${inspection.bytes} bytes, sha256 ` +
        `${inspection.sha256}${meta ? ", matches its metadata" : ", no metadata"})`,
    `took the restore lock on ${where}`,
  ];
  if (drop === "force") {
    actions.push(
      `drop database ${where}, which holds ${describeCounts(state.counts!)} (--force); ` +
        server.dropEffect(state.sessions, wait),
    );
  } else if (drop === "interrupted") {
    actions.push(`drop database ${where}, left incomplete by an interrupted restore`);
  }
  const markAction = `mark ${target} incomplete until the load has gone through`;
  if (create) {
    for (const s of createStatements) {
      actions.push(`run: ${s}`);
      if (CREATES_DATABASE.test(s)) actions.push(markAction);
    }
  } else {
    actions.push(`load into the existing empty database ${where}`, markAction);
    notes.warn(
      `database ${target} exists and is empty: the dump is loaded into it as it is; its ` +
        `owner, encoding and other properties are not changed`,
    );
  }
  if (source.skipHeader) {
    actions.push(
      `skip the original tool's header (lines before line ${inspection.facts.bannerLine})`,
    );
  }
  if (request.noOwner && session.engine.ownership) {
    actions.push(
      `skip ${
        inspection.facts.ownerRoles.size ? "the ALTER … OWNER TO statements" : "ownership"
      }: objects belong to ${request.params.user}`,
    );
  }
  actions.push(
    `stream ${source.streamed ? meta?.raw_bytes : inspection.rawBytes} bytes of SQL into ${
      basename(session.client)
    }` +
      (ownTransaction ? " in one transaction, committed once the whole file has verified" : "") +
      (state.jobs > 1 ? ` over ${state.jobs} sessions (${PARALLEL_PLAN[source.engine]})` : ""),
  );
  if (server.transactional && state.jobs > 1) {
    notes.warn(
      `the load over ${state.jobs} sessions is not one transaction: until it ends, ${target} ` +
        `holds part of the data and is marked incomplete`,
    );
  } else if (server.transactional && !ownTransaction) {
    notes.warn(
      `the load is not one transaction (--no-single-transaction): until it ends, ${target} ` +
        `holds part of the data and is marked incomplete`,
    );
  }
  actions.push(`remove the mark`);
  return {
    drop,
    create,
    createStatements,
    marker: {
      run: crypto.randomUUID(),
      started_at: new Date().toISOString(),
      // Safe characters only: the mark's text needs no quoting on any engine or sql_mode.
      file: basename(request.source.path).replace(/[^\w.%+-]/g, "_"),
      created: create,
    },
    ownTransaction,
    finalComment: (create ? meta?.database_properties?.comment : state.comment) ?? undefined,
    actions,
  };
}

/**
 * Engines whose dumps with large objects load in one session (PostgreSQL: pg_dump wraps them in
 * a transaction of its own).
 */
const LARGE_OBJECTS_IN_ONE_SESSION: Record<EngineFamily, boolean> = {
  postgresql: true,
  mysql: false,
};

/**
 * Whether the sessions of a parallel load depend on a fact only a read of the whole file gives:
 * whether the dump holds large objects, unless its metadata counted them (backups since the
 * count was recorded). Such a load verifies first.
 */
function sessionsNeedWholeFile(family: EngineFamily, meta: BackupMetadata): boolean {
  return LARGE_OBJECTS_IN_ONE_SESSION[family] && meta.objects?.large_objects !== 0;
}

/** What each phase of a parallel load does, for the plan. */
const PARALLEL_PLAN: Record<EngineFamily, string> = {
  postgresql: "pre-data in one, table data and then indexes over all, constraints, foreign " +
    "keys, triggers and privileges in one, in dump order",
  mysql: "the prelude in one, each table's structure, rows and triggers in one of them, views, " +
    "routines and events in one after all tables",
};

/** Step 4: changes the server as planned. */
async function applyPlan(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  state: TargetState,
  plan: RestorePlan,
  notes: Notes,
): Promise<void> {
  const { server } = session;
  const { target } = source;
  const log = request.log;
  const where = `${target} on ${request.instance.id}`;
  const wait = request.lockWaitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS;
  if (plan.drop === "force") {
    log.warn(
      `dropping database ${where} (--force); it held ${describeCounts(state.counts!)}; ` +
        server.dropEffect(state.sessions, wait),
    );
    await server.drop(target, wait);
  } else if (plan.drop === "interrupted") {
    log.warn(`dropping database ${where}, left incomplete by an interrupted restore`);
    await server.drop(target, wait);
  }
  let created = false;
  let done = false;
  try {
    const mark = () => server.execute(server.markStatements(target, plan.marker));
    if (plan.create) {
      log.info(`creating database ${where}`);
      for (const statement of plan.createStatements) {
        await server.execute([statement]);
        if (created || !CREATES_DATABASE.test(statement)) continue;
        // Only now is the database this run's own (a CREATE that failed, e.g. the name exists,
        // made nothing this run may drop), and it is marked at once: a property statement that
        // fails after it (a setting this server does not know) leaves nothing behind, and a
        // kill -9 nothing that looks like a whole database.
        created = true;
        await mark();
      }
      if (!created) throw new Error(`no CREATE DATABASE among ${plan.createStatements.length}`);
    } else await mark();
    // A scratch database keeps its mark to the end: it is never a usable copy.
    const unmark = request.scratch ? [] : server.unmarkStatements(target, plan.finalComment);
    await load(session, source, {
      prefix: plan.ownTransaction ? "BEGIN;\n" : "",
      // A newline first: a dump whose last line lacks one (and ends in a `--` comment) would
      // otherwise swallow the first statement of the trailer.
      trailer: plan.ownTransaction
        ? "\n" + unmark.map((s) => s + ";\n").join("") + "COMMIT;\n"
        : "",
      ownTransaction: plan.ownTransaction,
      noOwner: request.noOwner && session.engine.ownership,
      jobs: state.jobs,
      request,
      notes,
    });
    if (request.scratch) await request.scratch(session.adapter, target);
    else {
      if (!plan.ownTransaction) await server.execute(unmark);
      if (await server.readMarker(target)) {
        throw new RestoreFailedError(
          `the dump went through but ${where} still carries the mark of an unfinished restore`,
        );
      }
    }
    done = true;
  } finally {
    if (!done || request.scratch) await cleanUp(session, request, source, state, plan, created);
  }
  if (request.scratch && await databaseExists(session.adapter, target)) {
    throw new VyaError(`the scratch database ${where} could not be dropped (see above)`, "failed");
  }
}

/** The one statement of TargetServer.createStatements that creates the database. */
const CREATES_DATABASE = /^CREATE DATABASE /;

// How long each clean-up step may wait for the server.
const CLEANUP_MS = 30_000;

/** After a failed load: drops what this run created and still owns, and nothing else. */
async function cleanUp(
  session: Session,
  request: RestoreRequest,
  source: VerifiedSource,
  state: TargetState,
  plan: RestorePlan,
  created: boolean,
): Promise<void> {
  const { server } = session;
  const { target } = source;
  const log = request.log;
  const where = `${target} on ${request.instance.id}`;
  const failed = (what: string) => (d: unknown) =>
    log.error(`could not ${what} ${where}: ${redact(String((d as Error)?.message ?? d))}`);
  // Bounded: after a stall the server may not answer at all, and the run must still end.
  const bound = <T>(p: Promise<T>) => withTimeout(p, CLEANUP_MS, `cleaning up ${where}`);
  const marker = await bound(server.readMarker(target)).catch(() => undefined);
  if (created) {
    if (marker?.run !== plan.marker.run) {
      log.error(
        `not dropping ${where}: it does not carry this restore's mark` +
          (marker === undefined ? " (or the server did not answer)" : ""),
      );
      return;
    }
    // The session (and its lock) may have been lost and re-made during a long load: drop only
    // while no other restore holds the name.
    if (!await bound(server.lockTarget(target)).catch(() => false)) {
      log.error(`not dropping ${where}: another restore holds its lock now`);
      return;
    }
    if (request.scratch) log.info(`dropping the scratch database ${where}`);
    else log.warn(`restore failed: dropping the partly restored database ${where}`);
    await bound(server.drop(target, request.lockWaitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS))
      .catch(failed("drop"));
  } else if (plan.ownTransaction && marker?.run === plan.marker.run) {
    // The load was rolled back: the existing empty database is as it was, but for its comment.
    await bound(server.execute(server.unmarkStatements(target, state.comment)))
      .catch(failed("unmark"));
  } else if (marker) {
    log.warn(
      `${where} holds part of the dump and is marked incomplete; the next restore into it ` +
        `replaces it`,
    );
  }
}

function compareCounts(
  meta: BackupMetadata | undefined,
  objects: ObjectCounts | undefined,
  target: string,
  notes: Notes,
) {
  if (!meta?.objects || !objects) return;
  for (const [kind, n] of Object.entries(meta.objects)) {
    const got = (objects as unknown as Record<string, number | undefined>)[kind];
    if (got !== undefined && got !== n) {
      notes.warn(`the backup recorded ${n} ${kind} but ${target} now holds ${got}`);
    }
  }
}

interface LoadOptions {
  /** Sent before the dump. */
  prefix: string;
  /** Sent after the dump, only once every byte has gone through and the checksum verified. */
  trailer: string;
  ownTransaction: boolean;
  noOwner?: boolean;
  /** Sessions (1: one client, the SQL streamed through). */
  jobs: number;
  request: RestoreRequest;
  notes: Notes;
}

/** Streams the dump into the client; throws RestoreFailedError with the server's message. */
async function load(session: Session, source: VerifiedSource, options: LoadOptions) {
  const { request } = options;
  const { inspection, target } = source;
  const filterOptions = {
    dialect: inspection.facts.dialect,
    skipHeader: source.skipHeader,
    noOwner: options.noOwner,
    targetMajor: session.engine.filterTargetMajor(session.serverMajor),
    ownTransaction: options.ownTransaction,
    // Verified files hold no foreign statement; a file changed since, or streamed, may.
    refuseForeign: true,
    collectDefiners: source.streamed,
    // Sessions were settled from the metadata's count of none: a large object (one created
    // between that count and the dump) ends the load, and the database it created is dropped.
    refuseLargeObjects: source.streamed && options.jobs > 1,
  };
  if (options.jobs > 1) return await loadParallel(session, source, options, filterOptions);
  const { child: spec, cleanup } = await session.server.clientCommand(session.client, target);
  const filter = new DumpFilter(filterOptions);
  const tail = source.streamed ? new TailKeeper(COMPLETION_TAIL) : undefined;
  const sha = new Sha256Stream();
  const counter = new ByteCounter({
    onProgress: request.onProgress &&
      ((n) => request.onProgress!("restore", n, inspection.bytes)),
  });
  let child: ReturnType<typeof startChild> | undefined;
  const onAbort = () => child?.kill(1000);
  // A signal that came before the load (while verifying, planning) stops it here already.
  request.signal?.throwIfAborted();
  request.signal?.addEventListener("abort", onAbort, { once: true });
  const watch = new LoadWatch(
    request.stallTimeoutMs ?? 0,
    () => session.server.busy(target),
    () => child?.kill(1000),
  );
  try {
    child = startChild(spec);
    // The file is hashed again as it is loaded: a file changed since the check is caught, and
    // then the trailer (the COMMIT) is never sent.
    const raw = await openRaw(inspection);
    const content = raw.readable.pipeThrough(counter).pipeThrough(sha);
    let plain = await raw.decompress(content);
    if (tail) plain = plain.pipeThrough(tail.tap());
    const sql = plain.pipeThrough(filter);
    const endCheck = endOfInput(session, source, options, sha, tail);
    const verified = async () => {
      await endCheck(filter.reader.facts);
      return options.trailer;
    };
    let inputFailed = false;
    const feeding = feed(child.process.stdin, sql, options.prefix, verified, {
      progress: () => watch.touch(),
      // The client must not run what it holds of a statement cut short: it goes first.
      onInputError: () => {
        inputFailed = true;
        child?.kill(0);
      },
    }).then(() => undefined, (e) => e);
    const [feedError, status, stderr] = await Promise.all([
      feeding,
      child.process.status,
      child.stderr,
    ]);
    // A signal after the whole load went through changes nothing: it is restored.
    if (request.signal?.aborted && (!status.success || feedError)) {
      throw new RestoreFailedError("restore interrupted");
    }
    if (watch.stalled) {
      throw new LoadStalledError(
        `restore into ${target} ${watch.stalled} (${basename(spec.cmd)} killed; see ` +
          `backup.stall_timeout)`,
      );
    }
    if (feedError && inputFailed) throw describeInputError(feedError, target);
    if (!status.success) {
      throw new RestoreFailedError(
        `restore into ${target} failed: ` +
          describeClientError(
            stderr,
            spec.cmd,
            // The client counts the lines the restore sent before the dump too.
            (sent) => filter.reader.inputLine(sent - countLines(options.prefix)),
          ),
      );
    }
    if (feedError) throw describeInputError(feedError, target);
    const noise = stderr.split("\n").filter((l) => l.trim());
    for (const line of noise.slice(0, 20)) request.log.warn(`${basename(spec.cmd)}: ${line}`);
  } finally {
    watch.stop();
    request.signal?.removeEventListener("abort", onAbort);
    child?.kill(1000);
    await cleanup();
  }
}

/**
 * {@linkcode load} over several sessions (lib/restore/parallel): no transaction of its own (the
 * mark alone says the load is unfinished); the file is hashed again as it is read, and a change
 * fails the load before the mark is removed.
 */
async function loadParallel(
  session: Session,
  source: VerifiedSource,
  options: LoadOptions,
  filterOptions: DumpFilterOptions,
): Promise<void> {
  const { request } = options;
  const { inspection, target } = source;
  const sha = new Sha256Stream();
  let bytes = 0;
  let detail: string | undefined;
  const progress = request.onProgress;
  const counter = new ByteCounter({
    onProgress: progress && ((n) => progress("restore", bytes = n, inspection.bytes, detail)),
  });
  request.signal?.throwIfAborted();
  const stop = new AbortController();
  const onAbort = () => stop.abort(new RestoreFailedError("restore interrupted"));
  request.signal?.addEventListener("abort", onAbort, { once: true });
  const watch = new LoadWatch(
    request.stallTimeoutMs ?? 0,
    () => session.server.busy(target),
    () => stop.abort(new RestoreFailedError("stalled")),
  );
  const tail = source.streamed ? new TailKeeper(COMPLETION_TAIL) : undefined;
  try {
    const raw = await openRaw(inspection);
    const content = raw.readable.pipeThrough(counter).pipeThrough(sha);
    const plain = await raw.decompress(content);
    await parallelLoad({
      jobs: options.jobs,
      family: source.engine,
      sql: tail ? plain.pipeThrough(tail.tap()) : plain,
      filter: filterOptions,
      client: () => session.server.clientCommand(session.client, target),
      verified: endOfInput(session, source, options, sha, tail),
      signal: stop.signal,
      onActivity: () => watch.touch(),
      onTables: progress && ((done, total, loading) => {
        detail = `${done}/${total} tables` +
          (loading.length ? `, loading ${loading.slice(0, 3).join(", ")}` : "") +
          (loading.length > 3 ? "…" : "");
        progress("restore", bytes, inspection.bytes, detail);
      }),
      spoolLimit: request.spoolLimit,
      target,
      describe: describeClientError,
      log: request.log,
    });
  } catch (e) {
    if (watch.stalled) {
      throw new LoadStalledError(
        `restore into ${target} ${watch.stalled} (${basename(session.client)} sessions killed; ` +
          `see backup.stall_timeout)`,
      );
    }
    if (request.signal?.aborted) throw new RestoreFailedError("restore interrupted");
    throw describeInputError(e, target);
  } finally {
    watch.stop();
    request.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Watches a load for progress: input read by the client, or else a statement running on the
 * server (an index build reads nothing for a long time and is progress). A server that does
 * not answer the question is stalled too.
 */
class LoadWatch {
  #last = performance.now();
  #timer?: ReturnType<typeof setInterval>;
  #probing = false;
  /** Why the load was ended, once it was. */
  stalled?: string;

  constructor(timeoutMs: number, busy: () => Promise<boolean>, kill: () => void) {
    if (!(timeoutMs > 0)) return;
    this.#timer = setInterval(async () => {
      if (this.#probing || performance.now() - this.#last < timeoutMs) return;
      this.#probing = true;
      const working = await withTimeout(busy(), Math.min(timeoutMs, 10_000), "progress check")
        .catch(() => false);
      this.#probing = false;
      if (this.#timer === undefined) return;
      if (working) {
        this.touch();
        return;
      }
      this.stalled = `made no progress for ${formatDuration(timeoutMs)}: restore stalled`;
      this.stop();
      kill();
    }, Math.max(50, Math.min(1000, timeoutMs / 4)));
  }

  touch(): void {
    this.#last = performance.now();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function countLines(text: string): number {
  return text.split("\n").length - 1;
}

/**
 * Writes `prefix`, the SQL, then what `finish` returns once the SQL has ended. On any failure
 * the client's input is closed without the trailer: a PostgreSQL load then rolls back.
 */
async function feed(
  stdin: WritableStream<Uint8Array>,
  sql: ReadableStream<Uint8Array>,
  prefix: string,
  finish: () => Promise<string>,
  on: { progress: () => void; onInputError: () => void },
): Promise<void> {
  const encoder = new TextEncoder();
  const writer = stdin.getWriter();
  const input = sql.getReader();
  // An error of the input (the file, its decompression, the filter, the final checks) is told
  // before the client's input closes, so that the client can be stopped first.
  const read = async <T>(step: () => Promise<T>): Promise<T> => {
    try {
      return await step();
    } catch (e) {
      on.onInputError();
      throw e;
    }
  };
  try {
    if (prefix) await writer.write(encoder.encode(prefix));
    for (;;) {
      const next = await read(() => input.read());
      if (next.done) break;
      await writer.write(next.value);
      on.progress();
    }
    const trailer = await read(finish);
    if (trailer) await writer.write(encoder.encode(trailer));
    await writer.close();
  } catch (e) {
    await input.cancel(e).catch(() => {});
    await writer.abort(e).catch(() => {});
    throw e;
  }
}

/** A load that failed on its input's side (not the client's): passed on as it is, or wrapped. */
function describeInputError(e: unknown, target: string): VyaError {
  if (e instanceof VyaError) return e;
  return new RestoreFailedError(
    `restore into ${target} failed while reading the file: ` +
      redact(e instanceof Error ? e.message : String(e)),
  );
}

/**
 * What a load checks once its input has ended, before its mark is removed (and, in one
 * transaction, before the COMMIT is sent): the file hashed as it was read is the one verified
 * (or recorded, for a streamed load). A streamed load ({@linkcode peekSource}, `tail` given)
 * also checks what the verify pass would have refused: the completion marker and the DEFINER
 * accounts; the source then holds the facts of the whole file.
 */
function endOfInput(
  session: Session,
  source: VerifiedSource,
  options: LoadOptions,
  sha: Sha256Stream,
  tail: TailKeeper | undefined,
): (facts: DumpFacts) => Promise<void> {
  const { inspection } = source;
  return async (facts) => {
    if (inspection.packing !== "zip" && (await sha.digest) !== inspection.sha256) {
      throw new RestoreFailedError(
        source.streamed
          ? `${inspection.path} does not match its checksum`
          : `${inspection.path} changed while it was being restored`,
      );
    }
    if (!tail) return;
    assertComplete(inspection.path, facts, tail);
    source.inspection = { ...inspection, facts, rawBytes: facts.bytes, complete: true };
    // Bounded: a server that stopped answering must not hold the run at its very end.
    await withTimeout(
      checkDefiners(session, options.request, source, options.notes),
      CLEANUP_MS,
      "checking the dump's DEFINER accounts on the server",
    );
  };
}

/** The file's bytes and how to decompress them (zip entries decompress from their offset). */
async function openRaw(inspection: DumpInspection): Promise<{
  readable: ReadableStream<Uint8Array>;
  decompress: (s: ReadableStream<Uint8Array>) => Promise<ReadableStream<Uint8Array>>;
}> {
  if (inspection.packing === "zip") {
    const content = await openDump(inspection.path, "zip", inspection.zipEntry);
    return { readable: content, decompress: (s) => Promise.resolve(s) };
  }
  const file = await Deno.open(inspection.path, { read: true });
  const decompressed = (await import("../stream/codecs.ts")).codecFor(inspection.packing);
  const { identities } = inspection;
  const plain = (s: ReadableStream<Uint8Array>) =>
    identities ? s.pipeThrough(decryptStream(identities, inspection.path)) : s;
  return {
    readable: fileChunks(file),
    decompress: (s) => Promise.resolve(plain(s).pipeThrough(decompressed.decompress())),
  };
}

/**
 * The client's error with its position: psql says `psql:<stdin>:LINE: ERROR: …`, mariadb
 * `ERROR nnnn (xxxxx) at line N: …`. Lines refer to the SQL sent; they are mapped back to the
 * file's own lines when the filter left some out.
 */
function describeClientError(
  stderr: string,
  cmd: string,
  dumpLine: (sent: number) => number,
): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const pg = lines.find((l) => /^psql:.*?:\d+: (ERROR|FATAL)/.test(l));
  if (pg) {
    const m = /^psql:.*?:(\d+): (.*)$/.exec(pg)!;
    const detail = lines.slice(lines.indexOf(pg) + 1, lines.indexOf(pg) + 3)
      .filter((l) => /^(DETAIL|HINT|CONTEXT|LINE \d+):/.test(l));
    return `statement at line ${dumpLine(Number(m[1]))} of the dump: ${m[2]}` +
      (detail.length ? ` (${detail.join("; ")})` : "");
  }
  const my = lines.find((l) => /^ERROR \d+/.test(l));
  if (my) {
    const m = /^ERROR (\d+)(?: \(\w+\))? at line (\d+)(?: in file: .*?)?: (.*)$/.exec(my);
    if (m) {
      return `statement at line ${dumpLine(Number(m[2]))} of the dump: ` +
        `ERROR ${m[1]}: ${m[3]}`;
    }
    return my;
  }
  return `${basename(cmd)} failed${lines.length ? ": " + lines.slice(-5).join(" | ") : ""}`;
}
