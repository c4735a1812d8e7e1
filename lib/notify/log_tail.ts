/**
 * Keeps the last lines a run logged, for the end-of-run mail: a logger that passes everything
 * on to the real one and remembers the formatted (redacted) lines in a ring.
 *
 * @module
 */
import { createLogger, type Logger, type LogLevel } from "../log.ts";

/** The last lines logged through {@linkcode LogTail.wrap}. */
export class LogTail {
  #lines: string[] = [];
  #max: number;

  /** Keeps at most `max` lines (default 40). */
  constructor(max = 40) {
    this.#max = max;
  }

  /** A logger that logs to `inner` and records each line of level `min` and above here. */
  wrap(inner: Logger, min: LogLevel = "info"): Logger {
    const own = createLogger({
      level: min,
      sink: (line) => {
        this.#lines.push(line);
        if (this.#lines.length > this.#max) this.#lines.shift();
      },
    });
    const both = (level: LogLevel) => (m: string, f?: Record<string, unknown>) => {
      inner[level](m, f);
      own[level](m, f);
    };
    return { debug: both("debug"), info: both("info"), warn: both("warn"), error: both("error") };
  }

  /** The recorded lines, oldest first. */
  lines(): string[] {
    return [...this.#lines];
  }
}
