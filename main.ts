/**
 * vya-backupdb: back up and restore MySQL/MariaDB and PostgreSQL servers.
 *
 * Run from source with `deno task vya ARGS…`, or compile with `deno task compile`.
 *
 * @module
 */
import { main } from "./cmd/cli.ts";
import { guardProcessEnv } from "./lib/node_env.ts";

if (import.meta.main) {
  guardProcessEnv();
  Deno.exit(await main(Deno.args));
}
