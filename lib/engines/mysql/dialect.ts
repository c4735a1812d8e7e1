/**
 * The SQL dialect of mysqldump's and mariadb-dump's output, one for both products (see
 * lib/engines/dialect.ts).
 *
 * @module
 */
import type { SqlDialect } from "../dialect.ts";

const BANNER = /^-- (MySQL|MariaDB) dump\b/;

/** MySQL's and MariaDB's dump dialect. */
export const mysqlDialect: SqlDialect = {
  family: "mysql",
  label: "MySQL/MariaDB",
  isBanner: (line) => BANNER.test(line),
  completionMarker: "-- Dump completed",
  lexical: {
    backslashEscapesInStrings: true,
    escapeStringPrefix: false,
    dollarQuotes: false,
    nestedBlockComments: false,
    hashLineComments: true,
    dashCommentNeedsSpace: true,
    backtickIdentifiers: true,
    delimiterCommand: true,
  },
  // The body flows through untouched; MysqlBodyScanner reads DEFINERs and foreign statements.
  body: "passThrough",
};
