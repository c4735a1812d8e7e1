/**
 * `version`: the tool's version and the runtime it runs on.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { command, constant } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { VERSION } from "../lib/version.ts";
import { ExitCode } from "../lib/errors.ts";
import type { Context } from "./context.ts";

/** What `version` parses to. */
export interface VersionArgs {
  /** The command's name. */
  command: "version";
}

/** Parser of the `version` command. */
export const versionCommand: Parser<"sync", VersionArgs, unknown> = command(
  "version",
  object({ command: constant("version" as const) }),
  { brief: message`Print the version of vya-backupdb and of the Deno runtime.` },
);

/** Runs `version`. */
export function runVersion(ctx: Context): number {
  const info = { name: "vya-backupdb", version: VERSION, deno: Deno.version.deno };
  if (ctx.json) ctx.outJson(info);
  else ctx.out(`vya-backupdb ${VERSION} (deno ${Deno.version.deno})`);
  return ExitCode.OK;
}
