/**
 * The command line's usage error (exit 64), and the translation of a lib error's remedy (an
 * option to give or change) into flag text. Only the front end knows how options are spelled
 * to the user, so a UsageError is created here and nowhere in lib.
 *
 * @module
 */
import { VyaError, type VyaErrorOptions } from "../lib/errors.ts";

/** The command line is wrong: it does not parse, or its options do not combine (exit 64). */
export class UsageError extends VyaError {
  /** Creates a usage error. */
  constructor(message: string, options: VyaErrorOptions = {}) {
    super(message, "usage", options);
    this.name = "UsageError";
  }
}

/**
 * The error as the user should see it: one that carries a remedy becomes a UsageError whose
 * hint names the flag; any other is returned as it is.
 */
export function withFlagText(error: VyaError): VyaError {
  if (!error.remedy || error instanceof UsageError) return error;
  const { flag, reason } = error.remedy;
  const hint = `${flag}: ${reason}${error.hint ? `; ${error.hint}` : ""}`;
  return new UsageError(error.message, { hint, cause: error });
}
