/**
 * The storages a configuration names: the local folder `storage.path`, and the off-host copy
 * `storage.remote` (S3). This is the one place an implementation is chosen, so callers never
 * pick one themselves.
 *
 * @module
 */
import type { StorageConfig } from "../config/types.ts";
import { OptionError } from "../errors.ts";
import { LocalStorage } from "./local.ts";
import { S3Storage } from "./s3.ts";
import type { Storage } from "./storage.ts";

/** The local storage of `storage:` in the configuration (`storage.path`). */
export function openStorage(config: Pick<StorageConfig, "path">): Storage {
  return new LocalStorage(config.path);
}

/** What decrypts the remote's credential (a CredentialResolver). */
export interface RemoteCredentials {
  /** The decrypted entry (username = access key id, password = secret key). */
  credential(id: string): Promise<{ username: string; password: string }>;
}

/**
 * The remote storage of `storage.remote`, or undefined when none is configured. Nothing is
 * contacted and the credential is not decrypted until first use; the secret is then known to
 * the redaction layer (getCredential registers it).
 */
export function openRemoteStorage(
  config: Pick<StorageConfig, "remote">,
  credentials: RemoteCredentials,
): S3Storage | undefined {
  const r = config.remote;
  if (!r) return undefined;
  let resolved: Promise<{ accessKeyId: string; secretAccessKey: string }> | undefined;
  return new S3Storage({
    endpoint: r.endpoint,
    region: r.region,
    bucket: r.bucket,
    prefix: r.prefix,
    pathStyle: r.path_style,
    credentials: () =>
      resolved ??= credentials.credential(r.credential).then((c) => ({
        accessKeyId: c.username,
        secretAccessKey: c.password,
      })),
  });
}

/** Where a read command (`restore`, `users restore`) reads backups from. */
export type ReadFrom = "local" | "remote";

/**
 * The storage to read from: `from` when given (remote without `storage.remote` is an option
 * error), else local when the local folder exists (and `keep_local` is not false: then the local
 * folder holds only what is not uploaded yet), else the remote, else local (which then lists
 * nothing and says so).
 */
export async function openReadStorage(
  config: Pick<StorageConfig, "path" | "remote" | "keep_local">,
  credentials: RemoteCredentials,
  from?: ReadFrom,
): Promise<Storage> {
  const local = openStorage(config);
  const remote = openRemoteStorage(config, credentials);
  if (from === "remote") {
    if (!remote) {
      throw new OptionError("there is no remote to read from: storage.remote is not configured", {
        flag: "--from",
        reason: "use --from local, or configure storage.remote",
      });
    }
    return remote;
  }
  if (from === "local" || !remote) return local;
  if (config.keep_local === false) return remote;
  try {
    const info = await Deno.stat(config.path);
    if (info.isDirectory) return local;
  } catch {
    // missing: read the remote
  }
  return remote;
}
