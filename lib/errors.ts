/**
 * Error types and the exit codes they map to.
 *
 * Every failure the tool reports on purpose is a {@linkcode VyaError}: it carries the exit code
 * the process ends with and, where one helps, a hint the user can act on. Anything else that
 * escapes is a bug and ends with exit code 1.
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
  /** Configuration, credential or permission error: nothing was attempted. */
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

/** Options shared by every {@linkcode VyaError}. */
export interface VyaErrorOptions {
  /** What the user can do about it, printed after the message. */
  hint?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** An error the tool reports to the user, with the exit code it ends the process with. */
export class VyaError extends Error {
  /** The process exit code for this error. */
  readonly exitCode: ExitCodeValue;
  /** What the user can do about it. */
  readonly hint?: string;

  /** Creates an error with an explicit exit code. */
  constructor(message: string, exitCode: ExitCodeValue, options: VyaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "VyaError";
    this.exitCode = exitCode;
    this.hint = options.hint;
  }
}

/** The configuration file is missing, malformed or invalid (exit 3). */
export class ConfigError extends VyaError {
  /** Creates a configuration error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, ExitCode.CONFIG, options);
    this.name = "ConfigError";
  }
}

/** A credential is missing, unreadable, unsafe or does not decrypt (exit 3). */
export class CredentialError extends VyaError {
  /** Creates a credential error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, ExitCode.CONFIG, options);
    this.name = "CredentialError";
  }
}

/** Another run holds the lock (exit 4). */
export class LockError extends VyaError {
  /** Creates a lock error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, ExitCode.LOCKED, options);
    this.name = "LockError";
  }
}

/** The command line is wrong (exit 64). */
export class UsageError extends VyaError {
  /** Creates a usage error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, ExitCode.USAGE, options);
    this.name = "UsageError";
  }
}

/** The run was interrupted by a signal (exit 130). */
export class InterruptedError extends VyaError {
  /** Creates an interruption error. */
  constructor(message = "interrupted", options: VyaErrorOptions = {}) {
    super(message, ExitCode.INTERRUPTED, options);
    this.name = "InterruptedError";
  }
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
    return new VyaError(`permission denied: ${message}`, ExitCode.CONFIG, { cause: error });
  }
  const [, kind, target] = match;
  return new VyaError(`missing permission: ${kind} access to ${target}`, ExitCode.CONFIG, {
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
