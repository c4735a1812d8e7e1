/**
 * Helpers of the restore tests: a backup taken through the CLI in a second of its own, and
 * existence checks of databases on the test servers.
 *
 * @module
 */
import { assert, assertEquals } from "../harness/assert.ts";
import type { MyServer, PgServer } from "../harness/servers.ts";
import type { TestEnv } from "./cli.ts";
import type { BackupMetadata } from "../../lib/storage/metadata.ts";
import type { RunSummary } from "../../lib/backup/run.ts";

/** Second of the last backup taken here: a file name's timestamp has one-second resolution. */
let lastBackupSecond = 0;

/**
 * Backs up one database with the real CLI, `backup --instance X --database D`, in a second of
 * its own (two backups of a database in one second would share a file name).
 */
export async function backupNow(
  env: TestEnv,
  instance: string,
  db: string,
): Promise<{ dump: string; metadata: string; startedAt: string }> {
  const wait = (lastBackupSecond + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const r = await env.run(["--json", "backup", "--instance", instance, "--database", db]);
  assertEquals(r.code, 0, r.stderr + r.stdout);
  const summary = JSON.parse(r.stdout) as RunSummary;
  lastBackupSecond = Math.floor(Date.parse(summary.finished_at) / 1000);
  const dump = summary.results.find((x) => x.database === db)?.path;
  assert(dump !== undefined, `no backup of ${db} in ${r.stdout}`);
  const metadata = dump.replace(/\.sql\.gz$/, ".metadata.json");
  const meta = JSON.parse(await Deno.readTextFile(metadata)) as BackupMetadata;
  return { dump, metadata, startedAt: new Date(meta.started_at).toISOString() };
}

/** A text as a regular expression matching exactly it. */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export async function pgExists(pg: PgServer, db: string): Promise<boolean> {
  return (await pg.sql(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`)) === "1";
}

export async function myExists(my: MyServer, db: string): Promise<boolean> {
  return (await my.sql(
    `SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`,
  )) === "1";
}
