/**
 * Mail delivery through an SMTP server with nodemailer: one connection per message (a run sends
 * one), bounded in time, authenticated with a login from the credentials file.
 *
 * @module
 */
import type { EmailConfig } from "../config/types.ts";
import { redact } from "../redact.ts";
import type { MailText } from "./mail.ts";

/** The part of nodemailer used here. */
interface Transport {
  sendMail(message: Record<string, unknown>): Promise<unknown>;
  close(): void;
}
type Nodemailer = { createTransport(o: Record<string, unknown>): Transport };

// Loaded on first mail: a run that sends none (most backups) never pays for its start-up.
// Untyped on purpose: @types/nodemailer drags @types/node into every type check of the project.
let nodemailerModule: Promise<Nodemailer> | undefined;

/** An SMTP login (the password is registered with the redactor by the credentials store). */
export interface SmtpLogin {
  /** Login name. */
  username: string;
  /** Password. */
  password: string;
}

/**
 * Sends one mail. Throws an Error with a redacted message when the server cannot be reached,
 * refuses the login or the message, or does not answer within `timeoutMs`.
 */
export async function sendMail(
  email: EmailConfig,
  login: SmtpLogin | undefined,
  mail: MailText,
  timeoutMs: number,
): Promise<void> {
  nodemailerModule ??= import("nodemailer").then((m) => m.default as unknown as Nodemailer);
  const transport = (await nodemailerModule).createTransport({
    host: email.host,
    port: email.port,
    secure: email.tls === "tls",
    requireTLS: email.tls === "starttls",
    ignoreTLS: email.tls === "none",
    auth: login ? { user: login.username, pass: login.password } : undefined,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    dnsTimeout: timeoutMs,
  });
  try {
    await transport.sendMail({
      from: email.from,
      to: email.to,
      subject: mail.subject,
      text: mail.text,
      headers: { "Auto-Submitted": "auto-generated" },
    });
  } catch (e) {
    throw new Error(redact(e instanceof Error ? e.message : String(e)));
  } finally {
    transport.close();
  }
}
