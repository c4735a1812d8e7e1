/**
 * Prompt release of stream buffers. A backup moves ~10^5 short-lived buffers per gigabyte; V8
 * frees their memory only when it collects, and it starts collecting for external memory late
 * (tens of MiB per isolate, each compression worker being one). When the runtime exposes `gc`
 * (`--v8-flags=--expose-gc`, set by the tasks and the compiled binary), the data path asks for a
 * cheap young-generation collection every few MiB, which keeps peak memory flat and low.
 *
 * @module
 */

type Gc = (options?: { type?: "minor" | "major" }) => void;

/** Runs a collection when `gc` is exposed (young generation unless `major`); else nothing. */
export function collect(major = false): void {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (typeof gc === "function") gc({ type: major ? "major" : "minor" });
}

/** Young collections between two full ones: what survives a few of them is promoted and stays. */
const MINOR_PER_MAJOR = 16;

/**
 * Returns a function to report bytes to: it runs a young-generation collection once every
 * `bytes` bytes, and a full one every {@linkcode MINOR_PER_MAJOR} of those.
 */
export function youngCollector(bytes: number): (seen: number) => void {
  let pending = 0;
  let minors = 0;
  return (seen) => {
    pending += seen;
    if (pending < bytes) return;
    pending = 0;
    minors = (minors + 1) % MINOR_PER_MAJOR;
    collect(minors === 0);
  };
}
