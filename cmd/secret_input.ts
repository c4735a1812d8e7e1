/**
 * Reading a password without it ever being an argument: from the terminal without echo, or
 * from stdin for scripts (`--password-stdin`).
 *
 * @module
 */
import { UsageError } from "./usage.ts";
import { escapeControls } from "../lib/log.ts";

const encoder = new TextEncoder();

/** The longest password read from stdin. */
const MAX_SECRET_BYTES = 64 * 1024;

/** Reads all of stdin and strips one trailing newline (as `docker login --password-stdin`). */
export async function readSecretFromStdin(): Promise<string> {
  // Bounded: `--password-stdin < /dev/zero` (or a file piped by mistake) must not fill memory.
  const buf = new Uint8Array(MAX_SECRET_BYTES + 1);
  let got = 0;
  while (got < buf.length) {
    const n = await Deno.stdin.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (got > MAX_SECRET_BYTES) {
    throw new UsageError(
      `more than ${MAX_SECRET_BYTES / 1024} KiB on standard input: not a password`,
    );
  }
  const text = new TextDecoder().decode(buf.subarray(0, got));
  const secret = text.replace(/\r?\n$/, "");
  if (secret === "") throw new UsageError("no password on standard input");
  return secret;
}

/** Prompts on the terminal with echo off. Fails when stdin is not a terminal. */
export async function promptSecret(prompt: string): Promise<string> {
  if (!Deno.stdin.isTerminal()) {
    throw new UsageError("standard input is not a terminal", {
      hint: "pipe the password in with --password-stdin",
    });
  }
  Deno.stderr.writeSync(encoder.encode(escapeControls(prompt)));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(1);
  try {
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const b = buf[0];
      if (b === 13 || b === 10) break;
      if (b === 3) throw new UsageError("cancelled");
      if (b === 127 || b === 8) {
        bytes.pop();
        continue;
      }
      bytes.push(b);
    }
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(encoder.encode("\n"));
  }
  const secret = new TextDecoder().decode(new Uint8Array(bytes));
  if (secret === "") throw new UsageError("empty password");
  return secret;
}
