/**
 * Notifications of `backup` and `notify test` through the CLI, against a real PostgreSQL, a
 * real SMTP server (npm smtp-server, with AUTH) and a real HTTP receiver on 127.0.0.1: one
 * mail per run naming the failed database and its error and no password; nothing for a good
 * run with `on: [failure]`; a dead SMTP server is logged and leaves the exit code alone;
 * webhooks see start, then failure or success, with a JSON summary; a hanging receiver costs
 * at most `notify.timeout`; stale databases are reported.
 */
import { assert, assertEquals, assertStringIncludes } from "./harness/assert.ts";
import { type PgServer, sharedPostgres } from "./harness/servers.ts";
import { freePort, startHttp, startSmtp } from "./harness/alerts.ts";
import { makeTestEnv, type TestEnv } from "./helpers/cli.ts";
import { loadKey } from "../lib/crypto/keys.ts";
import { setEntry } from "../lib/credentials/store.ts";
import { ageBackups } from "./helpers/catalog_edit.ts";

const SMTP_USER = "mailer";
const SMTP_PASS = "Smtp-S3cret-pass-77310";
const tag = () => crypto.randomUUID().slice(0, 8);

/** Two databases: `ok` backs up, `bad` carries the mark of an unfinished restore and fails. */
async function databases(pg: PgServer): Promise<{ ok: string; bad: string }> {
  const t = tag();
  const ok = `nt_ok_${t}`;
  const bad = `nt_bad_${t}`;
  await pg.sql(`CREATE DATABASE ${ok}; CREATE DATABASE ${bad}`);
  await pg.sql(`CREATE TABLE t (v text); INSERT INTO t VALUES ('x')`, { database: ok });
  const mark = `vya-backupdb: INCOMPLETE RESTORE, do not use; ` +
    JSON.stringify({
      run: "r1",
      started_at: new Date().toISOString(),
      file: "f.sql",
      created: true,
    });
  await pg.sql(`COMMENT ON DATABASE ${bad} IS '${mark}'`);
  return { ok, bad };
}

async function env(pg: PgServer, include: string[]): Promise<TestEnv> {
  const e = await makeTestEnv([{
    id: "pg",
    server: pg,
    extra: { databases: { include }, users: { backup: false } },
  }]);
  await setEntry(
    e.credentialsFile,
    "smtp",
    { username: SMTP_USER, password: SMTP_PASS },
    await loadKey({ keyFile: e.keyFile }),
  );
  return e;
}

const email = (port: number, auth = true) => ({
  host: "127.0.0.1",
  port,
  tls: "none",
  ...(auth ? { credential: "smtp" } : {}),
  from: "backups@db1.example.com",
  to: ["dba@example.com"],
});

Deno.test("one mail (SMTP AUTH) and start-then-failure webhooks for a run where one of two databases fails", async () => {
  const pg = await sharedPostgres();
  const { ok, bad } = await databases(pg);
  const smtp = await startSmtp({ user: SMTP_USER, pass: SMTP_PASS });
  const http = startHttp();
  const e = await env(pg, [ok, bad]);
  try {
    await e.writeConfig({
      notify: {
        on: ["failure"],
        email: email(smtp.port),
        webhooks: [{
          url_start: `${http.url}/start`,
          url_success: `${http.url}/success`,
          url_failure: `${http.url}/failure`,
          body: "json",
        }],
      },
    });
    const r = await e.run(["backup", "--all"]);
    assertEquals(r.code, 1, r.stderr);
    assertEquals(smtp.mails.length, 1, "exactly one mail per run");
    const mail = smtp.mails[0];
    assertEquals(mail.user, SMTP_USER);
    assertEquals(smtp.refusedLogins, 0);
    assertStringIncludes(mail.parsed.subject ?? "", "1 of 2 failed");
    const text = mail.parsed.text ?? "";
    assertStringIncludes(text, `FAILED:\n  pg/${bad}: ${bad} carries the mark of a restore`);
    assertStringIncludes(text, `pg/${ok}:`);
    for (const secret of [pg.password, SMTP_PASS]) {
      assert(!mail.raw.includes(secret), "a password is in the mail");
      assert(!text.includes(secret), "a password is in the mail text");
    }
    assertEquals(http.calls.map((c) => c.path), ["/start", "/failure"]);
    const body = JSON.parse(http.calls[1].body);
    assertEquals(body.event, "failure");
    assertEquals(body.counts.failed, 1);
    assertEquals(body.exit_code, 1);
    assertEquals(
      body.items.find((i: { database?: string }) => i.database === bad).status,
      "failed",
    );
    assertEquals(JSON.parse(http.calls[0].body).event, "start");
    assert(!http.calls.some((c) => c.body.includes(pg.password)));
  } finally {
    await e.cleanup();
    await smtp.stop();
    await http.stop();
  }
});

Deno.test("on: [failure]: a fully successful run sends no mail, and the success webhook is hit", async () => {
  const pg = await sharedPostgres();
  const { ok } = await databases(pg);
  const smtp = await startSmtp({ user: SMTP_USER, pass: SMTP_PASS });
  const http = startHttp();
  const e = await env(pg, [ok]);
  try {
    await e.writeConfig({
      notify: {
        on: ["failure"],
        email: email(smtp.port),
        webhooks: [{ url_start: `${http.url}/start`, url_success: `${http.url}/success` }],
      },
    });
    const r = await e.run(["backup", "--all"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(smtp.mails.length, 0);
    assertEquals(http.calls.map((c) => c.path), ["/start", "/success"]);
    assertEquals(JSON.parse(http.calls[1].body).result, "success");
    // on: [success] sends the mail for the same run.
    await e.writeConfig({ notify: { on: ["success"], email: email(smtp.port) } });
    assertEquals((await e.run(["backup", "--all"])).code, 0);
    assertEquals(smtp.mails.length, 1);
    assertStringIncludes(smtp.mails[0].parsed.subject ?? "", "1 of 1 ok");
  } finally {
    await e.cleanup();
    await smtp.stop();
    await http.stop();
  }
});

Deno.test("an SMTP server that is down: the delivery failure is logged, the exit code kept", async () => {
  const pg = await sharedPostgres();
  const { ok, bad } = await databases(pg);
  const e = await env(pg, [ok, bad]);
  try {
    await e.writeConfig({ notify: { on: ["failure"], timeout: "3s", email: email(freePort()) } });
    const r = await e.run(["backup", "--all"]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(r.stderr, "notification not delivered (email)");
    assertStringIncludes(r.stdout, `FAILED  pg/${bad}`);
    assert(!r.stderr.includes(SMTP_PASS));
    // A wrong SMTP password is refused by the server and logged the same way.
    const smtp = await startSmtp({ user: SMTP_USER, pass: "another" });
    try {
      await e.writeConfig({ notify: { on: ["failure"], email: email(smtp.port) } });
      const r2 = await e.run(["backup", "--all"]);
      assertEquals(r2.code, 1);
      assertStringIncludes(r2.stderr, "notification not delivered (email)");
      assertEquals(smtp.mails.length, 0);
      assertEquals(smtp.refusedLogins, 1);
    } finally {
      await smtp.stop();
    }
  } finally {
    await e.cleanup();
  }
});

Deno.test("a webhook receiver that never answers delays the run by at most notify.timeout", async () => {
  const pg = await sharedPostgres();
  const { ok } = await databases(pg);
  const http = startHttp();
  const e = await env(pg, [ok]);
  try {
    const t0 = performance.now();
    assertEquals((await e.run(["backup", "--all"])).code, 0);
    const baseline = performance.now() - t0;
    await e.writeConfig({
      notify: {
        timeout: "2s",
        webhooks: [{ url_start: `${http.url}/hang/start`, url_success: `${http.url}/hang/end` }],
      },
    });
    const t1 = performance.now();
    const r = await e.run(["backup", "--all"]);
    const took = performance.now() - t1;
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stderr, "no answer within 2 s");
    assert(took - baseline < 2000 + 1500, `run took ${took} ms, ${baseline} ms without webhook`);
    assertEquals(http.calls.map((c) => c.path), ["/hang/start", "/hang/end"]);
  } finally {
    await e.cleanup();
    await http.stop();
  }
});

Deno.test("notify test: one result line per channel, exit 1 when one fails", async () => {
  const pg = await sharedPostgres();
  const smtp = await startSmtp({ user: SMTP_USER, pass: SMTP_PASS });
  const http = startHttp();
  const e = await env(pg, ["none"]);
  try {
    await e.writeConfig({
      notify: {
        email: email(smtp.port),
        webhooks: [{ url_success: `${http.url}/good` }, { url_failure: `${http.url}/err` }],
      },
    });
    const r = await e.run(["notify", "test"]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    const lines = r.stdout.trim().split("\n");
    assertEquals(lines[0], "ok      email");
    assertEquals(lines[1], "ok      webhook[0] test");
    assertStringIncludes(lines[2], "FAILED  webhook[1] test:");
    assertStringIncludes(lines[2], "HTTP 500");
    assertEquals(smtp.mails.length, 1);
    assertStringIncludes(smtp.mails[0].parsed.subject ?? "", "test message");
    // 500 is retried: three attempts.
    assertEquals(http.calls.filter((c) => c.path === "/err").length, 3);
    await e.writeConfig({ notify: { email: email(smtp.port) } });
    const good = await e.run(["notify", "test"]);
    assertEquals(good.code, 0, good.stderr);
    await e.writeConfig({});
    const none = await e.run(["notify", "test"]);
    assertEquals(none.code, 3);
    assertStringIncludes(none.stderr, "no notification channel is configured");
  } finally {
    await e.cleanup();
    await smtp.stop();
    await http.stop();
  }
});

Deno.test("stale: a run whose every database succeeds mails the one database whose newest good backup is too old", async () => {
  const pg = await sharedPostgres();
  const { ok } = await databases(pg);
  const other = `nt_other_${tag()}`;
  await pg.sql(`CREATE DATABASE ${other}`);
  const smtp = await startSmtp();
  const e = await env(pg, [ok, other]);
  try {
    // Only `ok` is backed up, then aged 30 hours through the storage layer, as if the nightly
    // runs of it had stopped since.
    assertEquals((await e.run(["backup", "--instance", "pg", "--database", ok])).code, 0);
    assertEquals(await ageBackups(e.storage, "pg", ok, 30), 1);
    await e.writeConfig({ notify: { on: ["stale"], email: email(smtp.port, false) } });
    // A run of another database that succeeds: nothing failed, so only staleness can mail.
    const r = await e.run(["backup", "--instance", "pg", "--database", other]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "1 ok, 0 failed");
    assertEquals(smtp.mails.length, 1);
    const subject = smtp.mails[0].parsed.subject ?? "";
    assertStringIncludes(subject, "1 stale");
    assert(!subject.includes("failed"), subject);
    const text = smtp.mails[0].parsed.text ?? "";
    assertStringIncludes(
      text,
      `STALE (newest good backup older than alerts.max_age):\n  pg/${ok}: 30 h old`,
    );
    const staleSection = text.split("alerts.max_age):\n")[1].split("\n\n")[0];
    assertEquals(staleSection.split("\n").length, 1, staleSection);
    assertStringIncludes(text, `OK:\n  pg/${other}: `);
    // Within max_age: nothing is stale, no mail.
    await e.writeConfig({
      notify: { on: ["stale"], email: email(smtp.port, false) },
      alerts: { max_age: "2d" },
    });
    assertEquals((await e.run(["backup", "--instance", "pg", "--database", other])).code, 0);
    assertEquals(smtp.mails.length, 1);
  } finally {
    await e.cleanup();
    await smtp.stop();
  }
});
