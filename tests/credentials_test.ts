import { deepStrictEqual, equal, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { CredentialError, ExitCode } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { MASK, redact } from "../lib/redact.ts";
import { Fernet } from "../lib/crypto/fernet.ts";
import { generateKeyFile, hostKey, loadKey } from "../lib/crypto/keys.ts";
import {
  getCredential,
  listEntries,
  readStore,
  removeEntry,
  setEntry,
} from "../lib/credentials/store.ts";
import { importOriginal } from "../lib/credentials/import.ts";
import { CredentialResolver } from "../lib/credentials/resolve.ts";
import { ensurePrivateDir, writeFileAtomic } from "../lib/secure_fs.ts";
import { runPython } from "./helpers/python.ts";
import {
  ORIGINAL_CREDENTIALS_JSON,
  ORIGINAL_KEY,
  ORIGINAL_VAULT,
  type PyEntry,
} from "./helpers/original_tool.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vya-cred-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function captureLogger() {
  const lines: string[] = [];
  return { lines, logger: createLogger({ sink: (l) => lines.push(l), level: "debug" }) };
}

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

function isCredentialError(pattern: RegExp, forbidden: string[] = []) {
  return (e: unknown) => {
    assert(e instanceof CredentialError, `expected CredentialError, got ${e}`);
    equal(e.exitCode, ExitCode.CONFIG);
    assert(pattern.test(e.message), `message ${JSON.stringify(e.message)} !~ ${pattern}`);
    for (const s of forbidden) assert(!e.message.includes(s), "message leaks a secret or token");
    return true;
  };
}

Deno.test("the host key is the original tool's: base64url(sha256(hostname)) with padding", async () => {
  const names = ["db-prod-01", "sérveur-ü"];
  const python = JSON.parse(
    await runPython(
      `import sys, json, socket, hashlib, base64
key = lambda h: base64.urlsafe_b64encode(hashlib.sha256(h.encode()).digest()).decode()
print(json.dumps([key(socket.gethostname())] + [key(h) for h in json.load(sys.stdin)]))`,
      JSON.stringify(names),
    ),
  );
  deepStrictEqual([hostKey(), ...names.map((n) => hostKey(n))], python);
  assert(hostKey("x").endsWith("="));
});

Deno.test("a credentials file written by the original tool decrypts here", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "credentials.json");
    const entries: Record<string, PyEntry> = {
      pg: { username: "postgres", password: "S3cr3t-pässwörd!" },
      legacy: { username: "root", password: "plain-old-pw", plain: true },
    };
    await runPython(ORIGINAL_CREDENTIALS_JSON, JSON.stringify({ path: file, entries }));
    const key = await loadKey();
    const { lines, logger } = captureLogger();

    deepStrictEqual(await getCredential(file, "pg", key, logger), {
      username: "postgres",
      password: "S3cr3t-pässwörd!",
    });
    equal(lines.length, 0);
    // The decrypted password is now masked in anything the tool prints.
    equal(redact("pw is S3cr3t-pässwörd!"), `pw is ${MASK}`);

    deepStrictEqual(await getCredential(file, "legacy", key, logger), {
      username: "root",
      password: "plain-old-pw",
    });
    equal(lines.length, 1);
    assert(lines[0].startsWith("warn: ") && lines[0].includes("plain text"), lines[0]);
    assert(!lines[0].includes("plain-old-pw"));

    deepStrictEqual(await listEntries(file), [
      { id: "legacy", username: "root", encrypted: false },
      { id: "pg", username: "postgres", encrypted: true },
    ]);
  });
});

Deno.test("a vault.json.enc built the original's way imports, alone or with credentials.json", async () => {
  await withTempDir(async (dir) => {
    const secrets = join(dir, ".secrets");
    await Deno.mkdir(secrets, { mode: 0o700 });
    const vault = join(secrets, "vault.json.enc");
    await runPython(
      ORIGINAL_VAULT,
      JSON.stringify({
        path: vault,
        entries: {
          mysql_prod: { username: "backup", password: "v@ult-pw-1" },
          pg_prod: { username: "pgbackup", password: "v@ult-pw-2 ✓" },
        },
      }),
    );
    const key = await loadKey();
    deepStrictEqual(await importOriginal(vault, key), [
      { id: "mysql_prod", username: "backup", password: "v@ult-pw-1" },
      { id: "pg_prod", username: "pgbackup", password: "v@ult-pw-2 ✓" },
    ]);
    equal(redact("v@ult-pw-2 ✓"), MASK);

    // The whole .secrets folder: both stores, the (newer) vault wins on a shared id.
    await runPython(
      ORIGINAL_CREDENTIALS_JSON,
      JSON.stringify({
        path: join(secrets, "credentials.json"),
        entries: {
          pg_prod: { username: "stale", password: "old" },
          old_only: { username: "u", password: "plain", plain: true },
        },
      }),
    );
    deepStrictEqual(await importOriginal(secrets, key), [
      { id: "mysql_prod", username: "backup", password: "v@ult-pw-1" },
      { id: "old_only", username: "u", password: "plain" },
      { id: "pg_prod", username: "pgbackup", password: "v@ult-pw-2 ✓" },
    ]);

    // Imported entries written through our store are readable by the original tool again.
    const ours = join(dir, "new", "credentials.json");
    for (const e of await importOriginal(secrets, key)) await setEntry(ours, e.id, e, key);
    const back = JSON.parse(
      await runPython(
        ORIGINAL_KEY + `
c = json.load(open(d["path"]))
print(json.dumps({i: f.decrypt(e["password"].encode()).decode() for i, e in c.items()}))`,
        JSON.stringify({ path: ours }),
      ),
    );
    deepStrictEqual(back, { mysql_prod: "v@ult-pw-1", old_only: "plain", pg_prod: "v@ult-pw-2 ✓" });

    await rejects(importOriginal(join(dir, "nope"), key), isCredentialError(/does not exist/));
    await Deno.writeTextFile(join(dir, "junk"), "hello", { mode: 0o600 });
    await rejects(importOriginal(join(dir, "junk"), key), isCredentialError(/neither/));
    await rejects(
      importOriginal(vault, await loadKey({ hostname: "another-host" })),
      isCredentialError(/another-host.*encrypted on another host or with another key/),
    );
  });
});

Deno.test("a credentials file other users can read is refused with the chmod hint", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "credentials.json");
    const key = await loadKey();
    await setEntry(file, "pg", { username: "u", password: "p" }, key);
    await Deno.chmod(file, 0o644);
    // Functions, not promises: a second promise would reject before anyone awaits it.
    const attempts = [() => readStore(file), () => getCredential(file, "pg", key, createLogger())];
    for (const attempt of attempts) {
      await rejects(attempt(), (e) => {
        assert(e instanceof CredentialError);
        assert(e.message.includes(file) && e.message.includes("0644"), e.message);
        equal(e.hint, `chmod 600 ${file}`);
        return true;
      });
    }
    await Deno.chmod(file, 0o600);
    equal((await getCredential(file, "pg", key, createLogger())).password, "p");
  });
});

Deno.test("a tampered token is rejected without being printed", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "credentials.json");
    const key = await loadKey();
    await setEntry(file, "pg", { username: "u", password: "tamper-me" }, key);
    const store = JSON.parse(await Deno.readTextFile(file));
    const token: string = store.pg.password;
    const i = 60;
    store.pg.password = token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
    await writeFileAtomic(file, JSON.stringify(store));
    await rejects(
      getCredential(file, "pg", key, createLogger()),
      isCredentialError(/"pg".*does not decrypt/, [token.slice(20, 40)]),
    );
    store.pg.password = "gAAAAA-not-base64-%%%";
    await writeFileAtomic(file, JSON.stringify(store));
    await rejects(
      getCredential(file, "pg", key, createLogger()),
      isCredentialError(/not a valid Fernet token: token is not valid url-safe base64/),
    );
  });
});

Deno.test("a password encrypted with another key is reported as such", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "credentials.json");
    await setEntry(file, "pg", { username: "u", password: "p" }, await loadKey({ hostname: "a" }));
    await rejects(
      getCredential(file, "pg", await loadKey({ hostname: "b" }), createLogger()),
      isCredentialError(
        /^the password of credential "pg" in .* does not decrypt under the host key of "b": encrypted on another host or with another key$/,
      ),
    );
  });
});

Deno.test("set, list and remove round-trip; file 0600 in a 0700 folder; passwords never listed", async () => {
  await withTempDir(async (dir) => {
    const folder = join(dir, "a", "secrets");
    const file = join(folder, "credentials.json");
    const key = await loadKey();
    await setEntry(file, "pg", { username: "postgres", password: "pw-one" }, key);
    await setEntry(file, "my", { username: "root", password: "pw-two" }, key);
    await setEntry(file, "pg", { username: "postgres2", password: "pw-three" }, key);

    equal(await mode(file), 0o600);
    equal(await mode(folder), 0o700);
    equal(await mode(join(dir, "a")), 0o700);
    const listed = await listEntries(file);
    deepStrictEqual(listed, [
      { id: "my", username: "root", encrypted: true },
      { id: "pg", username: "postgres2", encrypted: true },
    ]);
    assert(!JSON.stringify(listed).includes("pw-"));
    const raw = await Deno.readTextFile(file);
    assert(!raw.includes("pw-"), "passwords are stored encrypted");
    equal(JSON.parse(raw).pg.encrypted, true);
    equal((await getCredential(file, "pg", key, createLogger())).password, "pw-three");

    await removeEntry(file, "pg");
    deepStrictEqual((await listEntries(file)).map((e) => e.id), ["my"]);
    equal(await mode(file), 0o600);
    await rejects(
      removeEntry(file, "pg"),
      isCredentialError(/no credential "pg" in .*credentials\.json/),
    );
    await rejects(
      getCredential(file, "ghost", key, createLogger()),
      isCredentialError(new RegExp(`no credential "ghost" in credentials file ${file}`)),
    );
    await rejects(setEntry(file, " ", { username: "u", password: "p" }, key), CredentialError);
    // No temporary files are left behind.
    deepStrictEqual([...Deno.readDirSync(folder)].map((e) => e.name), ["credentials.json"]);
  });
});

Deno.test("malformed or wrongly shaped files name the file, never their content", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "credentials.json");
    await writeFileAtomic(file, '{"pg": {"username": "u", "password": "hunter2-secret"');
    await rejects(
      readStore(file),
      isCredentialError(new RegExp(`${file} is not valid JSON`), ["hunter2"]),
    );
    await writeFileAtomic(file, '{"pg": {"username": "u", "password": 5}}');
    await rejects(readStore(file), isCredentialError(/entry "pg" must be an object/));
    await writeFileAtomic(file, "[]");
    await rejects(readStore(file), isCredentialError(/must hold a JSON object/));
    await rejects(readStore(join(dir, "missing.json")), isCredentialError(/not found/));
  });
});

Deno.test("key files: generated 0600, never overwritten, loaded only when private", async () => {
  await withTempDir(async (dir) => {
    const keyFile = join(dir, "keys", "vya.key");
    await generateKeyFile(keyFile);
    equal(await mode(keyFile), 0o600);
    equal(await mode(join(dir, "keys")), 0o700);
    const before = await Deno.readTextFile(keyFile);
    await rejects(generateKeyFile(keyFile), isCredentialError(/already exists/));
    equal(await Deno.readTextFile(keyFile), before);
    await Fernet.fromKey(before.trim());

    const key = await loadKey({ keyFile });
    equal(key.source, `the key file ${keyFile}`);
    const file = join(dir, "credentials.json");
    await setEntry(file, "pg", { username: "u", password: "kf-pw" }, key);
    equal((await getCredential(file, "pg", key, createLogger())).password, "kf-pw");
    await rejects(
      getCredential(file, "pg", await loadKey(), createLogger()),
      isCredentialError(/does not decrypt under the host key/),
    );

    await Deno.chmod(keyFile, 0o640);
    await rejects(
      loadKey({ keyFile }),
      (e) => e instanceof CredentialError && e.hint === `chmod 600 ${keyFile}`,
    );
    await writeFileAtomic(keyFile, "not a key\n");
    await rejects(loadKey({ keyFile }), isCredentialError(/does not hold a Fernet key/));
  });
});

Deno.test("the resolver turns an instance into connection parameters", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "credentials.json");
    await setEntry(
      file,
      "pg-cred",
      { username: "backup", password: "resolver-pw" },
      await loadKey(),
    );
    const resolver = new CredentialResolver({ file }, createLogger());
    const params = await resolver.connectionParams({
      id: "pg1",
      type: "postgresql",
      host: "127.0.0.1",
      port: 5432,
      credential: "pg-cred",
      enabled: true,
      databases: { include: [], exclude: [] },
      users: { backup: true, exclude: [] },
      tools: { paths: {} },
      connect_timeout: 7,
    });
    deepStrictEqual(params, {
      host: "127.0.0.1",
      port: 5432,
      user: "backup",
      password: "resolver-pw",
      connectTimeout: 7,
    });
  });
});

Deno.test("secure_fs: existing leaf folders are tightened unless told not to; exclusive writes", async () => {
  await withTempDir(async (dir) => {
    const leaf = join(dir, "backups");
    await Deno.mkdir(leaf, { mode: 0o755 });
    await Deno.chmod(leaf, 0o755);
    await ensurePrivateDir(leaf, { tighten: false });
    equal(await mode(leaf), 0o755);
    await ensurePrivateDir(leaf);
    equal(await mode(leaf), 0o700);

    const file = join(leaf, "f");
    await writeFileAtomic(file, "one", { mode: 0o640 });
    equal(await mode(file), 0o640);
    await writeFileAtomic(file, new TextEncoder().encode("two"));
    equal(await Deno.readTextFile(file), "two");
    equal(await mode(file), 0o600);
    await rejects(writeFileAtomic(file, "three", { exclusive: true }), Deno.errors.AlreadyExists);
    equal(await Deno.readTextFile(file), "two");
    deepStrictEqual([...Deno.readDirSync(leaf)].map((e) => e.name), ["f"]);
  });
});
