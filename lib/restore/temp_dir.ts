/**
 * The private temporary folders a restore keeps backup data in (a download from S3, the spool of
 * a parallel load): owned folders (../owned_temp_dir.ts), so that the ones a `kill -9` left
 * behind are removed by the next restore.
 *
 * @module
 */
import { makeOwnedTempDir } from "../owned_temp_dir.ts";

/** Makes a fresh private folder owned by this process; sweeps dead runs' folders once. */
export function makeRestoreTempDir(): Promise<string> {
  return makeOwnedTempDir("vya-restore-");
}
