/**
 * Frames over one QUIC stream direction, sealed with the stream's cipher when pqEncryption is
 * on. Reading is pull-based: nothing is read from the stream until the next frame is asked
 * for, so a slow consumer holds the peer back through flow control.
 *
 * @module
 */

import type { FrameCipher } from "../handshake/frame_cipher.ts";
import type { QuicStream } from "../quic/stream.ts";
import { FrameDecoder } from "./codec.ts";

/** Frames up to this size are written with their length prefix in one stream write. */
const SMALL_FRAME_BYTES = 16384;

/** GCM tag bytes a sealed body carries. */
export const SEAL_OVERHEAD = 16;

/** Writes frames in call order; each resolves once the stream has taken the frame. */
export class FrameWriter {
  readonly stream: QuicStream;
  readonly #cipher: FrameCipher | undefined;
  #tail: Promise<void> = Promise.resolve();

  constructor(stream: QuicStream, cipher: FrameCipher | undefined) {
    this.stream = stream;
    this.#cipher = cipher;
  }

  /** Seals (the nonce counter is taken now, so call order is wire order) and writes. */
  write(body: Uint8Array, fin = false): Promise<void> {
    const sealing = this.#cipher === undefined ? body : this.#cipher.seal(body);
    const written = this.#tail.then(async () => {
      const sealed = await sealing;
      if (sealed.byteLength <= SMALL_FRAME_BYTES) {
        // One write: half the stream operations for the common small message.
        const frame = new Uint8Array(4 + sealed.byteLength);
        new DataView(frame.buffer).setUint32(0, sealed.byteLength);
        frame.set(sealed, 4);
        return await this.stream.write(frame, fin);
      }
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, sealed.byteLength);
      // Two writes instead of one concatenation: a 16 MiB frame is not copied again.
      await this.stream.write(header);
      await this.stream.write(sealed, fin);
    });
    // A failed write breaks the stream anyway; later writes fail on their own.
    this.#tail = written.catch(() => {});
    if (sealing instanceof Promise) sealing.catch(() => {});
    return written;
  }
}

/** Reads and opens frames one at a time. */
export class FrameReader {
  readonly stream: QuicStream;
  readonly #cipher: FrameCipher | undefined;
  readonly #decoder: FrameDecoder;
  #ready: Uint8Array[] = [];

  /**
   * @param maxBodyBytes Largest plaintext body; the sealed limit adds the tag.
   * @param leftover Bytes already read from the stream (after the handshake records).
   */
  constructor(
    stream: QuicStream,
    cipher: FrameCipher | undefined,
    maxBodyBytes: number,
    leftover?: Uint8Array,
  ) {
    this.stream = stream;
    this.#cipher = cipher;
    this.#decoder = new FrameDecoder(maxBodyBytes + (cipher === undefined ? 0 : SEAL_OVERHEAD));
    if (leftover !== undefined && leftover.byteLength > 0) {
      this.#ready.push(...this.#decoder.push(leftover));
    }
  }

  /** Whether a whole frame is already buffered (the next `next()` will not read). */
  get hasBuffered(): boolean {
    return this.#ready.length > 0;
  }

  /**
   * The next frame body, opened; `null` when the peer finished the stream cleanly.
   *
   * @throws {NetworkError} `ERR_MESSAGE_TOO_LARGE`, `ERR_MALFORMED_FRAME` (stream ended inside
   * a frame), `ERR_DECRYPT`, or the stream's error.
   */
  async next(): Promise<Uint8Array | null> {
    while (this.#ready.length === 0) {
      const chunk = await this.stream.read();
      if (chunk === null) {
        this.#decoder.end();
        return null;
      }
      this.#ready = this.#decoder.push(chunk);
    }
    const body = this.#ready.shift()!;
    return this.#cipher === undefined ? body : await this.#cipher.open(body);
  }
}
