/**
 * SIGINT/SIGTERM handling for long commands: the signal aborts the work (children are killed,
 * partial files removed), then the command exits 130.
 *
 * @module
 */

/**
 * Runs `work` with an AbortSignal that SIGINT and SIGTERM fire. Returns its result, or
 * undefined when a signal interrupted it.
 */
export async function withInterruption<T>(
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T | undefined> {
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted by signal"));
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    return await work(controller.signal);
  } catch (e) {
    if (controller.signal.aborted) return undefined;
    throw e;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
  }
}
