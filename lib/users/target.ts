/**
 * The server accounts are restored onto, behind one small interface for both engines: which
 * accounts and databases exist, who we are logged in as, how an account is removed, and running
 * one statement through the driver (never a client tool: no password in any argv).
 *
 * @module
 */
import type { ConnectionParams } from "../config/types.ts";
import { engineOf } from "../engines/mod.ts";
import type { Flavor } from "../engines/types.ts";
import type { AccountRef, Section } from "./format.ts";

/** A connection to the restore target. */
export interface RestoreTarget {
  /** postgresql, or mysql/mariadb as the server says. */
  readonly engine: Flavor;
  /** The account this connection is logged in as. */
  current(): Promise<{ name: string; host?: string }>;
  /** Whether the account exists (MariaDB's PUBLIC: whether it holds any privilege). */
  exists(account: AccountRef): Promise<boolean>;
  /**
   * How an existing account differs from its backup section, as short phrases (empty: the
   * same). Privileges on databases `databaseExists` says are absent are not expected.
   */
  differences(section: Section, databaseExists: (db: string) => boolean): Promise<string[]>;
  /** Whether a database exists. */
  databaseExists(database: string): Promise<boolean>;
  /**
   * The statements that remove an account before it is recreated (MySQL: DROP USER/ROLE), or
   * reset it in place (PostgreSQL, see {@linkcode RestoreTarget.replaceInPlace}).
   */
  dropStatements(account: AccountRef): Promise<string[]>;
  /**
   * PostgreSQL replaces a role in place (its CREATE ROLE is skipped): a role that owns objects
   * or holds privileges cannot be dropped, and dropping it would lose them.
   */
  readonly replaceInPlace: boolean;
  /** Runs one statement. */
  exec(sql: string): Promise<void>;
  /** Closes the connection. */
  close(): Promise<void>;
}

/** Connects to the restore target of an instance configured as `type`. */
export function openTarget(type: string, params: ConnectionParams): Promise<RestoreTarget> {
  return engineOf(type).openUsersTarget(params);
}

/**
 * Whether a driver error means the connection is gone (server crashed or restarted, network
 * cut): every later statement would fail the same way, so a restore stops there.
 */
export function isConnectionLost(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const err = e as Error & { code?: string; fatal?: boolean };
  if (err.fatal) return true;
  const codes = [
    "PROTOCOL_CONNECTION_LOST",
    "ECONNRESET",
    "ECONNREFUSED",
    "EPIPE",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
  ];
  if (err.code && codes.includes(err.code)) return true;
  return /closed state|connection (?:lost|closed|terminated)|server has gone away/i.test(
    err.message,
  );
}
