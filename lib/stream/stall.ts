/**
 * A watchdog for data that should keep flowing: a dump whose server was stopped, a network that
 * went silent, a restore client that stopped reading. The data path calls `touch()` on every
 * chunk (a clock read, nothing more); a timer checks now and then and, after `timeoutMs` without
 * a touch, calls `onStall` once with a {@linkcode StallError} so the owner can kill its child
 * and fail the item instead of waiting forever.
 *
 * ```ts
 * const watchdog = new StallWatchdog(600_000, (e) => { stalled = e; child.kill(); });
 * try { for await (const chunk of stream) { watchdog.touch(); … } } finally { watchdog.stop(); }
 * ```
 *
 * @module
 */

/** No progress for the configured time. */
export class StallError extends Error {
  /** How long nothing arrived, in ms. */
  readonly idleMs: number;

  /** Creates the error; `what` names the stalled thing ("dump", "restore"). */
  constructor(idleMs: number, what: string) {
    super(`no progress for ${formatDuration(idleMs)}: ${what} stalled`);
    this.name = "StallError";
    this.idleMs = idleMs;
  }
}

/** Formats milliseconds as Go does for durations: `2s`, `10m0s`, `1h30m0s`. */
export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Fires once when `touch()` has not been called for `timeoutMs`. A timeout of 0 never fires. */
export class StallWatchdog {
  #last = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #fired: StallError | undefined;

  /** Starts watching now. */
  constructor(
    readonly timeoutMs: number,
    onStall: (error: StallError) => void,
    what = "dump",
  ) {
    if (!(timeoutMs > 0)) return;
    // Checked a few times per timeout, at most every second: the stall is seen within ~25%.
    const every = Math.max(50, Math.min(1000, timeoutMs / 4));
    this.#timer = setInterval(() => {
      const idle = performance.now() - this.#last;
      if (idle < timeoutMs) return;
      this.stop();
      this.#fired = new StallError(timeoutMs, what);
      onStall(this.#fired);
    }, every);
  }

  /** Records progress. */
  touch(): void {
    this.#last = performance.now();
  }

  /** The stall, once it fired. */
  get stalled(): StallError | undefined {
    return this.#fired;
  }

  /** Stops watching (idempotent). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
