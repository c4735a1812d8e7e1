/**
 * Joining byte arrays, the one way every stream of this tool does it.
 *
 * @module
 */

/**
 * The bytes of `parts`, one after the other, in a new array. `size`, when the caller knows it,
 * saves adding up the lengths.
 */
export function concatBytes(
  parts: readonly Uint8Array[],
  size: number = parts.reduce((n, p) => n + p.length, 0),
): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
