/**
 * The private temporary folders a restore keeps backup data in (a download from S3, the spool of
 * a parallel load): 0700 under $TMPDIR, holding a file naming the owning process, so that the
 * folders a `kill -9` left behind are removed by the next run instead of outliving it.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { OWNER_FILE, sweepStaleOptionFolders } from "../engines/mysql/options_file.ts";

const PREFIX = "vya-restore-";
let swept = false;

/** Makes a fresh private folder owned by this process; sweeps dead runs' folders once. */
export async function makeRestoreTempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: PREFIX });
  try {
    await Deno.chmod(dir, 0o700);
    await Deno.writeTextFile(join(dir, OWNER_FILE), `${Deno.pid}\n`, { mode: 0o600 });
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  if (!swept) {
    swept = true;
    const uid = (await Deno.lstat(dir)).uid;
    await sweepStaleOptionFolders(dirname(dir), uid, [PREFIX]).catch(() => {});
  }
  return dir;
}
