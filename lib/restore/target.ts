/**
 * What a restore asks of the target server, whatever its engine.
 *
 * @module
 */
import type { DatabaseProperties } from "../backup/metadata.ts";
import type { ChildSpec } from "../process.ts";

/** Options for the client that loads the dump. */
export interface ClientOptions {
  /** PostgreSQL: `--single-transaction`. */
  singleTransaction?: boolean;
}

/** The engine-specific operations of a restore. */
export interface TargetServer {
  /** Of `names`, those that are not roles/users on the server, sorted. */
  missingRoles(names: string[]): Promise<string[]>;
  /** The statements that create database `name` with its captured properties. */
  createStatements(
    name: string,
    props: DatabaseProperties | undefined,
    opts: { noOwner?: boolean },
  ): string[];
  /** Runs statements one by one, outside any transaction. */
  execute(statements: string[]): Promise<void>;
  /** The statement that drops database `name` (if it exists). */
  dropStatement(name: string): string;
  /** The client command that reads SQL on stdin into database `target`. */
  clientCommand(
    toolPath: string,
    target: string,
    opts: ClientOptions,
  ): Promise<{ child: ChildSpec; cleanup: () => Promise<void> }>;
  /** Closes the connection. */
  close(): Promise<void>;
}
