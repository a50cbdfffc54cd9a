/**
 * Length-prefixed records: how handshake messages travel on a QUIC stream, which is a byte
 * stream with no message boundaries of its own. A record is a big-endian u32 length followed by
 * that many bytes.
 *
 * @module
 */

import { NetworkError } from "../errors.ts";
import { requireInteger } from "../_validate.ts";
import { MAX_HANDSHAKE_MESSAGE } from "./_messages.ts";

/** Default and suggested maximum record payload for the handshake: 16 KiB. */
export const MAX_HANDSHAKE_RECORD: number = MAX_HANDSHAKE_MESSAGE;

const PREFIX = 4;

/** Options of {@linkcode encodeRecord} and {@linkcode RecordDecoder}. */
export interface RecordOptions {
  /**
   * Largest payload accepted, in bytes. A peer announcing more is refused at once, before any
   * of it is buffered.
   *
   * @default {16384}
   */
  maxSize?: number;
}

function maxSizeOf(options: RecordOptions | undefined): number {
  const { maxSize = MAX_HANDSHAKE_RECORD } = options ?? {};
  requireInteger("maxSize", maxSize, 0, 0xffff_ffff);
  return maxSize;
}

function tooLarge(size: number, max: number): NetworkError {
  return new NetworkError(
    "ERR_MESSAGE_TOO_LARGE",
    `Record of ${size} bytes exceeds the maximum of ${max} bytes`,
  );
}

/**
 * Prefixes a payload with its u32 length.
 *
 * @example
 * ```ts
 * import { encodeRecord } from "@cretoai/network/handshake";
 *
 * const record = encodeRecord(new Uint8Array([7, 8]));
 * console.assert(record.join() === "0,0,0,2,7,8");
 * ```
 *
 * @param payload The bytes to frame.
 * @param options See {@linkcode RecordOptions}.
 * @returns The record: 4-byte length then the payload.
 * @throws {NetworkError} `ERR_MESSAGE_TOO_LARGE` when the payload exceeds `maxSize`.
 */
export function encodeRecord(payload: Uint8Array, options?: RecordOptions): Uint8Array {
  const max = maxSizeOf(options);
  if (payload.byteLength > max) throw tooLarge(payload.byteLength, max);
  const out = new Uint8Array(PREFIX + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength);
  out.set(payload, PREFIX);
  return out;
}

/**
 * Reassembles records from stream chunks of any size.
 *
 * @example Reading records across chunk boundaries
 * ```ts
 * import { encodeRecord, RecordDecoder } from "@cretoai/network/handshake";
 *
 * const bytes = new Uint8Array([...encodeRecord(new Uint8Array([1])), ...encodeRecord(new Uint8Array([2, 3]))]);
 * const decoder = new RecordDecoder();
 * const records = [...decoder.push(bytes.subarray(0, 6)), ...decoder.push(bytes.subarray(6))];
 * console.assert(records.length === 2 && records[1].join() === "2,3");
 * decoder.end();
 * ```
 */
export class RecordDecoder {
  readonly #max: number;
  #buf = new Uint8Array(0);

  /**
   * Makes a decoder.
   *
   * @param options See {@linkcode RecordOptions}.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` when `maxSize` is not a u32.
   */
  constructor(options?: RecordOptions) {
    this.#max = maxSizeOf(options);
  }

  /**
   * Adds a chunk read from the stream and returns the records it completed.
   *
   * @example
   * ```ts
   * import { RecordDecoder } from "@cretoai/network/handshake";
   *
   * const decoder = new RecordDecoder();
   * console.assert(decoder.push(new Uint8Array([0, 0])).length === 0);
   * console.assert(decoder.push(new Uint8Array([0, 1, 42]))[0][0] === 42);
   * ```
   *
   * @param chunk Bytes in stream order; copied as needed, so the caller may reuse it.
   * @returns The completed records, in order (possibly none).
   * @throws {NetworkError} `ERR_MESSAGE_TOO_LARGE` when a record announces more than `maxSize`.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.#buf.byteLength + chunk.byteLength);
    joined.set(this.#buf);
    joined.set(chunk, this.#buf.byteLength);
    const records: Uint8Array[] = [];
    let at = 0;
    while (joined.byteLength - at >= PREFIX) {
      const size = new DataView(joined.buffer, at, PREFIX).getUint32(0);
      if (size > this.#max) {
        this.#buf = new Uint8Array(0);
        throw tooLarge(size, this.#max);
      }
      if (joined.byteLength - at - PREFIX < size) break;
      records.push(joined.slice(at + PREFIX, at + PREFIX + size));
      at += PREFIX + size;
    }
    this.#buf = joined.slice(at);
    return records;
  }

  /**
   * Returns and forgets the bytes buffered after the last complete record, for a caller that
   * switches the stream to another use after the handshake.
   *
   * @example
   * ```ts
   * import { RecordDecoder } from "@cretoai/network/handshake";
   *
   * const decoder = new RecordDecoder();
   * decoder.push(new Uint8Array([0, 0, 0, 1, 9, 0xaa]));
   * console.assert(decoder.takeRemaining().join() === "170");
   * ```
   *
   * @returns The leftover bytes (maybe empty).
   */
  takeRemaining(): Uint8Array {
    const rest = this.#buf;
    this.#buf = new Uint8Array(0);
    return rest;
  }

  /**
   * Checks that the stream did not end in the middle of a record.
   *
   * @example
   * ```ts
   * import { NetworkError } from "@cretoai/network";
   * import { RecordDecoder } from "@cretoai/network/handshake";
   *
   * const decoder = new RecordDecoder();
   * decoder.push(new Uint8Array([0, 0, 0, 5, 1]));
   * try {
   *   decoder.end();
   * } catch (e) {
   *   console.assert(e instanceof NetworkError && e.code === "ERR_MALFORMED_FRAME");
   * }
   * ```
   *
   * @throws {NetworkError} `ERR_MALFORMED_FRAME` when a partial record is buffered.
   */
  end(): void {
    if (this.#buf.byteLength === 0) return;
    const have = this.#buf.byteLength;
    const detail = have < PREFIX
      ? `${have} of the 4 length bytes`
      : `${have - PREFIX} of ${new DataView(this.#buf.buffer).getUint32(0)} payload bytes`;
    throw new NetworkError(
      "ERR_MALFORMED_FRAME",
      `Stream ended inside a record: it carried ${detail}`,
    );
  }
}
