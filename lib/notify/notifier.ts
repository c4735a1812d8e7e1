/**
 * Delivery of a run's notifications through every configured channel: the start webhooks when
 * the run starts (in the background: a slow receiver never holds the backup), and at the end
 * one mail when an event of `notify.on` happened plus the success or failure webhooks. A
 * delivery that fails is logged and reported, never thrown: it must not change the backup's
 * exit code nor hide its result.
 *
 * @module
 */
import type { NotifyConfig } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { redact } from "../redact.ts";
import { formatMail, type MailText } from "./mail.ts";
import type { RunReport } from "./report.ts";
import { sendMail, type SmtpLogin } from "./smtp.ts";
import { callWebhook } from "./webhook.ts";

/** The outcome of one delivery. */
export interface Delivery {
  /** `email` or `webhook[N] start|success|failure|test`. */
  channel: string;
  /** Whether it was delivered. */
  ok: boolean;
  /** Why not (redacted). */
  error?: string;
}

/** What the notifier needs besides its configuration. */
export interface NotifierOptions {
  /** Host name (subjects, test messages). */
  host: string;
  /** Decrypts `notify.email.credential`. */
  credentials: { credential(id: string): Promise<SmtpLogin> };
  /** Where failed deliveries are logged. */
  log: Logger;
}

/** Sends the notifications of one run. */
export class Notifier {
  #config: NotifyConfig;
  #options: NotifierOptions;
  #started: Promise<Delivery[]> = Promise.resolve([]);

  /** Creates a notifier for `notify:`. */
  constructor(config: NotifyConfig, options: NotifierOptions) {
    this.#config = config;
    this.#options = options;
  }

  /** Whether any channel is configured. */
  get configured(): boolean {
    return this.#config.email !== undefined || this.#config.webhooks.length > 0;
  }

  /** Hits every `url_start` in the background; {@linkcode finish} waits for it. */
  start(): void {
    const body = JSON.stringify({
      tool: "vya-backupdb",
      host: this.#options.host,
      event: "start",
      started_at: new Date().toISOString(),
    });
    this.#started = Promise.all(
      this.#config.webhooks.flatMap((w, i) =>
        w.url_start
          ? [
            this.#webhook(`webhook[${i}] start`, w.url_start, w.body === "json" ? body : undefined),
          ]
          : []
      ),
    );
  }

  /**
   * Ends the run: waits for the start calls (so a receiver sees start before the end), then
   * sends the mail when an event of `notify.on` happened (failure, stale, success) and the
   * success or failure webhooks. Returns every delivery, start calls included.
   */
  async finish(report: RunReport): Promise<Delivery[]> {
    // One budget for the whole end: waiting for a hanging start call and the end calls
    // together delay the run by at most notify.timeout.
    const deadline = Date.now() + this.#config.timeout * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<Delivery[]>((resolve) => {
      timer = setTimeout(() => resolve([]), this.#config.timeout * 1000);
    });
    const out = [...await Promise.race([this.#started, late])];
    clearTimeout(timer);
    const on = new Set(this.#config.on);
    const mailWanted = (report.result === "failure" && on.has("failure")) ||
      (report.result === "success" && on.has("success")) ||
      (report.stale.length > 0 && on.has("stale"));
    // Stale databases are bad news for the receiver's monitor too.
    const bad = report.result === "failure" || report.stale.length > 0;
    const body = redact(JSON.stringify({ event: bad ? "failure" : "success", ...report }));
    const jobs: Promise<Delivery>[] = [];
    if (this.#config.email && mailWanted) jobs.push(this.#mail(formatMail(report), deadline));
    this.#config.webhooks.forEach((w, i) => {
      const url = bad ? w.url_failure : w.url_success;
      if (url) {
        jobs.push(
          this.#webhook(
            `webhook[${i}] ${bad ? "failure" : "success"}`,
            url,
            w.body === "json" ? body : undefined,
            deadline,
          ),
        );
      }
    });
    return [...out, ...await Promise.all(jobs)];
  }

  /** Sends a test message through every channel (`notify test`). */
  async test(): Promise<Delivery[]> {
    const at = new Date().toISOString();
    const jobs: Promise<Delivery>[] = [];
    if (this.#config.email) {
      jobs.push(this.#mail({
        subject: `[vya-backupdb] ${this.#options.host}: test message`,
        text: `This is a test message of vya-backupdb on ${this.#options.host}, sent ${at} ` +
          `by 'vya-backupdb notify test'. Mail from this tool reaches you.\n`,
      }));
    }
    const body = JSON.stringify({
      tool: "vya-backupdb",
      host: this.#options.host,
      event: "test",
      at,
    });
    this.#config.webhooks.forEach((w, i) => {
      // The success URL is the one a test may hit without raising an alarm at the receiver.
      const url = w.url_success ?? w.url_start ?? w.url_failure;
      if (url) {
        jobs.push(this.#webhook(`webhook[${i}] test`, url, w.body === "json" ? body : undefined));
      }
    });
    return await Promise.all(jobs);
  }

  async #mail(mail: MailText, deadline?: number): Promise<Delivery> {
    const email = this.#config.email!;
    try {
      const login = email.credential
        ? await this.#options.credentials.credential(email.credential)
        : undefined;
      await sendMail(email, login, mail, this.#budget(deadline));
      return { channel: "email", ok: true };
    } catch (e) {
      return this.#failed("email", e);
    }
  }

  #budget(deadline: number | undefined): number {
    const full = this.#config.timeout * 1000;
    return deadline === undefined ? full : Math.max(100, Math.min(full, deadline - Date.now()));
  }

  async #webhook(
    channel: string,
    url: string,
    body: string | undefined,
    deadline?: number,
  ): Promise<Delivery> {
    try {
      await callWebhook(url, body, this.#budget(deadline));
      return { channel, ok: true };
    } catch (e) {
      return this.#failed(channel, e);
    }
  }

  #failed(channel: string, e: unknown): Delivery {
    const error = redact(e instanceof Error ? e.message : String(e));
    this.#options.log.error(`notification not delivered (${channel}): ${error}`);
    return { channel, ok: false, error };
  }
}
