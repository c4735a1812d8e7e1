/**
 * One contender of the benchmark's encryption rows, in-process on our own streams, as the
 * backup and restore pipelines will run them:
 *
 *   deno run -A scripts/bench/age_stage.ts zstd      IN OUT            # file → zstd-3 → SHA-256 → file
 *   deno run -A scripts/bench/age_stage.ts zstd+age  IN OUT RECIPIENT  # … → zstd-3 → age → SHA-256 → file
 *   deno run -A scripts/bench/age_stage.ts unzstd    IN                # file → zstd -d → discard
 *   deno run -A scripts/bench/age_stage.ts age+unzstd IN IDENTITY      # file → age -d → zstd -d → discard
 *
 * @module
 */
import { codecFor } from "../../lib/stream/codecs.ts";
import { Sha256Stream } from "../../lib/stream/sha256.ts";
import { decryptStream, encryptStream } from "../../lib/crypto/age_stream.ts";
import { readIdentityFile } from "../../lib/crypto/age_keys.ts";

const [mode, input, arg1, arg2] = Deno.args;
const zstd = codecFor("zstd");
const src = (await Deno.open(input)).readable;
const discard = () => new WritableStream<Uint8Array>();

switch (mode) {
  case "zstd":
  case "zstd+age": {
    let s = src.pipeThrough(zstd.compress(3, { threads: 2 }));
    if (mode === "zstd+age") s = s.pipeThrough(encryptStream([arg2]));
    const out = await Deno.open(arg1, { write: true, create: true, truncate: true });
    await s.pipeThrough(new Sha256Stream()).pipeTo(out.writable);
    break;
  }
  case "unzstd":
    await src.pipeThrough(zstd.decompress()).pipeTo(discard());
    break;
  case "age+unzstd":
    await src.pipeThrough(decryptStream(await readIdentityFile(arg1), input))
      .pipeThrough(zstd.decompress()).pipeTo(discard());
    break;
  default:
    throw new Error(`unknown mode ${mode}`);
}
