/**
 * What a restore asks of the target server, whatever its engine.
 *
 * @module
 */
import type { DatabaseProperties } from "../storage/metadata.ts";
import type { ChildSpec } from "../process.ts";
import type { DefinerAccount } from "./mysql_body_scan.ts";
import type { RestoreMarker } from "./marker.ts";

/** The engine-specific operations of a restore. */
export interface TargetServer {
  /**
   * Whether the load runs in one transaction that the restore itself commits (PostgreSQL):
   * a load cut short by anything leaves no rows behind.
   */
  readonly transactional: boolean;
  /**
   * Why `name` cannot be restored into as given (over the engine's length limit, where a
   * server would silently cut it and so name another database), or undefined.
   */
  nameProblem(name: string): string | undefined;
  /**
   * Takes the server-side lock on restores into `name` for this session (released when the
   * session ends, however the run ends); false when another session holds it.
   */
  lockTarget(name: string): Promise<boolean>;
  /** The mark of an unfinished restore in database `name`, if it holds one. */
  readMarker(name: string): Promise<RestoreMarker | undefined>;
  /** The statements that mark the existing database `name` as holding an unfinished restore. */
  markStatements(name: string, marker: RestoreMarker): string[];
  /**
   * The statements that remove the mark once the load is complete. On a transactional server
   * they are sent inside the load's transaction; `comment` is the database comment to leave.
   */
  unmarkStatements(name: string, comment: string | undefined): string[];
  /** The database's comment (PostgreSQL), to put back when a load into it is rolled back. */
  comment(name: string): Promise<string | undefined>;
  /** Of `names`, those that are not roles/users on the server, sorted. */
  missingRoles(names: string[]): Promise<string[]>;
  /**
   * Of the DEFINER accounts, those the server lacks (MySQL/MariaDB), as written in messages;
   * undefined when the server does not say (no privilege to read its accounts).
   */
  missingDefiners(accounts: DefinerAccount[]): Promise<string[] | undefined>;
  /**
   * The most relations one transaction can lock on this server (PostgreSQL:
   * max_locks_per_transaction × (max_connections + max_prepared_transactions)); undefined where
   * no such limit applies.
   */
  lockCapacity(): Promise<number | undefined>;
  /**
   * Whether a session is executing a statement in database `name` (an index build that takes
   * long reads no input but is progress).
   */
  busy(name: string): Promise<boolean>;
  /**
   * How many more sessions the server accepts from this login now (max_connections less those
   * in use and those reserved for others, or the login's own connection limit), and which of
   * the two limits it is; undefined when it does not say.
   */
  freeConnections(): Promise<{ free: number; limit: string } | undefined>;
  /** How many other sessions are connected to database `name`. */
  sessionsUsing(name: string): Promise<number>;
  /** What dropping `name` does to the `sessions` connected to it, for the user. */
  dropEffect(sessions: number, waitSeconds: number): string;
  /**
   * The statements that create database `name` with its captured properties. The one that
   * creates it starts with `CREATE DATABASE `: the restore marks the database right after it,
   * so nothing after it may replace the mark (the comment comes back with the unmark).
   */
  createStatements(
    name: string,
    props: DatabaseProperties | undefined,
    opts: { noOwner?: boolean },
  ): string[];
  /** Runs statements one by one, outside any transaction. */
  execute(statements: string[]): Promise<void>;
  /**
   * Drops database `name` (if it exists), waiting at most `waitSeconds` for other sessions'
   * locks; throws {@linkcode import("./errors.ts").RestoreRefusedError} when they keep it.
   */
  drop(name: string, waitSeconds: number): Promise<void>;
  /** The client command that reads SQL on stdin into database `target`. */
  clientCommand(
    toolPath: string,
    target: string,
  ): Promise<{ child: ChildSpec; cleanup: () => Promise<void> }>;
  /** Closes the connection (and so releases the lock). */
  close(): Promise<void>;
}

/** A key for per-target locks: short, fixed length, the same for the same name. */
export async function lockKey(name: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name));
  return [...new Uint8Array(digest).subarray(0, 16)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}
