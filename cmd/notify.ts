/**
 * `notify test`: a test message through every configured channel, one result line each.
 *
 * @module
 */
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import type { Parser } from "@optique/core/parser";
import { command, constant } from "@optique/core/primitives";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { ConfigError, ExitCode } from "../lib/errors.ts";
import { Notifier } from "../lib/notify/notifier.ts";
import type { Context } from "./context.ts";

/** What `notify test` parsed. */
export type NotifyArgs = { command: "notify test" };

/** Parser of the `notify` command group. */
export const notifyCommand: Parser<"sync", NotifyArgs, unknown> = command(
  "notify",
  command("test", object({ command: constant("notify test" as const) }), {
    brief: message`Send a test message through every configured channel.`,
    description: message`Sends a test mail (notify.email) and calls each webhook of \
notify.webhooks once (its url_success, else url_start, else url_failure) and prints one line per \
channel. Exit 0 when every channel delivered, 1 when any failed, 3 when none is configured.`,
  }),
  { brief: message`Notifications (mail, webhooks).` },
);

/** Runs `notify test`. */
export async function runNotifyTest(ctx: Context): Promise<number> {
  const { config } = await ctx.loadConfig();
  const notifier = new Notifier(config.notify, {
    host: Deno.hostname(),
    credentials: new CredentialResolver(config.credentials, ctx.log),
    log: ctx.log,
  });
  if (!notifier.configured) {
    throw new ConfigError("no notification channel is configured", {
      hint: "add notify.email and/or notify.webhooks to the configuration",
    });
  }
  const deliveries = await notifier.test();
  if (ctx.json) ctx.outJson({ deliveries });
  else {
    for (const d of deliveries) {
      ctx.out(d.ok ? `ok      ${d.channel}` : `FAILED  ${d.channel}: ${d.error}`);
    }
  }
  return deliveries.every((d) => d.ok) ? ExitCode.OK : ExitCode.PARTIAL;
}
