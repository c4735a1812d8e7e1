/**
 * The family of a configured engine type, without loading any engine (and its drivers): what
 * `config validate` may use under read-only permissions.
 *
 * @module
 */
import type { EngineType } from "../config/types.ts";
import type { EngineFamily } from "./types.ts";

/** The family whose dumps an instance configured as `type` writes and restores. */
export function familyOfType(type: EngineType): EngineFamily {
  return type === "postgresql" ? "postgresql" : "mysql";
}
