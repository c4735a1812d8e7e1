/**
 * Runs the reference implementation (Debian's python3-cryptography) for interop tests. Secrets go
 * through stdin, never argv, as they would in production.
 *
 * @module
 */

/** The system Python that has `cryptography` (the pyenv `python3` on PATH does not). */
export const PYTHON = "/usr/bin/python3";

/**
 * Runs a Python script with `input` on stdin and returns its stdout (trailing newline removed).
 *
 * @throws {Error} with Python's stderr when the script fails
 */
export async function runPython(script: string, input = ""): Promise<string> {
  const child = new Deno.Command(PYTHON, {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`python failed (${code}): ${decoder.decode(stderr)}`);
  return decoder.decode(stdout).replace(/\n$/, "");
}
