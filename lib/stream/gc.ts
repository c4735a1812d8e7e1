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

/** Runs a young-generation collection when `gc` is exposed; does nothing otherwise. */
export function collectYoung(): void {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (typeof gc === "function") gc({ type: "minor" });
}

/** Calls {@linkcode collectYoung} once every `bytes` bytes reported to the returned function. */
export function youngCollector(bytes: number): (seen: number) => void {
  let pending = 0;
  return (seen) => {
    pending += seen;
    if (pending >= bytes) {
      pending = 0;
      collectYoung();
    }
  };
}
