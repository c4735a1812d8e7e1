/**
 * The configuration file's schema (valibot). It describes the file as written, before defaults
 * and path resolution; {@linkcode toConfig} in `load.ts` turns the parsed output into a
 * {@linkcode Config}.
 *
 * @module
 */
import * as v from "valibot";
import { isTimeZone } from "../storage/retention.ts";
import { isRecipient } from "../crypto/age_keys.ts";
import { type AlertsFile, alertsSchema, metricsSchema, notifySchema } from "./alerts.ts";
import { parseDurationSeconds } from "./duration.ts";
import type { SameType } from "./same_type.ts";

const nonEmpty = (what: string) =>
  v.pipe(v.string(`expected ${what} (a string)`), v.minLength(1, `expected ${what}, got ""`));

const intRange = (min: number, max: number, what = `${min}-${max}`) =>
  v.pipe(
    v.number(`expected ${what}`),
    v.integer(`expected ${what}`),
    v.minValue(min, `expected ${what}`),
    v.maxValue(max, `expected ${what}`),
  );

const globList = v.array(nonEmpty("a glob pattern"), "expected a list of glob patterns");

/** Engines accepted in `instances[].type`. */
export const ENGINE_TYPES = ["postgresql", "mysql", "mariadb"] as const;

/** Compression formats accepted in `storage.compression.format`. */
export const COMPRESSION_FORMATS = ["gzip", "zstd", "none"] as const;

const compression = v.pipe(
  v.strictObject({
    format: v.optional(
      v.picklist(COMPRESSION_FORMATS, `expected one of ${COMPRESSION_FORMATS.join(", ")}`),
    ),
    level: v.optional(intRange(1, 19, "a whole number 1-19")),
    threads: v.optional(intRange(0, 256, "a whole number 0-256 (0 = one per core)")),
  }, "expected a mapping { format, level, threads }"),
  v.forward(
    v.check(
      (c) => c.format === "zstd" || c.level === undefined || c.level <= 9,
      "expected a gzip level 1-9 (zstd takes 1-19)",
    ),
    ["level"],
  ),
);

// Recipients are public keys: the message may quote a wrong one (the loader adds "got …").
const encryption = v.strictObject({
  recipients: v.pipe(
    v.array(
      v.pipe(
        v.string("expected an age recipient (age1…)"),
        v.check(isRecipient, "expected an age X25519 recipient (age1 followed by 58 characters)"),
      ),
      "expected a list of age recipients (age1…)",
    ),
    v.minLength(1, "expected a non-empty list of age recipients (age1…)"),
  ),
  identity_file: v.optional(nonEmpty("a file path")),
}, "expected a mapping { recipients, identity_file }");

const credentials = v.strictObject({
  file: v.optional(nonEmpty("a file path")),
  key_file: v.optional(nonEmpty("a file path")),
}, "expected a mapping { file, key_file }");

export { parseDurationSeconds };

/** Longest accepted stall timeout: a week. */
const MAX_STALL_SECONDS = 7 * 24 * 3600;

const duration = v.pipe(
  v.union([v.number(), v.string()], 'expected a duration such as "10m", "90s" or seconds'),
  v.check(
    (d) => {
      const s = parseDurationSeconds(d);
      return s !== undefined && s <= MAX_STALL_SECONDS;
    },
    'expected a duration such as "10m", "90s" or a whole number of seconds (0 = never), at most 7 days',
  ),
);

const backup = v.strictObject({
  jobs: v.optional(intRange(1, 64)),
  stall_timeout: v.optional(duration),
  nice: v.optional(intRange(0, 19)),
  ionice: v.optional(
    v.picklist(["none", "idle", "best-effort"], "expected one of none, idle, best-effort"),
  ),
  verify: v.optional(
    v.picklist(["none", "checksum", "restore"], "expected one of none, checksum, restore"),
  ),
}, "expected a mapping { jobs, nice, ionice, stall_timeout, verify }");

/** A size: bytes, or a number with KiB/MiB/GiB/TiB (also KB/MB/GB/TB, read as binary). */
export function parseSizeBytes(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value > 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)?\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = (m[2] ?? "").toUpperCase().replace("I", "");
  const scale = { "": 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 }[unit]!;
  const bytes = Math.floor(Number(m[1]) * scale);
  return bytes > 0 ? bytes : undefined;
}

const restore = v.strictObject({
  jobs: v.optional(intRange(1, 64)),
  spool_limit: v.optional(v.pipe(
    v.union([v.number(), v.string()], 'expected a size such as "4GiB" or "512MiB"'),
    v.check(
      (s) => (parseSizeBytes(s) ?? 0) >= 2 ** 20,
      'expected a size such as "4GiB" or "512MiB", at least 1MiB',
    ),
  )),
}, "expected a mapping { jobs, spool_limit }");

// --- retention (issue 11) ---

/** When prune runs: right after a database's own successful backup, or only when asked. */
export const PRUNE_MODES = ["after_backup", "manual"] as const;

/** Longest accepted `keep_within`: a hundred years, i.e. "forever". */
const MAX_SPAN_SECONDS = 100 * 366 * 24 * 3600;

const span = (what: string, min: number) =>
  v.pipe(
    v.union([v.number(), v.string()], `expected ${what} such as "36h", "7d" or "2w"`),
    v.check(
      (d) => {
        const s = parseDurationSeconds(d);
        return s !== undefined && s >= min && s <= MAX_SPAN_SECONDS;
      },
      `expected ${what} such as "36h", "7d", "2w" or a whole number of seconds` +
        (min > 0 ? " (more than 0)" : " (0 = none)"),
    ),
  );

const keepCount = intRange(0, 100_000, "a whole number >= 0");

/** One `retention:` block; every key optional, a more specific block overrides key by key. */
const retention = v.strictObject(
  {
    keep_last: v.optional(keepCount),
    keep_daily: v.optional(keepCount),
    keep_weekly: v.optional(keepCount),
    keep_monthly: v.optional(keepCount),
    keep_yearly: v.optional(keepCount),
    keep_within: v.optional(span("a duration", 0)),
    min_keep: v.optional(intRange(1, 100_000, "a whole number >= 1")),
    timezone: v.optional(v.pipe(
      nonEmpty("an IANA time zone such as Europe/Paris"),
      v.check(isTimeZone, "expected an IANA time zone such as Europe/Paris or UTC"),
    )),
    prune: v.optional(v.picklist(PRUNE_MODES, `expected one of ${PRUNE_MODES.join(", ")}`)),
  },
  "expected a mapping { keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, " +
    "keep_within, min_keep, timezone, prune }",
);

/** `instances[].retention_overrides`: a retention block per database name. */
const retentionOverrides = v.record(
  nonEmpty("a database name"),
  retention,
  "expected a mapping of database names to retention blocks",
);

// --- end of retention ---

// --- off-host copies (issue 13) ---

/** Kinds accepted in `storage.remote.type`. */
export const REMOTE_TYPES = ["s3"] as const;

// A prefix of `/`-separated segments, none empty, `.` or `..` (leading and trailing `/` are
// dropped): the tool owns everything under it and nothing else, so it is never the whole bucket.
function validPrefix(prefix: string): boolean {
  const segments = prefix.replace(/^\/+|\/+$/g, "").split("/");
  return !prefix.includes("\0") && segments.every((s) => s !== "" && s !== "." && s !== "..");
}

const remote = v.strictObject(
  {
    type: v.picklist(REMOTE_TYPES, `expected one of ${REMOTE_TYPES.join(", ")}`),
    endpoint: v.pipe(
      nonEmpty("an endpoint URL"),
      v.regex(
        /^https?:\/\/[^\s/@]+(?::\d+)?\/?$/,
        "expected an endpoint such as https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000 (no user, no path)",
      ),
    ),
    region: nonEmpty("a region such as eu-west-1"),
    bucket: v.pipe(
      nonEmpty("a bucket name"),
      v.regex(
        /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
        "expected a bucket name of 3-63 lowercase letters, digits, '.' and '-'",
      ),
    ),
    prefix: v.pipe(
      nonEmpty("a key prefix such as db/ (nothing outside it is listed or deleted)"),
      v.check(
        validPrefix,
        "expected a key prefix such as db/ or backups/db/ (no empty, '.' or '..' segment)",
      ),
    ),
    path_style: v.optional(v.boolean("expected true or false")),
    credential: nonEmpty("a credential id (username = access key id, password = secret key)"),
    retention: v.optional(retention),
  },
  "expected a mapping { type, endpoint, region, bucket, prefix, path_style, credential, retention }",
);

const storage = v.pipe(
  v.strictObject({
    path: v.optional(nonEmpty("a folder path")),
    keep_local: v.optional(v.boolean("expected true or false")),
    compression: v.optional(compression),
    encryption: v.optional(encryption),
    remote: v.optional(remote),
  }, "expected a mapping { path, keep_local, compression, encryption, remote }"),
  v.forward(
    v.check(
      (s) => s.keep_local !== false || s.remote !== undefined,
      "keep_local: false needs storage.remote (the backups must be kept somewhere)",
    ),
    ["keep_local"],
  ),
);

/** Client tools an instance's `tools:` may name (besides `dir`). */
export const TOOL_NAMES = [
  "pg_dump",
  "pg_dumpall",
  "psql",
  "mysqldump",
  "mariadb-dump",
  "mysql",
  "mariadb",
] as const;

// Strict, so a misspelt tool (or `paths:`) is an error at its key, not silently ignored.
const tools = v.strictObject(
  Object.fromEntries(
    ["dir", ...TOOL_NAMES].map((name) => [name, v.optional(nonEmpty("a path"))]),
  ) as Record<
    "dir" | typeof TOOL_NAMES[number],
    v.OptionalSchema<ReturnType<typeof nonEmpty>, undefined>
  >,
  `expected a mapping of dir and tool paths (${TOOL_NAMES.join(", ")})`,
);

const instance = v.strictObject({
  id: v.pipe(
    nonEmpty("an instance id"),
    v.regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
      "expected an id of letters, digits, '.', '_' and '-' (it is used in paths)",
    ),
  ),
  type: v.picklist(ENGINE_TYPES, `expected one of ${ENGINE_TYPES.join(", ")}`),
  host: v.optional(nonEmpty("a host name or address")),
  port: v.optional(intRange(1, 65535)),
  credential: nonEmpty("a credential id"),
  enabled: v.optional(v.boolean("expected true or false")),
  connect_timeout: v.optional(intRange(1, 3600, "a number of seconds 1-3600")),
  databases: v.optional(v.strictObject({
    include: v.optional(v.nullable(globList)),
    exclude: v.optional(v.nullable(globList)),
  }, "expected a mapping { include, exclude }")),
  users: v.optional(v.strictObject({
    backup: v.optional(v.boolean("expected true or false")),
    exclude: v.optional(v.array(nonEmpty("an account name"), "expected a list of account names")),
  }, "expected a mapping { backup, exclude }")),
  tools: v.optional(tools),
  retention: v.optional(retention),
  retention_overrides: v.optional(retentionOverrides),
  verify: v.optional(v.strictObject({
    instance: v.optional(nonEmpty("an instance id")),
  }, "expected a mapping { instance }")),
}, "expected a mapping with id, type, host, port, credential");

/** The part of the file that an environment overlay may also set. */
const body = {
  storage: v.optional(storage),
  credentials: v.optional(credentials),
  backup: v.optional(backup),
  restore: v.optional(restore),
  instances: v.optional(v.array(instance, "expected a list of instances")),
  retention: v.optional(retention),
  // Notifications, metrics and staleness (lib/config/alerts.ts).
  notify: v.optional(notifySchema),
  metrics: v.optional(metricsSchema),
  alerts: v.optional(alertsSchema),
};

/** The top-level keys an environment overlay may set. */
export const OVERLAY_KEYS: string[] = Object.keys(body);

const configFileSchema = v.strictObject({
  environment: v.optional(nonEmpty("an environment name")),
  ...body,
  environments: v.optional(v.record(v.string(), v.unknown(), "expected a mapping of overlays")),
}, "expected a mapping at the top of the file");

/** Schema of the whole file after the selected overlay has been merged in. */
export const ConfigFileSchema: v.GenericSchema<unknown, ConfigFile> = configFileSchema;

// The file's types below are written out for the documentation; the schema stays the one
// source of truth: this line fails to compile when they and valibot's output differ at all.
const _sameAsSchema: SameType<ConfigFile, v.InferOutput<typeof configFileSchema>> = true;

/** The file's content as the schema outputs it (before defaults and path resolution). */
export interface ConfigFile {
  /** The overlay selected by the file itself. */
  environment?: string;
  /** Where backups go and how they are compressed. */
  storage?: StorageFile;
  /** The credentials file and its key. */
  credentials?: CredentialsFile;
  /** Tuning of backup runs. */
  backup?: BackupFile;
  /** Tuning of restores. */
  restore?: { jobs?: number; spool_limit?: number | string };
  /** The servers, in file order. */
  instances?: InstanceFile[];
  /** The default retention policy. */
  retention?: RetentionFile;
  /** Mail and webhooks after a run. */
  notify?: AlertsFile["notify"];
  /** The Prometheus textfile. */
  metrics?: AlertsFile["metrics"];
  /** Staleness threshold. */
  alerts?: AlertsFile["alerts"];
  /** Overlays, merged in before validation. */
  environments?: Record<string, unknown>;
}

/** A `retention:` block as written (every key optional; see lib/config/retention.ts). */
export interface RetentionFile {
  /** The N newest good backups. */
  keep_last?: number;
  /** The newest good backup of each of the last N days that have one. */
  keep_daily?: number;
  /** Same per ISO week. */
  keep_weekly?: number;
  /** Same per calendar month. */
  keep_monthly?: number;
  /** Same per calendar year. */
  keep_yearly?: number;
  /** Every good backup within this span of the newest good one ("36h", seconds). */
  keep_within?: number | string;
  /** Floor of good backups kept, at least 1. */
  min_keep?: number;
  /** IANA zone the calendar buckets are cut in. */
  timezone?: string;
  /** When prune runs. */
  prune?: typeof PRUNE_MODES[number];
}

/** `storage:` as written. */
export interface StorageFile {
  /** Folder of the backups; relative to the config file's folder. */
  path?: string;
  /** Codec, level and threads of dump files. */
  compression?: {
    format?: typeof COMPRESSION_FORMATS[number];
    level?: number;
    threads?: number;
  };
  /** age recipients (public keys) and where the identity is. */
  encryption?: { recipients: string[]; identity_file?: string };
  /** false: the local copy is removed once the remote one is confirmed (needs `remote`). */
  keep_local?: boolean;
  /** The off-host copy. */
  remote?: RemoteFile;
}

/** `storage.remote:` as written. */
export interface RemoteFile {
  /** Kind of remote storage. */
  type: typeof REMOTE_TYPES[number];
  /** `https://host[:port]` of the S3 API. */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Bucket. */
  bucket: string;
  /** Key prefix the tool owns, required and non-empty. */
  prefix: string;
  /** Path-style URLs (self-hosted servers). */
  path_style?: boolean;
  /** Credentials entry: username = access key id, password = secret key. */
  credential: string;
  /** The remote's retention, instead of the local policy. */
  retention?: RetentionFile;
}

/** `credentials:` as written. */
export interface CredentialsFile {
  /** The encrypted credentials file. */
  file?: string;
  /** The Fernet key file; absent: derived from the host name. */
  key_file?: string;
}

/** `backup:` as written. */
export interface BackupFile {
  /** Databases dumped at once. */
  jobs?: number;
  /** Seconds, or a duration such as "10m". */
  stall_timeout?: number | string;
  /** Niceness of dump children. */
  nice?: number;
  /** ionice class of dump children. */
  ionice?: "none" | "idle" | "best-effort";
  /** What the nightly run verifies after its backups. */
  verify?: "none" | "checksum" | "restore";
}

/** One entry of `instances:` as written. */
export interface InstanceFile {
  /** Unique id, used in paths and on the command line. */
  id: string;
  /** Engine of the server. */
  type: typeof ENGINE_TYPES[number];
  /** Host name or address. */
  host?: string;
  /** TCP port. */
  port?: number;
  /** Id of the entry in the credentials file. */
  credential: string;
  /** false: skipped by --all, refused by --instance. */
  enabled?: boolean;
  /** Seconds to wait for a connection. */
  connect_timeout?: number;
  /** Database selection globs. */
  databases?: { include?: string[] | null; exclude?: string[] | null };
  /** Users/roles backup settings. */
  users?: { backup?: boolean; exclude?: string[] };
  /** Client tool folder and paths. */
  tools?: { [name in "dir" | typeof TOOL_NAMES[number]]?: string };
  /** This instance's retention, over the top-level one. */
  retention?: RetentionFile;
  /** Per-database retention, over the instance's. */
  retention_overrides?: { [database: string]: RetentionFile };
  /** Where `verify --restore` restores this instance's backups (default: itself). */
  verify?: { instance?: string };
}
