/**
 * Progress on stderr: a redrawn line on a terminal, nothing between lines elsewhere (cron logs
 * get one line per finished item from the logger instead).
 *
 * @module
 */

import { escapeControls } from "../lib/log.ts";

const encoder = new TextEncoder();

/** Formats a byte count as a human size (binary units). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A single status line redrawn in place; inert when stderr is not a terminal. */
export class ProgressLine {
  #active: boolean;
  #shown = false;

  /** Creates the line; `enabled` false (e.g. --quiet, --json) makes it inert. */
  constructor(enabled: boolean) {
    this.#active = enabled && Deno.stderr.isTerminal();
  }

  /** Replaces the line's text. */
  update(text: string): void {
    if (!this.#active) return;
    const width = Deno.consoleSize?.().columns ?? 80;
    const shown = escapeControls(text).slice(0, Math.max(10, width - 1));
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${shown}`));
    this.#shown = true;
  }

  /** Clears the line so a log line can be printed. */
  clear(): void {
    if (!this.#active || !this.#shown) return;
    Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    this.#shown = false;
  }
}
