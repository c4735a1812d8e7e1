/**
 * `config validate` and `config show`.
 *
 * @module
 */
import { object, or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { command, constant } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { stringify } from "yaml";
import { EXIT_CODE_OF_KIND, ExitCode } from "../lib/errors.ts";
import { checkCredentialRefs } from "../lib/credentials/refs.ts";
import type { Context } from "./context.ts";

/** The parsed `config` command line. */
export type ConfigArgs = { command: "config validate" } | { command: "config show" };

/** Parser of the `config` command group. */
export const configCommand: Parser<"sync", ConfigArgs, unknown> = command(
  "config",
  or(
    command("validate", object({ command: constant("config validate" as const) }), {
      brief: message`Check the configuration file and report every problem.`,
      description:
        message`Reads the configuration (--config, else $VYA_CONFIG, else ./config.yaml, \
else /etc/vya-backupdb/config.yaml), applies the environment overlay (--env, else $VYA_ENV, else \
the file's environment:) and validates it. Every problem is reported as file:line:column: field: \
message. Also reports instances whose credential id is missing from the credentials file, and \
warns (stderr, exit stays 0) when no instance is configured or enabled. \
Exit 0 when valid, 3 otherwise. Needs read access to the config and credentials files only.`,
    }),
    command("show", object({ command: constant("config show" as const) }), {
      brief: message`Print the effective configuration after overlays and defaults.`,
      description: message`Prints the configuration as it will be used: the selected overlay \
merged in, defaults filled, relative paths resolved against the config file's folder. No secret \
is printed. With --json, prints JSON.`,
    }),
  ),
  {
    brief: message`Validate or show the configuration.`,
  },
);

/** Runs `config validate`. */
export async function runConfigValidate(ctx: Context): Promise<number> {
  const loaded = await ctx.loadConfig();
  const problems = await checkCredentialRefs(loaded.config);
  // Valid, but `backup --all` would have nothing to do (and exit 3 without --allow-empty).
  const enabled = loaded.config.instances.filter((i) => i.enabled).length;
  if (loaded.config.instances.length === 0) {
    ctx.log.warn(
      `${loaded.source.file}: no instance is configured: backup --all has nothing to do`,
    );
  } else if (enabled === 0) {
    ctx.log.warn(
      `${loaded.source.file}: every instance is disabled: backup --all has nothing to do`,
    );
  }
  const result = {
    file: loaded.source.file,
    environment: loaded.config.environment ?? null,
    instances: loaded.config.instances.length,
    valid: problems.length === 0,
    problems,
  };
  if (ctx.json) ctx.outJson(result);
  else if (problems.length === 0) {
    ctx.out(
      `${loaded.source.file}: valid (${loaded.config.instances.length} instance(s)` +
        `${loaded.config.environment ? `, environment ${loaded.config.environment}` : ""})`,
    );
  } else {
    for (const p of problems) ctx.out(`${loaded.source.file}: ${p}`);
  }
  return problems.length === 0 ? ExitCode.OK : EXIT_CODE_OF_KIND.config;
}

/** Runs `config show`. */
export async function runConfigShow(ctx: Context): Promise<number> {
  const loaded = await ctx.loadConfig();
  const shown = { source: loaded.source.file, ...loaded.config };
  if (ctx.json) ctx.outJson(shown);
  else for (const line of stringify(shown).trimEnd().split("\n")) ctx.out(line);
  return ExitCode.OK;
}
