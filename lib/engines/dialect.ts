/**
 * The SQL dialect of a family's plain dumps, as facts: how its dump tool's banner and
 * completion marker look, the lexical rules the restore's lexer (lib/restore/sql_lexer.ts)
 * needs to find statement boundaries, and how the dump filter treats the statements after the
 * banner. Each engine owns one (`Engine.dialect`, lib/engines/types.ts); {@linkcode DIALECTS} lists them
 * for sniffing a file whose family is not known yet. Readers branch on these facts, never on
 * a family's name.
 *
 * @module
 */
import type { EngineFamily } from "./types.ts";
import { mysqlDialect } from "./mysql/dialect.ts";
import { postgresDialect } from "./postgres/dialect.ts";

/** What the lexer must know to tell where statements end (each flag off is the SQL standard). */
export interface LexicalRules {
  /** Every '…' and "…" string takes backslash escapes (MySQL); otherwise only E'…' may. */
  readonly backslashEscapesInStrings: boolean;
  /** E'…' strings take backslash escapes (PostgreSQL). */
  readonly escapeStringPrefix: boolean;
  /** `$tag$ … $tag$` quotes (PostgreSQL). */
  readonly dollarQuotes: boolean;
  /** `/* … /* … *\/ … *\/` nests (PostgreSQL). */
  readonly nestedBlockComments: boolean;
  /** `#` starts a comment to the end of the line (MySQL). */
  readonly hashLineComments: boolean;
  /** `--` starts a comment only when a space or the end of the line follows (MySQL). */
  readonly dashCommentNeedsSpace: boolean;
  /** `` `…` `` quotes an identifier (MySQL). */
  readonly backtickIdentifiers: boolean;
  /** The client's `DELIMITER x` command changes the statement delimiter (MySQL). */
  readonly delimiterCommand: boolean;
}

/**
 * How the dump filter treats what follows the banner: `statements` reads it statement by
 * statement (ownership, privileges, COPY data, statements that leave the database);
 * `passThrough` lets it flow untouched (a body scanner looks at it on the side).
 */
export type BodyTreatment = "statements" | "passThrough";

/** One family's dump dialect. */
export interface SqlDialect {
  /** The family whose engines restore such a dump. */
  readonly family: EngineFamily;
  /** The family's name in messages. */
  readonly label: string;
  /** Whether a line (without its newline) is the dump tool's opening banner. */
  isBanner(line: string): boolean;
  /** Text the last lines of a complete dump contain. */
  readonly completionMarker: string;
  /** Lexical rules of its SQL. */
  readonly lexical: LexicalRules;
  /** How the filter treats the statements after the banner. */
  readonly body: BodyTreatment;
}

/** Every dialect, in the order a file of unknown family is tried. */
export const DIALECTS: readonly SqlDialect[] = [postgresDialect, mysqlDialect];
