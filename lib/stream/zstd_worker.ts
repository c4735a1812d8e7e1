/**
 * Worker thread of the offloaded zstd compressor: one streaming compressor (one frame) fed the
 * chunks the main thread sends, replying with the compressed bytes as they come.
 *
 * @module
 */
import zlib from "node:zlib";
import type { ZstdReply, ZstdRequest } from "./zstd_offload.ts";
import { youngCollector } from "./gc.ts";

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ZstdRequest>) => void) | null;
  postMessage(message: ZstdReply, transfer?: Transferable[]): void;
};

let stream: zlib.ZstdCompress | undefined;
let out: Uint8Array[] = [];
const collect = youngCollector(8 * 1024 * 1024);

function send(type: "out" | "done"): void {
  const chunks = out;
  out = [];
  scope.postMessage({ type, chunks }, chunks.map((c) => c.buffer as ArrayBuffer));
}

function fail(error: unknown): void {
  scope.postMessage({
    type: "error",
    message: error instanceof Error ? error.message : String(error),
  });
}

scope.onmessage = (event) => {
  const m = event.data;
  try {
    if (m.type === "init") {
      stream = zlib.createZstdCompress({
        chunkSize: 64 * 1024,
        params: {
          [zlib.constants.ZSTD_c_compressionLevel]: m.level,
          [zlib.constants.ZSTD_c_checksumFlag]: 1,
        },
      });
      // Copies: zlib's output may be a view into a pool that must not be transferred away.
      stream.on("data", (b: Uint8Array) => out.push(Uint8Array.prototype.slice.call(b)));
      stream.on("error", fail);
      stream.on("end", () => send("done"));
    } else if (m.type === "data") {
      stream!.write(m.data, (error) => {
        if (error) return fail(error);
        send("out");
        collect(m.data.byteLength);
      });
    } else {
      stream!.end();
    }
  } catch (error) {
    fail(error);
  }
};
