/**
 * Reused 64 KiB buffers for the bulk path: a large message's copy (taken when `send` is called)
 * and the pieces a large frame is sealed into. A fresh 1 MiB buffer per vertex, zeroed, filled
 * and collected, cost 2-3 ms of CPU per MiB in the throughput benchmark (docs/performance.md,
 * "Throughput"); chunks that go back here are warm and need no collection.
 *
 * @module
 */

/** Bytes of every chunk. */
export const CHUNK_BYTES = 65536;
/**
 * Free chunks kept for reuse: 16 MiB per process at most, the sixteen 1 MiB vertices the
 * throughput benchmark keeps in flight (64 chunks, 4 MiB, cost 0.5-1.5 ms of CPU per MiB more
 * there). Only large sends fill it; chunks beyond it are garbage.
 */
const CHUNKS_KEPT = 256;
const free: ArrayBuffer[] = [];

/** A chunk of {@linkcode CHUNK_BYTES}; its bytes are whatever the last user left in it. */
export function takeChunk(): Uint8Array {
  const buffer = free.pop();
  return buffer === undefined ? new Uint8Array(CHUNK_BYTES) : new Uint8Array(buffer);
}

/**
 * Gives back chunks from {@linkcode takeChunk} (or views of them) once nothing reads them any
 * more; the caller must not use them afterwards.
 */
export function returnChunks(chunks: readonly Uint8Array[]): void {
  for (const chunk of chunks) {
    const buffer = chunk.buffer;
    if (free.length >= CHUNKS_KEPT) return;
    if (buffer instanceof ArrayBuffer && buffer.byteLength === CHUNK_BYTES) free.push(buffer);
  }
}
