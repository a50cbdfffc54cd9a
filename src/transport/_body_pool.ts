/**
 * Spare buffers of large frame bodies that readers gave up on (a stalled or reset stream), for
 * the next large frames. A peer that stalls frames until their streams time out and then sends
 * new ones would otherwise have the process allocate and free a frame's worth of memory each
 * time; glibc serves the frees and the new allocations from its heap once it has raised its
 * mmap threshold, and the resident size creeps up with every round (measured: +5 to +7 MiB per
 * round of sixteen 1 MiB frames). Bodies that complete go to the application and never come
 * back here.
 *
 * @module
 */

/** Most bytes of spare buffers kept (what one peer's default budget holds). */
const MAX_SPARE_BYTES = 16 * 1024 * 1024;

/** Spare buffers, bounded in bytes. */
export class BodyPool {
  readonly #maxBytes: number;
  #spare: ArrayBuffer[] = [];
  #bytes = 0;

  constructor(maxBytes = MAX_SPARE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes of the spare buffers held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * A buffer for a body of `length` bytes: the smallest spare one that holds it and is at most
   * twice as large, else a new one. Its bytes are stale: the caller must write all of them
   * before anyone reads it.
   */
  take(length: number): Uint8Array<ArrayBuffer> {
    let best = -1;
    for (let i = 0; i < this.#spare.length; i++) {
      const size = this.#spare[i].byteLength;
      if (size < length || size > 2 * length) continue;
      if (best < 0 || size < this.#spare[best].byteLength) best = i;
    }
    if (best < 0) return new Uint8Array(length);
    const [buffer] = this.#spare.splice(best, 1);
    this.#bytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, length);
  }

  /** Takes back the buffer of a body nobody will read; beyond the bound it is freed at once. */
  give(body: Uint8Array<ArrayBuffer>): void {
    const buffer = body.buffer;
    if (this.#bytes + buffer.byteLength > this.#maxBytes) {
      // Detaching returns the backing store now; a large one is unmapped at once.
      buffer.transfer(0);
      return;
    }
    this.#spare.push(buffer);
    this.#bytes += buffer.byteLength;
  }
}

/** The process's pool: frame decoders of every transport share it. */
export const spareBodies: BodyPool = new BodyPool();
