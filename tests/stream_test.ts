/**
 * The streaming data path checked against the system tools a user would reach for:
 * gzip, zstd and sha256sum must read and agree with what we write, and we must read theirs.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./harness/assert.ts";
import { codecFor, detectCodec, OFFLOAD_THRESHOLD } from "../lib/stream/codecs.ts";
import { bySize } from "../lib/stream/size_choice.ts";
import { DEFAULT_BLOCK_SIZE, parallelGzip } from "../lib/stream/gzip_parallel.ts";
import { sha256File, Sha256Stream } from "../lib/stream/sha256.ts";
import { ByteCounter } from "../lib/stream/counter.ts";
import { PartialFile } from "../lib/stream/partial_file.ts";

/** Deterministic SQL-like text with `randomShare` (by volume) of incompressible random bytes. */
function sampleData(size: number, randomShare = 0.1, seed = 42): Uint8Array {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  const out = new Uint8Array(size);
  const enc = new TextEncoder();
  const words = ["alpha", "beta", "O'Brien", "Zürich", "NULL", "lorem", "ipsum", "2024-05-01"];
  let offset = 0;
  let randomBytes = 0;
  while (offset < size) {
    let piece: Uint8Array;
    if (randomBytes < randomShare * offset) {
      piece = new Uint8Array(1 + next() % 512);
      for (let i = 0; i < piece.length; i++) piece[i] = next() & 0xff;
      randomBytes += piece.length;
    } else {
      const id = next() % 100000;
      piece = enc.encode(
        `INSERT INTO t VALUES (${id},'${words[next() % words.length]}',${next() % 9999}.${
          next() % 100
        },'${words[next() % words.length]} ${words[next() % words.length]}');\n`,
      );
    }
    const n = Math.min(piece.length, size - offset);
    out.set(piece.subarray(0, n), offset);
    offset += n;
  }
  return out;
}

/** Feeds `data` in uneven chunks, as a dump tool's stdout would. */
function chunked(data: Uint8Array, chunkSize = 50_001): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= data.length) return controller.close();
      controller.enqueue(data.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function compress(
  data: Uint8Array,
  transform: TransformStream<Uint8Array, Uint8Array>,
): Promise<Uint8Array> {
  return await collect(chunked(data).pipeThrough(transform));
}

/** Runs a system tool; returns stdout, failing the test with stderr on a non-zero exit. */
async function tool(cmd: string, args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Feed stdin while output() drains stdout: writing everything first deadlocks once the
  // tool's output fills the pipe.
  const feeding = stdin ? chunked(stdin).pipeTo(child.stdin) : Promise.resolve();
  const [{ code, stdout, stderr }] = await Promise.all([child.output(), feeding]);
  const err = new TextDecoder().decode(stderr);
  assertEquals(code, 0, `${cmd} ${args.join(" ")} failed: ${err}`);
  return stdout;
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assertEquals(actual.length, expected.length, `${what}: length`);
  assert(actual.every((b, i) => b === expected[i]), `${what}: content differs`);
}

const text = sampleData(3 * 1024 * 1024, 0.02);

Deno.test("gzip levels: system gzip restores every level byte-exact; higher levels are smaller", async () => {
  const sizes: Record<number, number> = {};
  for (const level of [1, 6, 9]) {
    const gz = await compress(text, codecFor("gzip").compress(level));
    assertSameBytes(await tool("gzip", ["-dc"], gz), text, `gzip -${level}`);
    sizes[level] = gz.length;
  }
  assert(sizes[1] > sizes[6], `level 1 (${sizes[1]}) should be larger than 6 (${sizes[6]})`);
  assert(sizes[6] >= sizes[9], `level 6 (${sizes[6]}) should not be smaller than 9 (${sizes[9]})`);
  assert(sizes[1] < text.length / 2, "text should compress");
});

Deno.test("zstd: system zstd restores byte-exact; level changes the size", async () => {
  const data = text.subarray(0, 1024 * 1024);
  const fast = await compress(data, codecFor("zstd").compress(1));
  const strong = await compress(data, codecFor("zstd").compress(19));
  assertSameBytes(await tool("zstd", ["-dc"], fast), data, "zstd -1");
  assertSameBytes(await tool("zstd", ["-dc"], strong), data, "zstd -19");
  assert(strong.length < fast.length, `zstd 19 (${strong.length}) < zstd 1 (${fast.length})`);
});

Deno.test("parallel gzip: gzip -t accepts and gzip -d restores, at block edge cases", async (t) => {
  const block = DEFAULT_BLOCK_SIZE;
  const cases: [string, Uint8Array][] = [
    ["0 bytes", new Uint8Array(0)],
    ["1 byte", new Uint8Array([0x41])],
    ["exactly one block", sampleData(block, 0.1, 7)],
    ["exactly two blocks", sampleData(2 * block, 0.1, 8)],
    ["5 MiB + 3 bytes of text and random data", sampleData(5 * block + 3, 0.3, 9)],
  ];
  for (const [name, data] of cases) {
    await t.step(name, async () => {
      const gz = await compress(data, parallelGzip({ level: 6, threads: 2 }));
      await tool("gzip", ["-t"], gz);
      assertSameBytes(await tool("gzip", ["-dc"], gz), data, name);
      assertSameBytes(
        await collect(chunked(gz).pipeThrough(codecFor("gzip").decompress())),
        data,
        name,
      );
    });
  }
});

/** Runs `work` with `new Worker` counted; returns how many workers it started. */
async function countingWorkers(work: () => Promise<void>): Promise<number> {
  const original = globalThis.Worker;
  let started = 0;
  globalThis.Worker = class extends original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      started++;
    }
  };
  try {
    await work();
  } finally {
    globalThis.Worker = original;
  }
  return started;
}

Deno.test("compression with threads: no worker below the offload threshold, workers above it", async (t) => {
  const cases: [string, number, boolean][] = [
    ["empty", 0, false],
    ["a one-row dump", 1200, false],
    ["one byte below the threshold", OFFLOAD_THRESHOLD - 1, false],
    ["exactly the threshold", OFFLOAD_THRESHOLD, true],
    ["threshold + 3 MiB", OFFLOAD_THRESHOLD + 3 * 1024 * 1024, true],
  ];
  for (const [format, decompress] of [["gzip", "gzip"], ["zstd", "zstd"]] as const) {
    for (const [name, size, offloaded] of cases) {
      await t.step(`${format}: ${name}`, async () => {
        const data = sampleData(size, 0.1, size + 1);
        let out: Uint8Array = new Uint8Array(0);
        const workers = await countingWorkers(async () => {
          out = await compress(data, codecFor(format).compress(3, { threads: 2 }));
        });
        // Two threads: one worker beside this thread (gzip deflates here when it is busy).
        assertEquals(workers, offloaded ? 1 : 0, `${workers} worker(s) started`);
        assertSameBytes(await tool(decompress, ["-dc"], out), data, `${format} ${name}`);
      });
    }
  }
});

Deno.test("bySize: a failure of the chosen transform, or of the input, reaches the other side", async (t) => {
  const failing = () =>
    new TransformStream<Uint8Array, Uint8Array>({
      transform() {
        throw new Error("compressor broke");
      },
    });
  const passing = () => new TransformStream<Uint8Array, Uint8Array>();
  await t.step("the large transform fails", async () => {
    const s = bySize(10, failing, passing);
    const read = collect(s.readable);
    await assertRejects(() => chunked(new Uint8Array(100), 7).pipeTo(s.writable), Error);
    await assertRejects(() => read, Error, "compressor broke");
  });
  await t.step("the small transform fails at the end of the input", async () => {
    const s = bySize(1000, passing, failing);
    const read = collect(s.readable);
    await assertRejects(() => chunked(new Uint8Array(100), 7).pipeTo(s.writable), Error);
    await assertRejects(() => read, Error, "compressor broke");
  });
  await t.step("the input fails before a transform was chosen", async () => {
    const s = bySize(1000, passing, passing);
    const read = collect(s.readable);
    const input = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(10));
        c.error(new Error("dump died"));
      },
    });
    await assertRejects(() => input.pipeTo(s.writable), Error, "dump died");
    await assertRejects(() => read, Error, "dump died");
  });
  await t.step("the output is cancelled while a write waits for it to be read", async () => {
    // A sink that fails (a full disk) cancels the output while the input side is held up by
    // backpressure: both sides must settle, not wait for each other.
    const s = bySize(10, passing, passing);
    const piped = chunked(new Uint8Array(100_000), 1000).pipeTo(s.writable);
    const reader = s.readable.getReader();
    await reader.read();
    await reader.read();
    // Time for the next write to reach the inner transform and wait there for a reader.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const settled = Promise.allSettled([reader.cancel(new Error("disk full")), piped]);
    let id: ReturnType<typeof setTimeout> | undefined;
    const timer = new Promise((resolve) => id = setTimeout(() => resolve("hung"), 5000));
    const outcome = await Promise.race([settled, timer]);
    clearTimeout(id);
    assert(outcome !== "hung", "cancel or the input's pipe never settled");
    await assertRejects(() => piped, Error, "disk full");
  });
  await t.step("chunks come out in order on both paths", async () => {
    const data = sampleData(5000, 0, 3);
    for (const threshold of [100, 10_000]) {
      const s = bySize(threshold, passing, passing);
      assertSameBytes(await compress(data, s), data, `threshold ${threshold}`);
    }
  });
});

Deno.test("parallel gzip: one gzip member, order kept with many small blocks and 3 threads", async () => {
  const data = sampleData(1024 * 1024 + 12345, 0.2, 11);
  const gz = await compress(data, parallelGzip({ level: 6, threads: 3, blockSize: 32 * 1024 }));
  assertSameBytes(await tool("gzip", ["-dc"], gz), data, "32 KiB blocks");
  // gzip -l reads the size from the trailer of the only member: it matches when there is one.
  const listing = new TextDecoder().decode(await tool("gzip", ["-lv"], gz));
  assert(listing.includes(` ${data.length} `), listing);
  // Each block is primed with the previous window, so even 32 KiB blocks (a sync flush every
  // 32 KiB) stay close to single-threaded gzip; at the default 1 MiB the gap is ~0.2%.
  const single = await compress(data, codecFor("gzip").compress(6));
  assert(gz.length < single.length * 1.05, `parallel ${gz.length} vs single ${single.length}`);
});

Deno.test("decompressors read what system gzip and zstd write, multi-member gzip included", async () => {
  const a = text.subarray(0, 1_000_000);
  const b = text.subarray(1_000_000);
  const gzA = await tool("gzip", ["-c", "-6"], a);
  const gzB = await tool("gzip", ["-c", "-1"], b);
  const members = new Uint8Array(gzA.length + gzB.length);
  members.set(gzA);
  members.set(gzB, gzA.length);
  assertSameBytes(
    await collect(chunked(members, 7777).pipeThrough(codecFor("gzip").decompress())),
    text,
    "two concatenated gzip members",
  );
  const zst = await tool("zstd", ["-c", "-3", "-q"], text);
  assertSameBytes(
    await collect(chunked(zst).pipeThrough(codecFor("zstd").decompress())),
    text,
    "system zstd",
  );
});

Deno.test("decompressors reject truncated and corrupt input instead of returning less data", async () => {
  for (const format of ["gzip", "zstd"] as const) {
    const packed = await compress(text, codecFor(format).compress(3));
    for (const cut of [1, 100, packed.length - 10]) {
      const truncated = packed.subarray(0, packed.length - cut);
      await assertRejects(() =>
        collect(chunked(truncated).pipeThrough(codecFor(format).decompress()))
      );
    }
    const corrupt = packed.slice();
    corrupt.fill(0x55, 1000, 1100);
    await assertRejects(() => collect(chunked(corrupt).pipeThrough(codecFor(format).decompress())));
  }
});

Deno.test("zstd: a multi-frame file fails clearly instead of hanging or losing frames", async () => {
  const one = await tool("zstd", ["-c", "-q"], text.subarray(0, 1000));
  const two = new Uint8Array(one.length * 2);
  two.set(one);
  two.set(one, one.length);
  await assertRejects(
    () => collect(chunked(two).pipeThrough(codecFor("zstd").decompress())),
    Error,
    "more than one frame",
  );
});

Deno.test("detectCodec: magic bytes and file names", async () => {
  const gz = await compress(new Uint8Array([1, 2, 3]), codecFor("gzip").compress(1));
  const zst = await compress(new Uint8Array([1, 2, 3]), codecFor("zstd").compress(1));
  assertEquals(detectCodec(gz.subarray(0, 4)).format, "gzip");
  assertEquals(detectCodec(zst.subarray(0, 4)).format, "zstd");
  assertEquals(detectCodec(new TextEncoder().encode("-- SQL")).format, "none");
  assertEquals(detectCodec(new Uint8Array(0)).format, "none");
  assertEquals(detectCodec("db.sql.gz").extension, ".gz");
  assertEquals(detectCodec("db.sql.zst").extension, ".zst");
  assertEquals(detectCodec("db.sql").extension, "");
});

Deno.test("bad levels and thread counts are rejected with a clear RangeError", () => {
  for (const level of [0, 10, 1.5, NaN]) {
    assertThrows(() => codecFor("gzip").compress(level), RangeError, "gzip compression level");
  }
  for (const level of [0, 20]) {
    assertThrows(() => codecFor("zstd").compress(level), RangeError, "from 1 to 19");
  }
  assertThrows(() => codecFor("gzip").compress(6, { threads: 0 }), RangeError, "threads");
  assertThrows(() => parallelGzip({ level: 6, threads: 2, blockSize: 100 }), RangeError);
});

Deno.test("none codec passes bytes through unchanged", async () => {
  const data = sampleData(100_000);
  assertSameBytes(await compress(data, codecFor("none").compress(0)), data, "none");
});

Deno.test("sha256: stream digest and file digest equal sha256sum", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/data.bin`;
    await Deno.writeFile(path, text);
    const expected = new TextDecoder().decode(await tool("sha256sum", [path])).split(" ")[0];
    const hash = new Sha256Stream();
    const passed = await collect(chunked(text).pipeThrough(hash));
    assertSameBytes(passed, text, "pass-through");
    assertEquals(await hash.digest, expected);
    assertEquals(hash.hex(), expected);
    assertEquals(await sha256File(path), expected);
    const empty = new Sha256Stream();
    assertThrows(() => empty.hex(), Error, "before the stream finished");
    await collect(chunked(new Uint8Array(0)).pipeThrough(empty));
    assertEquals(empty.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("byte counter: counts every byte and reports the exact final total", async () => {
  const seen: number[] = [];
  const counter = new ByteCounter({ onProgress: (n) => seen.push(n), intervalMs: 0 });
  await collect(chunked(text).pipeThrough(counter));
  assertEquals(counter.bytes, text.length);
  assertEquals(seen.at(-1), text.length);
  assert(seen.length > 2, "progress reported along the way");
});

Deno.test("partial file: files larger than the early-flush step commit whole; an abort mid-way leaves no descriptor", async (t) => {
  // Deno's sanitizers do not see a file descriptor left open: the process's own list does.
  // Only descriptors on the test's files count (the process opens and closes others meanwhile).
  const openOn = (dir: string) =>
    [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
      try {
        return Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith(dir);
      } catch {
        return false; // closed between the listing and the look
      }
    }).length;
  const dir = await Deno.makeTempDir();
  const data = sampleData(70 * 1024 * 1024, 0.5, 11);
  try {
    await t.step("70 MiB committed: sha256sum agrees", async () => {
      const file = await PartialFile.create(`${dir}/big.sql`);
      await chunked(data, 1024 * 1024).pipeTo(file.writable);
      await file.commit();
      assertEquals(openOn(dir), 0, "descriptors left open");
      const out = new TextDecoder().decode(await tool("sha256sum", [`${dir}/big.sql`]));
      const s = new Sha256Stream();
      await chunked(data).pipeThrough(s).pipeTo(new WritableStream());
      assertEquals(out.split(" ")[0], s.hex());
    });
    await t.step("aborted after 40 MiB: no partial file, no open descriptor", async () => {
      const file = await PartialFile.create(`${dir}/cut.sql`);
      const writer = file.writable.getWriter();
      for (let i = 0; i < 40; i++) {
        await writer.write(data.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
      }
      await writer.abort(new Error("dump died"));
      await file.abort();
      assertEquals(openOn(dir), 0, "descriptors left open");
      await assertRejects(() => Deno.stat(`${dir}/cut.sql.partial`), Deno.errors.NotFound);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("partial file: commit, abort, stale partial, failed pipe", async (t) => {
  const dir = await Deno.makeTempDir();
  const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
  try {
    await t.step("commit leaves only the final file, mode 0600, with the content", async () => {
      const final = `${dir}/a.sql.gz`;
      const file = await PartialFile.create(final);
      assert(await exists(`${final}.partial`));
      await chunked(text).pipeTo(file.writable);
      assert(!(await exists(final)), "nothing under the final name before commit");
      await file.commit();
      await file.abort(); // no-op after commit
      assert(!(await exists(`${final}.partial`)));
      assertEquals((await Deno.stat(final)).mode! & 0o777, 0o600);
      assertSameBytes(await Deno.readFile(final), text, "committed file");
    });
    await t.step("abort removes the partial and leaves no final file", async () => {
      const final = `${dir}/b.sql`;
      const file = await PartialFile.create(final);
      await chunked(new Uint8Array(1000)).pipeTo(file.writable);
      await file.abort();
      await file.abort();
      assert(!(await exists(final)));
      assert(!(await exists(`${final}.partial`)));
      await assertRejects(() => file.commit(), Error, "already aborted");
    });
    await t.step("a stale partial from a crashed run is replaced with a private file", async () => {
      const final = `${dir}/c.sql`;
      await Deno.writeTextFile(`${final}.partial`, "stale leftover, longer than the new content");
      await Deno.chmod(`${final}.partial`, 0o644);
      const file = await PartialFile.create(final);
      assertEquals((await Deno.stat(`${final}.partial`)).mode! & 0o777, 0o600);
      await chunked(new TextEncoder().encode("fresh")).pipeTo(file.writable);
      await file.commit();
      assertEquals(await Deno.readTextFile(final), "fresh");
    });
    await t.step("abort after a failed pipeTo does not throw and cleans up", async () => {
      const final = `${dir}/d.sql`;
      const file = await PartialFile.create(final);
      let sent = false;
      const failing = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (!sent) {
            sent = true;
            controller.enqueue(new Uint8Array(10));
          } else controller.error(new Error("dump died"));
        },
      });
      await assertRejects(() => failing.pipeTo(file.writable), Error, "dump died");
      await assertRejects(() => file.commit(), Error, "not closed");
      await file.abort();
      assert(!(await exists(`${final}.partial`)));
      assert(!(await exists(final)));
    });
    await t.step("await using aborts an uncommitted file", async () => {
      const final = `${dir}/e.sql`;
      {
        await using file = await PartialFile.create(final);
        await chunked(new Uint8Array(10)).pipeTo(file.writable);
      }
      assert(!(await exists(`${final}.partial`)));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parallel gzip: workers end when the input fails or is cancelled (process exits)", async () => {
  // A child process under the narrow permission the app grants (read only): if a worker were
  // left running, the child would never exit and the timeout below would fire.
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/child.ts`;
    const lib = new URL("../lib/stream/gzip_parallel.ts", import.meta.url).href;
    const codecs = new URL("../lib/stream/codecs.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { parallelGzip } from ${JSON.stringify(lib)};
import { codecFor } from ${JSON.stringify(codecs)};
let n = 0;
const failing = new ReadableStream({
  pull(c) { if (n++ < 5) c.enqueue(new Uint8Array(700 * 1024).fill(n)); else c.error(new Error("boom")); },
});
try {
  await failing.pipeThrough(parallelGzip({ level: 6, threads: 2 })).pipeTo(new WritableStream());
  console.log("unexpected success");
} catch (e) { console.log("failed:", e.message); }
// Through the codec, above its offload threshold, into a sink that fails (a full disk).
const big = new ReadableStream({
  pull(c) { if (n++ < 20) c.enqueue(new Uint8Array(700 * 1024).fill(n)); else c.close(); },
});
try {
  await big.pipeThrough(codecFor("gzip").compress(6, { threads: 2 })).pipeTo(new WritableStream({
    write() { throw new Error("disk full"); },
  }));
  console.log("unexpected success");
} catch (e) { console.log("failed:", e.message); }
const gz = parallelGzip({ level: 6, threads: 2 });
const writer = gz.writable.getWriter();
writer.write(new Uint8Array(3 * 1024 * 1024)).catch(() => {});
const reader = gz.readable.getReader();
await reader.read();
await reader.cancel("stop");
console.log("cancelled");
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", "--allow-read", script],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(timer);
    const out = new TextDecoder().decode(stdout);
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    assertEquals(out, "failed: boom\nfailed: disk full\ncancelled\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("zstd: output is one frame that our decoder and the zstd tool both read back", async () => {
  // Realistic rows: on such input Deno's compressor appends empty frames after the data, which
  // its own decoder cannot get past; the codec drops them.
  const rows: string[] = [];
  for (let i = 0; i < 120_000; i++) {
    rows.push(
      `(${i}, 'user${(i * 7919) % 100000}@example.com', '${
        new Date(1e12 + i * 1e6).toISOString()
      }', ` +
        `'{"k": ${i % 97}, "t": "${((i * 2654435761) >>> 0).toString(36)}"}'),\n`,
    );
  }
  const data = new TextEncoder().encode(rows.join(""));
  for (const threads of [1, 2]) {
    const parts: Uint8Array[] = [];
    let offset = 0;
    await new ReadableStream<Uint8Array>({
      pull(c) {
        if (offset >= data.length) return c.close();
        c.enqueue(data.slice(offset, offset + 65536));
        offset += 65536;
      },
    }).pipeThrough(codecFor("zstd").compress(3, { threads }))
      .pipeTo(new WritableStream({ write: (c) => void parts.push(c.slice()) }));
    const file = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (file.set(p, at), at + p.length), 0);
    const path = await Deno.makeTempFile({ suffix: ".zst" });
    try {
      await Deno.writeFile(path, file);
      const listed = await new Deno.Command("zstd", { args: ["-lv", path], stdout: "piped" })
        .output();
      assert(/Frames: 1\b/.test(new TextDecoder().decode(listed.stdout)), `threads ${threads}`);
      let back = 0;
      await (await Deno.open(path)).readable.pipeThrough(codecFor("zstd").decompress())
        .pipeTo(new WritableStream({ write: (c) => void (back += c.length) }));
      assertEquals(back, data.length, `threads ${threads}`);
    } finally {
      await Deno.remove(path);
    }
  }
});
