/**
 * The summary model of one backup run that every channel sends: mail, webhook JSON and (with
 * the backup history) the metrics file. Built from the run's item results; every text in it
 * has been through the redaction layer.
 *
 * @module
 */
import type { ItemResult } from "../backup/run.ts";
import { redact } from "../redact.ts";
import { VERSION } from "../version.ts";
import { USERS_ITEM } from "../users/backup.ts";

/** One item of the run: a database, an instance's users, or an instance that failed as a whole. */
export interface ReportItem {
  /** Instance id. */
  instance: string;
  /** Database name; absent for users backups and instance-level failures. */
  database?: string;
  /** What the item is. */
  kind: "database" | "users" | "instance";
  /** Outcome. */
  status: "ok" | "failed";
  /** Why it failed (redacted). */
  error?: string;
  /** Bytes of the backup file. */
  bytes?: number;
  /** Uncompressed bytes. */
  raw_bytes?: number;
  /** Wall time. */
  duration_ms?: number;
  /** The backup file. */
  path?: string;
}

/** A configured database whose newest good backup is older than `alerts.max_age`. */
export interface StaleItem {
  /** Instance id. */
  instance: string;
  /** Database name; absent for users backups. */
  database?: string;
  /** What the item is. */
  kind: "database" | "users";
  /** When its newest good backup started (ISO-8601); absent when it never had one. */
  newest_good_at?: string;
  /** Seconds since then; absent when it never had one. */
  age_seconds?: number;
}

/** The run as the notifications describe it. */
export interface RunReport {
  /** Always `vya-backupdb`, so a receiver shared by several tools can tell. */
  tool: "vya-backupdb";
  /** Version of the tool. */
  version: string;
  /** Host name of the machine that ran it. */
  host: string;
  /** `failure` when anything failed, the run stopped early or was interrupted. */
  result: "success" | "failure";
  /** Whether a signal interrupted it. */
  interrupted: boolean;
  /** The process exit code. */
  exit_code: number;
  /** ISO-8601 UTC. */
  started_at: string;
  /** ISO-8601 UTC. */
  finished_at: string;
  /** Wall time. */
  duration_ms: number;
  /** Item counts. */
  counts: { total: number; ok: number; failed: number; stale: number };
  /** Why the run as a whole stopped (lock held, configuration), when it did (redacted). */
  error?: string;
  /** Every item, in the order finished. */
  items: ReportItem[];
  /** Stale databases (see `alerts.max_age`). */
  stale: StaleItem[];
  /** What the run left out on purpose (retention skipped, verify failed), one line each. */
  skipped: string[];
  /** The last log lines of the run (redacted). */
  log_tail: string[];
}

/** What {@linkcode buildRunReport} needs. */
export interface RunFacts {
  /** Host name. */
  host: string;
  /** When the run started. */
  startedAt: Date;
  /** When it ended. */
  finishedAt: Date;
  /** The items recorded (all of them, or those done before an interruption). */
  results: readonly ItemResult[];
  /** The process exit code. */
  exitCode: number;
  /** Whether a signal interrupted it. */
  interrupted?: boolean;
  /** Why the run stopped as a whole, if it did. */
  error?: string;
  /** Stale items. */
  stale?: StaleItem[];
  /** Skipped on purpose. */
  skipped?: string[];
  /** Last log lines. */
  logTail?: string[];
}

/** Builds the report of a run. */
export function buildRunReport(facts: RunFacts): RunReport {
  const items = facts.results.filter((r) => r.status !== "planned").map(toItem);
  const failed = items.filter((i) => i.status === "failed").length;
  const stale = facts.stale ?? [];
  const bad = failed > 0 || facts.exitCode !== 0 || facts.interrupted === true ||
    facts.error !== undefined;
  return {
    tool: "vya-backupdb",
    version: VERSION,
    host: facts.host,
    result: bad ? "failure" : "success",
    interrupted: facts.interrupted ?? false,
    exit_code: facts.exitCode,
    started_at: facts.startedAt.toISOString(),
    finished_at: facts.finishedAt.toISOString(),
    duration_ms: facts.finishedAt.getTime() - facts.startedAt.getTime(),
    counts: { total: items.length, ok: items.length - failed, failed, stale: stale.length },
    error: facts.error === undefined ? undefined : redact(facts.error),
    items,
    stale,
    skipped: (facts.skipped ?? []).map(redact),
    log_tail: (facts.logTail ?? []).map(redact),
  };
}

function toItem(r: ItemResult): ReportItem {
  const kind = r.database === undefined
    ? "instance"
    : r.database === USERS_ITEM
    ? "users"
    : "database";
  return {
    instance: r.instance,
    database: kind === "database" ? r.database : undefined,
    kind,
    status: r.status === "ok" ? "ok" : "failed",
    error: r.error === undefined ? undefined : redact(r.error),
    bytes: r.bytes,
    raw_bytes: r.raw_bytes,
    duration_ms: r.duration_ms,
    path: r.path,
  };
}

/** How an item is named in text: `inst/db`, `inst (users)`, `inst (instance)`. */
export function itemName(i: { instance: string; database?: string; kind: string }): string {
  if (i.kind === "database") return `${i.instance}/${i.database}`;
  return `${i.instance} (${i.kind})`;
}
