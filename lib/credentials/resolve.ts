/**
 * From configuration to a usable login: loads the configured key, reads the entry an instance
 * names and builds the connection parameters for drivers and client tools.
 *
 * @module
 */
import type { ConnectionParams, CredentialsConfig, InstanceConfig } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { type CredentialKey, loadKey } from "../crypto/keys.ts";
import { type Credential, getCredential } from "./store.ts";

/**
 * Resolves credentials for one run. The key is loaded once, on first use, and shared by every
 * instance.
 */
export class CredentialResolver {
  #config: CredentialsConfig;
  #logger: Logger;
  #key?: Promise<CredentialKey>;

  /** Creates a resolver for the configured credentials file and key. */
  constructor(config: CredentialsConfig, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
  }

  /** The configured key (key file or host key). */
  key(): Promise<CredentialKey> {
    this.#key ??= loadKey({ keyFile: this.#config.key_file });
    return this.#key;
  }

  /**
   * The decrypted login of an entry of the credentials file.
   *
   * @throws {CredentialError} see {@linkcode getCredential} and {@linkcode loadKey}
   */
  async credential(id: string): Promise<Credential> {
    return await getCredential(this.#config.file, id, await this.key(), this.#logger);
  }

  /**
   * Connection parameters for an instance, with its credential decrypted.
   *
   * @throws {CredentialError} see {@linkcode getCredential} and {@linkcode loadKey}
   */
  async connectionParams(instance: InstanceConfig): Promise<ConnectionParams> {
    const { username, password } = await this.credential(instance.credential);
    return {
      host: instance.host,
      port: instance.port,
      user: username,
      password,
      connectTimeout: instance.connect_timeout,
    };
  }
}
