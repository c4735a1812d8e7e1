/**
 * The `notify:`, `metrics:` and `alerts:` blocks of the configuration: their schema, their
 * effective shape and their defaults, kept together so the rest of the config code only names
 * them.
 *
 * @module
 */
import * as v from "valibot";
import { isAbsolute, join } from "node:path";
import { parseDurationSeconds } from "./duration.ts";
import { formatSpan } from "../storage/retention.ts";
import type { SameType } from "./same_type.ts";

/** Events a notification can be sent for. */
export const NOTIFY_EVENTS = ["failure", "stale", "success"] as const;

/** An event a notification can be sent for. */
export type NotifyEvent = typeof NOTIFY_EVENTS[number];

/** How the SMTP connection is secured. */
export const SMTP_TLS = ["none", "starttls", "tls"] as const;

const text = (what: string) =>
  v.pipe(v.string(`expected ${what} (a string)`), v.minLength(1, `expected ${what}, got ""`));

const httpUrl = v.pipe(
  text("an http(s) URL"),
  v.check((u) => {
    try {
      return ["http:", "https:"].includes(new URL(u).protocol);
    } catch {
      return false;
    }
  }, "expected an http:// or https:// URL"),
);

const address = v.pipe(
  text("a mail address"),
  v.regex(/^[^\s@<>]+@[^\s@<>]+$/, "expected a mail address such as dba@example.com"),
);

const seconds = (min: number, max: number, example: string) =>
  v.pipe(
    v.union([v.number(), v.string()], `expected a duration such as "${example}"`),
    v.check((d) => {
      const s = parseDurationSeconds(d);
      return s !== undefined && s >= min && s <= max;
    }, `expected a duration such as "${example}" from ${formatSpan(min)} to ${formatSpan(max)}`),
  );

const email = v.strictObject({
  host: text("the SMTP server's host name or address"),
  port: v.optional(
    v.pipe(
      v.number("expected 1-65535"),
      v.integer("expected 1-65535"),
      v.minValue(1),
      v.maxValue(65535),
    ),
  ),
  tls: v.optional(v.picklist(SMTP_TLS, `expected one of ${SMTP_TLS.join(", ")}`)),
  credential: v.optional(text("a credential id")),
  from: address,
  to: v.pipe(
    v.array(address, "expected a list of mail addresses"),
    v.minLength(1, "expected at least one address"),
  ),
}, "expected a mapping { host, port, tls, credential, from, to }");

const webhook = v.strictObject({
  url_start: v.optional(httpUrl),
  url_success: v.optional(httpUrl),
  url_failure: v.optional(httpUrl),
  body: v.optional(v.picklist(["none", "json"], "expected none or json")),
}, "expected a mapping { url_start, url_success, url_failure, body }");

/** Schema of `notify:`. */
const notifyObject = v.strictObject({
  on: v.optional(v.array(
    v.picklist(NOTIFY_EVENTS, `expected one of ${NOTIFY_EVENTS.join(", ")}`),
    "expected a list of events",
  )),
  timeout: v.optional(seconds(1, 600, "10s")),
  email: v.optional(email),
  webhooks: v.optional(v.array(webhook, "expected a list of webhooks")),
}, "expected a mapping { on, timeout, email, webhooks }");

/** Schema of `metrics:`. */
const metricsObject = v.strictObject({
  textfile: v.optional(text("a file path")),
}, "expected a mapping { textfile }");

/** Schema of `alerts:`. */
const alertsObject = v.strictObject({
  max_age: v.optional(seconds(60, 366 * 86400, "26h")),
}, "expected a mapping { max_age }");

/** Mail settings, effective. */
export interface EmailConfig {
  /** SMTP server. */
  host: string;
  /** SMTP port (default 587 for starttls, 465 for tls, 25 for none). */
  port: number;
  /** none: plain; starttls: upgrade required; tls: TLS from the first byte. */
  tls: typeof SMTP_TLS[number];
  /** Entry of the credentials file holding the SMTP login; absent = no authentication. */
  credential?: string;
  /** Sender. */
  from: string;
  /** Recipients. */
  to: string[];
}

/** One webhook receiver, effective. */
export interface WebhookConfig {
  /** Hit when a run starts. */
  url_start?: string;
  /** Hit when a run ends well. */
  url_success?: string;
  /** Hit when a run ends with a failure (or a stale database). */
  url_failure?: string;
  /** `json`: POST the run summary; `none`: an empty POST. */
  body: "none" | "json";
}

/** `notify:`, effective. */
export interface NotifyConfig {
  /** Events that send mail. */
  on: NotifyEvent[];
  /** Seconds one delivery (with its retries) may take at most. */
  timeout: number;
  /** Mail, when configured. */
  email?: EmailConfig;
  /** Webhook receivers. */
  webhooks: WebhookConfig[];
}

/** `metrics:`, effective. */
export interface MetricsConfig {
  /** Absolute path of the node_exporter textfile; absent = no metrics. */
  textfile?: string;
}

/** `alerts:`, effective. */
export interface AlertsConfig {
  /** Seconds after which a database's newest good backup is stale. */
  max_age: number;
}

/** Default `alerts.max_age`: a nightly job that missed one night is noticed the next morning. */
export const DEFAULT_MAX_AGE_SECONDS = 26 * 3600;

/** Default `notify.timeout`. */
export const DEFAULT_NOTIFY_TIMEOUT_SECONDS = 10;

const DEFAULT_SMTP_PORT = { none: 25, starttls: 587, tls: 465 } as const;

/** `notify:` as written. */
export interface NotifyFile {
  /** Events that send mail. */
  on?: NotifyEvent[];
  /** One delivery's time limit, with its retries. */
  timeout?: number | string;
  /** Mail settings. */
  email?: {
    host: string;
    port?: number;
    tls?: typeof SMTP_TLS[number];
    credential?: string;
    from: string;
    to: string[];
  };
  /** Webhook receivers. */
  webhooks?: {
    url_start?: string;
    url_success?: string;
    url_failure?: string;
    body?: "none" | "json";
  }[];
}

/** `metrics:` as written. */
export interface MetricsFile {
  /** Path of the node_exporter textfile. */
  textfile?: string;
}

/** `alerts:` as written. */
export interface AlertsBlockFile {
  /** When a newest good backup is stale ("26h", seconds). */
  max_age?: number | string;
}

/** Schema of `notify:`. */
export const notifySchema: v.GenericSchema<unknown, NotifyFile> = notifyObject;
/** Schema of `metrics:`. */
export const metricsSchema: v.GenericSchema<unknown, MetricsFile> = metricsObject;
/** Schema of `alerts:`. */
export const alertsSchema: v.GenericSchema<unknown, AlertsBlockFile> = alertsObject;

const _same: [
  SameType<NotifyFile, v.InferOutput<typeof notifyObject>>,
  SameType<MetricsFile, v.InferOutput<typeof metricsObject>>,
  SameType<AlertsBlockFile, v.InferOutput<typeof alertsObject>>,
] = [true, true, true];

/** The three blocks as the schema outputs them. */
export interface AlertsFile {
  /** `notify:`. */
  notify?: NotifyFile;
  /** `metrics:`. */
  metrics?: MetricsFile;
  /** `alerts:`. */
  alerts?: AlertsBlockFile;
}

/** Effective `notify`, `metrics` and `alerts` with defaults; paths relative to `dir`. */
export function toAlertsConfig(
  parsed: AlertsFile,
  dir: string,
): { notify: NotifyConfig; metrics: MetricsConfig; alerts: AlertsConfig } {
  const e = parsed.notify?.email;
  const tls = e?.tls ?? "starttls";
  const textfile = parsed.metrics?.textfile;
  return {
    notify: {
      on: [...new Set<NotifyEvent>(parsed.notify?.on ?? ["failure", "stale"])],
      timeout: parseDurationSeconds(parsed.notify?.timeout ?? DEFAULT_NOTIFY_TIMEOUT_SECONDS)!,
      email: e && {
        host: e.host,
        port: e.port ?? DEFAULT_SMTP_PORT[tls],
        tls,
        credential: e.credential,
        from: e.from,
        to: [...e.to],
      },
      webhooks: (parsed.notify?.webhooks ?? []).map((w) => ({ ...w, body: w.body ?? "json" })),
    },
    metrics: { textfile: textfile && (isAbsolute(textfile) ? textfile : join(dir, textfile)) },
    alerts: { max_age: parseDurationSeconds(parsed.alerts?.max_age ?? DEFAULT_MAX_AGE_SECONDS)! },
  };
}
