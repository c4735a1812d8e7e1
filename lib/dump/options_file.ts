/**
 * A MySQL/MariaDB client options file holding the password, so it never appears in argv and
 * the deprecated `MYSQL_PWD` is not needed. The file is 0600 in a fresh 0700 folder and removed
 * as soon as the child is done.
 *
 * @module
 */
import { join } from "node:path";
import type { ConnectionParams } from "../config/types.ts";

/** A written options file and how to get rid of it. */
export interface OptionsFile {
  /** Path to pass as `--defaults-file=PATH` (must be the first argument). */
  path: string;
  /** Removes the file and its folder (idempotent). */
  remove(): Promise<void>;
}

/** Quotes a value for a MySQL option file: the reader strips the outer quotes and unescapes. */
export function quoteOptionValue(value: string): string {
  const escaped = value
    .replaceAll("\\", "\\\\")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r")
    .replaceAll("\t", "\\t")
    // An unescaped quote would end the quoted value early, and a `#` after it would then start
    // a comment, cutting the password short.
    .replaceAll('"', '\\"');
  return `"${escaped}"`;
}

/**
 * Writes a `[client]` section with host, port, user and password. Being passed with
 * `--defaults-file`, it also keeps /etc/mysql/my.cnf and ~/.my.cnf out of the run.
 */
export async function writeOptionsFile(params: ConnectionParams): Promise<OptionsFile> {
  const dir = await Deno.makeTempDir({ prefix: "vya-" });
  await Deno.chmod(dir, 0o700);
  const path = join(dir, "client.cnf");
  const body = [
    "[client]",
    `host=${quoteOptionValue(params.host)}`,
    `port=${params.port}`,
    `user=${quoteOptionValue(params.user)}`,
    `password=${quoteOptionValue(params.password)}`,
    "protocol=TCP",
    "",
  ].join("\n");
  await Deno.writeTextFile(path, body, { mode: 0o600, createNew: true });
  let removed = false;
  return {
    path,
    remove: async () => {
      if (removed) return;
      removed = true;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
