/**
 * A snapshot exported for pg_dump (`--snapshot`), kept open on the connection that exported it
 * so that the backup's row counts read exactly the rows the dump holds.
 *
 * @module
 */
import type { TransactionSql } from "postgres";
import type { PgSql } from "./driver.ts";

/** The statements of one transaction (what postgres.js hands a `begin` callback). */
export type TxSql = TransactionSql;

/**
 * Whether an error leaves the connection usable: an ERROR the server reported for one statement
 * does; a FATAL one (the session was terminated), a closed or reset socket do not.
 */
function connectionSurvives(error: unknown): boolean {
  const e = error as { name?: string; severity?: string } | undefined;
  return e?.name === "PostgresError" && e.severity === "ERROR";
}

/**
 * An open REPEATABLE READ transaction whose snapshot pg_dump imports.
 *
 * Once its connection is lost (the session terminated, a reset, a server restart) nothing more
 * is sent on it, not even the end of the transaction: postgres.js 3.4 writes a statement queued
 * on a closed connection to a socket it has already dropped, and that throws where no caller can
 * catch it, ending the whole run (porsager/postgres#1208). The server ended the transaction
 * with the session anyway.
 */
export class DumpSnapshot {
  /** The identifier pg_dump is given (`pg_export_snapshot()`). */
  readonly id: string;
  #tx: TxSql;
  #finish: () => void;
  /** The transaction's end (a function: the snapshot exists before the promise is named). */
  #done: () => Promise<void>;
  #ended = false;
  /** The connection is gone: see the class comment. */
  #lost = false;
  /** The last isolated query: they run one after another, each in its own savepoint. */
  #last: Promise<unknown> = Promise.resolve();

  private constructor(id: string, tx: TxSql, finish: () => void, done: () => Promise<void>) {
    this.id = id;
    this.#tx = tx;
    this.#finish = finish;
    this.#done = done;
  }

  /**
   * Exports a snapshot on `sql`, or undefined where the server cannot (then the dump takes its
   * own, as without this). While it is open every other query on `sql` waits for its end.
   */
  static async open(sql: PgSql): Promise<DumpSnapshot | undefined> {
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => finish = resolve);
    let opened!: (s: DumpSnapshot | undefined) => void;
    const snapshot = new Promise<DumpSnapshot | undefined>((resolve) => opened = resolve);
    let shared: DumpSnapshot | undefined;
    const done: Promise<void> = sql.begin(
      "isolation level repeatable read read only",
      async (tx) => {
        const [row] = await tx`select pg_export_snapshot() as id`;
        shared = new DumpSnapshot(row.id as string, tx, finish, () => done);
        opened(shared);
        // The snapshot lives as long as this transaction: it ends only when the dump has.
        await finished;
      },
    ).then(() => {}, () => {
      // The transaction ended with its connection (before or after the export).
      shared?.markLost();
      opened(undefined);
    });
    return await snapshot;
  }

  /**
   * Runs `query` in the snapshot, inside a savepoint rolled back afterwards: a failing statement
   * leaves the transaction (and so the snapshot pg_dump may not have imported yet) usable, and
   * the locks it took go at once instead of at the end of the dump, where a session waiting
   * behind them could in turn hold up pg_dump's own locks for good.
   */
  isolated<T>(query: (tx: TxSql) => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.#ended) throw new Error("the dump's snapshot has ended");
      if (this.#lost) throw new Error("the connection holding the dump's snapshot was lost");
      await this.#tx`savepoint vya_snapshot_query`.catch((e) => this.#rethrow(e));
      let result: T;
      try {
        result = await query(this.#tx);
      } catch (e) {
        this.#note(e);
        if (!this.#lost) {
          await this.#tx`rollback to savepoint vya_snapshot_query`.catch((e) => this.#rethrow(e));
        }
        throw e;
      }
      await this.#tx`rollback to savepoint vya_snapshot_query`.catch((e) => this.#rethrow(e));
      return result;
    };
    const result = this.#last.then(run, run);
    this.#last = result.catch(() => {});
    return result;
  }

  /** Notes that the connection is gone: nothing more is sent on it. */
  markLost(): void {
    this.#lost = true;
  }

  /** Notes a lost connection if `error` says so. */
  #note(error: unknown): void {
    if (!connectionSurvives(error)) this.#lost = true;
  }

  /** Rethrows `error`, first noting a lost connection. */
  #rethrow(error: unknown): never {
    this.#note(error);
    throw error;
  }

  /**
   * Ends the transaction (idempotent); resolves when the connection is free again. On a lost
   * connection the transaction's callback is left waiting for good: letting it return would
   * send COMMIT (or ROLLBACK) on the dead connection. It holds no more than its closure.
   */
  async end(): Promise<void> {
    this.#ended = true;
    if (this.#lost) return;
    this.#finish();
    await this.#done();
  }
}
