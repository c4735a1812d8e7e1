/**
 * Reading a password without it ever being an argument: from the terminal without echo, or
 * from stdin for scripts (`--password-stdin`).
 *
 * @module
 */
import { UsageError } from "../lib/errors.ts";

const encoder = new TextEncoder();

/** Reads all of stdin and strips one trailing newline (as `docker login --password-stdin`). */
export async function readSecretFromStdin(): Promise<string> {
  const text = await new Response(Deno.stdin.readable).text();
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
  Deno.stderr.writeSync(encoder.encode(prompt));
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
