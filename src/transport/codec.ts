/**
 * The messages peers exchange and their wire format: length-prefixed frames whose body starts
 * with a version byte and a type byte.
 *
 * ```
 * frame   = length u32 | body                  (length counts the body only)
 * body    = version u8 (=1) | type u8 | payload (sealed with ChaCha20-Poly1305 when pqEncryption is on)
 * vertex    type 1   payload = data
 * consensus type 2   payload = data
 * ping      type 3   payload = timestamp f64
 * pong      type 4   payload = timestamp f64
 * other types        payload = data, delivered as { type: "unknown", code, data }
 * ```
 *
 * @module
 */

import { describe, NetworkError } from "../errors.ts";

/** Version byte of the message body format. */
export const MESSAGE_VERSION = 1;

/** Bytes a message body adds to its payload: version and type. */
export const MESSAGE_HEADER_BYTES = 2;

const LENGTH_BYTES = 4;
/** Bodies above this are assembled in one buffer of their size (a stream read is 64 KiB). */
const LARGE_BODY_BYTES = 65536;

const TYPE_CODES = { vertex: 1, consensus: 2, ping: 3, pong: 4 } as const;

/**
 * A message of the network: DAG vertices, consensus messages, application pings and pongs,
 * and, from newer peers, types this version does not know.
 *
 * @example
 * ```ts
 * import type { NetworkMessage } from "@cretoai/network";
 *
 * const vertex: NetworkMessage = { type: "vertex", data: new Uint8Array([1, 2, 3]) };
 * const ping: NetworkMessage = { type: "ping", timestamp: Date.now() };
 * ```
 */
export type NetworkMessage =
  | {
    /** A DAG vertex. */
    type: "vertex";
    /** The encoded vertex. */
    data: Uint8Array;
  }
  | {
    /** A consensus protocol message. */
    type: "consensus";
    /** The encoded message. */
    data: Uint8Array;
  }
  | {
    /** An application-level ping. */
    type: "ping";
    /** Sender's timestamp (any finite number, usually milliseconds since the epoch). */
    timestamp: number;
  }
  | {
    /** The answer to an application-level ping. */
    type: "pong";
    /** The timestamp of the ping answered. */
    timestamp: number;
  }
  | {
    /** A message type this version does not know, sent by a newer peer. */
    type: "unknown";
    /** The type code on the wire: 0 or 5-255. */
    code: number;
    /** The payload, undecoded. */
    data: Uint8Array;
  };

/** The type names of {@linkcode NetworkMessage}. */
export type NetworkMessageType = NetworkMessage["type"];

function malformed(message: string): NetworkError {
  return new NetworkError("ERR_MALFORMED_FRAME", message);
}

/**
 * Encodes a message body: version, type code and payload (not the length prefix).
 *
 * @example
 * ```ts
 * import { encodeMessage } from "@cretoai/network/transport";
 *
 * const body = encodeMessage({ type: "vertex", data: new Uint8Array([7]) });
 * console.assert(body.join() === "1,1,7");
 * ```
 *
 * @param message The message.
 * @returns The body bytes.
 * @throws {TypeError} when the message does not have the shape of its type.
 */
export function encodeMessage(message: NetworkMessage): Uint8Array {
  const type = (message as { type?: unknown } | null)?.type;
  switch (type) {
    case "vertex":
    case "consensus":
      return withHeader(TYPE_CODES[type], dataOf(message));
    case "ping":
    case "pong": {
      const { timestamp } = message as { timestamp: unknown };
      if (typeof timestamp !== "number" || !Number.isFinite(timestamp)) {
        throw new TypeError(
          `Cannot encode a ${type} message as 'timestamp' must be a finite number: current ` +
            `value is ${describe(timestamp)}`,
        );
      }
      const body = withHeader(TYPE_CODES[type], new Uint8Array(8));
      new DataView(body.buffer).setFloat64(MESSAGE_HEADER_BYTES, timestamp);
      return body;
    }
    case "unknown": {
      const { code } = message as { code: unknown };
      if (
        typeof code !== "number" || !Number.isInteger(code) || code < 0 || code > 255 ||
        (code >= 1 && code <= 4)
      ) {
        throw new TypeError(
          `Cannot encode an unknown message as 'code' must be an integer 0 or 5-255: current ` +
            `value is ${describe(code)}`,
        );
      }
      return withHeader(code, dataOf(message));
    }
    default:
      throw new TypeError(
        `Cannot encode a message as 'type' must be "vertex", "consensus", "ping", "pong" or ` +
          `"unknown": current value is ${describe(type)}`,
      );
  }
}

/**
 * Encodes a vertex or consensus message like {@linkcode encodeMessage}, into buffers from
 * `take` (each filled to its length, the last one as far as needed) instead of one buffer of
 * the body's size. Other messages are encoded by {@linkcode encodeMessage}, in one part.
 *
 * @param message The message.
 * @param take Makes the next buffer to fill.
 * @returns The body, in parts to be read in order (views of the buffers from `take`).
 * @throws {TypeError} when the message does not have the shape of its type.
 * @internal
 */
export function encodeMessageParts(
  message: NetworkMessage,
  take: () => Uint8Array,
): Uint8Array[] {
  const type = (message as { type?: unknown } | null)?.type;
  if (type !== "vertex" && type !== "consensus") return [encodeMessage(message)];
  const payload = dataOf(message);
  const parts: Uint8Array[] = [];
  let at = -MESSAGE_HEADER_BYTES;
  while (at < payload.byteLength) {
    const part = take();
    let filled = 0;
    if (at < 0) {
      part[0] = MESSAGE_VERSION;
      part[1] = TYPE_CODES[type];
      filled = MESSAGE_HEADER_BYTES;
      at = 0;
    }
    const piece = payload.subarray(at, at + part.byteLength - filled);
    part.set(piece, filled);
    at += piece.byteLength;
    parts.push(part.subarray(0, filled + piece.byteLength));
  }
  return parts;
}

/**
 * Decodes a message body made by {@linkcode encodeMessage}. Unknown type codes become
 * `{ type: "unknown", code, data }`.
 *
 * @example
 * ```ts
 * import { decodeMessage } from "@cretoai/network/transport";
 *
 * const message = decodeMessage(new Uint8Array([1, 9, 42]));
 * console.assert(message.type === "unknown" && message.code === 9);
 * ```
 *
 * @param body The body bytes (after the length prefix, after opening the seal).
 * @returns The message; its `data` is a view into `body`.
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` for a short body, another version, or a ping or
 * pong whose payload is not 8 bytes.
 */
export function decodeMessage(body: Uint8Array): NetworkMessage {
  if (body.byteLength < MESSAGE_HEADER_BYTES) {
    throw malformed(`Message body of ${body.byteLength} bytes is shorter than its 2-byte header`);
  }
  if (body[0] !== MESSAGE_VERSION) {
    throw malformed(`Message version ${body[0]} is not supported (expected ${MESSAGE_VERSION})`);
  }
  const code = body[1];
  const payload = body.subarray(MESSAGE_HEADER_BYTES);
  switch (code) {
    case TYPE_CODES.vertex:
      return { type: "vertex", data: payload };
    case TYPE_CODES.consensus:
      return { type: "consensus", data: payload };
    case TYPE_CODES.ping:
    case TYPE_CODES.pong: {
      if (payload.byteLength !== 8) {
        throw malformed(
          `A ${code === TYPE_CODES.ping ? "ping" : "pong"} payload must be 8 bytes: it has ` +
            `${payload.byteLength}`,
        );
      }
      const timestamp = new DataView(payload.buffer, payload.byteOffset, 8).getFloat64(0);
      return code === TYPE_CODES.ping ? { type: "ping", timestamp } : { type: "pong", timestamp };
    }
    default:
      return { type: "unknown", code, data: payload };
  }
}

/**
 * Prefixes a body with its u32 length.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "@cretoai/network/transport";
 *
 * console.assert(encodeFrame(new Uint8Array([5])).join() === "0,0,0,1,5");
 * ```
 *
 * @param body The frame body.
 * @returns `length u32 | body`.
 */
export function encodeFrame(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(LENGTH_BYTES + body.byteLength);
  new DataView(frame.buffer).setUint32(0, body.byteLength);
  frame.set(body, LENGTH_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. Chunks are kept as they come and each body is
 * copied once, so a 16 MiB frame in 64 KiB chunks costs one copy, not 256 growing ones. A
 * reader that asks for {@linkcode FrameDecoder.room} gets a body above 64 KiB in a buffer of
 * its announced size to read straight into; otherwise a body is kept in the chunks that
 * arrived until it is complete, so a frame that stalls holds what arrived, not a buffer of the
 * size its header announced. {@linkcode FrameDecoder.clear} frees a body's buffer on the spot:
 * a reader that gives up on a stalled frame returns its memory without waiting for the
 * garbage collector.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "@cretoai/network/transport";
 *
 * const decoder = new FrameDecoder(1024);
 * const wire = encodeFrame(new Uint8Array([1, 2, 3]));
 * console.assert(decoder.push(wire.subarray(0, 5)).length === 0);
 * console.assert(decoder.push(wire.subarray(5))[0].join() === "1,2,3");
 * decoder.end();
 * ```
 */
export class FrameDecoder {
  /** Largest body accepted, in bytes. */
  readonly maxBodyBytes: number;
  #chunks: Uint8Array[] = [];
  #chunked = 0; // bytes in #chunks
  #need = -1; // body length of the frame being assembled, -1 while its header is incomplete
  #body: Uint8Array<ArrayBuffer> | undefined; // a large frame's body, filled up to #filled
  #filled = 0;

  /**
   * Makes a decoder.
   *
   * @param maxBodyBytes Largest body accepted; a header announcing more is refused before any
   * of the body is buffered.
   */
  constructor(maxBodyBytes: number) {
    this.maxBodyBytes = maxBodyBytes;
  }

  /**
   * Bytes held that do not form a whole frame yet.
   *
   * @returns The count.
   */
  get buffered(): number {
    return this.#chunked + this.#filled;
  }

  /**
   * Body length the frame being assembled announced, or -1 while its header is incomplete;
   * lets a reader reserve memory for a frame before its body arrives.
   *
   * @returns The announced length, or -1.
   */
  get pendingBodyBytes(): number {
    return this.#need;
  }

  /**
   * The unfilled rest of a large frame's body while it is being assembled, else `undefined`:
   * a reader may read the stream straight into it and `push` the view it got, which costs no
   * copy and no garbage. The first call after a large frame's header allocates the body's
   * buffer (its announced size) and moves what is buffered into it.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@cretoai/network/transport";
   *
   * const decoder = new FrameDecoder(1 << 20);
   * decoder.push(new Uint8Array([0, 2, 0, 0])); // a header announcing 131,072 bytes
   * const room = decoder.room!;
   * room.fill(9); // as a stream read into it would
   * console.assert(decoder.push(room)[0].byteLength === 131072);
   * ```
   *
   * @returns A view of the body buffer from the first byte not yet received.
   */
  get room(): Uint8Array | undefined {
    if (this.#body === undefined && this.#need > LARGE_BODY_BYTES) {
      // Allocated when a reader means to read into it, with what is buffered moved in.
      this.#body = new Uint8Array(this.#need);
      this.#filled = this.#takeInto(this.#body, 0);
    }
    if (this.#body === undefined || this.#chunked > 0) return undefined;
    return this.#body.subarray(this.#filled);
  }

  /**
   * Adds bytes read from the stream and returns the bodies they completed.
   *
   * @param chunk The next bytes; kept by reference, so the caller must not reuse its buffer.
   *   A view of {@linkcode FrameDecoder.room} from its start counts as received in place.
   * @returns Completed bodies, in order.
   * @throws {NetworkError} `ERR_MESSAGE_TOO_LARGE` when a header announces more than
   * `maxBodyBytes`.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const assembling = this.#body;
    if (
      assembling !== undefined && this.#chunked === 0 && chunk.buffer === assembling.buffer &&
      chunk.byteOffset === assembling.byteOffset + this.#filled &&
      this.#filled + chunk.byteLength <= assembling.byteLength
    ) {
      this.#filled += chunk.byteLength; // read into room: already in place
    } else if (chunk.byteLength > 0) {
      const last = this.#chunks.at(-1);
      if (
        last !== undefined && last.buffer === chunk.buffer &&
        last.byteOffset + last.byteLength === chunk.byteOffset
      ) {
        // The next bytes of the same buffer (a reader filling a chunk in place): one view.
        this.#chunks[this.#chunks.length - 1] = new Uint8Array(
          last.buffer,
          last.byteOffset,
          last.byteLength + chunk.byteLength,
        );
      } else {
        this.#chunks.push(chunk);
      }
      this.#chunked += chunk.byteLength;
    }
    const bodies: Uint8Array[] = [];
    for (;;) {
      if (this.#need < 0) {
        if (this.#chunked < LENGTH_BYTES) break;
        const header = this.#take(LENGTH_BYTES);
        const length = new DataView(header.buffer, header.byteOffset, LENGTH_BYTES).getUint32(0);
        if (length > this.maxBodyBytes) {
          throw new NetworkError(
            "ERR_MESSAGE_TOO_LARGE",
            `Frame of ${length} bytes exceeds the maximum of ${this.maxBodyBytes} bytes`,
            // The transport reports the announced size as the limit violation's value.
            { cause: { announcedBytes: length } },
          );
        }
        this.#need = length;
      }
      const body = this.#body;
      if (body !== undefined) {
        this.#filled += this.#takeInto(body, this.#filled);
        if (this.#filled < body.byteLength) break;
        this.#body = undefined;
        this.#filled = 0;
        bodies.push(body);
      } else {
        if (this.#chunked < this.#need) break;
        bodies.push(this.#take(this.#need));
      }
      this.#need = -1;
    }
    return bodies;
  }

  /**
   * Checks that the stream did not end inside a frame.
   *
   * @throws {NetworkError} `ERR_MALFORMED_FRAME` when part of a frame is buffered.
   */
  end(): void {
    if (this.buffered === 0 && this.#need < 0) return;
    throw malformed(
      this.#need < 0
        ? `Stream ended inside a frame header (${this.buffered} of 4 bytes)`
        : `Stream ended inside a frame: ${this.buffered} of ${this.#need} body bytes`,
    );
  }

  /**
   * Drops everything buffered, the partial frame included, and frees a large frame's buffer
   * at once; the decoder then expects a frame header again.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@cretoai/network/transport";
   *
   * const decoder = new FrameDecoder(1 << 20);
   * decoder.push(new Uint8Array([0, 1, 0, 0, 7, 7, 7])); // a 65,536-byte frame, 3 bytes in
   * console.assert(decoder.buffered === 3);
   * decoder.clear();
   * console.assert(decoder.buffered === 0 && decoder.pendingBodyBytes === -1);
   * ```
   */
  clear(): void {
    // Detaching returns the backing store now; a large one is unmapped at once (unless glibc
    // raised its mmap threshold: see README's security section).
    this.#body?.buffer.transfer(0);
    this.#body = undefined;
    this.#filled = 0;
    this.#chunks = [];
    this.#chunked = 0;
    this.#need = -1;
  }

  /** Removes `n` bytes from the front; a view when one chunk holds them, else one copy. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first !== undefined && first.byteLength >= n) {
      this.#chunked -= n;
      if (first.byteLength === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    this.#takeInto(out, 0);
    return out;
  }

  /** Moves buffered bytes into `out` from `at` until it is full or nothing is left. */
  #takeInto(out: Uint8Array, at: number): number {
    const start = at;
    while (at < out.byteLength && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const used = Math.min(chunk.byteLength, out.byteLength - at);
      out.set(chunk.subarray(0, used), at);
      at += used;
      if (used === chunk.byteLength) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    this.#chunked -= at - start;
    return at - start;
  }
}

function dataOf(message: NetworkMessage): Uint8Array {
  const { data, type } = message as { data: unknown; type: string };
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot encode a ${type} message as 'data' must be a Uint8Array: current value is ${
        describe(data)
      }`,
    );
  }
  return data;
}

function withHeader(code: number, payload: Uint8Array): Uint8Array {
  const body = new Uint8Array(MESSAGE_HEADER_BYTES + payload.byteLength);
  body[0] = MESSAGE_VERSION;
  body[1] = code;
  body.set(payload, MESSAGE_HEADER_BYTES);
  return body;
}
