/**
 * The name of the scratch database a `verify --restore` loads into:
 * `vya_verify_<database>_<stamp>` (the backup's own stamp, lower case), which no application
 * uses and which an interrupted verification of the same backup finds again (the restore then
 * replaces the copy it left marked). Unusual or long database names are cut and given a short
 * hash, so the name stays under every engine's limit (PostgreSQL 63 bytes, MySQL 64 characters)
 * and two databases never share one.
 *
 * @module
 */

const PREFIX = "vya_verify_";
const MAX_BASE = 24;

/** The scratch name for a backup of `database` taken at `stamp` (`YYYYMMDDTHHMMSSZ`). */
export async function scratchName(database: string, stamp: string): Promise<string> {
  const clean = database.replace(/[^A-Za-z0-9_]/g, "_").toLowerCase();
  let base = clean;
  if (clean !== database || clean.length > MAX_BASE) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(database));
    const hash = [...new Uint8Array(digest).subarray(0, 4)]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    base = `${clean.slice(0, MAX_BASE - 9)}_${hash}`;
  }
  return `${PREFIX}${base}_${stamp.toLowerCase().replace(/[^a-z0-9]/g, "")}`;
}
