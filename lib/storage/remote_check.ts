/**
 * `check` of the remote storage: reachable (the endpoint answers), authenticated (HEAD on the
 * bucket is allowed) and writable (a small object written, read back and deleted under the
 * prefix). Never throws for a remote-side problem.
 *
 * @module
 */
import type { ErrorKind } from "../errors.ts";
import { RemoteError, type S3Storage } from "./s3.ts";

/** The check of the remote. */
export interface RemoteCheck {
  /** `s3://bucket/prefix`. */
  location: string;
  /** Everything a backup needs works. */
  ok: boolean;
  /** The endpoint answered at all. */
  reachable: boolean;
  /** The bucket exists and the credentials may use it. */
  authenticated: boolean;
  /** A write, read and delete under the prefix worked. */
  writable: boolean;
  /** What is wrong (redacted; names the remote). */
  errors: string[];
  /** Kind of the problem, when not ok. */
  kind?: ErrorKind;
}

/** Name of the probe object (under the prefix, never a backup name). */
export const PROBE_KEY = ".vya-backupdb-check";

/** Checks the remote; the probe object is always removed again. */
export async function checkRemote(remote: S3Storage): Promise<RemoteCheck> {
  const r: RemoteCheck = {
    location: remote.location,
    ok: false,
    reachable: false,
    authenticated: false,
    writable: false,
    errors: [],
  };
  try {
    await remote.headBucket();
    r.reachable = r.authenticated = true;
    const body = `vya-backupdb check ${new Date().toISOString()}\n`;
    await remote.writeAtomic(PROBE_KEY, body);
    try {
      const back = await remote.readSmall(PROBE_KEY);
      if (new TextDecoder().decode(back) !== body) {
        throw new Error(`${remote.locate(PROBE_KEY)} reads back different content`);
      }
    } finally {
      await remote.remove(PROBE_KEY);
    }
    r.writable = true;
  } catch (e) {
    // An HTTP answer means the endpoint is there; 403/401 is a login or policy refusal.
    const status = e instanceof RemoteError ? e.status : undefined;
    if (status !== undefined) r.reachable = true;
    if (status === 404) r.errors.push(`bucket missing: ${(e as Error).message}`);
    else r.errors.push((e as Error).message);
    r.kind = status === 401 || status === 403 ? "credential" : "failed";
  }
  r.ok = r.errors.length === 0;
  return r;
}
