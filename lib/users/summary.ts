/**
 * The account list kept in a users backup's metadata (`accounts`): enough to see what the file
 * holds without opening it, and never a password hash.
 *
 * @module
 */

/** One account as listed in the metadata. */
export interface AccountSummary {
  /** User or role name. */
  name: string;
  /** MySQL/MariaDB host part ("" for MariaDB roles). */
  host?: string;
  /** user (can log in) or role. */
  kind: "user" | "role";
  /** An account fresh servers already have (root@localhost, the bootstrap superuser). */
  bootstrap?: boolean;
  /** MariaDB's PUBLIC pseudo-role: only its privileges are kept (it is never created). */
  pseudo?: boolean;
  /** Authentication plugin or hash method (mysql_native_password, ed25519, scram-sha-256, md5). */
  plugin: string | null;
  /** Whether a password (hash) is kept in the file. */
  has_password: boolean;
  /** Roles it holds (MySQL: `role` or `role@host`; PostgreSQL: role names). */
  roles: string[];
  /** MariaDB/MySQL default role. */
  default_role?: string;
  /** PostgreSQL role attributes (SUPERUSER, LOGIN, CREATEDB, …, CONNECTION LIMIT n, VALID UNTIL). */
  attributes?: string[];
  /** MySQL/MariaDB privileges, global and per database (statements without hash or grantee). */
  grants?: { level: string; database?: string; grant: string }[];
}
