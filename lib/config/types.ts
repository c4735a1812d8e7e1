/**
 * The shape of a validated, effective configuration (after environment overlays and defaults).
 *
 * Paths are absolute: relative paths in the file are resolved against the config file's folder.
 *
 * @module
 */
import type { AlertsConfig, MetricsConfig, NotifyConfig } from "./alerts.ts";

export type {
  AlertsConfig,
  EmailConfig,
  MetricsConfig,
  NotifyConfig,
  WebhookConfig,
} from "./alerts.ts";

/** Database engines the tool knows. `mysql` and `mariadb` share one adapter. */
export type EngineType = "postgresql" | "mysql" | "mariadb";

/** Compression formats for dumps. */
export type CompressionFormat = "gzip" | "zstd" | "none";

/** Compression settings. */
export interface CompressionConfig {
  /** The codec. */
  format: CompressionFormat;
  /** gzip 1-9, zstd 1-19; ignored for none. */
  level: number;
  /** Worker threads for compression; 0 = as many as there are cores. */
  threads: number;
}

/** Where backups go and how they are compressed. */
export interface StorageConfig {
  /** Absolute folder under which backups are written. */
  path: string;
  /** Compression of dump files. */
  compression: CompressionConfig;
  /** age encryption of dump files; absent = not encrypted. */
  encryption?: EncryptionConfig;
  /**
   * Whether backups stay in `path` after their remote copy is confirmed (default true; false
   * needs `remote`).
   */
  keep_local: boolean;
  /** The off-host copy every backup is uploaded to; absent = local only. */
  remote?: RemoteConfig;
}

/** An S3-compatible bucket (`storage.remote`). */
export interface RemoteConfig {
  /** Kind: only "s3". */
  type: "s3";
  /** `https://host[:port]` of the S3 API. */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Bucket name. */
  bucket: string;
  /** Key prefix the tool owns (as written; nothing outside it is listed or deleted). */
  prefix: string;
  /** Path-style URLs (`endpoint/bucket/key`). */
  path_style: boolean;
  /** Credentials entry: username = access key id, password = secret access key. */
  credential: string;
  /** The remote's own retention (absent: the local policy). */
  retention?: RetentionSettings;
}

/** age encryption at rest (`storage.encryption`). */
export interface EncryptionConfig {
  /** X25519 recipients (`age1…`, public keys), at least one; any one identity decrypts. */
  recipients: string[];
  /** Absolute path of the age identity file, needed only to decrypt; may live off the server. */
  identity_file?: string;
}

/** Where credentials are read from. */
export interface CredentialsConfig {
  /** Absolute path of the credentials JSON file. */
  file: string;
  /** Absolute path of a Fernet key file; absent = key derived from the host name. */
  key_file?: string;
}

/** Tuning for backup runs. */
export interface BackupConfig {
  /** Databases dumped at once. */
  jobs: number;
  /** Niceness (0-19) for dump child processes; 0 leaves it unchanged. */
  nice: number;
  /** ionice class for dump children: none, idle, best-effort. */
  ionice: "none" | "idle" | "best-effort";
  /** Seconds without a byte from a dump tool after which the dump is killed as stalled; 0 = never. */
  stall_timeout: number;
  /**
   * After the backups of a run: none; checksum (each new backup read back whole); restore
   * (checksum, and the newest backup of one database, rotating, restored into a scratch database).
   */
  verify: "none" | "checksum" | "restore";
}

/**
 * The effective retention policy of one database (or one instance's users backups), as
 * `applyRetention` in `lib/storage/retention.ts` takes it.
 */
export interface RetentionPolicy {
  /** The N newest good backups. */
  keep_last: number;
  /** Newest good backup of each of the last N calendar days that have one. */
  keep_daily: number;
  /** ... of each of the last N ISO weeks (Monday-Sunday). */
  keep_weekly: number;
  /** ... of each of the last N calendar months. */
  keep_monthly: number;
  /** ... of each of the last N calendar years. */
  keep_yearly: number;
  /** Seconds: every good backup this close to the newest good one; 0 = none. */
  keep_within: number;
  /** At least this many good backups stay, >= 1. */
  min_keep: number;
  /** IANA zone the calendar buckets are cut in. */
  timezone: string;
}

/** When prune runs: after each database's own successful backup, or only by `prune`. */
export type PruneMode = "after_backup" | "manual";

/** A policy and when it is applied. */
export interface RetentionConfig extends RetentionPolicy {
  /** When prune runs. */
  prune: PruneMode;
}

/** One `retention:` block as written: only the keys it sets (keep_within in seconds). */
export type RetentionSettings = Partial<RetentionConfig>;

/** Explicit client tool locations for one instance. */
export interface ToolsConfig {
  /** A folder holding the client tools; searched before the defaults. */
  dir?: string;
  /** Explicit path per tool name (pg_dump, pg_dumpall, psql, pg_restore, mysqldump, ...). */
  paths: Record<string, string>;
}

/** One database server. */
export interface InstanceConfig {
  /** Unique id, used in paths and on the command line. */
  id: string;
  /** Engine of the server. */
  type: EngineType;
  /** Host name or IP address. */
  host: string;
  /** TCP port. */
  port: number;
  /** Id of the entry in the credentials file. */
  credential: string;
  /** Disabled instances are skipped by `--all` and refused by `--instance`. */
  enabled: boolean;
  /** Database selection: globs; empty include = all. System databases are always dropped. */
  databases: { include: string[]; exclude: string[] };
  /** Users/roles backup settings. */
  users: { backup: boolean; exclude: string[] };
  /** Client tool locations. */
  tools: ToolsConfig;
  /** Seconds to wait for a connection. */
  connect_timeout: number;
  /** This instance's `retention:` block, over the top-level one (see `retentionFor`). */
  retention?: RetentionSettings;
  /** Per database name, a `retention:` block over the instance's. */
  retention_overrides?: Record<string, RetentionSettings>;
  /** `verify.instance`: another instance `verify --restore` restores onto (default: this one). */
  verify?: { instance?: string };
}

/** The effective configuration of one run. */
export interface Config {
  /** The selected environment overlay, if any. */
  environment?: string;
  /** Storage settings. */
  storage: StorageConfig;
  /** Credential store settings. */
  credentials: CredentialsConfig;
  /** Backup tuning. */
  backup: BackupConfig;
  /** `restore:`: sessions per database (1) and the bound of a parallel restore's spool. */
  restore: { jobs: number; spool_limit: number };
  /** Configured instances, in file order. */
  instances: InstanceConfig[];
  /** The top-level `retention:` block; absent = no policy unless an instance sets one. */
  retention?: RetentionSettings;
  /** Mail and webhooks after a run. */
  notify: NotifyConfig;
  /** Prometheus textfile. */
  metrics: MetricsConfig;
  /** When a backup counts as stale (`info`, `stale` notifications). */
  alerts: AlertsConfig;
}

/** Where a configuration came from. */
export interface ConfigSource {
  /** Absolute path of the file. */
  file: string;
  /** Folder of the file: relative paths are resolved against it. */
  dir: string;
}

/** Connection parameters for a driver or a client tool. The password is a secret. */
export interface ConnectionParams {
  /** Host name or IP address. */
  host: string;
  /** TCP port. */
  port: number;
  /** Login name. */
  user: string;
  /** Password (already decrypted and registered with the redactor). */
  password: string;
  /** Seconds to wait for a connection. */
  connectTimeout: number;
}
