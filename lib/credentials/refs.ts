/**
 * Cross-checks the instances' `credential:` ids against the credentials file, without
 * decrypting anything, so `config validate` can report a missing entry before a nightly run.
 *
 * @module
 */
import type { Config } from "../config/types.ts";

/**
 * Returns one message per instance whose credential id is not in the credentials file, or one
 * message about the file itself when it is missing or malformed. Returns nothing when the run
 * may not read the file (narrow `--allow-read`): validation of the config alone still works.
 */
export async function checkCredentialRefs(config: Config): Promise<string[]> {
  const file = config.credentials.file;
  if (config.instances.length === 0) return [];
  if (Deno.permissions.querySync({ name: "read", path: file }).state !== "granted") return [];
  let ids: Set<string>;
  try {
    const parsed = JSON.parse(await Deno.readTextFile(file));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return [`credentials file ${file}: expected a JSON object of entries`];
    }
    ids = new Set(Object.keys(parsed));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return [
        `credentials file ${file} not found (instances reference ${
          [...new Set(config.instances.map((i) => i.credential))].join(", ")
        }); create entries with 'vya-backupdb credentials encrypt'`,
      ];
    }
    if (e instanceof SyntaxError) return [`credentials file ${file}: invalid JSON: ${e.message}`];
    return [`credentials file ${file}: ${(e as Error).message}`];
  }
  return config.instances
    .map((inst, i) => ({ inst, i }))
    .filter(({ inst }) => !ids.has(inst.credential))
    .map(({ inst, i }) =>
      `instances[${i}].credential: no entry "${inst.credential}" in ${file} (instance ${inst.id})`
    );
}
