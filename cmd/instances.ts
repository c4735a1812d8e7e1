/**
 * Choosing instances from `--instance ID` / `--all`, shared by the commands that take them.
 *
 * @module
 */
import type { Config, InstanceConfig } from "../lib/config/types.ts";
import { ConfigError } from "../lib/errors.ts";
import { UsageError } from "./usage.ts";

/**
 * Returns the instances a command acts on. `--all` takes every enabled instance; `--instance`
 * names one, which must exist and be enabled (exit 3 otherwise, like the original tool).
 */
export function pickInstances(
  config: Config,
  options: { instance?: string; all?: boolean },
): InstanceConfig[] {
  if (options.instance && options.all) {
    throw new UsageError("--instance and --all exclude each other");
  }
  if (options.all) return config.instances.filter((i) => i.enabled);
  if (!options.instance) throw new UsageError("name an instance with --instance ID, or use --all");
  return [findInstance(config, options.instance)];
}

/** The instance with this id; ConfigError when unknown or disabled. */
export function findInstance(config: Config, id: string): InstanceConfig {
  const found = config.instances.find((i) => i.id === id);
  if (!found) {
    const known = config.instances.map((i) => i.id);
    throw new ConfigError(
      `unknown instance "${id}"` + (known.length ? `; configured: ${known.join(", ")}` : ""),
    );
  }
  if (!found.enabled) throw new ConfigError(`instance "${id}" is disabled in the configuration`);
  return found;
}
