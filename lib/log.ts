/**
 * The logger: human lines (or one JSON object a line) on stderr, every message redacted.
 *
 * Results go to stdout through the command's own formatting; the logger never writes there.
 *
 * @module
 */
import { redact } from "./redact.ts";

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where log lines go and how they look. */
export interface LoggerOptions {
  /** Lowest level printed. */
  level?: LogLevel;
  /** One JSON object a line instead of human text. */
  json?: boolean;
  /** Receives each finished line (without newline). Default: stderr. */
  sink?: (line: string) => void;
}

/** A logger. Every message and field value passes through the redactor. */
export interface Logger {
  /** Details for debugging (`--verbose`). */
  debug(message: string, fields?: LogFields): void;
  /** Progress a user wants to see. */
  info(message: string, fields?: LogFields): void;
  /** Something is wrong but the run goes on. */
  warn(message: string, fields?: LogFields): void;
  /** Something failed. */
  error(message: string, fields?: LogFields): void;
}

const encoder = new TextEncoder();

function stderrSink(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

// C0 controls but tab, DEL, and the C1 controls (U+009B is a one-byte CSI for some terminals).
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r" };

/**
 * Makes text safe for one line of a terminal: newlines, carriage returns, escape sequences and
 * every other control character become visible escapes (`\n`, `\r`, `\x1b`, `\u009b`), so a
 * crafted name (a database called "x\nerror: …" or one holding ESC sequences) can neither split
 * a line nor drive the terminal. Tabs are kept (they separate columns).
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ??
      (code < 0x80
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`);
  });
}

function formatValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value);
}

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? "info"];
  const sink = options.sink ?? stderrSink;
  const json = options.json ?? false;
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (ORDER[level] < min) return;
    if (json) {
      const record: Record<string, unknown> = { time: new Date().toISOString(), level, message };
      for (const [k, v] of Object.entries(fields ?? {})) {
        record[k] = v instanceof Error ? v.message : v;
      }
      sink(redact(JSON.stringify(record)));
      return;
    }
    const tail = Object.entries(fields ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(" ");
    const prefix = level === "info" ? "" : `${level}: `;
    // The one place human log lines are made: whatever a message carries stays on its line.
    sink(escapeControls(redact(`${prefix}${message}${tail ? " " + tail : ""}`)));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

/** A logger that drops everything, for library callers that do not care. */
export const silentLogger: Logger = createLogger({ sink: () => {}, level: "error" });
