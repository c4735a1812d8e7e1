/**
 * Error kinds and the exit codes they map to: the one exit-code policy of every command.
 *
 * Every failure the tool reports on purpose is a {@linkcode VyaError}: it carries a
 * {@linkcode ErrorKind} (what sort of failure it is) and, where one helps, a hint the user can
 * act on. The exit code follows from the kind through {@linkcode EXIT_CODE_OF_KIND}, the only
 * place that maps kinds to codes; a command made of items (databases, instances, accounts)
 * gets its code from {@linkcode runExitCode}. Anything else that escapes is a bug and ends with
 * exit code 1.
 *
 * @module
 */

/** The documented exit codes of every command. */
export const ExitCode = {
  /** Everything asked for succeeded. */
  OK: 0,
  /** Some items (databases, instances, accounts) failed, others succeeded. */
  PARTIAL: 1,
  /** Every item failed. */
  FAILED: 2,
  /** Configuration, credential or permission error, or refused before anything changed. */
  CONFIG: 3,
  /** Another run holds the lock on the storage path. */
  LOCKED: 4,
  /** The command line could not be parsed. */
  USAGE: 64,
  /** Interrupted by SIGINT or SIGTERM. */
  INTERRUPTED: 130,
} as const;

/** One of the values of {@linkcode ExitCode}. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/**
 * What sort of failure an error is. The kind, not the place it was thrown, decides the exit
 * code.
 */
export type ErrorKind =
  /** The configuration file is missing, malformed or invalid, or names an unknown instance. */
  | "config"
  /** A credential is missing, unreadable, unsafe or does not decrypt. */
  | "credential"
  /** This process lacks a permission (Deno flag, file access) it needs. */
  | "permission"
  /** The request is incomplete or names nothing that exists (the remedy names the option). */
  | "usage"
  /** Another run holds the lock. */
  | "lock"
  /** Stopped by SIGINT or SIGTERM. */
  | "interrupted"
  /**
   * Refused before anything changed: an unusable input file, a file of another engine, a
   * target that is not empty, accounts that exist, missing roles…
   */
  | "refused"
  /** The item was attempted and failed (a load, a dump, an account). */
  | "failed"
  /** The server could not be reached, refused the login, or failed a request. */
  | "unreachable";

/**
 * The one table from kinds to exit codes. A `failed` error ends a one-item command (restore)
 * with 1, as "the attempt failed"; a run of items all failed ends with 2 ({@linkcode runExitCode}).
 */
export const EXIT_CODE_OF_KIND: Readonly<Record<ErrorKind, ExitCodeValue>> = {
  config: ExitCode.CONFIG,
  credential: ExitCode.CONFIG,
  permission: ExitCode.CONFIG,
  refused: ExitCode.CONFIG,
  usage: ExitCode.USAGE,
  lock: ExitCode.LOCKED,
  interrupted: ExitCode.INTERRUPTED,
  failed: ExitCode.PARTIAL,
  unreachable: ExitCode.FAILED,
};

/** What the user should change in the request: an option, and why. */
export interface Remedy {
  /** The option to give or change, as the CLI spells it (e.g. `--target`). */
  flag: string;
  /** What to give it, in words (e.g. "name the database to restore into"). */
  reason: string;
}

/** Options shared by every {@linkcode VyaError}. */
export interface VyaErrorOptions {
  /** What the user can do about it, printed after the message. */
  hint?: string;
  /** The option that would fix it, for the front end to phrase (kind `usage`). */
  remedy?: Remedy;
  /** The underlying error. */
  cause?: unknown;
}

/** An error the tool reports to the user; its kind decides the exit code. */
export class VyaError extends Error {
  /** What sort of failure this is. */
  readonly kind: ErrorKind;
  /** What the user can do about it. */
  readonly hint?: string;
  /** The option that would fix it. */
  readonly remedy?: Remedy;

  /** Creates an error of a kind. */
  constructor(message: string, kind: ErrorKind, options: VyaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "VyaError";
    this.kind = kind;
    this.hint = options.hint;
    this.remedy = options.remedy;
  }

  /** The process exit code for this error, from {@linkcode EXIT_CODE_OF_KIND}. */
  get exitCode(): ExitCodeValue {
    return EXIT_CODE_OF_KIND[this.kind];
  }
}

/** The configuration file is missing, malformed or invalid (kind `config`). */
export class ConfigError extends VyaError {
  /** Creates a configuration error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "config", options);
    this.name = "ConfigError";
  }
}

/** A credential is missing, unreadable, unsafe or does not decrypt (kind `credential`). */
export class CredentialError extends VyaError {
  /** Creates a credential error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "credential", options);
    this.name = "CredentialError";
  }
}

/** Another run holds the lock (kind `lock`). */
export class LockError extends VyaError {
  /** Creates a lock error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "lock", options);
    this.name = "LockError";
  }
}

/** The run was interrupted by a signal (kind `interrupted`). */
export class InterruptedError extends VyaError {
  /** Creates an interruption error. */
  constructor(message = "interrupted", options: VyaErrorOptions = {}) {
    super(message, "interrupted", options);
    this.name = "InterruptedError";
  }
}

/** Refused before anything changed (kind `refused`). */
export class RefusedError extends VyaError {
  /** Creates a refusal. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "refused", options);
    this.name = "RefusedError";
  }
}

/**
 * The request lacks an option, or an option names nothing that exists (kind `usage`). The
 * remedy names the option; the front end turns it into its own words.
 */
export class OptionError extends VyaError {
  /** The option to give or change. */
  declare readonly remedy: Remedy;

  /** Creates the error. */
  constructor(message: string, remedy: Remedy, options: Omit<VyaErrorOptions, "remedy"> = {}) {
    super(message, "usage", { ...options, remedy });
    this.name = "OptionError";
  }
}

/** The outcome of one item of a run, as far as the exit code is concerned. */
export type ItemOutcome =
  /** Done (or, in a dry run, planned). */
  | { status: "ok" }
  /** Left alone as asked (e.g. an existing account identical to the backup): not counted. */
  | { status: "skipped" }
  /** Done, but something needs a look (an account differs, a backup no longer verifies). */
  | { status: "differs" }
  /** Attempted and failed, or refused; the kind says why. */
  | { status: "failed"; kind: ErrorKind };

/**
 * The exit code of a run from its items, for every command made of items: 0 when all are ok
 * (or skipped); 2 when every counted item failed, 3 instead when every failure is of a kind
 * that maps to 3 (nothing could be done because of configuration, credentials, permissions or
 * a refusal); otherwise 1 (some failed, or some differ).
 */
export function runExitCode(items: readonly ItemOutcome[]): ExitCodeValue {
  const counted = items.filter((i) => i.status !== "skipped");
  const failed = counted.filter((i) => i.status === "failed");
  if (failed.length === 0) {
    return counted.some((i) => i.status === "differs") ? ExitCode.PARTIAL : ExitCode.OK;
  }
  if (failed.length < counted.length) return ExitCode.PARTIAL;
  return failed.every((i) => EXIT_CODE_OF_KIND[i.kind] === ExitCode.CONFIG)
    ? ExitCode.CONFIG
    : ExitCode.FAILED;
}

/**
 * The exit code of a freshness check (`info`), from how each configured item and enabled
 * instance stands (see `lib/info/freshness.ts`): 2 when any has no good backup at all; else 1
 * when any newest good backup is older than `alerts.max_age` or any newest attempt failed; else
 * 0. Unlike {@linkcode runExitCode}, one item decides: a monitoring check must not pass while
 * one database has never been backed up.
 */
export function freshnessExitCode(
  states: readonly ("fresh" | "failed" | "stale" | "never")[],
): ExitCodeValue {
  if (states.includes("never")) return ExitCode.FAILED;
  if (states.some((s) => s !== "fresh")) return ExitCode.PARTIAL;
  return ExitCode.OK;
}

/** The kind of any error: a {@linkcode VyaError}'s own, `permission` for Deno's, else `failed`. */
export function kindOf(error: unknown): ErrorKind {
  if (error instanceof VyaError) return error.kind;
  return explainPermissionError(error)?.kind ?? "failed";
}

/**
 * Turns Deno's permission error into one that names the flag to add, so a compiled binary run
 * under narrow flags tells the sysadmin exactly what to widen instead of prompting.
 */
export function explainPermissionError(error: unknown): VyaError | undefined {
  if (
    !(error instanceof Deno.errors.NotCapable) && !(error instanceof Deno.errors.PermissionDenied)
  ) {
    return undefined;
  }
  const message = error instanceof Error ? error.message : String(error);
  const match = /Requires (\w+) access to "?([^",]+)"?/.exec(message);
  if (!match || error instanceof Deno.errors.PermissionDenied && !match) {
    return new VyaError(`permission denied: ${message}`, "permission", { cause: error });
  }
  const [, kind, target] = match;
  return new VyaError(`missing permission: ${kind} access to ${target}`, "permission", {
    hint: `run with --allow-${kind}=${target} (or add it to the permission set)`,
    cause: error,
  });
}

/**
 * An error as one line of a report (`check`, `config validate`): its message and, when it has
 * one, the hint, so every command that lists problems gives the same remedy.
 */
export function errorText(error: unknown): string {
  const known = error instanceof VyaError ? error : explainPermissionError(error);
  if (known) return known.hint ? `${known.message} (${known.hint})` : known.message;
  return error instanceof Error ? error.message : String(error);
}
