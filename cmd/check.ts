/**
 * `check`: can each instance be backed up right now?
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { string } from "@optique/core/valueparser";
import { checkInstance, type InstanceCheck } from "../lib/check.ts";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { runExitCode } from "../lib/errors.ts";
import { openRemoteStorage } from "../lib/storage/open.ts";
import { checkRemote, type RemoteCheck } from "../lib/storage/remote_check.ts";
import type { Context } from "./context.ts";
import { findInstance } from "./instances.ts";
import { formatBytes } from "./progress.ts";

/** The parsed `check` command line. */
export type CheckArgs = { command: "check"; instance?: string };

/** Parser of the `check` command. */
export const checkCommand: Parser<"sync", CheckArgs, unknown> = command(
  "check",
  object({
    command: constant("check" as const),
    instance: optional(option("--instance", string({ metavar: "ID" }), {
      description: message`Check only this instance (default: every enabled instance).`,
    })),
  }),
  {
    brief: message`Check that each instance can be backed up: connection, login, version, \
databases, client tools.`,
    description: message`For each instance: reachable, authenticated, server version, the \
databases a backup would take (after include/exclude, system databases dropped) with their sizes, \
and the dump and restore client tools that would be used, with their versions and why they were \
chosen. The exit code is the one a backup of the same instances would end with: 0 when every \
instance is fine; 1 when some have a problem; 2 when all do and some are unreachable, refuse the \
login or fail otherwise; 3 when every problem is of this machine (a credential, a client tool: \
the message says what to install and where it looked, a permission) or the instance is \
unknown.`,
  },
);

/** Runs `check`. */
export async function runCheck(parsed: { instance?: string }, ctx: Context): Promise<number> {
  const { config } = await ctx.loadConfig();
  const instances = parsed.instance
    ? [findInstance(config, parsed.instance)]
    : config.instances.filter((i) => i.enabled);
  const resolver = new CredentialResolver(config.credentials, ctx.log);
  const results: InstanceCheck[] = [];
  for (const instance of instances) {
    const r = await checkInstance(instance, resolver, ctx.log);
    results.push(r);
    if (!ctx.json) printCheck(ctx, r);
  }
  const remoteStorage = openRemoteStorage(config.storage, resolver);
  const remote = remoteStorage && await checkRemote(remoteStorage);
  if (remote && !ctx.json) printRemote(ctx, remote);
  // With a remote, JSON output is { instances, remote }; without, the list of instances.
  if (ctx.json) ctx.outJson(remote ? { instances: results, remote } : results);
  // The code a backup of the same instances would end with.
  return runExitCode(
    [...results, ...(remote ? [remote] : [])].map((r) =>
      r.ok ? { status: "ok" } : { status: "failed", kind: r.kind ?? "failed" }
    ),
  );
}

function printRemote(ctx: Context, r: RemoteCheck): void {
  const yes = (b: boolean) => b ? "yes" : "no";
  ctx.out(`remote ${r.location}: ${r.ok ? "ok" : "PROBLEM"}`);
  ctx.out(
    `  reachable: ${yes(r.reachable)}, authenticated: ${yes(r.authenticated)}, ` +
      `writable: ${yes(r.writable)}`,
  );
  for (const e of r.errors) ctx.out(`  error: ${e}`);
}

function printCheck(ctx: Context, r: InstanceCheck): void {
  ctx.out(`${r.instance} (${r.type} at ${r.address}): ${r.ok ? "ok" : "PROBLEM"}`);
  ctx.out(
    `  reachable: ${r.reachable ? "yes" : "no"}, authenticated: ${r.authenticated ? "yes" : "no"}`,
  );
  if (r.server_version) ctx.out(`  server: ${r.server_version.flavor} ${r.server_version.full}`);
  if (r.databases) {
    const total = r.databases.reduce((n, d) => n + d.sizeBytes, 0);
    ctx.out(`  databases to back up: ${r.databases.length} (${formatBytes(total)})`);
    for (const d of r.databases) ctx.out(`    ${d.name}  ${formatBytes(d.sizeBytes)}`);
  }
  for (const t of Object.values(r.tools?.tools ?? {})) {
    if (!t) continue;
    ctx.out(
      t.path
        ? `  ${t.role}: ${t.path} (${t.version ?? "version unknown"}; ${t.reason ?? ""})`
        : `  ${t.role}: NOT FOUND`,
    );
  }
  for (const w of r.warnings) ctx.out(`  warning: ${w}`);
  for (const e of r.errors) ctx.out(`  error: ${e}`);
}
