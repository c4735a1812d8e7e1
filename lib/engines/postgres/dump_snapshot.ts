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

/** An open REPEATABLE READ transaction whose snapshot pg_dump imports. */
export class DumpSnapshot {
  /** The identifier pg_dump is given (`pg_export_snapshot()`). */
  readonly id: string;
  #tx: TxSql;
  #finish: () => void;
  /** The transaction's end (a function: the snapshot exists before the promise is named). */
  #done: () => Promise<void>;
  #ended = false;
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
    const done: Promise<void> = sql.begin(
      "isolation level repeatable read read only",
      async (tx) => {
        const [row] = await tx`select pg_export_snapshot() as id`;
        opened(new DumpSnapshot(row.id as string, tx, finish, () => done));
        // The snapshot lives as long as this transaction: it ends only when the dump has.
        await finished;
      },
    ).then(() => {}, () => opened(undefined));
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
      await this.#tx`savepoint vya_snapshot_query`;
      try {
        return await query(this.#tx);
      } finally {
        await this.#tx`rollback to savepoint vya_snapshot_query`;
      }
    };
    const result = this.#last.then(run, run);
    this.#last = result.catch(() => {});
    return result;
  }

  /** Ends the transaction (idempotent); resolves when the connection is free again. */
  async end(): Promise<void> {
    this.#ended = true;
    this.#finish();
    await this.#done();
  }
}
