/**
 * Reads the first entry of a `.zip` file as a stream, as the original tool wrote one `.sql` per
 * archive: local file header, then the entry stored (method 0) or deflated (method 8). The
 * header is read from disk first, so the data streams from its offset with nothing buffered.
 *
 * @module
 */
import zlib from "node:zlib";
import { fromNodeTransform } from "../stream/node_transform.ts";
import { BadBackupError } from "./errors.ts";

/** The first entry of an archive. */
export interface ZipEntry {
  /** Name of the entry inside the archive. */
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  /** Offset of the entry's data in the file. */
  dataOffset: number;
  /** Compressed size from the local header; undefined when a data descriptor follows. */
  compressedSize?: number;
}

/** Whether bytes start like a zip archive (`PK\x03\x04`). */
export function isZip(first: Uint8Array): boolean {
  return first.length >= 4 && first[0] === 0x50 && first[1] === 0x4b && first[2] === 3 &&
    first[3] === 4;
}

/** Reads the local header of the first entry. */
export async function readZipEntry(path: string): Promise<ZipEntry> {
  using file = await Deno.open(path, { read: true });
  const head = new Uint8Array(30);
  if (await readFull(file, head) < 30 || !isZip(head)) {
    throw new BadBackupError(`${path} is not a zip archive (no local file header)`);
  }
  const view = new DataView(head.buffer);
  const flags = view.getUint16(6, true);
  const method = view.getUint16(8, true);
  let compressedSize: number | undefined = view.getUint32(18, true);
  const nameLength = view.getUint16(26, true);
  const extraLength = view.getUint16(28, true);
  const nameBytes = new Uint8Array(nameLength);
  await readFull(file, nameBytes);
  const name = new TextDecoder().decode(nameBytes);
  if (flags & 1) throw new BadBackupError(`${path}: entry ${name} is encrypted`);
  if (method !== 0 && method !== 8) {
    throw new BadBackupError(
      `${path}: entry ${name} uses compression method ${method}; ` +
        `only stored (0) and deflate (8) are read`,
    );
  }
  // Bit 3: sizes follow the data; deflate finds its own end, stored data cannot.
  if ((flags & 8) || compressedSize === 0xffffffff) {
    if (method === 0) {
      throw new BadBackupError(`${path}: stored entry ${name} without its size in the header`);
    }
    compressedSize = undefined;
  }
  return { name, method, dataOffset: 30 + nameLength + extraLength, compressedSize };
}

async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let at = 0;
  while (at < buf.length) {
    const n = await file.read(buf.subarray(at));
    if (n === null) break;
    at += n;
  }
  return at;
}

/** A stream of the entry's uncompressed content, read from `path`. */
export async function zipEntryStream(
  path: string,
  entry: ZipEntry,
): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  await file.seek(entry.dataOffset, Deno.SeekMode.Start);
  let left = entry.compressedSize ?? Infinity;
  const limited = file.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (left <= 0) return;
        const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
        left -= part.length;
        controller.enqueue(part);
      },
      flush() {
        if (left !== Infinity && left > 0) {
          throw new Error(`zip entry ${entry.name} is truncated (${left} bytes missing)`);
        }
      },
    }),
  );
  if (entry.method === 0) return limited;
  // Without a known size, the deflate stream ends by itself; trailing records are ignored.
  return limited.pipeThrough(
    fromNodeTransform(() => zlib.createInflateRaw({ chunkSize: 64 * 1024 })),
  );
}
