/**
 * The command tree: global options, command dispatch, error reporting and exit codes.
 *
 * @module
 */
import { merge, object, or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { option } from "@optique/core/primitives";
import { string } from "@optique/core/valueparser";
import { run } from "@optique/run";
import type { Parser } from "@optique/core/parser";
import { EXIT_CODE_OF_KIND, ExitCode, explainPermissionError, VyaError } from "../lib/errors.ts";
import { withFlagText } from "./usage.ts";
import { redact } from "../lib/redact.ts";
import { ConfigValidationError, formatProblem } from "../lib/config/load.ts";
import { VERSION } from "../lib/version.ts";
import { type Context, createContext, type GlobalOptions } from "./context.ts";
import { type ConfigArgs, configCommand, runConfigShow, runConfigValidate } from "./config.ts";
import { runVersion, type VersionArgs, versionCommand } from "./version.ts";
import { credentialsCommand, type CredentialsParsed, runCredentials } from "./credentials.ts";
import { backupCommand, type BackupParsed, runBackupCommand } from "./backup.ts";
import { type CheckArgs, checkCommand, runCheck } from "./check.ts";
import { type RestoreArgs, restoreCommand, runRestore } from "./restore.ts";
import { runUsersBackup, runUsersRestore, type UsersArgs, usersCommand } from "./users.ts";
import { type NotifyArgs, notifyCommand, runNotifyTest } from "./notify.ts";
import { type InfoArgs, infoCommand, runInfo } from "./info.ts";
import {
  type PinArgs,
  pinCommand,
  type PruneArgs,
  pruneCommand,
  runPin,
  runPrune,
  unpinCommand,
} from "./prune.ts";
import { runVerify, type VerifyArgs, verifyCommand } from "./verify.ts";
import {
  runSystemdInstall,
  runSystemdPrint,
  systemdCommand,
  type SystemdParsed,
} from "./systemd.ts";

const globalOptions = object("Global options", {
  config: optional(option("--config", string({ metavar: "PATH" }), {
    description: message`Configuration file. Default: $VYA_CONFIG, else ./config.yaml, else \
/etc/vya-backupdb/config.yaml.`,
  })),
  env: optional(option("--env", string({ metavar: "NAME" }), {
    description: message`Environment overlay to apply (environments.NAME). Default: $VYA_ENV, \
else the file's environment: key.`,
  })),
  json: optional(option("--json", {
    description: message`Results as JSON on stdout; logs as one JSON object a line on stderr.`,
  })),
  quiet: optional(option("--quiet", { description: message`Only warnings and errors on stderr.` })),
  verbose: optional(option("--verbose", { description: message`Debug detail on stderr.` })),
});

const commands = or(
  backupCommand,
  checkCommand,
  configCommand,
  credentialsCommand,
  infoCommand,
  notifyCommand,
  pinCommand,
  pruneCommand,
  restoreCommand,
  systemdCommand,
  unpinCommand,
  usersCommand,
  verifyCommand,
  versionCommand,
);

/** Everything a command line parses to: the global options and one command's arguments. */
export type CliArgs =
  & GlobalOptions
  & (
    | BackupParsed
    | CheckArgs
    | ConfigArgs
    | CredentialsParsed
    | InfoArgs
    | RestoreArgs
    | UsersArgs
    | VerifyArgs
    | VersionArgs
    | NotifyArgs
    | PruneArgs
    | PinArgs
    | SystemdParsed
  );

/** The whole command-line parser. */
export const parser: Parser<"sync", CliArgs, unknown> = merge(globalOptions, commands);

const EXIT_CODES_HELP = message`Exit codes: 0 success; 1 some items failed; 2 all items failed \
or the server could not be reached; 3 configuration, credential or permission error, or refused \
before anything changed; 4 another run holds the lock; 64 command-line usage error; \
130 interrupted.`;

/** Runs the command named by `args` and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = run(parser, {
    programName: "vya-backupdb",
    args,
    help: "both",
    version: { value: VERSION, option: true },
    completion: "command",
    aboveError: "none",
    errorExitCode: EXIT_CODE_OF_KIND.usage,
    brief: message`Back up and restore MySQL/MariaDB and PostgreSQL servers: one streamed, \
compressed, checksummed file per database, plus users and roles.`,
    footer: EXIT_CODES_HELP,
  });
  const globals: GlobalOptions = {
    config: parsed.config,
    env: parsed.env,
    json: parsed.json,
    quiet: parsed.quiet,
    verbose: parsed.verbose,
  };
  const ctx = createContext(globals);
  try {
    return await dispatch(parsed, ctx);
  } catch (error) {
    return reportError(error, ctx);
  }
}

function dispatch(parsed: CliArgs, ctx: Context): Promise<number> | number {
  switch (parsed.command) {
    case "config validate":
      return runConfigValidate(ctx);
    case "config show":
      return runConfigShow(ctx);
    case "version":
      return runVersion(ctx);
    case "backup":
      return runBackupCommand(parsed, ctx);
    case "check":
      return runCheck(parsed, ctx);
    case "restore":
      return runRestore(parsed, ctx);
    case "users backup":
      return runUsersBackup(parsed, ctx);
    case "users restore":
      return runUsersRestore(parsed, ctx);
    case "info":
      return runInfo(parsed, ctx);
    case "verify":
      return runVerify(parsed, ctx);
    case "notify test":
      return runNotifyTest(ctx);
    case "prune":
      return runPrune(parsed, ctx);
    case "pin":
    case "unpin":
      return runPin(parsed, ctx);
    case "systemd print":
      return runSystemdPrint(parsed, ctx);
    case "systemd install":
      return runSystemdInstall(parsed, ctx);
    case "credentials encrypt":
    case "credentials list":
    case "credentials remove":
    case "credentials keygen":
    case "credentials age-keygen":
    case "credentials import":
      return runCredentials(parsed, ctx);
  }
}

/** Prints an error the way users see it and returns its exit code. */
export function reportError(error: unknown, ctx: Context): number {
  const found = error instanceof VyaError ? error : explainPermissionError(error);
  if (found) {
    const known = withFlagText(found);
    // A list of problems is printed one a line (the logger keeps each line whole).
    const lines = known instanceof ConfigValidationError
      ? known.problems.map((p) => formatProblem(known.file, p))
      : [known.message];
    lines.forEach((line, i) =>
      ctx.log.error(line, known.hint && i === lines.length - 1 ? { hint: known.hint } : undefined)
    );
    return known.exitCode;
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  ctx.log.error(`internal error: ${redact(text)}`);
  return ExitCode.PARTIAL;
}
