/**
 * The benchmark's encryption rows: what age encryption costs on top of zstd-3, in our streams
 * (scripts/bench/age_stage.ts) and in the shell (`zstd | age -r`), on a slice of the dataset's
 * dump so the rows stay quick. Restore rows: `age -d` then `zstd -d`, ours and the shell's.
 *
 * @module
 */
import { join } from "node:path";
import { REPO_ROOT } from "../../tests/helpers/cli.ts";
import { V8_FLAGS_OPTION } from "../../lib/stream/gc.ts";
import { q } from "./commands.ts";
import type { Sample } from "./measure.ts";

/** The codec column of every encryption row. */
export const AGE_CODEC = "zstd3+age";

/** What the rounds work on. */
export interface EncryptionBench {
  /** The engine whose dump the slice is from. */
  engine: "postgresql" | "mariadb";
  /** The slice of uncompressed dump. */
  source: string;
  /** Its size. */
  bytes: number;
  /** age identity file and its recipient (made by the real age-keygen). */
  identityFile: string;
  recipient: string;
  /** Folder for outputs. */
  work: string;
}

/** Cuts `bytes` of the dump into a file and makes a key pair. */
export async function prepareEncryption(
  engine: EncryptionBench["engine"],
  dumpCommand: string,
  env: Record<string, string>,
  bytes: number,
  work: string,
): Promise<EncryptionBench> {
  const source = join(work, "age-source.sql");
  // No pipefail: head closing the pipe early ends the dump with SIGPIPE on purpose.
  const cut = await new Deno.Command("bash", {
    args: ["-c", `${dumpCommand} | head -c ${bytes} > ${q(source)}`],
    env,
  }).output();
  if (cut.code !== 0) throw new Error("could not cut the dump for the encryption rows");
  const identityFile = join(work, "age-key.txt");
  await Deno.remove(identityFile).catch(() => {});
  const made = await new Deno.Command("age-keygen", { args: ["-o", identityFile], stderr: "null" })
    .output();
  if (made.code !== 0) throw new Error("age-keygen failed (is Debian's age installed?)");
  const recipient = /age1[0-9a-z]+/.exec(await Deno.readTextFile(identityFile))![0];
  return { engine, source, bytes: (await Deno.stat(source)).size, identityFile, recipient, work };
}

/** One contender's command line and what it reads and writes. */
interface Contender {
  kind: "backup" | "restore";
  label: string;
  argv: string[];
  /** The file whose size is the output size (backups). */
  output?: string;
}

function contenders(b: EncryptionBench): Contender[] {
  const stage = (...a: string[]) => [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    V8_FLAGS_OPTION,
    join(REPO_ROOT, "scripts/bench/age_stage.ts"),
    ...a,
  ];
  const sh = (script: string) => ["bash", "-o", "pipefail", "-c", script];
  const zst = join(b.work, "age-out.sql.zst");
  const age = join(b.work, "age-out.sql.zst.age");
  const shellAge = join(b.work, "age-shell.sql.zst.age");
  return [
    {
      kind: "backup",
      label: "vya streams zstd-3 (no age)",
      argv: stage("zstd", b.source, zst),
      output: zst,
    },
    {
      kind: "backup",
      label: "vya streams zstd-3 → age",
      argv: stage("zstd+age", b.source, age, b.recipient),
      output: age,
    },
    {
      kind: "backup",
      label: "zstd -3 < f | age -r R > f.age",
      argv: sh(`zstd -q -3 < ${q(b.source)} | age -r ${b.recipient} > ${q(shellAge)}`),
      output: shellAge,
    },
    { kind: "restore", label: "vya streams zstd -d (no age)", argv: stage("unzstd", zst) },
    {
      kind: "restore",
      label: "vya streams age -d → zstd -d",
      argv: stage("age+unzstd", age, b.identityFile),
    },
    {
      kind: "restore",
      label: "age -d -i k f.age | zstd -d > /dev/null",
      argv: sh(`age -d -i ${q(b.identityFile)} ${q(shellAge)} | zstd -q -d > /dev/null`),
    },
  ];
}

/**
 * Runs every contender once (backups first: restores read their outputs), rotated by `rep`
 * within each kind, and hands each sample to `record` with its output size.
 */
export async function encryptionRound(
  b: EncryptionBench,
  rep: number,
  run: (argv: string[]) => Promise<Sample>,
  record: (kind: "backup" | "restore", label: string, s: Sample, outBytes: number) => void,
  log: (line: string) => void,
): Promise<void> {
  const all = contenders(b);
  for (const kind of ["backup", "restore"] as const) {
    const group = all.filter((c) => c.kind === kind);
    const k = rep % group.length;
    for (const c of [...group.slice(k), ...group.slice(0, k)]) {
      const s = await run(c.argv);
      const out = c.output ? (await Deno.stat(c.output)).size : 0;
      record(kind, c.label, s, out);
      log(
        `    ${AGE_CODEC} ${c.label}: ${(b.bytes / 1e6 / s.wall).toFixed(1)} MB/s, ` +
          `rss ${s.rssMiB.toFixed(0)} MiB`,
      );
    }
  }
}
