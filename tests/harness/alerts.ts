/**
 * Real receivers for the alerts tests, on 127.0.0.1 and free ports: an SMTP server (npm
 * `smtp-server`, in the test process, with or without AUTH), an HTTP server recording webhook
 * calls (Deno.serve; paths under /hang never answer), and Debian's prometheus-node-exporter
 * serving a textfile folder. Each has stop(); none outlives its test.
 *
 * @module
 */
// Untyped on purpose: their @types packages drag @types/node into every type check.
import * as smtpServer from "smtp-server";
import * as mailparser from "mailparser";
import { sleep } from "./process.ts";

/** The part of a parsed mail the tests read. */
export interface ParsedMail {
  /** Subject header, decoded. */
  subject?: string;
  /** Plain-text body, decoded. */
  text?: string;
}

interface SmtpSession {
  user?: unknown;
}
interface DataStream {
  on(event: "data", f: (chunk: Uint8Array) => void): void;
  on(event: "end", f: () => void): void;
}
interface SmtpServerLike {
  listen(port: number, host: string, cb: () => void): void;
  close(cb: () => void): void;
  server: { address(): unknown };
}
const SMTPServer = (smtpServer as unknown as {
  SMTPServer: new (o: {
    authOptional: boolean;
    disabledCommands: string[];
    allowInsecureAuth: boolean;
    logger: boolean;
    onAuth(
      a: { username: string; password: string },
      s: SmtpSession,
      cb: (e: Error | null, r?: { user: string }) => void,
    ): void;
    onData(stream: DataStream, s: SmtpSession, cb: () => void): void;
  }) => SmtpServerLike;
}).SMTPServer;
const simpleParser = (mailparser as unknown as {
  simpleParser(raw: string): Promise<ParsedMail>;
}).simpleParser;

/** A port nothing listens on right now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A mail the SMTP server accepted. */
export interface ReceivedMail {
  /** The message as sent (headers and encoded body). */
  raw: string;
  /** Parsed. */
  parsed: ParsedMail;
  /** The login it was sent with, if any. */
  user?: string;
}

/** A running SMTP server. */
export interface TestSmtp {
  /** Its port. */
  port: number;
  /** Mails received so far. */
  mails: ReceivedMail[];
  /** Logins refused so far. */
  refusedLogins: number;
  /** Stops it. */
  stop(): Promise<void>;
}

/** Starts an SMTP server; with `auth`, only that login may send. */
export async function startSmtp(auth?: { user: string; pass: string }): Promise<TestSmtp> {
  const mails: ReceivedMail[] = [];
  const state = { refusedLogins: 0 };
  const server = new SMTPServer({
    authOptional: auth === undefined,
    disabledCommands: auth ? ["STARTTLS"] : ["STARTTLS", "AUTH"],
    allowInsecureAuth: true,
    logger: false,
    onAuth(a, _session, cb) {
      if (auth && a.username === auth.user && a.password === auth.pass) {
        cb(null, { user: a.username });
      } else {
        state.refusedLogins++;
        cb(new Error("invalid login"));
      }
    },
    onData(stream, session, cb) {
      const chunks: Uint8Array[] = [];
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("end", async () => {
        const raw = new TextDecoder().decode(
          new Uint8Array(chunks.flatMap((c) => [...c])),
        );
        mails.push({ raw, parsed: await simpleParser(raw), user: session.user as string });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.server.address() as { port: number }).port;
  return {
    port,
    mails,
    get refusedLogins() {
      return state.refusedLogins;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** One webhook call received. */
export interface WebhookCall {
  /** Request path. */
  path: string;
  /** Body text. */
  body: string;
  /** When it arrived (ms since epoch). */
  at: number;
}

/** A running HTTP receiver. */
export interface TestHttp {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** Calls received, in order. */
  calls: WebhookCall[];
  /** Stops it (hanging requests are dropped). */
  stop(): Promise<void>;
}

/** Starts an HTTP receiver: 200 for every path, 500 under /err, no answer under /hang. */
export function startHttp(): TestHttp {
  const calls: WebhookCall[] = [];
  const abort = new AbortController();
  const hanging = new Set<() => void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: abort.signal, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      calls.push({ path, body: await req.text(), at: Date.now() });
      if (path.startsWith("/hang")) {
        await new Promise<void>((resolve) => hanging.add(resolve));
        return new Response("late");
      }
      return new Response(path.startsWith("/err") ? "no" : "ok", {
        status: path.startsWith("/err") ? 500 : 200,
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    async stop() {
      for (const r of hanging) r();
      abort.abort();
      await server.finished;
    },
  };
}

/** A running node_exporter. */
export interface TestNodeExporter {
  /** Its /metrics text. */
  scrape(): Promise<string>;
  /** Stops it. */
  stop(): Promise<void>;
}

/** Starts Debian's prometheus-node-exporter with only the textfile collector, on `dir`. */
export async function startNodeExporter(dir: string): Promise<TestNodeExporter> {
  const port = freePort();
  const child = new Deno.Command("prometheus-node-exporter", {
    args: [
      `--web.listen-address=127.0.0.1:${port}`,
      "--collector.disable-defaults",
      "--collector.textfile",
      `--collector.textfile.directory=${dir}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const url = `http://127.0.0.1:${port}/metrics`;
  const scrape = async () => {
    const res = await fetch(url);
    return await res.text();
  };
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      await scrape();
      break;
    } catch (e) {
      if (Date.now() > end) {
        child.kill("SIGKILL");
        await child.output();
        throw new Error(`node_exporter did not start: ${e}`);
      }
      await sleep(50);
    }
  }
  return {
    scrape,
    async stop() {
      child.kill("SIGTERM");
      await child.output();
    },
  };
}

/** Runs a command and returns exit code, stdout and stderr. */
export async function runTool(
  cmd: string,
  args: string[],
  cwd?: string,
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}
