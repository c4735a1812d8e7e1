/**
 * Health check of instances: reachable, authenticated, server version, the databases a backup
 * would take, and the client tools that would be used. One instance failing never stops the
 * check of the others.
 *
 * @module
 */
import type { ConnectionParams, InstanceConfig } from "./config/types.ts";
import type { Logger } from "./log.ts";
import { redact } from "./redact.ts";
import { type ErrorKind, errorText, kindOf } from "./errors.ts";
import { connect, engineFor, selectDatabases } from "./engines/mod.ts";
import { ConnectError, type DatabaseInfo, type ServerVersion } from "./engines/types.ts";
import type { ToolSet } from "./tools/find.ts";

/** The check of one instance. */
export interface InstanceCheck {
  /** Instance id. */
  instance: string;
  /** Engine as configured. */
  type: string;
  /** host:port. */
  address: string;
  /** Whether everything needed for a backup is in place. */
  ok: boolean;
  /** A TCP connection was made. */
  reachable: boolean;
  /** The login was accepted. */
  authenticated: boolean;
  /** The server's version, once connected. */
  server_version?: ServerVersion;
  /** The databases a backup would take, with sizes. */
  databases?: DatabaseInfo[];
  /** The client tools found (or not). */
  tools?: ToolSet;
  /** What is wrong, in words a sysadmin can act on. */
  errors: string[];
  /** What does not stop a backup but a restore should know (e.g. too many relations). */
  warnings: string[];
  /**
   * What sort of problem, when not ok: `credential`, `config` (client tools) or `permission`
   * are for this machine to fix; `unreachable` and `failed` are the server's side.
   */
  kind?: ErrorKind;
}

/** Checks one instance; never throws for a server-side problem. */
export async function checkInstance(
  instance: InstanceConfig,
  credentials: { connectionParams(instance: InstanceConfig): Promise<ConnectionParams> },
  log: Logger,
): Promise<InstanceCheck> {
  const result: InstanceCheck = {
    instance: instance.id,
    type: instance.type,
    address: `${instance.host}:${instance.port}`,
    ok: false,
    reachable: false,
    authenticated: false,
    errors: [],
    warnings: [],
  };
  let params: ConnectionParams;
  try {
    params = await credentials.connectionParams(instance);
  } catch (e) {
    result.errors.push(redact(errorText(e)));
    result.kind = kindOf(e);
    return result;
  }
  try {
    const adapter = await connect(instance.type, params);
    result.reachable = true;
    result.authenticated = true;
    try {
      const version = await adapter.serverVersion();
      const engine = engineFor(version);
      result.server_version = version;
      const all = await adapter.listDatabases();
      result.databases = selectDatabases(
        engine,
        all,
        instance.databases.include,
        instance.databases.exclude,
      );
      for (const db of result.databases) {
        const warning = await adapter.restoreWarning?.(db.name);
        if (warning) result.warnings.push(warning);
        if (await adapter.restoreMark(db.name)) {
          result.errors.push(
            `${db.name} was left incomplete by a restore that never finished: its backup ` +
              `fails until it is restored again or dropped`,
          );
        }
      }
      result.tools = await engine.findTools(version.major, instance.tools);
      result.errors.push(...result.tools.problems);
      if (result.tools.problems.length) result.kind = "config";
      if (!engine.matchesConfigured(instance.type)) {
        result.errors.push(
          `configured as ${instance.type} but the server is ${version.flavor} ${version.full}`,
        );
      }
    } finally {
      await adapter.close();
    }
  } catch (e) {
    if (e instanceof ConnectError) result.reachable = e.reason === "auth";
    result.kind ??= kindOf(e);
    result.errors.push(redact(errorText(e)));
    log.debug(`check of ${instance.id} failed`, { error: (e as Error).message });
  }
  result.ok = result.errors.length === 0;
  return result;
}
