/**
 * The kill drill's view of a restore target: the shared one of the tests, plus where the
 * server logs, for failure reports.
 *
 * @module
 */
import type { MyServer, PgServer } from "../../tests/harness/servers.ts";
import { myTargetView, pgTargetView, type TargetView } from "../../tests/helpers/targets.ts";

/** One engine's view of a target, with its server log. */
export interface DrillEngine extends TargetView {
  /** Where the server writes its log. */
  logFile: string;
}

/** The PostgreSQL view: the mark is the database comment. */
export function pgDrill(pg: PgServer): DrillEngine {
  return { ...pgTargetView(pg), logFile: `${pg.dir}/server.log` };
}

/** The MariaDB view: the mark is a table of its own in the target. */
export function myDrill(my: MyServer): DrillEngine {
  return { ...myTargetView(my), logFile: `${my.dir}/error.log` };
}

/** The last `n` lines of a server log, for a failure report. */
export async function logTail(engine: DrillEngine, n = 30): Promise<string> {
  try {
    return (await Deno.readTextFile(engine.logFile)).trimEnd().split("\n").slice(-n).join("\n");
  } catch (e) {
    return `(cannot read ${engine.logFile}: ${e instanceof Error ? e.message : e})`;
  }
}
