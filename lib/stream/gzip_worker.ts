/**
 * Worker thread of the parallel gzip compressor: deflates one block per message.
 *
 * The main thread concatenates the replies into one gzip member; see gzip_parallel.ts for the
 * protocol and gzip_block.ts for how a block is deflated.
 *
 * @module
 */
import type { BlockReply, BlockRequest } from "./gzip_parallel.ts";
import { deflateBlock } from "./gzip_block.ts";
import { youngCollector } from "./gc.ts";

const collect = youngCollector(4 * 1024 * 1024);

/** The worker global, typed locally so this file checks under the main program's lib. */
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<BlockRequest>) => void) | null;
  postMessage(message: BlockReply, transfer?: Transferable[]): void;
};

scope.onmessage = (event) => {
  const { id, level, data, dict, last } = event.data;
  try {
    const out = deflateBlock(data, level, dict, last);
    // Small results can be views into Node's shared Buffer pool; transferring that pool would
    // detach memory other Buffers still use, so only a buffer we own outright is transferred.
    const owned = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength
      ? new Uint8Array(out.buffer, 0, out.byteLength)
      : Uint8Array.prototype.slice.call(out);
    scope.postMessage({ id, out: owned }, [owned.buffer as ArrayBuffer]);
    collect(data.byteLength);
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};
