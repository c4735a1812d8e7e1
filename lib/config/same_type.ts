/**
 * A compile-time check that a hand-written type and a schema's output are the same type, so the
 * documented types cannot drift from the valibot schemas that are the source of truth.
 *
 * @module
 */

// Deep structural identity: flattened first (valibot's output is built of intersections), then
// compared both ways with TypeScript's own identity check, so an extra or missing optional key
// also fails (mutual assignability would let those through).
/** `T` with intersections flattened into plain object types, recursively. */
export type Flat<T> = T extends readonly unknown[] ? { [K in keyof T]: Flat<T[K]> }
  : T extends object ? { [K in keyof T]: Flat<T[K]> }
  : T;
/** `true` only when `A` and `B` are structurally identical. */
export type SameType<A, B> = (<T>() => T extends Flat<A> ? 1 : 2) extends
  (<T>() => T extends Flat<B> ? 1 : 2) ? true : false;
