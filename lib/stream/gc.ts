/**
 * Prompt release of stream buffers. A backup moves ~10^5 short-lived buffers per gigabyte; V8
 * frees their memory only when it collects, and it starts collecting for external memory late
 * (tens of MiB per isolate, each compression worker being one). When the runtime exposes `gc`
 * ({@linkcode V8_FLAGS_OPTION}, set by the tasks and the compiled binary), the data path asks for a
 * cheap young-generation collection every few MiB, which keeps peak memory flat and low.
 *
 * @module
 */

/**
 * The V8 flags every way of starting vya-backupdb passes (deno.json tasks, the compiled binary,
 * the systemd unit, the tests and the bench), declared once here. `--expose-gc` gives the data
 * path {@linkcode collect}. A 2 MiB young generation (V8 grows it to 16 MiB and more per isolate,
 * and every compression worker is one) plus `--optimize-for-size` took peak RSS of a 200 MB gzip
 * backup from 175-192 to 149-151 MiB and of a two-job restore from 175 to 111 MiB, at the same
 * MB/s in the same bench run (the stream's buffers die young; V8 only needs to look sooner).
 */
export const V8_FLAGS = "--expose-gc,--max-semi-space-size=2,--optimize-for-size";

/** {@linkcode V8_FLAGS} as the `deno run` / `deno compile` option. */
export const V8_FLAGS_OPTION = `--v8-flags=${V8_FLAGS}`;

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
