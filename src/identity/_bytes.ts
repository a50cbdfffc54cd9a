/**
 * Byte writer and reader shared by the identity and handshake encodings. Big-endian, bounds
 * checked; the reader reports truncation as a `NetworkError` with the code its caller chose, so
 * a key file and a handshake message fail with their own codes and a message that says where.
 *
 * @module
 */

import { NetworkError, type NetworkErrorCode } from "../errors.ts";

/** Builds a byte string from fields; grows as needed. */
export class ByteWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #reserve(n: number): number {
    const at = this.#len;
    if (at + n > this.#buf.byteLength) {
      const next = new Uint8Array(Math.max(this.#buf.byteLength * 2, at + n));
      next.set(this.#buf.subarray(0, at));
      this.#buf = next;
    }
    this.#len = at + n;
    return at;
  }

  u8(value: number): this {
    // Reserve first: it may replace #buf, so #buf must be read after it.
    const at = this.#reserve(1);
    this.#buf[at] = value;
    return this;
  }

  u16(value: number): this {
    const at = this.#reserve(2);
    this.#buf[at] = value >>> 8;
    this.#buf[at + 1] = value & 0xff;
    return this;
  }

  u32(value: number): this {
    const at = this.#reserve(4);
    new DataView(this.#buf.buffer).setUint32(at, value);
    return this;
  }

  bytes(value: Uint8Array): this {
    const at = this.#reserve(value.byteLength);
    this.#buf.set(value, at);
    return this;
  }

  /** Writes a u16 length then the bytes; callers keep fields under 64 KiB by construction. */
  vec16(value: Uint8Array): this {
    return this.u16(value.byteLength).bytes(value);
  }

  /** Writes a u32 length then the bytes. */
  vec32(value: Uint8Array): this {
    return this.u32(value.byteLength).bytes(value);
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Reads fields from a byte string, failing with a typed error on truncation. */
export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #what: string;
  readonly #code: NetworkErrorCode;
  #pos = 0;

  /**
   * @param buf The bytes to read.
   * @param what What is being read, for error messages ("ClientHello", "identity file").
   * @param code The error code for truncated or malformed input.
   */
  constructor(buf: Uint8Array, what: string, code: NetworkErrorCode) {
    this.#buf = buf;
    this.#what = what;
    this.#code = code;
  }

  /** Throws this reader's error type with the given detail. */
  fail(detail: string): never {
    throw new NetworkError(this.#code, `Malformed ${this.#what}: ${detail}`);
  }

  #take(n: number, field: string): number {
    const at = this.#pos;
    if (at + n > this.#buf.byteLength) {
      this.fail(
        `truncated in '${field}' at offset ${at}: needed ${n} bytes, ${
          this.#buf.byteLength - at
        } left`,
      );
    }
    this.#pos = at + n;
    return at;
  }

  u8(field: string): number {
    return this.#buf[this.#take(1, field)];
  }

  u16(field: string): number {
    const at = this.#take(2, field);
    return (this.#buf[at] << 8) | this.#buf[at + 1];
  }

  u32(field: string): number {
    const at = this.#take(4, field);
    return new DataView(this.#buf.buffer, this.#buf.byteOffset).getUint32(at);
  }

  /** Copies `n` bytes, so that the result outlives a caller-owned buffer. */
  bytes(n: number, field: string): Uint8Array {
    const at = this.#take(n, field);
    return this.#buf.slice(at, at + n);
  }

  vec16(field: string): Uint8Array {
    return this.bytes(this.u16(field), field);
  }

  vec32(field: string): Uint8Array {
    return this.bytes(this.u32(field), field);
  }

  /** Offset of the next unread byte. */
  get offset(): number {
    return this.#pos;
  }

  /** Fails unless every byte was read: trailing bytes would be unauthenticated slack. */
  end(): void {
    const left = this.#buf.byteLength - this.#pos;
    if (left !== 0) this.fail(`${left} unexpected trailing bytes after offset ${this.#pos}`);
  }
}
