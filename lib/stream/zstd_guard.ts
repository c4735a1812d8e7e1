/**
 * Work-arounds for two defects of node:zlib zstd decompression in Deno 2.9.6 (measured):
 * - corrupt input throws "Zstd decompress error: …" from a queued callback instead of emitting
 *   'error', which kills the whole process as an uncaught exception;
 * - truncated input ends quietly with partial output (zstdDecompressSync too), so a cut-off
 *   backup would restore as if it were complete;
 * - only the first frame is decoded, and a stream with a second frame never ends (hang).
 * The tool itself always writes one frame; other multi-frame files (`cat a.zst b.zst`) are
 * refused with a clear error rather than hanging.
 *
 * @module
 */
import type { Transform } from "node:stream";
import type { InputCheck } from "./node_transform.ts";

const active = new Set<Transform>();

function onUncaught(event: ErrorEvent): void {
  const error = event.error;
  if (!(error instanceof Error) || !error.message.startsWith("Zstd decompress error")) return;
  // The failing stream cannot be told apart from other live zstd decompressors, so all of them
  // fail: a false failure is recoverable, a crash or silently wrong data is not.
  event.preventDefault();
  for (const stream of [...active]) stream.destroy(error);
}

/**
 * Tracks a zstd decompressor so a corruption error thrown outside it errors the stream instead
 * of the process. Returns the stream.
 */
export function guardZstdDecompressor(stream: Transform): Transform {
  if (active.size === 0) globalThis.addEventListener("error", onUncaught);
  active.add(stream);
  stream.once("close", () => {
    active.delete(stream);
    if (active.size === 0) globalThis.removeEventListener("error", onUncaught);
  });
  return stream;
}

/** The little-endian zstd frame magic 0xFD2FB528. */
const FRAME_MAGIC = 0xfd2fb528;

/**
 * Walks the zstd frame structure (RFC 8878: frame headers, block headers, checksums, skippable
 * frames) without decompressing, and throws at the end unless the input ends exactly on a frame
 * boundary. Costs one pass over headers only; block contents are skipped.
 */
export function zstdFrameCheck(): InputCheck {
  // Bytes still to skip (block content, header rest, checksum, skippable frame body).
  let skip = 0;
  // Header bytes being gathered, and how many the current state needs.
  const header = new Uint8Array(8);
  let have = 0;
  let need = 4;
  let state: "magic" | "skippable" | "descriptor" | "block" = "magic";
  let checksum = 0;
  let frames = 0;

  const onHeader = () => {
    const view = new DataView(header.buffer);
    switch (state) {
      case "magic": {
        const magic = view.getUint32(0, true);
        if (frames > 0) {
          // Deno's decoder stops after the first frame and then never ends the stream, so a
          // second frame would hang the pipeline: fail clearly instead.
          throw new Error(
            "zstd data with more than one frame is not supported (Deno's zstd decoder reads " +
              "only the first); decompress it with the zstd tool",
          );
        }
        if (magic === FRAME_MAGIC) {
          state = "descriptor";
          need = 1;
        } else if ((magic & 0xfffffff0) === 0x184d2a50) {
          state = "skippable";
          need = 4;
        } else {
          throw new Error("not zstd data: bad frame magic");
        }
        break;
      }
      case "skippable":
        skip = view.getUint32(0, true);
        state = "magic";
        need = 4;
        break;
      case "descriptor": {
        const fhd = header[0];
        const fcsFlag = fhd >> 6;
        const singleSegment = (fhd >> 5) & 1;
        if ((fhd >> 3) & 1) throw new Error("corrupt zstd data: reserved frame header bit set");
        checksum = (fhd >> 2) & 1 ? 4 : 0;
        const dictId = [0, 1, 2, 4][fhd & 3];
        const fcs = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
        skip = (singleSegment ? 0 : 1) + dictId + fcs;
        state = "block";
        need = 3;
        break;
      }
      case "block": {
        const bits = header[0] | (header[1] << 8) | (header[2] << 16);
        const last = bits & 1;
        const type = (bits >> 1) & 3;
        const size = bits >>> 3;
        if (type === 3) throw new Error("corrupt zstd data: reserved block type");
        skip = type === 1 ? 1 : size;
        if (last) {
          skip += checksum;
          frames++;
          state = "magic";
          need = 4;
        }
        break;
      }
    }
    have = 0;
  };

  return {
    chunk(chunk) {
      let offset = 0;
      while (offset < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - offset);
          skip -= n;
          offset += n;
          continue;
        }
        const n = Math.min(need - have, chunk.length - offset);
        header.set(chunk.subarray(offset, offset + n), have);
        have += n;
        offset += n;
        if (have === need) onHeader();
      }
    },
    end() {
      if (skip > 0 || have > 0 || state !== "magic" || frames === 0) {
        throw new Error("zstd data is truncated: the input ends inside a frame");
      }
    },
  };
}
