/**
 * Minimal assertions for tests (JSR's @std/assert cannot be reached from here), with the same
 * names and argument order as @std/assert so tests read the same.
 *
 * @module
 */
import { inspect, isDeepStrictEqual } from "node:util";

/** Thrown when an assertion fails. */
export class AssertionError extends Error {
  /** Creates an assertion error. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function show(value: unknown): string {
  return inspect(value, { depth: 6, breakLength: 100, sorted: true });
}

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Fails unless `actual` and `expected` are deeply equal (strict). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  throw new AssertionError(
    `${message ? message + ": " : ""}values differ\n  actual:   ${show(actual)}\n  expected: ${
      show(expected)
    }`,
  );
}

/** Fails if `actual` and `expected` are deeply equal. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (!isDeepStrictEqual(actual, expected)) return;
  throw new AssertionError(`${message ? message + ": " : ""}values are equal: ${show(actual)}`);
}

/** Fails unless `actual` matches `pattern`. */
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (pattern.test(actual)) return;
  throw new AssertionError(
    `${message ? message + ": " : ""}${show(actual)} does not match ${pattern}`,
  );
}

/** Fails if `actual` matches `pattern`. */
export function assertNotMatch(actual: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(actual)) return;
  throw new AssertionError(`${message ? message + ": " : ""}${show(actual)} matches ${pattern}`);
}

/** Fails unless `actual` contains `expected`. */
export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  if (actual.includes(expected)) return;
  throw new AssertionError(
    `${message ? message + ": " : ""}${show(actual)} does not include ${show(expected)}`,
  );
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

function checkError<E extends Error>(
  error: unknown,
  errorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  if (errorClass && !(error instanceof errorClass)) {
    throw new AssertionError(
      `expected ${errorClass.name}, got ${error instanceof Error ? error.name : typeof error}: ${
        error instanceof Error ? error.message : show(error)
      }`,
    );
  }
  if (msgIncludes !== undefined) {
    const message = error instanceof Error ? error.message : String(error);
    if (!message.includes(msgIncludes)) {
      throw new AssertionError(
        `error message ${show(message)} does not include ${show(msgIncludes)}`,
      );
    }
  }
  return error as E;
}

/** Fails unless `fn` throws (optionally an instance of `errorClass` whose message includes text). */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  errorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (error) {
    return checkError(error, errorClass, msgIncludes);
  }
  throw new AssertionError("expected the function to throw");
}

/** Fails unless the promise from `fn` rejects (optionally with `errorClass` and message text). */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  errorClass?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    return checkError(error, errorClass, msgIncludes);
  }
  throw new AssertionError("expected the promise to reject");
}
