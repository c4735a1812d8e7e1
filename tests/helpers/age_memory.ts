/**
 * Subprocess of the age memory test: encrypts `MiB` mebibytes generated on the fly to a new key
 * and decrypts them again in one pipeline, then prints JSON with the bytes, whether the output
 * hashes like the input, and the RSS before and at its peak (Deno.memoryUsage sampled every
 * chunk, and the kernel's high-water mark).
 *
 * Usage: deno run -A tests/helpers/age_memory.ts MiB IDENTITY_FILE RECIPIENT
 *
 * @module
 */
import { createHash } from "node:crypto";
import { decryptStream, encryptStream } from "../../lib/crypto/age_stream.ts";
import { readIdentityFile } from "../../lib/crypto/age_keys.ts";

const [mib, identityFile, recipient] = Deno.args;
const total = Number(mib) * 1024 * 1024;
const CHUNK = 1024 * 1024;
const template = new Uint8Array(CHUNK).map((_, i) => (i * 31 + 7) & 0xff);

function source(total: number, hash: ReturnType<typeof createHash>): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const chunk = template.slice(0, Math.min(CHUNK, total - sent));
      chunk[0] = sent / CHUNK; // every chunk differs
      sent += chunk.length;
      hash.update(chunk);
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

function hwm(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) * 1024 : 0;
}

const identities = await readIdentityFile(identityFile);
// Warm up (module code, first allocations) before the baseline is taken.
await source(4 * CHUNK, createHash("sha256")).pipeThrough(encryptStream([recipient]))
  .pipeThrough(decryptStream(identities, "warm-up")).pipeTo(new WritableStream());
const baseline = Deno.memoryUsage().rss;
const baselineHwm = hwm();
let peak = baseline;
let bytes = 0;
const inHash = createHash("sha256");
const outHash = createHash("sha256");
await source(total, inHash)
  .pipeThrough(encryptStream([recipient]))
  .pipeThrough(decryptStream(identities, "generated"))
  .pipeTo(
    new WritableStream({
      write(chunk) {
        bytes += chunk.length;
        outHash.update(chunk);
        peak = Math.max(peak, Deno.memoryUsage().rss);
      },
    }),
  );
console.log(JSON.stringify({
  bytes,
  equal: inHash.digest("hex") === outHash.digest("hex"),
  baselineRss: baseline,
  peakRss: peak,
  baselineHwm,
  hwm: hwm(),
}));
