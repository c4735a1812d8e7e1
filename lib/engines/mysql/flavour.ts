/**
 * Everything that differs between MySQL and MariaDB (and between their versions), in one table:
 * the rest of the family's code asks these facts, never the product's name. Like pgBackRest's
 * per-version interface table, rows are matched by product and "since" version, later rows
 * overriding earlier ones.
 *
 * @module
 */

/** The product answering: MySQL's own server or MariaDB. */
export type MysqlFlavour = "mysql" | "mariadb";

/** What the family's code needs to know about one server product and version. */
export interface MysqlFacts {
  /** The product. */
  readonly flavor: MysqlFlavour;
  /** Product name in messages. */
  readonly product: string;
  /** Client tool names, preferred first (the server's own product's tools win). */
  readonly toolNames: { readonly dump: readonly string[]; readonly client: readonly string[] };
  /**
   * Whether a tool answering to the preferred name may be the other product's build, which is
   * then only a fallback (Debian's /usr/bin/mysqldump is MariaDB's mariadb-dump, lacking MySQL's
   * options such as --set-gtid-purged).
   */
  readonly ownBuildPreferred: boolean;
  /** Dumps get `--no-tablespaces` (MySQL: without it, the PROCESS privilege is needed). */
  readonly dumpNoTablespaces: boolean;
  /** MySQL's own mysqldump gets `--set-gtid-purged=OFF` (GTID state stays out of the dump). */
  readonly dumpGtidPurgedOff: boolean;
  /** Databases have comments (CREATE DATABASE … COMMENT: MariaDB 10.5+). */
  readonly databaseComments: boolean;
  /** The server has sequences (MariaDB 10.3+): object counts include them. */
  readonly sequences: boolean;
  /** Roles are rows of mysql.user marked `is_role` (MariaDB). */
  readonly rolesInUserTable: boolean;
  /** Roles are accounts linked in mysql.role_edges (MySQL 8+). */
  readonly roleEdges: boolean;
  /**
   * Password hashes are read with `print_identified_with_as_hex` (MySQL 8 prints caching_sha2
   * hashes as binary; hex keeps them intact in a text file and comparable).
   */
  readonly hashesAsHex: boolean;
}

type Row = { flavor: MysqlFlavour; since: [number, number]; facts: Partial<MysqlFacts> };

/** The table: one base row per product, then the versions where something changed. */
const TABLE: readonly Row[] = [
  {
    flavor: "mysql",
    since: [0, 0],
    facts: {
      product: "MySQL",
      toolNames: { dump: ["mysqldump", "mariadb-dump"], client: ["mysql", "mariadb"] },
      ownBuildPreferred: true,
      dumpNoTablespaces: true,
      dumpGtidPurgedOff: true,
      databaseComments: false,
      sequences: false,
      rolesInUserTable: false,
      roleEdges: true,
      hashesAsHex: true,
    },
  },
  {
    flavor: "mariadb",
    since: [0, 0],
    facts: {
      product: "MariaDB",
      toolNames: { dump: ["mariadb-dump", "mysqldump"], client: ["mariadb", "mysql"] },
      ownBuildPreferred: false,
      dumpNoTablespaces: false,
      dumpGtidPurgedOff: false,
      databaseComments: false,
      sequences: true,
      rolesInUserTable: true,
      roleEdges: false,
      hashesAsHex: false,
    },
  },
  { flavor: "mariadb", since: [10, 5], facts: { databaseComments: true } },
];

const cache = new Map<string, MysqlFacts>();

/** Whether a version string names a MariaDB build (server or client tool). */
export function isMariadbVersion(version: string): boolean {
  return /mariadb/i.test(version);
}

/** The facts of a product at a version (major/minor 0 when unknown: the base row). */
export function mysqlFacts(flavor: MysqlFlavour, major = 0, minor = 0): MysqlFacts {
  const key = `${flavor} ${major}.${minor}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const facts = { flavor } as Record<string, unknown>;
  for (const row of TABLE) {
    const [m, n] = row.since;
    if (row.flavor === flavor && (major > m || (major === m && minor >= n))) {
      Object.assign(facts, row.facts);
    }
  }
  const done = Object.freeze(facts) as unknown as MysqlFacts;
  cache.set(key, done);
  return done;
}
