/**
 * Finding, parsing, overlaying and validating the configuration file.
 *
 * Every error names the file, line and column, and the field path, e.g.
 * `config.yaml:12:11: instances[1].port: expected 1-65535, got "abc"`.
 *
 * @module
 */
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node as YamlNode } from "yaml";
import * as v from "valibot";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { readEnv } from "../env.ts";
import { deepMerge, type Plain } from "./merge.ts";
import {
  type ConfigFile,
  ConfigFileSchema,
  OVERLAY_KEYS,
  parseDurationSeconds,
  parseSizeBytes,
} from "./schema.ts";
import { DEFAULT_SPOOL_LIMIT } from "../restore/parallel/spool.ts";
import { retentionProblems, toRetentionSettings } from "./retention.ts";
import { verifyTargetProblems } from "./verify.ts";
import type { Config, ConfigSource, EngineType, InstanceConfig } from "./types.ts";
import { toAlertsConfig } from "./alerts.ts";

/** Where the configuration is looked for when neither `--config` nor `$VYA_CONFIG` is given. */
export const DEFAULT_CONFIG_PATHS = ["./config.yaml", "/etc/vya-backupdb/config.yaml"] as const;

/** Default storage folder. */
export const DEFAULT_STORAGE_PATH = "/var/backups/vya-backupdb";

/**
 * Default `backup.stall_timeout`: 10 minutes without a byte from a dump tool. Long enough for a
 * slow catalog read or a short lock wait before the first byte, short enough that a stopped
 * server is noticed within a nightly window.
 */
export const DEFAULT_STALL_SECONDS = 600;

/** Default credentials file, relative to the config file's folder. */
export const DEFAULT_CREDENTIALS_FILE = ".secrets/credentials.json";

const DEFAULT_PORTS: Record<EngineType, number> = { postgresql: 5432, mysql: 3306, mariadb: 3306 };

/** How to find and select the configuration. */
export interface LoadOptions {
  /** `--config PATH`; wins over everything. */
  path?: string;
  /** `--env NAME`; wins over `$VYA_ENV` and `environment:`. */
  env?: string;
}

/** A loaded, validated configuration and where it came from. */
export interface LoadedConfig {
  /** The effective configuration. */
  config: Config;
  /** The file it was read from. */
  source: ConfigSource;
  /** Names of the overlays the file defines. */
  environments: string[];
}

/** One problem found in the file. */
export interface ConfigProblem {
  /** 1-based line, when the problem has a place in the file. */
  line?: number;
  /** 1-based column. */
  col?: number;
  /** Field path such as `instances[1].port`, empty for the whole file. */
  path: string;
  /** What is wrong. */
  message: string;
}

/** Raised when the file has one or more problems; the message lists all of them. */
export class ConfigValidationError extends ConfigError {
  /** The file. */
  readonly file: string;
  /** Every problem found. */
  readonly problems: ConfigProblem[];

  /** Creates the error from the list of problems. */
  constructor(file: string, problems: ConfigProblem[]) {
    super(problems.map((p) => formatProblem(file, p)).join("\n"));
    this.name = "ConfigValidationError";
    this.file = file;
    this.problems = problems;
  }
}

/** Formats one problem as `file:line:col: path: message`. */
export function formatProblem(file: string, p: ConfigProblem): string {
  const where = p.line ? `${file}:${p.line}:${p.col ?? 1}` : file;
  return `${where}: ${p.path ? p.path + ": " : ""}${p.message}`;
}

/**
 * Resolves which file to read: `--config`, else `$VYA_CONFIG`, else `./config.yaml`, else
 * `/etc/vya-backupdb/config.yaml`. Throws a ConfigError listing what was tried.
 */
export function resolveConfigPath(explicit?: string): string {
  if (explicit) return resolve(explicit);
  const fromEnv = readEnv("VYA_CONFIG");
  if (fromEnv) return resolve(fromEnv);
  for (const candidate of DEFAULT_CONFIG_PATHS) {
    try {
      if (Deno.statSync(candidate).isFile) return resolve(candidate);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      if (e instanceof Deno.errors.NotCapable) continue;
      throw e;
    }
  }
  throw new ConfigError(
    `no configuration file found (tried --config, $VYA_CONFIG, ${DEFAULT_CONFIG_PATHS.join(", ")})`,
    { hint: "pass --config PATH; config.example.yaml shows every key" },
  );
}

/**
 * The largest configuration file read. A real one is a few KiB; the bound keeps a runaway or
 * hostile file (tens of MB of YAML) from costing minutes and gigabytes.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * How many aliases (`*name`) the file may resolve. A config needs a handful; an "alias bomb"
 * (aliases of aliases) would expand to billions of nodes.
 */
export const MAX_CONFIG_ALIASES = 100;

/** Reads, overlays and validates the configuration. */
export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const file = resolveConfigPath(options.path);
  let text: string;
  try {
    text = await readBounded(file);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`${file}: configuration file not found`);
    }
    if (e instanceof Deno.errors.NotCapable) throw e;
    throw new ConfigError(`${file}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  return parseConfig(text, file, options.env ?? readEnv("VYA_ENV"));
}

/** Reads a regular file of at most MAX_CONFIG_BYTES, never more than that from it. */
async function readBounded(file: string): Promise<string> {
  // stat before open: opening a FIFO would block, and a device never ends.
  const info = await Deno.stat(file);
  if (!info.isFile) throw new ConfigError(`${file}: the configuration is not a regular file`);
  using handle = await Deno.open(file, { read: true });
  const buf = new Uint8Array(MAX_CONFIG_BYTES + 1);
  let got = 0;
  while (got < buf.length) {
    const n = await handle.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (got > MAX_CONFIG_BYTES) {
    throw new ConfigError(
      `${file}: the configuration file is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB ` +
        `(${info.size} bytes); a configuration is a few KiB: is this the right file?`,
    );
  }
  return new TextDecoder().decode(buf.subarray(0, got));
}

/**
 * Parses and validates configuration text. `file` is used for error messages and to resolve
 * relative paths; `env` selects an overlay (else the file's `environment:`).
 */
export function parseConfig(text: string, file: string, env?: string): LoadedConfig {
  const { doc, lineCounter, raw } = parseYaml(text, file);
  const at = locator(doc, lineCounter);
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigValidationError(file, [{
      line: 1,
      col: 1,
      path: "",
      message: "expected a mapping at the top of the file",
    }]);
  }
  const { merged, selected, overlays, environments } = applyOverlay(raw as Plain, env, file, at);

  const result = v.safeParse(ConfigFileSchema, merged, { abortEarly: false });
  const problems = result.success
    ? []
    : result.issues.map((issue) => issueToProblem(issue, merged, selected, overlays, at));
  problems.push(...duplicateIds(merged, selected, overlays, at));
  if (problems.length || !result.success) throw new ConfigValidationError(file, dedupe(problems));
  const parsed = result.output;

  const dir = dirname(file);
  const config = toConfig(parsed, dir, selected);
  // Problems only the merged whole shows: empty retention policies, verify targets, verify
  // without a local copy.
  const whole = [
    ...retentionProblems(config),
    ...verifyTargetProblems(config),
  ];
  const wholeProblems = whole.map((p) => ({
    ...at(originOf(p.path, merged, selected, overlays), false),
    path: formatPath(p.path),
    message: p.message,
  }));
  if (wholeProblems.length) throw new ConfigValidationError(file, wholeProblems);
  const storageProblem = storageNotAFolder(config.storage.path);
  if (storageProblem) {
    throw new ConfigValidationError(file, [{
      ...at(originOf(["storage", "path"], merged, selected, overlays), false),
      path: "storage.path",
      message: storageProblem,
    }]);
  }
  return { config, source: { file, dir }, environments };
}

/** The file's YAML as a document (for positions) and as plain data; YAML errors refused. */
function parseYaml(
  text: string,
  file: string,
): { doc: Document; lineCounter: LineCounter; raw: unknown } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigValidationError(
      file,
      doc.errors.map((e) => ({
        line: e.linePos?.[0]?.line,
        col: e.linePos?.[0]?.col,
        path: "",
        message: `invalid YAML: ${
          e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")
        }`,
      })),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_CONFIG_ALIASES }) ?? {};
  } catch (e) {
    // yaml throws a ReferenceError for an alias bomb (and for an alias to nothing).
    if (!(e instanceof ReferenceError)) throw e;
    throw new ConfigValidationError(file, [{
      path: "",
      message: /excessive alias count/i.test(e.message)
        ? `too many YAML aliases (more than ${MAX_CONFIG_ALIASES} resolved): refused as a ` +
          `resource exhaustion attack ("billion laughs")`
        : `invalid YAML: ${e.message}`,
    }]);
  }
  return { doc, lineCounter, raw };
}

/**
 * The file with the selected environment's overlay (`env`, else the file's `environment:`)
 * merged in; an unknown environment or a malformed overlay is refused at its key.
 */
function applyOverlay(
  base: Plain,
  env: string | undefined,
  file: string,
  at: Locate,
): { merged: Plain; selected?: string; overlays: Plain; environments: string[] } {
  const overlays = (typeof base.environments === "object" && base.environments !== null &&
      !Array.isArray(base.environments))
    ? base.environments as Plain
    : {};
  const environments = Object.keys(overlays);
  const selected = env ?? (typeof base.environment === "string" ? base.environment : undefined);

  let merged = base;
  if (selected !== undefined) {
    if (!(selected in overlays)) {
      const fromFile = env === undefined;
      const pos = fromFile ? at(["environment"], false) : {};
      throw new ConfigValidationError(file, [{
        ...pos,
        path: fromFile ? "environment" : "",
        message:
          `unknown environment "${selected}"${fromFile ? "" : " (from --env or $VYA_ENV)"}; ` +
          (environments.length
            ? `defined: ${environments.join(", ")}`
            : "the file defines no environments"),
      }]);
    }
    const overlay = overlays[selected];
    if (overlay !== null && overlay !== undefined) {
      if (typeof overlay !== "object" || Array.isArray(overlay)) {
        throw new ConfigValidationError(file, [{
          ...at(["environments", selected], false),
          path: `environments.${selected}`,
          message: `expected a mapping that overlays ${OVERLAY_KEYS.join(", ")}`,
        }]);
      }
      const bad = Object.keys(overlay).filter((k) => !OVERLAY_KEYS.includes(k));
      if (bad.length) {
        throw new ConfigValidationError(
          file,
          bad.map((k) => ({
            ...at(["environments", selected, k], true),
            path: `environments.${selected}.${k}`,
            message: `unknown key (an overlay may set ${OVERLAY_KEYS.join(", ")})`,
          })),
        );
      }
      merged = deepMerge(base, overlay as Plain);
    }
  }
  return { merged, selected, overlays, environments };
}

/**
 * Why the storage path cannot be the storage folder, when something other than a folder is
 * there already. Said here, at the key, rather than by whichever command first lists or
 * creates it. Missing is fine (backup creates it); unreadable is left to the command.
 */
function storageNotAFolder(path: string): string | undefined {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return undefined;
  try {
    const info = Deno.statSync(path);
    return info.isDirectory ? undefined : `${path} exists and is not a folder`;
  } catch (e) {
    if (e instanceof Deno.errors.NotADirectory) return `a parent of ${path} is not a folder`;
    return undefined;
  }
}

/** One step of a path into the file: a key or a list index. */
export type PathKey = string | number;
type Locate = (path: PathKey[], key: boolean) => { line?: number; col?: number };

function locator(doc: Document, lc: LineCounter): Locate {
  return (path, key) => {
    const node = key ? keyNode(doc, path) : doc.getIn(path, true) as YamlNode | undefined;
    const offset = node?.range?.[0];
    if (offset === undefined) return {};
    const pos = lc.linePos(offset);
    return { line: pos.line, col: pos.col };
  };
}

function keyNode(doc: Document, path: PathKey[]): YamlNode | undefined {
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  const last = path[path.length - 1];
  if (isMap(parent)) {
    for (const pair of parent.items) {
      const k = pair.key as { value?: unknown; range?: unknown } | null;
      if (k && k.value === last) return k as unknown as YamlNode;
    }
  }
  if (isSeq(parent) && typeof last === "number") return parent.items[last] as YamlNode;
  return undefined;
}

/** Formats a path as `instances[1].port`. */
export function formatPath(path: PathKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out;
}

/**
 * Finds where a merged value came from: the selected overlay when it sets that path, else the
 * base document. Instances in an overlay are matched by id, as the merge does.
 */
function originOf(
  path: PathKey[],
  merged: Plain,
  selected: string | undefined,
  overlays: Plain,
): PathKey[] {
  if (selected === undefined) return path;
  const overlay = overlays[selected] as Plain | undefined;
  if (!overlay) return path;
  let overlayPath: PathKey[] = path;
  if (path[0] === "instances" && typeof path[1] === "number") {
    const mergedList = (merged.instances as Plain[] | undefined) ?? [];
    const id = mergedList[path[1]]?.id;
    // With duplicate ids the merge only touched the first of them.
    if (mergedList.findIndex((i) => i?.id === id) !== path[1]) return path;
    const list = overlay.instances as Plain[] | undefined;
    const index = Array.isArray(list) ? list.findIndex((i) => i?.id === id) : -1;
    if (index < 0) {
      // An instance appended by the overlay sits after the base's ones.
      const baseCount = Array.isArray(list)
        ? (merged.instances as unknown[]).length - list.length
        : 0;
      const appended = (path[1] as number) - baseCount;
      if (!Array.isArray(list) || appended < 0 || list[appended]?.id !== id) return path;
      overlayPath = ["instances", appended, ...path.slice(2)];
    } else {
      overlayPath = ["instances", index, ...path.slice(2)];
    }
  }
  let cursor: unknown = overlay;
  for (const part of overlayPath) {
    if (cursor === null || typeof cursor !== "object") return path;
    if (!(part in (cursor as Plain))) return path;
    cursor = (cursor as Record<PathKey, unknown>)[part];
  }
  return ["environments", selected, ...overlayPath];
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

function issueToProblem(
  issue: v.BaseIssue<unknown>,
  merged: Plain,
  selected: string | undefined,
  overlays: Plain,
  at: Locate,
): ConfigProblem {
  const path: PathKey[] = (issue.path ?? []).map((p) => p.key as PathKey);
  const origin = originOf(path, merged, selected, overlays);
  if (issue.type === "strict_object" && issue.expected === "never") {
    return { ...at(origin, true), path: formatPath(path), message: "unknown key" };
  }
  if (issue.input === undefined && issue.kind === "schema") {
    return {
      ...at(origin.slice(0, -1), false),
      path: formatPath(path),
      message: `required: ${issue.message}`,
    };
  }
  return {
    ...at(origin, false),
    path: formatPath(path),
    message: `${issue.message}, got ${describe(valueAt(merged, path, issue.input))}`,
  };
}

function valueAt(root: Plain, path: PathKey[], fallback: unknown): unknown {
  let cursor: unknown = root;
  for (const part of path) {
    if (cursor === null || typeof cursor !== "object") return fallback;
    cursor = (cursor as Record<PathKey, unknown>)[part];
  }
  return cursor;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}|${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function duplicateIds(
  merged: Plain,
  selected: string | undefined,
  overlays: Plain,
  at: Locate,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<unknown, number>();
  const list = Array.isArray(merged.instances) ? merged.instances as unknown[] : [];
  list.forEach((inst, i) => {
    const id = (inst as Plain | null)?.id;
    if (typeof id !== "string") return;
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, i);
      return;
    }
    problems.push({
      ...at(originOf(["instances", i, "id"], merged, selected, overlays), false),
      path: `instances[${i}].id`,
      message: `duplicate instance id "${id}" (first used by instances[${first}])`,
    });
  });
  return problems;
}

function abs(dir: string, p: string): string {
  return isAbsolute(p) ? p : join(dir, p);
}

/** Applies defaults and resolves relative paths against `dir`, the config file's folder. */
function toConfig(parsed: ConfigFile, dir: string, environment: string | undefined): Config {
  const format = parsed.storage?.compression?.format ?? "gzip";
  const defaultLevel = format === "zstd" ? 3 : 6;
  const instances: InstanceConfig[] = (parsed.instances ?? []).map((i) => {
    const { dir: toolDir, ...paths } = i.tools ?? {};
    return {
      id: i.id,
      type: i.type,
      host: i.host ?? "127.0.0.1",
      port: i.port ?? DEFAULT_PORTS[i.type],
      credential: i.credential,
      enabled: i.enabled ?? true,
      databases: { include: i.databases?.include ?? [], exclude: i.databases?.exclude ?? [] },
      users: { backup: i.users?.backup ?? true, exclude: i.users?.exclude ?? [] },
      tools: {
        dir: toolDir ? abs(dir, toolDir) : undefined,
        paths: Object.fromEntries(
          Object.entries(paths).filter(([, p]) => p !== undefined).map((
            [k, p],
          ) => [k, abs(dir, p!)]),
        ),
      },
      connect_timeout: i.connect_timeout ?? 10,
      retention: toRetentionSettings(i.retention),
      retention_overrides: Object.fromEntries(
        Object.entries(i.retention_overrides ?? {}).map(([db, r]) => [db, toRetentionSettings(r)!]),
      ),
      ...(i.verify?.instance !== undefined && { verify: { instance: i.verify.instance } }),
    };
  });
  return {
    environment,
    storage: {
      path: abs(dir, parsed.storage?.path ?? DEFAULT_STORAGE_PATH),
      compression: {
        format,
        level: format === "none" ? 0 : parsed.storage?.compression?.level ?? defaultLevel,
        threads: parsed.storage?.compression?.threads ?? 0,
      },
      keep_local: parsed.storage?.keep_local ?? true,
      ...(parsed.storage?.remote && {
        remote: {
          ...parsed.storage.remote,
          path_style: parsed.storage.remote.path_style ?? false,
          retention: toRetentionSettings(parsed.storage.remote.retention),
        },
      }),
      ...(parsed.storage?.encryption && {
        encryption: {
          recipients: parsed.storage.encryption.recipients,
          identity_file: parsed.storage.encryption.identity_file
            ? abs(dir, parsed.storage.encryption.identity_file)
            : undefined,
        },
      }),
    },
    credentials: {
      file: abs(dir, parsed.credentials?.file ?? DEFAULT_CREDENTIALS_FILE),
      key_file: parsed.credentials?.key_file ? abs(dir, parsed.credentials.key_file) : undefined,
    },
    backup: {
      jobs: parsed.backup?.jobs ?? 1,
      nice: parsed.backup?.nice ?? 0,
      ionice: parsed.backup?.ionice ?? "none",
      stall_timeout: parseDurationSeconds(parsed.backup?.stall_timeout ?? DEFAULT_STALL_SECONDS)!,
      verify: parsed.backup?.verify ?? "none",
    },
    restore: {
      jobs: parsed.restore?.jobs ?? 1,
      spool_limit: parseSizeBytes(parsed.restore?.spool_limit ?? DEFAULT_SPOOL_LIMIT)!,
    },
    instances,
    retention: toRetentionSettings(parsed.retention),
    ...toAlertsConfig(parsed, dir),
  };
}
