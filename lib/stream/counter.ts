/**
 * A pass-through stream that counts bytes, for sizes in metadata and progress display.
 *
 * @module
 */

/** Options for {@linkcode ByteCounter}. */
export interface ByteCounterOptions {
  /**
   * Called with the running total at most once per `intervalMs`, and once more with the final
   * total when the stream ends, so the last value shown is always exact.
   */
  onProgress?: (bytes: number) => void;
  /** Minimum milliseconds between two progress calls (default 500). */
  intervalMs?: number;
}

/**
 * Counts the bytes flowing through without changing them.
 *
 * ```ts
 * const raw = new ByteCounter({ onProgress: (n) => show(n) });
 * await dump.pipeThrough(raw).pipeThrough(gzip).pipeTo(file);
 * raw.bytes; // uncompressed size
 * ```
 */
export class ByteCounter extends TransformStream<Uint8Array, Uint8Array> {
  #bytes = 0;

  /** Creates the counter. */
  constructor(options: ByteCounterOptions = {}) {
    const { onProgress, intervalMs = 500 } = options;
    let last = 0;
    let self: ByteCounter | undefined = undefined;
    super({
      transform(chunk, controller) {
        self!.#bytes += chunk.byteLength;
        if (onProgress) {
          const now = performance.now();
          if (now - last >= intervalMs) {
            last = now;
            onProgress(self!.#bytes);
          }
        }
        controller.enqueue(chunk);
      },
      flush() {
        onProgress?.(self!.#bytes);
      },
    });
    self = this;
  }

  /** Bytes seen so far (the total once the stream has finished). */
  get bytes(): number {
    return this.#bytes;
  }
}
