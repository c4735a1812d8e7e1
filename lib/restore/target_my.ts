/**
 * The MySQL/MariaDB side of a restore: recreating a database with its character set and
 * collation, dropping it, and the client command that loads the dump (password in a 0600
 * options file, never in argv).
 *
 * @module
 */
import type mysql from "mysql2/promise";
import { openMysql } from "../engines/drivers.ts";
import type { ConnectionParams } from "../config/types.ts";
import type { DatabaseProperties } from "../backup/metadata.ts";
import { writeOptionsFile } from "../dump/options_file.ts";
import { connectError } from "../engines/connect_error.ts";
import type { TargetServer } from "./target.ts";

/** Quotes an identifier with backticks. */
export function myIdent(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}

/**
 * The statements that create `name` with the captured character set, collation and (MariaDB)
 * comment.
 *
 * A backslash is read differently with and without the session's NO_BACKSLASH_ESCAPES, and
 * `COMMENT` takes only a plain string literal (no hex, no expression), so no single spelling of
 * a backslash is right in both modes. A comment holding one is therefore written with escaped
 * backslashes inside a session where the flag is off, and the session's mode is put back after.
 * Without backslashes, doubling the quotes is right in both modes.
 */
export function myCreateStatements(name: string, props: DatabaseProperties): string[] {
  let s = `CREATE DATABASE ${myIdent(name)}`;
  const word = /^[A-Za-z0-9_]+$/;
  if (props.character_set && word.test(props.character_set)) {
    s += ` CHARACTER SET ${props.character_set}`;
  }
  if (props.collation && word.test(props.collation)) s += ` COLLATE ${props.collation}`;
  const comment = props.comment ?? "";
  if (comment === "") return [s];
  const quoted = comment.replaceAll("\\", "\\\\").replaceAll("'", "''");
  s += ` COMMENT '${quoted}'`;
  if (!comment.includes("\\")) return [s];
  return [
    "SET @vya_sql_mode = @@SESSION.sql_mode",
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), " +
    "',NO_BACKSLASH_ESCAPES,', ','))",
    s,
    "SET SESSION sql_mode = @vya_sql_mode",
  ];
}

/** Opens the MySQL/MariaDB side of a restore. */
export async function myTarget(params: ConnectionParams): Promise<TargetServer> {
  let conn: mysql.Connection;
  try {
    conn = await openMysql(params);
  } catch (error) {
    throw connectError(error, params);
  }
  return {
    missingRoles: () => Promise.resolve([]),
    createStatements: (name, props) => myCreateStatements(name, props ?? {}),
    async execute(statements) {
      for (const s of statements) await conn.query(s);
    },
    dropStatement: (name) => `DROP DATABASE IF EXISTS ${myIdent(name)}`,
    async clientCommand(toolPath, target) {
      const file = await writeOptionsFile(params);
      return {
        child: {
          cmd: toolPath,
          // --defaults-file must come first.
          args: [
            `--defaults-file=${file.path}`,
            "--default-character-set=utf8mb4",
            `--database=${target}`,
          ],
          stdin: "piped",
          stdout: "null",
        },
        cleanup: file.remove,
      };
    },
    async close() {
      await conn.end().catch(() => conn.destroy());
    },
  };
}
