/**
 * Errors of a restore. A refusal before the server is touched (bad file, wrong engine, target
 * not empty, roles missing) is of kind `refused` (exit 3) like every "nothing was changed" error; a restore
 * that failed part-way is of kind `failed` (exit 1).
 *
 * @module
 */
import { VyaError, type VyaErrorOptions } from "../errors.ts";

/** The backup cannot be used: missing, corrupted, truncated, or for another engine (exit 3). */
export class BadBackupError extends VyaError {
  /** Creates the error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "refused", options);
    this.name = "BadBackupError";
  }
}

/** The restore was refused before anything changed on the server (exit 3). */
export class RestoreRefusedError extends VyaError {
  /** Creates the error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "refused", options);
    this.name = "RestoreRefusedError";
  }
}

/** The client tool failed while loading the dump (exit 1). */
export class RestoreFailedError extends VyaError {
  /** Creates the error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "failed", options);
    this.name = "RestoreFailedError";
  }
}
