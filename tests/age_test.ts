/**
 * age encryption at rest: our streams against Debian's `age` CLI in both directions, the
 * failures a user meets (wrong key, damaged or cut file, unsafe identity file, bad recipient),
 * flat memory, `credentials age-keygen` and the `storage.encryption` config block. No database.
 */
import { equal, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  AGE_SEALED_CHUNK,
  AgeError,
  decryptStream,
  encryptStream,
} from "../lib/crypto/age_stream.ts";
import {
  type AgeIdentities,
  isRecipient,
  parseIdentityText,
  parseRecipients,
  readIdentityFile,
} from "../lib/crypto/age_keys.ts";
import { bech32Bytes } from "../lib/crypto/bech32.ts";
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import { ConfigError, CredentialError, VyaError } from "../lib/errors.ts";
import { V8_FLAGS_OPTION } from "../lib/stream/gc.ts";
import { REPO_ROOT, runCli } from "./helpers/cli.ts";

const SIZES = [0, 1, 64 * 1024, 64 * 1024 + 1, 10 * 1024 * 1024];

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vya-age-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** What `age -d -i IDENTITY FILE` prints (age creates no -o file for an empty output). */
async function ageDecrypt(identity: string, file: string): Promise<Uint8Array> {
  const out = await new Deno.Command("age", { args: ["-d", "-i", identity, file], stderr: "piped" })
    .output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

/** A key pair made by the real age-keygen, as a sysadmin makes one. */
async function ageKeygen(dir: string, name: string): Promise<{ file: string; recipient: string }> {
  const file = join(dir, name);
  const r = await run("age-keygen", ["-o", file]);
  equal(r.code, 0, r.stderr);
  await Deno.chmod(file, 0o600);
  const recipient = /age1[0-9a-z]+/.exec(await Deno.readTextFile(file))![0];
  return { file, recipient };
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

async function encryptFile(input: string, output: string, recipients: string[]): Promise<void> {
  const src = await Deno.open(input);
  const dst = await Deno.open(output, { write: true, createNew: true });
  await src.readable.pipeThrough(encryptStream(recipients)).pipeTo(dst.writable);
}

async function decryptFile(ids: AgeIdentities, input: string, output: string): Promise<void> {
  const src = await Deno.open(input);
  const dst = await Deno.open(output, { write: true, create: true, truncate: true });
  await src.readable.pipeThrough(decryptStream(ids, input)).pipeTo(dst.writable);
}

/** The error our decryption of `file` ends with (it must end with one). */
async function decryptFailure(ids: AgeIdentities, file: string): Promise<AgeError> {
  try {
    await decryptFile(ids, file, file + ".out");
  } catch (error) {
    assert(error instanceof AgeError, `expected an AgeError, got ${error}`);
    assert(error.message.includes(file), `message names the file: ${error.message}`);
    assert(!/AGE-SECRET-KEY/i.test(error.message), "no key material in the message");
    return error;
  }
  throw new Error(`decrypting ${file} did not fail`);
}

/** Where the payload of an age file starts: after the `--- MAC` line and the 16-byte nonce. */
function payloadStart(bytes: Uint8Array): number {
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 4096));
  const mac = text.indexOf("\n---");
  return text.indexOf("\n", mac + 1) + 1 + 16;
}

const equalBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

Deno.test("our encryption decrypts with the age CLI to identical bytes (0 B to 10 MiB)", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    for (const size of SIZES) {
      const plain = join(dir, `p${size}`);
      await Deno.writeFile(plain, randomBytes(size));
      await encryptFile(plain, `${plain}.age`, [key.recipient]);
      assert(
        equalBytes(await Deno.readFile(plain), await ageDecrypt(key.file, `${plain}.age`)),
        `${size}`,
      );
    }
  });
});

Deno.test("age CLI encryption decrypts with ours to identical bytes (0 B to 10 MiB)", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    const ids = await readIdentityFile(key.file);
    for (const size of SIZES) {
      const plain = join(dir, `p${size}`);
      await Deno.writeFile(plain, randomBytes(size));
      equal((await run("age", ["-r", key.recipient, "-o", `${plain}.age`, plain])).code, 0);
      await decryptFile(ids, `${plain}.age`, `${plain}.out`);
      assert(
        equalBytes(await Deno.readFile(plain), await Deno.readFile(`${plain}.out`)),
        `${size}`,
      );
    }
  });
});

/** `bytes` delivered in pieces of the given sizes, cycling: chunk boundaries of every kind. */
function piecewise(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      const n = sizes[i++ % sizes.length];
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

Deno.test("any split of the input into writes gives a file age reads, and back", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    const ids = await readIdentityFile(key.file);
    const plain = randomBytes(5 * 65536 + 3);
    const sizes = [1, 7, 65535, 65536, 65537, 200_000, 65552, 16];
    const sealed = await collect(
      piecewise(plain, sizes).pipeThrough(encryptStream([key.recipient])),
    );
    await Deno.writeFile(join(dir, "f.age"), sealed);
    assert(equalBytes(plain, await ageDecrypt(key.file, join(dir, "f.age"))), "age CLI");
    for (const split of [[1], [3, 65551, 65553], [1 << 20]]) {
      const back = await collect(piecewise(sealed, split).pipeThrough(decryptStream(ids, "f.age")));
      assert(equalBytes(plain, back), `decrypted in pieces of ${split}`);
    }
  });
});

Deno.test("a file encrypted to several recipients decrypts with each identity", async () => {
  await withTempDir(async (dir) => {
    const keys = [await ageKeygen(dir, "a.txt"), await ageKeygen(dir, "b.txt")];
    const plain = join(dir, "plain");
    await Deno.writeFile(plain, randomBytes(200_000));
    await encryptFile(plain, `${plain}.age`, keys.map((k) => k.recipient));
    for (const k of keys) {
      equal((await run("age", ["-d", "-i", k.file, "-o", `${plain}.cli`, `${plain}.age`])).code, 0);
      await decryptFile(await readIdentityFile(k.file), `${plain}.age`, `${plain}.ours`);
      const want = await Deno.readFile(plain);
      assert(equalBytes(want, await Deno.readFile(`${plain}.cli`)), k.file);
      assert(equalBytes(want, await Deno.readFile(`${plain}.ours`)), k.file);
    }
  });
});

Deno.test("an identity file with comments and several identities: any matching one decrypts", async () => {
  await withTempDir(async (dir) => {
    const a = await ageKeygen(dir, "a.txt");
    const b = await ageKeygen(dir, "b.txt");
    const both = join(dir, "both.txt");
    // Comments, blank lines, CRLF: as a person edits the file.
    await Deno.writeTextFile(
      both,
      `# old key\r\n${await Deno.readTextFile(a.file)}\n\n   \n${await Deno.readTextFile(b.file)}`,
      { mode: 0o600 },
    );
    const ids = await readIdentityFile(both);
    equal(ids.recipients.join(","), `${a.recipient},${b.recipient}`);
    assert(!JSON.stringify(ids).includes("AGE-SECRET-KEY"), "JSON shows no key");
    assert(!Deno.inspect(ids).includes("AGE-SECRET-KEY"), "inspect shows no key");
    const plain = join(dir, "plain");
    await Deno.writeFile(plain, randomBytes(1000));
    await encryptFile(plain, `${plain}.age`, [b.recipient]);
    await decryptFile(ids, `${plain}.age`, `${plain}.out`);
    assert(equalBytes(await Deno.readFile(plain), await Deno.readFile(`${plain}.out`)));
  });
});

Deno.test("the wrong identity is refused: no identity matches, kind credential", async () => {
  await withTempDir(async (dir) => {
    const right = await ageKeygen(dir, "right.txt");
    const wrong = await ageKeygen(dir, "wrong.txt");
    const plain = join(dir, "plain");
    await Deno.writeFile(plain, randomBytes(1000));
    await encryptFile(plain, `${plain}.age`, [right.recipient]);
    const error = await decryptFailure(await readIdentityFile(wrong.file), `${plain}.age`);
    equal(error.reason, "no-identity");
    equal(error.kind, "credential");
    assert(error.message.includes(wrong.file) && error.message.includes(wrong.recipient));
    assert(/no identity .* matches/.test(error.message), error.message);
  });
});

Deno.test("one flipped byte is refused: in the payload at its chunk, in the header as damaged", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    const ids = await readIdentityFile(key.file);
    const plain = join(dir, "plain");
    await Deno.writeFile(plain, randomBytes(300_000));
    await encryptFile(plain, `${plain}.age`, [key.recipient]);
    const good = await Deno.readFile(`${plain}.age`);
    const start = payloadStart(good);

    const inChunk3 = good.slice();
    inChunk3[start + 2 * AGE_SEALED_CHUNK + 100] ^= 0x01;
    await Deno.writeFile(`${plain}.flip`, inChunk3);
    const error = await decryptFailure(ids, `${plain}.flip`);
    equal(error.reason, "authentication");
    equal(error.kind, "failed");
    assert(error.message.includes("authentication failed at chunk 3"), error.message);
    assert((await run("age", ["-d", "-i", key.file, `${plain}.flip`])).code !== 0, "age agrees");

    const inHeader = good.slice();
    inHeader[start - 20] ^= 0x01; // inside the header MAC's base64 or the nonce
    inHeader[30] ^= 0x01; // inside the recipient stanza
    await Deno.writeFile(`${plain}.hdr`, inHeader);
    const headerError = await decryptFailure(ids, `${plain}.hdr`);
    assert(["header", "no-identity"].includes(headerError.reason), headerError.message);
  });
});

Deno.test("a file cut short is refused, also exactly at a chunk boundary", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    const ids = await readIdentityFile(key.file);
    const plain = join(dir, "plain");
    await Deno.writeFile(plain, randomBytes(300_000));
    // Encrypted by the age CLI: the cut is judged on a file we did not write.
    equal((await run("age", ["-r", key.recipient, "-o", `${plain}.age`, plain])).code, 0);
    const good = await Deno.readFile(`${plain}.age`);
    const start = payloadStart(good);

    await Deno.writeFile(`${plain}.boundary`, good.subarray(0, start + 2 * AGE_SEALED_CHUNK));
    const boundary = await decryptFailure(ids, `${plain}.boundary`);
    equal(boundary.reason, "truncated");
    assert(
      /cut short after chunk 2 .*at a chunk boundary/.test(boundary.message),
      boundary.message,
    );
    assert(
      (await run("age", ["-d", "-i", key.file, `${plain}.boundary`])).code !== 0,
      "age agrees",
    );

    await Deno.writeFile(`${plain}.mid`, good.subarray(0, start + 2 * AGE_SEALED_CHUNK + 500));
    const mid = await decryptFailure(ids, `${plain}.mid`);
    assert(/chunk 3.*cut short/.test(mid.message), mid.message);

    await Deno.writeFile(`${plain}.header`, good.subarray(0, 40));
    equal((await decryptFailure(ids, `${plain}.header`)).reason, "truncated");
    await Deno.writeFile(`${plain}.nopayload`, good.subarray(0, start));
    equal((await decryptFailure(ids, `${plain}.nopayload`)).reason, "truncated");
    await Deno.writeFile(`${plain}.plain`, new TextEncoder().encode("CREATE TABLE t (a int);\n"));
    equal((await decryptFailure(ids, `${plain}.plain`)).reason, "not-age");
  });
});

Deno.test("an identity file other users can read is refused with the chmod hint", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    await Deno.chmod(key.file, 0o644);
    await rejects(readIdentityFile(key.file), (e: unknown) => {
      assert(e instanceof CredentialError);
      assert(e.message.includes(key.file) && /other users/.test(e.message), e.message);
      assert(/chmod 600/.test(e.hint ?? ""), e.hint);
      return true;
    });
  });
});

Deno.test("a malformed identity file names the line, never its content", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "key.txt");
    const mangled = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    await Deno.writeTextFile(file, `# my key\n${mangled}\n`, { mode: 0o600 });
    await rejects(readIdentityFile(file), (e: unknown) => {
      assert(e instanceof CredentialError);
      assert(e.message.includes(`${file} line 2`), e.message);
      assert(!e.message.includes(mangled));
      return true;
    });
    await Deno.writeTextFile(file, "# nothing here\n", { mode: 0o600 });
    await rejects(readIdentityFile(file), /holds no identity/);
  });
});

Deno.test("recipients are validated: a bad age1 string is a config error naming it", () => {
  const bad = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";
  for (const r of [bad, "age1nope", "AGE-SECRET-KEY-1X", ""]) {
    try {
      encryptStream([r]);
      throw new Error(`accepted ${r}`);
    } catch (e) {
      assert(e instanceof ConfigError, String(e));
      assert(e.message.includes(`"${r}"`), e.message);
    }
  }
  try {
    parseRecipients([], "storage.encryption.recipients");
    throw new Error("accepted no recipient");
  } catch (e) {
    assert(e instanceof ConfigError && /at least one/.test(e.message));
  }
});

/** Whether the age package itself accepts `s` (as recipient or identity). */
function packageAccepts(s: string, as: "recipient" | "identity"): boolean {
  try {
    if (as === "recipient") new Encrypter().addRecipient(s);
    else new Decrypter().addIdentity(s);
    return true;
  } catch {
    return false;
  }
}

function ourCheckAccepts(s: string, as: "recipient" | "identity"): boolean {
  if (as === "recipient") return isRecipient(s);
  try {
    parseIdentityText(s, "key.txt");
    return true;
  } catch {
    return false;
  }
}

Deno.test("keys are checked without the age package exactly as the package checks them", async () => {
  // Our Bech32 check stands in for the package's parser so that a run without encryption never
  // loads it: every one-character change of a real key, and every case change, must be judged
  // the same way by both (a mistyped key accepted would fail only when it is needed).
  // With the Kelvin sign, which lowercases to "k" and must still be refused.
  const alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7lbio1QPZK\u212a";
  for (let k = 0; k < 3; k++) {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    for (const [key, as] of [[recipient, "recipient"], [identity, "identity"]] as const) {
      equal(ourCheckAccepts(key, as), true, key.slice(0, 8));
      const variants = [key.toLowerCase(), key.toUpperCase(), key + "q", key.slice(0, -1)];
      for (let i = 0; i < key.length; i++) {
        for (const c of alphabet) variants.push(key.slice(0, i) + c + key.slice(i + 1));
      }
      let refused = 0;
      for (const v of variants) {
        const expected = packageAccepts(v, as);
        equal(ourCheckAccepts(v, as), expected, `${as} variant at odds with the package`);
        if (!expected) refused++;
      }
      assert(refused > variants.length / 2, "the variants must mostly be invalid keys");
    }
  }
  // BIP-173's own vectors: valid strings, then a mixed case and a wrong checksum.
  for (const [s, prefix] of [["A12UEL5L", "a"], ["a12uel5l", "A"], ["?1ezyfcl", "?"]]) {
    equal(bech32Bytes(s, prefix)?.length, 0, s);
  }
  equal(
    bech32Bytes("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdef")?.length,
    20,
  );
  equal(bech32Bytes("A1G7SGD8", "a"), undefined);
  equal(bech32Bytes("a12uel5m", "a"), undefined);
});

Deno.test("memory stays flat: 512 MiB through encrypt and decrypt in a stream", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        V8_FLAGS_OPTION, // as the app runs (deno.json tasks, compiled binary)
        join(REPO_ROOT, "tests/helpers/age_memory.ts"),
        "512",
        key.file,
        key.recipient,
      ],
      stderr: "inherit",
    }).output();
    equal(out.code, 0);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    equal(r.bytes, 512 * 1024 * 1024);
    assert(r.equal, "decrypted bytes hash like the input");
    const growth = Math.max(r.peakRss - r.baselineRss, r.hwm - r.baselineHwm) / 1024 / 1024;
    console.log(`peak RSS growth over 512 MiB: ${growth.toFixed(1)} MiB`);
    assert(growth < 64, `peak RSS grew by ${growth.toFixed(1)} MiB`);
  });
});

Deno.test("credentials age-keygen: a 0600 identity the age CLI uses, the public key on stdout", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "keys", "backup-key.txt");
    // No config file at all: --output is enough.
    const made = await runCli(["credentials", "age-keygen", "--output", file]);
    equal(made.code, 0, made.stderr);
    const recipient = made.stdout.trim();
    assert(/^age1[0-9a-z]{58}$/.test(recipient), made.stdout);
    equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert(!made.stdout.includes("AGE-SECRET-KEY") && !made.stderr.includes("AGE-SECRET-KEY"));
    const plain = join(dir, "plain");
    await Deno.writeFile(plain, randomBytes(70_000));
    equal((await run("age", ["-r", recipient, "-o", `${plain}.age`, plain])).code, 0);
    equal((await run("age", ["-d", "-i", file, "-o", `${plain}.out`, `${plain}.age`])).code, 0);
    assert(equalBytes(await Deno.readFile(plain), await Deno.readFile(`${plain}.out`)));

    const before = await Deno.readTextFile(file);
    const again = await runCli(["credentials", "age-keygen", "--output", file]);
    equal(again.code, 3);
    assert(/already exists/.test(again.stderr), again.stderr);
    equal(await Deno.readTextFile(file), before, "the existing identity is untouched");
  });
});

Deno.test("storage.encryption: validated and shown without keys", async () => {
  await withTempDir(async (dir) => {
    const key = await ageKeygen(dir, "key.txt");
    const config = join(dir, "config.yaml");
    const write = (recipients: string[]) =>
      Deno.writeTextFile(
        config,
        stringify({
          storage: {
            path: join(dir, "backups"),
            encryption: { recipients, identity_file: "key.txt" },
          },
          instances: [],
        }),
      );
    await write([key.recipient, "age1wrong"]);
    const bad = await runCli(["--config", config, "config", "validate"]);
    equal(bad.code, 3);
    assert(
      /storage\.encryption\.recipients\[1\]: expected an age X25519 recipient.*"age1wrong"/.test(
        bad.stderr,
      ),
      bad.stderr,
    );
    await write([]);
    equal((await runCli(["--config", config, "config", "validate"])).code, 3);

    await write([key.recipient]);
    const shown = await runCli(["--config", config, "config", "show", "--json"]);
    equal(shown.code, 0, shown.stderr);
    const enc = JSON.parse(shown.stdout).storage.encryption;
    equal(enc.recipients[0], key.recipient);
    equal(enc.identity_file, key.file);
    assert(!shown.stdout.includes("AGE-SECRET-KEY"));

    // Backups with it are tested against real servers in tests/encryption_test.ts.
  });
});

Deno.test("AgeError is a VyaError (exit code from its kind)", () => {
  const e = new AgeError("x", "truncated", "failed");
  assert(e instanceof VyaError);
  equal(e.exitCode, 1);
});
