/**
 * Reading environment variables without asking for permissions the user did not grant.
 *
 * A command run under narrow flags (say `--allow-read=/etc/vya-backupdb` only) must still work:
 * an optional variable it may not read is simply treated as unset.
 *
 * @module
 */

/** Returns the variable's value, or undefined when it is unset or not readable under the flags. */
export function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}
