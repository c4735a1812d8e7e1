/**
 * A bound on waiting for a server that stopped answering (SIGSTOPped, a dead network): work
 * that would otherwise hang the run, holding its lock, fails after a time instead.
 *
 * @module
 */

/** The wait ran out. */
export class TimeoutError extends Error {
  /** Creates the error; `what` names what was waited for. */
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${Math.round(ms / 1000)} s`);
    this.name = "TimeoutError";
  }
}

/** `promise`, or a {@linkcode TimeoutError} after `ms`. The work itself is not cancelled. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
