/**
 * Webhook calls (healthchecks.io, Uptime Kuma, Slack/ntfy bridges): a POST with an empty or a
 * JSON body, retried with back-off on network errors, 429 and 5xx, all within one time budget,
 * so a receiver that hangs delays the run by at most that budget.
 *
 * @module
 */
import { redact } from "../redact.ts";

/** Attempts per call (the first and two retries). */
const ATTEMPTS = 3;

/** Delay before the first retry; doubled for each next one. */
const FIRST_BACKOFF_MS = 500;

/**
 * POSTs `body` (JSON text, or nothing) to `url`, trying up to 3 times, within `timeoutMs` in
 * all. Throws an Error (redacted message, the URL's credentials masked) when it did not get a
 * 2xx answer.
 */
export async function callWebhook(
  url: string,
  body: string | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const budget = AbortSignal.timeout(timeoutMs);
  let last = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    let retry = true;
    try {
      const res = await fetch(url, {
        method: "POST",
        body,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        signal: budget,
        redirect: "follow",
      });
      await res.body?.cancel();
      if (res.ok) return;
      last = `HTTP ${res.status} ${res.statusText}`.trim();
      retry = res.status === 429 || res.status >= 500;
    } catch (e) {
      last = budget.aborted
        ? `no answer within ${Math.round(timeoutMs / 1000)} s`
        : e instanceof Error
        ? e.message
        : String(e);
      if (budget.aborted) break;
    }
    const wait = FIRST_BACKOFF_MS * 2 ** (attempt - 1);
    if (!retry || attempt === ATTEMPTS || Date.now() + wait >= deadline) break;
    await new Promise((r) => setTimeout(r, wait));
  }
  throw new Error(redact(`${url}: ${last}`));
}
