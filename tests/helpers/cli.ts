/**
 * A complete, private set-up for tests that run the CLI the way a sysadmin does: a config file,
 * a key file, an encrypted credentials file and a storage folder in a fresh temporary folder,
 * and a runner for `vya-backupdb` as a subprocess under the project's permission set.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { generateKeyFile, loadKey } from "../../lib/crypto/keys.ts";
import { setEntry } from "../../lib/credentials/store.ts";
import { V8_FLAGS_OPTION } from "../../lib/stream/gc.ts";
import type { TestServer } from "../harness/servers.ts";

/** The repository root (where deno.json and main.ts are). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** One instance of the test config. */
export interface TestInstance {
  /** Instance id. */
  id: string;
  /** The server it points at. */
  server: TestServer & { engine: "postgresql" | "mysql" | "mariadb" };
  /** Extra instance keys (databases, users, tools, …), merged into the instance mapping. */
  extra?: Record<string, unknown>;
  /** Login to store instead of the server's superuser. */
  login?: { user: string; password: string };
}

/** What a CLI run returned. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** A private test set-up. */
export interface TestEnv {
  /** The temporary folder holding everything. */
  dir: string;
  /** The config file. */
  configPath: string;
  /** The storage folder backups go to. */
  storage: string;
  /** The credentials file. */
  credentialsFile: string;
  /** The key file. */
  keyFile: string;
  /** Rewrites the config file (extra top-level keys merged over the generated ones). */
  writeConfig(extra?: Record<string, unknown>): Promise<void>;
  /**
   * Points instance `id` at another server, as a sysadmin does when a server is replaced at the
   * same address: its credential is replaced by the new server's superuser login (or `login`)
   * and the config is rewritten, keeping the extra keys of the last {@linkcode writeConfig}.
   */
  retarget(
    id: string,
    server: TestInstance["server"],
    login?: { user: string; password: string },
  ): Promise<void>;
  /** Runs `vya-backupdb --config <configPath> ARGS…` and collects its output. */
  run(
    args: string[],
    options?: { stdin?: string; env?: Record<string, string> },
  ): Promise<CliResult>;
  /** Deletes the folder. */
  cleanup(): Promise<void>;
}

/**
 * The `deno` arguments that run `vya-backupdb --config CONFIG ARGS…` under the project's
 * permission set, as the tests' background and measured runs start it.
 */
export function cliArgs(configPath: string, args: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--no-prompt",
    V8_FLAGS_OPTION,
    "-P=vya",
    join(REPO_ROOT, "main.ts"),
    "--config",
    configPath,
    ...args,
  ];
}

/** Creates the set-up. Instances' credentials are encrypted with a fresh key file. */
export async function makeTestEnv(
  instances: TestInstance[],
  options: { compression?: Record<string, unknown>; extra?: Record<string, unknown> } = {},
): Promise<TestEnv> {
  const dir = await Deno.makeTempDir({ prefix: "vya-test-" });
  const storage = join(dir, "backups");
  const keyFile = join(dir, "secrets", "key");
  const credentialsFile = join(dir, "secrets", "credentials.json");
  const configPath = join(dir, "config.yaml");
  await generateKeyFile(keyFile);
  const key = await loadKey({ keyFile });
  // A private copy: retarget() replaces entries without touching the caller's array.
  const current = [...instances];
  const storeLogin = async (inst: TestInstance) => {
    const login = inst.login ?? { user: inst.server.user, password: inst.server.password };
    await setEntry(
      credentialsFile,
      inst.id,
      { username: login.user, password: login.password },
      key,
    );
  };
  for (const inst of current) await storeLogin(inst);
  let lastExtra: Record<string, unknown> = {};
  const writeConfig = async (extra: Record<string, unknown> = {}) => {
    lastExtra = extra;
    const doc = {
      storage: { path: storage, compression: options.compression ?? { format: "gzip", level: 1 } },
      credentials: { file: credentialsFile, key_file: keyFile },
      instances: current.map((i) => ({
        id: i.id,
        type: i.server.engine,
        host: i.server.host,
        port: i.server.port,
        credential: i.id,
        ...(i.extra ?? {}),
      })),
      ...(options.extra ?? {}),
      ...extra,
    };
    await Deno.writeTextFile(configPath, stringify(doc));
  };
  await writeConfig();
  return {
    dir,
    configPath,
    storage,
    credentialsFile,
    keyFile,
    writeConfig,
    async retarget(id, server, login) {
      const i = current.findIndex((inst) => inst.id === id);
      if (i < 0) throw new Error(`no instance ${id} in the test config`);
      current[i] = { ...current[i], server, login };
      await storeLogin(current[i]);
      await writeConfig(lastExtra);
    },
    run: (args, opts = {}) => runCli(["--config", configPath, ...args], opts),
    cleanup: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/**
 * Runs the CLI from source as `deno run -P=vya main.ts ARGS…` (the permission set users get),
 * with no prompt, as a subprocess.
 */
export async function runCli(
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; permissions?: string[] } = {},
): Promise<CliResult> {
  const perms = options.permissions ?? ["-P=vya"];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      V8_FLAGS_OPTION,
      ...perms,
      join(REPO_ROOT, "main.ts"),
      ...args,
    ],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...(options.env ?? {}) },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  const decode = (b: Uint8Array) =>
    new TextDecoder().decode(b).replace(
      /^.*Permissions in the config file is an experimental feature.*\n/gm,
      "",
    );
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
