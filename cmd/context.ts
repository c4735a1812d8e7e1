/**
 * What every command handler receives: the global options, a logger and the output writers.
 *
 * @module
 */
import { createLogger, escapeControls, type Logger, type LogLevel } from "../lib/log.ts";
import { loadConfig, type LoadedConfig } from "../lib/config/load.ts";
import { redact } from "../lib/redact.ts";

/** Global options, accepted before and after the command. */
export interface GlobalOptions {
  /** `--config PATH`. */
  config?: string;
  /** `--env NAME`. */
  env?: string;
  /** `--json`: results as JSON on stdout, logs as JSON lines on stderr. */
  json?: boolean;
  /** `--quiet`: only warnings and errors on stderr. */
  quiet?: boolean;
  /** `--verbose`: debug lines on stderr. */
  verbose?: boolean;
}

/** The runtime context of one command. */
export interface Context {
  /** The parsed global options. */
  globals: GlobalOptions;
  /** Logs to stderr, redacted. */
  log: Logger;
  /** Whether results are printed as JSON. */
  json: boolean;
  /** Writes a line of results to stdout (redacted; control characters escaped). */
  out(line: string): void;
  /** Writes a value as pretty JSON to stdout (redacted). */
  outJson(value: unknown): void;
  /** Loads the configuration named by the global options. */
  loadConfig(): Promise<LoadedConfig>;
}

const encoder = new TextEncoder();

function writeAll(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** Creates the context from the global options. */
export function createContext(globals: GlobalOptions): Context {
  const level: LogLevel = globals.verbose ? "debug" : globals.quiet ? "warn" : "info";
  const json = globals.json ?? false;
  return {
    globals,
    json,
    log: createLogger({ level, json }),
    // Names from servers and files reach the terminal here: escaped, one line stays one line.
    out: (line) => writeAll(escapeControls(redact(line)) + "\n"),
    outJson: (value) => writeAll(redact(JSON.stringify(value, null, 2)) + "\n"),
    loadConfig: () => loadConfig({ path: globals.config, env: globals.env }),
  };
}
