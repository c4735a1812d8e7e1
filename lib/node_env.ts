/**
 * Node-compatible libraries (yaml, postgres) read `process.env` freely; under narrow Deno flags
 * each such read of a variable the run may not read throws, although the library only looks
 * for optional settings. This makes those reads see the variable as unset instead, so every
 * command runs under exactly the permissions its own work needs.
 *
 * @module
 */
import process from "node:process";

function readable(name: string): boolean {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
}

let installed = false;

/** Installs the guard (idempotent). Reads of permitted variables are unchanged. */
export function guardProcessEnv(): void {
  if (installed) return;
  installed = true;
  const guarded = new Proxy({} as Record<string, string>, {
    get(_target, key) {
      if (typeof key !== "string" || !readable(key)) return undefined;
      return Deno.env.get(key);
    },
    has(_target, key) {
      return typeof key === "string" && readable(key) && Deno.env.get(key) !== undefined;
    },
    set(_target, key, value) {
      if (typeof key === "string") Deno.env.set(key, String(value));
      return true;
    },
    deleteProperty(_target, key) {
      if (typeof key === "string") Deno.env.delete(key);
      return true;
    },
    ownKeys() {
      return Deno.permissions.querySync({ name: "env" }).state === "granted"
        ? Object.keys(Deno.env.toObject())
        : [];
    },
    getOwnPropertyDescriptor(_target, key) {
      if (typeof key !== "string" || !readable(key)) return undefined;
      const value = Deno.env.get(key);
      return value === undefined
        ? undefined
        : { value, writable: true, enumerable: true, configurable: true };
    },
  });
  Object.defineProperty(process, "env", { value: guarded, configurable: true, writable: true });
}
