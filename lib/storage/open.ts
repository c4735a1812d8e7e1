/**
 * The storage a configuration names. Today always the local folder `storage.path`; the S3
 * storage of a later issue is chosen here, so callers never pick an implementation themselves.
 *
 * @module
 */
import type { StorageConfig } from "../config/types.ts";
import { LocalStorage } from "./local.ts";
import type { Storage } from "./storage.ts";

/** The storage of `storage:` in the configuration. */
export function openStorage(config: Pick<StorageConfig, "path">): Storage {
  return new LocalStorage(config.path);
}
