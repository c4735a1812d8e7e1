/**
 * Starts a throwaway PostgreSQL and/or MariaDB for manual work or a child-process test, prints
 * one JSON line describing them on stdout, and keeps them until SIGINT/SIGTERM.
 *
 *     deno run -A tests/harness/serve.ts [pg] [my]
 *
 * @module
 */
import { startMariadb, startPostgres } from "./servers.ts";

if (import.meta.main) {
  const want = Deno.args.length ? Deno.args : ["pg", "my"];
  const [pg, my] = await Promise.all([
    want.includes("pg") ? startPostgres() : undefined,
    want.includes("my") ? startMariadb() : undefined,
  ]);
  const describe = (s?: { port: number; user: string; password: string; dir: string }) =>
    s && { host: "127.0.0.1", port: s.port, user: s.user, password: s.password, dir: s.dir };
  console.log(JSON.stringify({ pid: Deno.pid, postgres: describe(pg), mariadb: describe(my) }));
  // Keep the event loop alive; the harness's signal handlers stop the servers and exit.
  setInterval(() => {}, 1 << 30);
}
