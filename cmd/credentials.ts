/**
 * `credentials encrypt|list|remove|keygen|age-keygen|import`: the encrypted credentials file.
 *
 * @module
 */
import { object, or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, option } from "@optique/core/primitives";
import type { Parser } from "@optique/core/parser";
import { string } from "@optique/core/valueparser";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { listEntries, removeEntry, setEntry } from "../lib/credentials/store.ts";
import { importOriginal } from "../lib/credentials/import.ts";
import { generateKeyFile, loadKey } from "../lib/crypto/keys.ts";
import { generateIdentityFile } from "../lib/crypto/age_keys.ts";
import { ExitCode } from "../lib/errors.ts";
import { UsageError } from "./usage.ts";
import type { Context } from "./context.ts";
import { promptSecret, readSecretFromStdin } from "./secret_input.ts";

const idOption = option("--id", string({ metavar: "ID" }), {
  description: message`Entry id, as named by an instance's credential: key.`,
});

/** Parser of the `credentials` command group. */
export const credentialsCommand: Parser<"sync", CredentialsParsed, unknown> = command(
  "credentials",
  or(
    command(
      "encrypt",
      object({
        command: constant("credentials encrypt" as const),
        id: idOption,
        username: option("--username", string({ metavar: "USER" }), {
          description: message`Database login name.`,
        }),
        passwordStdin: optional(option("--password-stdin", {
          description: message`Read the password from standard input instead of the terminal.`,
        })),
      }),
      {
        brief: message`Add or replace an entry; the password is read without echo.`,
        description: message`Encrypts the password with the configured key (credentials.key_file, \
else the key derived from the host name, compatible with the original Python tool) and writes the \
credentials file atomically, mode 0600. The password is never taken as an argument: it is read \
from the terminal with echo off, or from standard input with --password-stdin.`,
      },
    ),
    command("list", object({ command: constant("credentials list" as const) }), {
      brief: message`List entry ids and usernames (never passwords).`,
    }),
    command(
      "remove",
      object({ command: constant("credentials remove" as const), id: idOption }),
      { brief: message`Remove an entry.` },
    ),
    command(
      "keygen",
      object({
        command: constant("credentials keygen" as const),
        file: optional(option("--file", string({ metavar: "PATH" }), {
          description:
            message`Where to write the key. Default: credentials.key_file of the config.`,
        })),
      }),
      {
        brief: message`Create a random key file (0600) for new installs.`,
        description: message`Writes 32 random bytes as a Fernet key, mode 0600, refusing to \
overwrite an existing file. Name it in the config as credentials.key_file; entries must then be \
encrypted again with 'credentials encrypt' (or 'credentials import' from the old files).`,
      },
    ),
    command(
      "age-keygen",
      object({
        command: constant("credentials age-keygen" as const),
        output: optional(option("--output", "-o", string({ metavar: "FILE" }), {
          description:
            message`Where to write the identity. Default: storage.encryption.identity_file.`,
        })),
      }),
      {
        brief: message`Create an age identity file (0600) for encrypted backups.`,
        description:
          message`Writes a new age X25519 identity (AGE-SECRET-KEY-1…) as age-keygen does, mode 0600, refusing to overwrite an existing file, and prints its public key (age1…) on standard output for storage.encryption.recipients. Keep the identity file off the server.`,
      },
    ),
    command(
      "import",
      object({
        command: constant("credentials import" as const),
        from: option("--from", string({ metavar: "PATH" }), {
          description: message`The original tool's .secrets/credentials.json, \
.secrets/vault.json.enc, or its .secrets folder.`,
        }),
      }),
      {
        brief: message`Import the original Python tool's credentials.`,
        description: message`Reads the original tool's credentials.json or vault.json.enc \
(decrypted with the host key, as that tool wrote them) and writes every entry to our \
credentials file, encrypted with the configured key.`,
      },
    ),
  ),
  { brief: message`Manage the encrypted credentials file.` },
);

/** The parsed `credentials …` command line. */
export type CredentialsParsed =
  | { command: "credentials encrypt"; id: string; username: string; passwordStdin?: boolean }
  | { command: "credentials list" }
  | { command: "credentials remove"; id: string }
  | { command: "credentials keygen"; file?: string }
  | { command: "credentials age-keygen"; output?: string }
  | { command: "credentials import"; from: string };

/** Runs one of the `credentials` commands. */
export async function runCredentials(parsed: CredentialsParsed, ctx: Context): Promise<number> {
  if (parsed.command === "credentials age-keygen") return await runAgeKeygen(parsed.output, ctx);
  const { config } = await ctx.loadConfig();
  const file = config.credentials.file;
  const resolver = new CredentialResolver(config.credentials, ctx.log);
  switch (parsed.command) {
    case "credentials encrypt": {
      const password = parsed.passwordStdin
        ? await readSecretFromStdin()
        : await promptSecret(`Password for ${parsed.username} (${parsed.id}): `);
      await setEntry(
        file,
        parsed.id,
        { username: parsed.username, password },
        await resolver.key(),
      );
      report(ctx, { id: parsed.id, file }, `stored credential ${parsed.id} in ${file}`);
      return ExitCode.OK;
    }
    case "credentials list": {
      const entries = await listEntries(file);
      if (ctx.json) ctx.outJson(entries);
      else if (entries.length === 0) ctx.out(`no entries in ${file}`);
      else {
        for (const e of entries) {
          ctx.out(`${e.id}\t${e.username}${e.encrypted ? "" : "\t(plain text: encrypt it again)"}`);
        }
      }
      return ExitCode.OK;
    }
    case "credentials remove":
      await removeEntry(file, parsed.id);
      report(ctx, { id: parsed.id, file }, `removed credential ${parsed.id} from ${file}`);
      return ExitCode.OK;
    case "credentials keygen": {
      const target = parsed.file ?? config.credentials.key_file;
      if (!target) {
        throw new UsageError("no key file named", {
          hint: "pass --file PATH, or set credentials.key_file in the config",
        });
      }
      await generateKeyFile(target);
      report(ctx, { key_file: target }, `wrote a new key to ${target} (mode 0600)`);
      return ExitCode.OK;
    }
    case "credentials import": {
      // The original tool always encrypted with the host key, whatever our config names.
      const entries = await importOriginal(parsed.from, await loadKey());
      const key = await resolver.key();
      for (const e of entries) {
        await setEntry(file, e.id, { username: e.username, password: e.password }, key);
      }
      report(
        ctx,
        { imported: entries.map((e) => e.id), file },
        `imported ${entries.length} entr${entries.length === 1 ? "y" : "ies"} into ${file}` +
          (entries.length ? `: ${entries.map((e) => e.id).join(", ")}` : ""),
      );
      return ExitCode.OK;
    }
  }
}

/** `credentials age-keygen`: needs no config when --output names the file. */
async function runAgeKeygen(output: string | undefined, ctx: Context): Promise<number> {
  const target = output ?? (await ctx.loadConfig()).config.storage.encryption?.identity_file;
  if (!target) {
    throw new UsageError("no identity file named", {
      hint: "pass --output FILE, or set storage.encryption.identity_file in the config",
    });
  }
  const recipient = await generateIdentityFile(target);
  if (ctx.json) ctx.outJson({ identity_file: target, recipient });
  else {
    // stdout is the public key alone, so R=$(vya-backupdb credentials age-keygen -o F) works.
    ctx.out(recipient);
    ctx.log.info(`wrote a new age identity to ${target} (mode 0600); its public key is above`);
  }
  return ExitCode.OK;
}

function report(ctx: Context, value: unknown, line: string): void {
  if (ctx.json) ctx.outJson(value);
  else ctx.out(line);
}
