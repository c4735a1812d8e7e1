/**
 * `systemd print` and `systemd install`: the service and timer units for the nightly run.
 *
 * @module
 */
import { object, or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import type { Parser } from "@optique/core/parser";
import { command, constant, option } from "@optique/core/primitives";
import { string } from "@optique/core/valueparser";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ExitCode, RefusedError } from "../lib/errors.ts";
import { writeFileAtomic } from "../lib/secure_fs.ts";
import { V8_FLAGS_OPTION } from "../lib/stream/gc.ts";
import {
  DEFAULT_ON_CALENDAR,
  DEFAULT_RANDOMIZED_DELAY_SEC,
  SERVICE_NAME,
  serviceUnit,
  TIMER_NAME,
  timerUnit,
  type UnitOptions,
} from "../lib/systemd/units.ts";
import type { Context } from "./context.ts";
import { UsageError } from "./usage.ts";

const onCalendar = optional(option("--on-calendar", string({ metavar: "SPEC" }), {
  description: message`When the timer fires (systemd OnCalendar=; default "*-*-* 02:30:00"; \
check a value with systemd-analyze calendar).`,
}));

/** Parser of the `systemd` command group. */
export const systemdCommand: Parser<"sync", SystemdParsed, unknown> = command(
  "systemd",
  or(
    command("print", object({ command: constant("systemd print" as const), onCalendar }), {
      brief: message`Print the service and timer units to stdout.`,
    }),
    command(
      "install",
      object({
        command: constant("systemd install" as const),
        onCalendar,
        dir: optional(option("--dir", string({ metavar: "DIR" }), {
          description: message`Where the units go (default /etc/systemd/system).`,
        })),
        force: optional(option("--force", {
          description: message`Replace units that differ from what would be written.`,
        })),
      }),
      {
        brief: message`Write vya-backupdb.service and vya-backupdb.timer.`,
        description: message`Writes the units (0644) for the binary and configuration this \
command is run with. A unit that exists with other content is left alone (exit 3) unless \
--force. Prints the systemctl commands to run next.`,
      },
    ),
  ),
  { brief: message`Generate systemd units for the nightly backup.` },
);

/** What `systemd print|install` parsed. */
export type SystemdParsed = SystemdPrintArgs | SystemdInstallArgs;

/** What `systemd print` parsed. */
export type SystemdPrintArgs = { command: "systemd print"; onCalendar?: string };

/** What `systemd install` parsed. */
export type SystemdInstallArgs = {
  command: "systemd install";
  onCalendar?: string;
  dir?: string;
  force?: boolean;
};

/** The units for the running binary and the loaded configuration. */
async function units(parsed: SystemdParsed, ctx: Context): Promise<Record<string, string>> {
  const { config, source } = await ctx.loadConfig();
  const calendar = parsed.onCalendar ?? DEFAULT_ON_CALENDAR;
  if (!calendar.trim() || /[\n\r]/.test(calendar)) {
    throw new UsageError(
      `--on-calendar: expected a systemd calendar expression, got "${calendar}"`,
    );
  }
  const exe = Deno.execPath();
  // Run from source, the binary is deno itself: the unit runs main.ts with the project's permissions.
  const fromSource = /(^|\/)deno$/.test(exe) && Deno.mainModule.startsWith("file:");
  const main = fromSource ? fileURLToPath(Deno.mainModule) : undefined;
  const exec = main ? [exe, "run", "-P=vya", "--no-prompt", V8_FLAGS_OPTION, main] : [exe];
  const args = ["--config", source.file];
  if (config.environment) args.push("--env", config.environment);
  args.push("--quiet", "backup", "--all");
  const writePaths = [config.storage.path];
  if (config.metrics.textfile) writePaths.push(dirname(config.metrics.textfile));
  const o: UnitOptions = {
    exec,
    args,
    workingDirectory: main ? dirname(main) : undefined,
    writePaths,
    readPaths: [source.file, config.credentials.file, config.credentials.key_file ?? "", main ?? ""]
      .filter(Boolean),
    readsHome: main !== undefined,
    nice: config.backup.nice,
    ionice: config.backup.ionice,
    onCalendar: calendar.trim(),
    randomizedDelaySec: DEFAULT_RANDOMIZED_DELAY_SEC,
  };
  return { [SERVICE_NAME]: serviceUnit(o), [TIMER_NAME]: timerUnit(o) };
}

/** Runs `systemd print`. */
export async function runSystemdPrint(parsed: SystemdParsed, ctx: Context): Promise<number> {
  const all = await units(parsed, ctx);
  const text = Object.entries(all).map(([name, body]) => `# ${name}\n${body}`).join("\n");
  // Unit text goes out as it is (escapes would change what systemd reads).
  await Deno.stdout.write(new TextEncoder().encode(text));
  return ExitCode.OK;
}

/** Runs `systemd install`. */
export async function runSystemdInstall(parsed: SystemdInstallArgs, ctx: Context): Promise<number> {
  const all = await units(parsed, ctx);
  const dir = resolve(parsed.dir ?? "/etc/systemd/system");
  const plan: { path: string; body: string; state: "new" | "same" | "changed" }[] = [];
  for (const [name, body] of Object.entries(all)) {
    const path = join(dir, name);
    const current = await Deno.readTextFile(path).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    plan.push({
      path,
      body,
      state: current === undefined ? "new" : current === body ? "same" : "changed",
    });
  }
  const changed = plan.filter((p) => p.state === "changed");
  if (changed.length && !parsed.force) {
    throw new RefusedError(
      `${changed.map((p) => p.path).join(" and ")} exist${
        changed.length === 1 ? "s" : ""
      } with other content; nothing written`,
      { hint: "compare with 'vya-backupdb systemd print', then re-run with --force to replace" },
    );
  }
  for (const p of plan) {
    if (p.state !== "same") await writeFileAtomic(p.path, p.body, { mode: 0o644 });
    ctx.out(
      `${
        p.state === "same" ? "unchanged" : p.state === "new" ? "written  " : "replaced "
      } ${p.path}`,
    );
  }
  ctx.out("now run: systemctl daemon-reload && systemctl enable --now vya-backupdb.timer");
  return ExitCode.OK;
}
