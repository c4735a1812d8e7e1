/**
 * One restore, in the order that keeps a server safe: the file is read end to end (checksum,
 * decompression, banner, completion marker) before any connection; then the server, the target
 * and the roles are checked; only then is the target (re)created with its captured properties
 * and the dump streamed into the engine's own client. A load that fails part-way drops the
 * database the restore created, so no half-loaded copy is left behind.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import type { ConnectionParams, InstanceConfig } from "../config/types.ts";
import { type BackupMetadata, readMetadata } from "../backup/metadata.ts";
import { parseStem } from "../backup/layout.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { startChild } from "../process.ts";
import { connect } from "../engines/mod.ts";
import type { EngineAdapter, ObjectCounts } from "../engines/types.ts";
import { findTools, requireTools } from "../tools/find.ts";
import { ByteCounter } from "../stream/counter.ts";
import { Sha256Stream } from "../stream/sha256.ts";
import { DumpFilter } from "./dump_filter.ts";
import { BadBackupError, RestoreFailedError, RestoreRefusedError } from "./errors.ts";
import { type DumpInspection, inspectDump, openDump } from "./inspect.ts";
import { pgPropertyRoles, pgTarget } from "./target_pg.ts";
import { myTarget } from "./target_my.ts";
import type { TargetServer } from "./target.ts";
import { UsageError } from "../errors.ts";

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
  /** Logger. */
  log: Logger;
  /** Progress: bytes of the file read in each phase. */
  onProgress?: (phase: "verify" | "restore", bytes: number, total: number) => void;
  /** Aborts the load (the client is killed, a created target dropped). */
  signal?: AbortSignal;
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
  engine: "postgresql" | "mysql";
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

/** Reads the metadata beside a dump file of this tool's layout, if any. */
export async function metadataBeside(path: string): Promise<BackupMetadata | undefined> {
  const parsed = parseStem(basename(path));
  if (!parsed) return undefined;
  return await readMetadata(join(dirname(path), parsed.stem + ".metadata.json"));
}

/** The database name in an original-tool file name, if the name is one. */
export function originalToolName(fileName: string): string | undefined {
  const a = /^\d{8}_\d{6}_(?:mysql|postgresql)_(.+)\.(?:sql|zip)$/.exec(fileName);
  if (a) return a[1];
  const b = /^(.+)_\d{8}_\d{6}\.sql\.gz$/.exec(fileName);
  return b?.[1];
}

function family(engine: string): "postgresql" | "mysql" {
  return engine === "postgresql" ? "postgresql" : "mysql";
}

function isEmpty(c: ObjectCounts): boolean {
  return c.tables + c.views + c.routines + (c.sequences ?? 0) + (c.events ?? 0) === 0;
}

function describeCounts(c: ObjectCounts): string {
  return Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ") ||
    "no objects";
}

/** Runs a restore. Throws the errors of lib/restore/errors.ts (and ConnectError, ConfigError). */
export async function restore(request: RestoreRequest): Promise<RestoreResult> {
  const started = Date.now();
  const { instance, source, log } = request;
  const warnings: string[] = [];
  const actions: string[] = [];
  const meta = source.metadata;
  const warn = (m: string) => {
    warnings.push(m);
    log.warn(m);
  };

  // 1. The file, before any connection.
  if (meta) {
    if (meta.kind !== "database") {
      throw new BadBackupError(`${source.path} is a ${meta.kind} backup, not a database backup`);
    }
    if (meta.status !== "ok" || !meta.file) {
      throw new BadBackupError(
        `${source.path} is a failed backup: ${meta.error ?? "status " + meta.status}`,
      );
    }
  } else {
    warn(
      `${source.path} has no metadata: integrity is checked by decompressing it entirely ` +
        `and looking for the dump tool's completion marker; the database is created with the ` +
        `server's defaults`,
    );
  }
  const inspection = await inspectDump(source.path, {
    expectedSha256: meta?.file?.sha256,
    onProgress: request.onProgress && ((n, t) => request.onProgress!("verify", n, t)),
    signal: request.signal,
  });
  const dumpEngine = inspection.facts.dialect!;
  const wanted = family(instance.type);
  if (meta && family(meta.engine) !== dumpEngine) {
    throw new BadBackupError(
      `${source.path}: metadata says ${meta.engine} but the file holds ` +
        `a ${dumpEngine} dump`,
    );
  }
  if (dumpEngine !== wanted) {
    throw new BadBackupError(
      `${source.path} is a ${dumpEngine === "postgresql" ? "PostgreSQL" : "MySQL/MariaDB"} dump ` +
        `(${inspection.facts.banner}); instance ${instance.id} is ${instance.type}`,
    );
  }
  const target = request.target ?? meta?.database ?? source.originalName;
  if (target === undefined || target === "") {
    throw new UsageError(`${source.path} does not say which database it holds: give --target NAME`);
  }
  const headerSkipped = inspection.facts.headerStatements.length > 0;
  if (headerSkipped) {
    warn(
      `the file starts with a header of ${inspection.facts.headerStatements.length} ` +
        `statement(s) before the dump (${
          [...new Set(inspection.facts.headerStatements)].join(", ")
        }); ` +
        `it is skipped: the database is created by this restore and users by \`users restore\``,
    );
  }

  // 2. The server, the target and the roles; nothing changes yet.
  let adapter: EngineAdapter | undefined;
  let server: TargetServer | undefined;
  let targetExisted = false;
  try {
    adapter = await connect(instance.type, request.params);
    const version = await adapter.serverVersion();
    const serverMajor = version.major;
    if (family(version.flavor) !== dumpEngine) {
      throw new BadBackupError(
        `${source.path} is a ${dumpEngine} dump but ${instance.id} runs ` +
          `${version.flavor}`,
      );
    }
    const tools = requireTools(await findTools(adapter.engine, version.major, instance.tools));
    const client = tools.client!;
    server = dumpEngine === "postgresql"
      ? await pgTarget(request.params, version.major)
      : await myTarget(request.params);
    const existing = (await adapter.listDatabases()).some((d) => d.name === target);
    targetExisted = existing;
    let existingCounts: ObjectCounts | undefined;
    if (existing) existingCounts = await adapter.objectCounts(target);
    const targetHasObjects = existingCounts !== undefined && !isEmpty(existingCounts);
    if (targetHasObjects && !request.force) {
      throw new RestoreRefusedError(
        `database ${target} already exists on ${instance.id} and holds ` +
          `${describeCounts(existingCounts!)}; it is left alone`,
        { hint: "restore under another name with --target NAME, or replace it with --force" },
      );
    }
    if (dumpEngine === "postgresql") {
      const props = meta?.database_properties ?? {};
      const noOwner = request.noOwner ?? false;
      const needed = new Set([
        ...pgPropertyRoles(props, noOwner),
        ...inspection.facts.privilegeRoles,
        ...(noOwner ? [] : inspection.facts.ownerRoles),
      ]);
      const missing = await server.missingRoles([...needed]);
      if (missing.length) {
        throw new RestoreRefusedError(
          `role(s) missing on ${instance.id}: ${missing.join(", ")}; the backup assigns ` +
            `ownership or privileges to them`,
          {
            hint: "create them first with `users restore` (from this instance's users backup)" +
              (noOwner ? "" : ", or skip ownership with --no-owner"),
          },
        );
      }
    }

    // 3. The plan.
    const recreate = !existing || targetHasObjects;
    const createStatements = recreate
      ? server.createStatements(target, meta?.database_properties, { noOwner: request.noOwner })
      : [];
    const where = `${target} on ${instance.id}`;
    actions.push(
      `verified ${source.path} (${inspection.bytes} bytes, sha256 ${inspection.sha256}` +
        `${meta ? ", matches its metadata" : ", no metadata"})`,
    );
    if (targetHasObjects) {
      actions.push(
        `drop database ${where}, which holds ${describeCounts(existingCounts!)} (--force)`,
      );
    }
    if (recreate) actions.push(...createStatements.map((s) => `run: ${s}`));
    else {
      actions.push(`load into the existing empty database ${where}`);
      warn(
        `database ${target} exists and is empty: the dump is loaded into it as it is; its ` +
          `owner, encoding and other properties are not changed`,
      );
    }
    if (headerSkipped) {
      actions.push(
        `skip the original tool's header (lines before line ${inspection.facts.bannerLine})`,
      );
    }
    if (request.noOwner && dumpEngine === "postgresql") {
      actions.push(
        `skip ${
          inspection.facts.ownerRoles.size ? "the ALTER … OWNER TO statements" : "ownership"
        }: objects belong to ${request.params.user}`,
      );
    }
    const singleTransaction = dumpEngine === "postgresql" && !inspection.facts.largeObjects;
    if (dumpEngine === "postgresql" && inspection.facts.largeObjects) {
      warn(
        "the dump holds large objects, which pg_dump wraps in its own transaction: it is " +
          "loaded without --single-transaction",
      );
    }
    actions.push(
      `stream ${inspection.rawBytes} bytes of SQL into ${basename(client)}` +
        `${singleTransaction ? " --single-transaction" : ""}`,
    );

    if (request.dryRun) {
      return result("planned");
    }

    // 4. Changes.
    if (targetHasObjects) {
      log.warn(`dropping database ${where} (--force); it held ${describeCounts(existingCounts!)}`);
      await server.execute([server.dropStatement(target)]);
    }
    let created = false;
    try {
      if (recreate) {
        log.info(`creating database ${where}`);
        created = true;
        await server.execute(createStatements);
      }
      await load(server, client, target, inspection, {
        singleTransaction,
        skipHeader: headerSkipped,
        noOwner: request.noOwner && dumpEngine === "postgresql",
        targetMajor: dumpEngine === "postgresql" ? serverMajor : undefined,
        request,
      });
    } catch (e) {
      if (created) {
        log.warn(`restore failed: dropping the partly restored database ${where}`);
        await server.execute([server.dropStatement(target)]).catch((d) =>
          log.error(`could not drop ${where}: ${redact(String(d?.message ?? d))}`)
        );
      }
      throw e;
    }
    const result_ = result("restored");
    result_.objects = await adapter.objectCounts(target).catch(() => undefined);
    if (meta?.objects && result_.objects) {
      for (const [kind, n] of Object.entries(meta.objects)) {
        const got = (result_.objects as unknown as Record<string, number | undefined>)[kind];
        if (got !== undefined && got !== n) {
          warn(`the backup recorded ${n} ${kind} but ${target} now holds ${got}`);
        }
      }
    }
    return result_;
  } finally {
    await server?.close();
    await adapter?.close();
  }

  function result(status: "restored" | "planned"): RestoreResult {
    return {
      status,
      instance: instance.id,
      target: target!,
      source_database: meta?.database ?? source.originalName,
      file: source.path,
      engine: dumpEngine,
      sha256: inspection.sha256,
      has_metadata: meta !== undefined,
      bytes: inspection.bytes,
      raw_bytes: inspection.rawBytes,
      target_existed: targetExisted,
      actions,
      warnings,
      duration_ms: Date.now() - started,
    };
  }
}

interface LoadOptions {
  singleTransaction: boolean;
  skipHeader: boolean;
  noOwner?: boolean;
  /** PostgreSQL: the target server's major, to leave out settings it does not know. */
  targetMajor?: number;
  request: RestoreRequest;
}

/** Streams the dump into the client; throws RestoreFailedError with the server's message. */
async function load(
  server: TargetServer,
  client: string,
  target: string,
  inspection: DumpInspection,
  options: LoadOptions,
): Promise<void> {
  const { request } = options;
  const { child: spec, cleanup } = await server.clientCommand(client, target, {
    singleTransaction: options.singleTransaction,
  });
  const filter = new DumpFilter({
    dialect: inspection.facts.dialect,
    skipHeader: options.skipHeader,
    noOwner: options.noOwner,
    targetMajor: options.targetMajor,
  });
  const sha = new Sha256Stream();
  const counter = new ByteCounter({
    onProgress: request.onProgress &&
      ((n) => request.onProgress!("restore", n, inspection.bytes)),
  });
  let child: ReturnType<typeof startChild> | undefined;
  const onAbort = () => child?.kill(1000);
  request.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    child = startChild(spec);
    // The file is hashed again as it is loaded: a file changed since the check is caught.
    const raw = await openRaw(inspection);
    const content = raw.readable.pipeThrough(counter).pipeThrough(sha);
    const sql = await raw.decompress(content);
    const piped = sql.pipeThrough(filter).pipeTo(child.process.stdin).then(
      () => undefined,
      (e) => e,
    );
    const [pipeError, status, stderr] = await Promise.all([
      piped,
      child.process.status,
      child.stderr,
    ]);
    if (request.signal?.aborted) throw new RestoreFailedError("restore interrupted");
    if (!status.success) {
      throw new RestoreFailedError(
        `restore into ${target} failed: ${describeClientError(stderr, filter, spec.cmd)}`,
      );
    }
    if (pipeError) {
      throw new RestoreFailedError(
        `restore into ${target} failed while reading the file: ` +
          redact(pipeError instanceof Error ? pipeError.message : String(pipeError)),
      );
    }
    if (inspection.packing !== "zip" && (await sha.digest) !== inspection.sha256) {
      throw new RestoreFailedError(`${inspection.path} changed while it was being restored`);
    }
    const noise = stderr.split("\n").filter((l) => l.trim());
    for (const line of noise.slice(0, 20)) request.log.warn(`${basename(spec.cmd)}: ${line}`);
  } finally {
    request.signal?.removeEventListener("abort", onAbort);
    child?.kill(1000);
    await cleanup();
  }
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
  return {
    readable: file.readable,
    decompress: (s) => Promise.resolve(s.pipeThrough(decompressed.decompress())),
  };
}

/**
 * The client's error with its position: psql says `psql:<stdin>:LINE: ERROR: …`, mariadb
 * `ERROR nnnn (xxxxx) at line N: …`. Lines refer to the SQL sent; they are mapped back to the
 * file's own lines when the filter left some out.
 */
function describeClientError(stderr: string, filter: DumpFilter, cmd: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const pg = lines.find((l) => /^psql:.*?:\d+: (ERROR|FATAL)/.test(l));
  if (pg) {
    const m = /^psql:.*?:(\d+): (.*)$/.exec(pg)!;
    const detail = lines.slice(lines.indexOf(pg) + 1, lines.indexOf(pg) + 3)
      .filter((l) => /^(DETAIL|HINT|CONTEXT|LINE \d+):/.test(l));
    return `statement at line ${filter.reader.inputLine(Number(m[1]))} of the dump: ${m[2]}` +
      (detail.length ? ` (${detail.join("; ")})` : "");
  }
  const my = lines.find((l) => /^ERROR \d+/.test(l));
  if (my) {
    const m = /^ERROR (\d+)(?: \(\w+\))? at line (\d+)(?: in file: .*?)?: (.*)$/.exec(my);
    if (m) {
      return `statement at line ${filter.reader.inputLine(Number(m[2]))} of the dump: ` +
        `ERROR ${m[1]}: ${m[3]}`;
    }
    return my;
  }
  return `${basename(cmd)} failed${lines.length ? ": " + lines.slice(-5).join(" | ") : ""}`;
}
