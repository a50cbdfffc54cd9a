/**
 * Frames over one QUIC stream direction, sealed with the stream's cipher when pqEncryption is
 * on. Reading is pull-based: nothing is read from the stream until the next frame is asked
 * for, so a slow consumer holds the peer back through flow control.
 *
 * @module
 */

import type { FrameCipher, FrameOpener, FrameSealer } from "../handshake/frame_cipher.ts";
import type { QuicStream } from "../quic/stream.ts";
import { NetworkError } from "../errors.ts";
import type { ByteBudget } from "./_byte_budget.ts";
import { FrameDecoder } from "./codec.ts";
import { CHUNK_BYTES, returnChunks, takeChunk } from "./_chunk_pool.ts";

/** Frames up to this size are written with their length prefix in one stream write. */
const SMALL_FRAME_BYTES = 16384;

/** Tag bytes a sealed body carries. */
export const SEAL_OVERHEAD = 16;

/** The u32 length before every frame body. */
const FRAME_HEADER_BYTES = 4;

/**
 * A whole small frame after `before`: its length, then its parts, sealed straight into place.
 */
function smallFrame(
  cipher: FrameCipher | undefined,
  parts: readonly Uint8Array[],
  length: number,
  before: Uint8Array | undefined,
) {
  const sealed = cipher === undefined ? length : length + SEAL_OVERHEAD;
  const start = before?.byteLength ?? 0;
  const frame = new Uint8Array(start + FRAME_HEADER_BYTES + sealed);
  if (before !== undefined) frame.set(before);
  new DataView(frame.buffer).setUint32(start, sealed);
  const sealer = cipher?.sealer(length);
  let at = start + FRAME_HEADER_BYTES;
  for (const part of parts) {
    if (sealer === undefined) frame.set(part, at);
    else sealer.update(part, frame.subarray(at));
    at += part.byteLength;
  }
  sealer?.final(frame.subarray(at));
  return frame;
}

function byteLengthOf(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.byteLength;
  return length;
}

/** Writes frames in call order; each resolves once the stream has taken the frame. */
export class FrameWriter {
  readonly stream: QuicStream;
  readonly #cipher: FrameCipher | undefined;
  #tail: Promise<void> = Promise.resolve();

  constructor(stream: QuicStream, cipher: FrameCipher | undefined) {
    this.stream = stream;
    this.#cipher = cipher;
  }

  /**
   * Seals (the nonce counter is taken now, so call order is wire order) and writes a frame
   * whose body is `body`, or its parts read in order. The body's bytes are read until the
   * returned promise settles, never changed.
   *
   * @param before Bytes to write ahead of the frame, in the same stream write when the frame
   * is small: the handshake's last record leaves in one packet with the first control frame.
   */
  write(
    body: Uint8Array | readonly Uint8Array[],
    fin = false,
    before?: Uint8Array,
  ): Promise<void> {
    const cipher = this.#cipher;
    const parts = body instanceof Uint8Array ? [body] : body;
    const length = byteLengthOf(parts);
    if (length > SMALL_FRAME_BYTES) {
      let sealer: FrameSealer | undefined;
      try {
        sealer = cipher?.sealer(length);
      } catch (e) {
        return Promise.reject(e);
      }
      return this.#queue(async () => {
        if (before !== undefined) await this.stream.write(before);
        if (sealer === undefined) await this.#writeWhole(parts, length, fin);
        else await this.#writeInPieces(parts, length, sealer, fin);
      });
    }
    // One write: half the stream operations for the common small message.
    let frame: Uint8Array;
    try {
      frame = smallFrame(cipher, parts, length, before);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#queue(() => this.stream.write(frame, fin));
  }

  /** Runs `write` after the writes queued before it. */
  #queue(write: () => Promise<void>): Promise<void> {
    const written = this.#tail.then(write);
    // A failed write breaks the stream anyway; later writes fail on their own.
    this.#tail = written.catch(() => {});
    return written;
  }

  /** The header, then the parts as they are: a 16 MiB frame is not copied again. */
  async #writeWhole(parts: readonly Uint8Array[], length: number, fin: boolean): Promise<void> {
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, length);
    await this.stream.write(header);
    for (let i = 0; i < parts.length; i++) {
      await this.stream.write(parts[i], fin && i === parts.length - 1);
    }
  }

  /**
   * Writes a large frame's header, its ciphertext piece by piece as each piece is sealed into
   * a reused chunk (the stream takes a piece before the next is sealed: flow control paces the
   * sealing), then the tag.
   */
  async #writeInPieces(
    parts: readonly Uint8Array[],
    length: number,
    sealer: FrameSealer,
    fin: boolean,
  ): Promise<void> {
    const piece = takeChunk();
    try {
      const header = new Uint8Array(FRAME_HEADER_BYTES);
      new DataView(header.buffer).setUint32(0, length + SEAL_OVERHEAD);
      await this.stream.write(header);
      for (const part of parts) {
        for (let at = 0; at < part.byteLength; at += CHUNK_BYTES) {
          await this.stream.write(sealer.update(part.subarray(at, at + CHUNK_BYTES), piece));
        }
      }
      await this.stream.write(sealer.final(), fin);
    } finally {
      // A settled write holds no reference to it: the stream copied what it took.
      returnChunks([piece]);
    }
  }
}

/** Largest buffer a waiting reader reads a frame into (a QUIC stream read is 64 KiB). */
const READ_CHUNK_BYTES = 65536;

/**
 * How a reader draws on its peer's budget: every frame reserves its announced size when its
 * header arrives. `"wait"` stops reading until the budget has room (request streams, bounded
 * by the serving timeout); `"fail"` throws `ERR_LIMIT_EXCEEDED` (lanes: the sender is told
 * with `APP_ERROR_BUFFER_FULL`).
 */
export interface BudgetUse {
  budget: ByteBudget;
  mode: "wait" | "fail";
}

/** Reads and opens frames one at a time. */
export class FrameReader {
  readonly stream: QuicStream;
  readonly #cipher: FrameCipher | undefined;
  readonly #decoder: FrameDecoder;
  readonly #budget: BudgetUse | undefined;
  /** Bytes this reader has charged to the budget: what it holds and has reserved. */
  #charged = 0;
  #closed = false;
  #ready: Uint8Array[] = [];
  /** The large frame being opened in place as it arrives, and how much of it is opened. */
  #opening: { body: Uint8Array; opener: FrameOpener; opened: number } | undefined;
  /** The unfilled rest of the chunk a waiting reader reads into. */
  #chunk: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  /** The chunks a waiting reader allocated for the frame it is reading. */
  #owned: ArrayBuffer[] = [];

  /**
   * @param maxBodyBytes Largest plaintext body; the sealed limit adds the tag.
   * @param leftover Bytes already read from the stream (after the handshake records).
   * @param budget The peer's budget, for streams whose frames the peer chooses.
   */
  constructor(
    stream: QuicStream,
    cipher: FrameCipher | undefined,
    maxBodyBytes: number,
    leftover?: Uint8Array,
    budget?: BudgetUse,
  ) {
    this.stream = stream;
    this.#cipher = cipher;
    this.#budget = budget;
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
      const decoder = this.#decoder;
      let into: Uint8Array | undefined;
      if (this.#budget?.mode === "wait") {
        // Waiting readers take exactly what they reserved: the rest of the header (room for
        // it first), then the rest of the body its header announced (reserved on arrival).
        // Nothing beyond the frame is read. The body is read into chunks of at most 64 KiB,
        // each filled in place, not into one buffer of its announced size: a peer that stalls
        // its frames makes this node hold about what it sent, in buffers the allocator reuses,
        // and no large buffer per frame whose freeing makes glibc keep its pages (README).
        const header = decoder.pendingBodyBytes < 0;
        const rest = header
          ? FRAME_HEADER_BYTES - decoder.buffered
          : decoder.pendingBodyBytes - decoder.buffered;
        if (header) await this.#account(rest);
        // Never longer than the rest of this frame (or header), so it is used up with it.
        if (this.#chunk.byteLength === 0) {
          this.#chunk = new Uint8Array(Math.min(rest, READ_CHUNK_BYTES));
          this.#owned.push(this.#chunk.buffer);
        }
        into = this.#chunk;
      } else {
        into = decoder.room; // a large frame's body is read straight into its buffer
      }
      let chunk: Uint8Array | null;
      try {
        chunk = await this.stream.read(into);
      } finally {
        // The chunk a read was pending on when the reader closed is no longer the stream's:
        // freed now, like the others, not at the next garbage collection.
        if (this.#closed && into === this.#chunk) this.#chunk.buffer.transfer(0);
      }
      if (this.#closed) return null;
      if (into === this.#chunk && chunk !== null) {
        this.#chunk = this.#chunk.subarray(chunk.byteLength);
      }
      if (chunk === null) {
        this.#decoder.end();
        this.#release();
        return null;
      }
      this.#ready = this.#decoder.push(chunk);
      this.#openArrived();
      // The chunks of a completed frame are its body's or garbage now.
      if (this.#ready.length > 0) this.#owned = [];
      await this.#account(0);
    }
    const body = this.#ready.shift()!;
    // The caller owns the body now and charges what it keeps.
    await this.#account(0);
    return this.#cipher === undefined ? body : this.#openInPlace(this.#cipher, body);
  }

  /**
   * Opens in place what has arrived of a large frame on a lane (the decoder fills a buffer of
   * the frame's size, see `FrameDecoder.room`), so that its last piece leaves only the rest to open. Only
   * while no complete frame waits: frames take their nonces in order.
   */
  #openArrived(): void {
    const cipher = this.#cipher;
    // Waiting readers read into chunks; asking for `room` would allocate the announced size.
    if (cipher === undefined || this.#budget?.mode === "wait" || this.#ready.length > 0) return;
    const room = this.#decoder.room;
    if (room === undefined) return;
    const length = this.#decoder.pendingBodyBytes; // room is the unfilled end of the body
    const filled = length - room.byteLength;
    let opening = this.#opening;
    if (opening === undefined || opening.body.buffer !== room.buffer) {
      const body = new Uint8Array(room.buffer, room.byteOffset - filled, length);
      opening = this.#opening = { body, opener: cipher.opener(length), opened: 0 };
    }
    const end = Math.min(filled, length - SEAL_OVERHEAD);
    if (end <= opening.opened) return;
    opening.opener.update(opening.body.subarray(opening.opened, end));
    opening.opened = end;
  }

  /**
   * Opens a complete frame in place (the reader owns its bytes): the rest of the large frame
   * being opened, or all of another one.
   */
  #openInPlace(cipher: FrameCipher, body: Uint8Array): Uint8Array {
    const length = body.byteLength - SEAL_OVERHEAD;
    let opener: FrameOpener;
    let opened = 0;
    const opening = this.#opening;
    if (opening !== undefined && opening.body.buffer === body.buffer) {
      this.#opening = undefined;
      ({ opener, opened } = opening);
    } else {
      opener = cipher.opener(body.byteLength);
    }
    opener.update(body.subarray(opened, length));
    opener.final(body.subarray(length));
    return body.subarray(0, length);
  }

  /**
   * Frees what this reader holds (a partial frame's buffer at once) and returns everything it
   * charged, now and when a pending read or reservation completes later; for a reader that
   * stops reading.
   */
  close(): void {
    this.#closed = true;
    this.#decoder.clear();
    this.#ready = [];
    this.#opening = undefined;
    // A stalled frame's chunks are freed now, not at the next garbage collection (the one a
    // pending read may still fill is freed once that read settles, in `next`).
    for (const buffer of this.#owned) {
      if (buffer !== this.#chunk.buffer) buffer.transfer(0);
    }
    this.#owned = [];
    this.#release();
  }

  /**
   * Brings the charge to what the reader holds, plus the rest of an announced frame, plus
   * `headroom`; releases any excess.
   */
  async #account(headroom: number): Promise<void> {
    const use = this.#budget;
    if (use === undefined) return;
    const decoder = this.#decoder;
    let held = decoder.buffered;
    for (const body of this.#ready) held += body.byteLength;
    const announced = decoder.pendingBodyBytes;
    const rest = announced < 0 ? 0 : announced - decoder.buffered;
    const target = held + Math.max(rest, headroom);
    const delta = target - this.#charged;
    if (delta <= 0) {
      if (headroom === 0) this.#release(target);
      return;
    }
    const { budget, mode } = use;
    if (mode === "fail") {
      if (budget.used > 0 && budget.used + delta > budget.limit) {
        throw new NetworkError(
          "ERR_LIMIT_EXCEEDED",
          `A frame of ${announced} bytes does not fit the peer's buffer: ${budget.used} of ` +
            `${budget.limit} bytes are held`,
          { cause: { bufferedBytes: budget.used + delta } },
        );
      }
      budget.charge(delta);
    } else {
      await budget.reserve(delta);
    }
    this.#charged += delta;
    if (this.#closed) this.#release();
  }

  #release(keep = 0): void {
    if (this.#budget === undefined || this.#charged <= keep) return;
    this.#budget.budget.release(this.#charged - keep);
    this.#charged = keep;
  }
}
