/**
 * The SQL dialect of pg_dump's plain output (see lib/engines/dialect.ts).
 *
 * @module
 */
import type { SqlDialect } from "../dialect.ts";

const BANNER = "-- PostgreSQL database dump";

/** PostgreSQL's dump dialect. */
export const postgresDialect: SqlDialect = {
  family: "postgresql",
  label: "PostgreSQL",
  // The completion line starts with the banner's words.
  isBanner: (line) => line.startsWith(BANNER) && !line.startsWith(BANNER + " complete"),
  completionMarker: "-- PostgreSQL database dump complete",
  lexical: {
    backslashEscapesInStrings: false,
    escapeStringPrefix: true,
    dollarQuotes: true,
    nestedBlockComments: true,
    hashLineComments: false,
    dashCommentNeedsSpace: false,
    backtickIdentifiers: false,
    delimiterCommand: false,
  },
  // Ownership, privileges, COPY data and foreign statements are read statement by statement.
  body: "statements",
};
