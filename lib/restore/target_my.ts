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

/** The statements that create `name` with the captured character set and collation. */
export function myCreateStatements(name: string, props: DatabaseProperties): string[] {
  let s = `CREATE DATABASE ${myIdent(name)}`;
  const word = /^[A-Za-z0-9_]+$/;
  if (props.character_set && word.test(props.character_set)) {
    s += ` CHARACTER SET ${props.character_set}`;
  }
  if (props.collation && word.test(props.collation)) s += ` COLLATE ${props.collation}`;
  return [s];
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
