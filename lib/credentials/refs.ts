/**
 * Cross-checks the instances' `credential:` ids against the credentials file, without
 * decrypting anything, so `config validate` can report a missing entry before a nightly run.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { errorText, VyaError } from "../errors.ts";
import { readStore } from "./store.ts";

/**
 * Returns one message per instance whose credential id is not in the credentials file, or one
 * message about the file itself when it is missing, unsafe or malformed. Returns nothing when
 * the run may not read the file (narrow `--allow-read`): validating the config alone still works.
 */
export async function checkCredentialRefs(config: Config): Promise<string[]> {
  const file = config.credentials.file;
  if (config.instances.length === 0) return [];
  if (Deno.permissions.querySync({ name: "read", path: file }).state !== "granted") return [];
  let ids: Set<string>;
  try {
    ids = new Set(Object.keys(await readStore(file)));
  } catch (e) {
    if (e instanceof VyaError && /no such file|not found|does not exist/i.test(e.message)) {
      return [
        `credentials file ${file} not found (instances reference ${
          [...new Set(config.instances.map((i) => i.credential))].join(", ")
        }); create entries with 'vya-backupdb credentials encrypt'`,
      ];
    }
    if (e instanceof VyaError) return [errorText(e)];
    throw e;
  }
  return config.instances
    .map((inst, i) => ({ inst, i }))
    .filter(({ inst }) => !ids.has(inst.credential))
    .map(({ inst, i }) =>
      `instances[${i}].credential: no entry "${inst.credential}" in ${file} (instance ${inst.id})`
    );
}
