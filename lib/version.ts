/**
 * The tool's version, from deno.json, so there is one place to bump it.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** The tool's version string, e.g. `0.1.0`. */
export const VERSION: string = denoJson.version;
