/**
 * Byte writer and reader shared by the identity, handshake and DHT record encodings.
 * Big-endian, bounds checked; the reader reports bad input through an error its caller makes,
 * so a key file, a handshake message and a DHT record fail with their own error types and a
 * message that says where.
 *
 * @module
 */

import { Buffer } from "node:buffer";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Why input was refused: truncated or inconsistent, or a field over its size limit. */
export type ByteErrorKind = "malformed" | "too-large";

/** Makes the error a {@linkcode ByteReader} throws, from its message and kind. */
export type ByteErrorFactory = (message: string, kind: ByteErrorKind) => Error;

/** Above this length, `equalBytes` asks the runtime's `memcmp` instead of looping in JavaScript. */
const NATIVE_COMPARE_BYTES = 64;

/**
 * Whether two byte strings are equal (not in constant time: for public values). Long ones go to
 * `Buffer.compare` (native): a reconnect's dialer finds the listener's 7 KB certificate among
 * those it verified last by comparing bytes, 10 µs each in a JavaScript loop against 0.1 µs.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  if (a.byteLength > NATIVE_COMPARE_BYTES) return Buffer.compare(a, b) === 0;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `"00"` to `"ff"`, by byte value. */
const HEX_PAIRS = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/**
 * Lowercase hex of `bytes`, from a table: two new strings per byte (`toString`, `padStart`)
 * were 18 KiB of garbage per reconnect (fourteen hashes and ids made into keys), more than any
 * other function made; 6 KiB with the table.
 */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.byteLength; i++) out += HEX_PAIRS[bytes[i]];
  return out;
}

/** The bytes of several arrays, one after another, in a new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** UTF-8 length of a string in bytes. */
export function utf8Length(s: string): number {
  return encoder.encode(s).byteLength;
}

/**
 * Builds a byte string from fields; grows as needed. Each array it allocates costs more than
 * copying a few KiB: give the size when it is known, and `finish` returns the buffer itself
 * when it is exactly full.
 */
export class ByteWriter {
  #buf: Uint8Array<ArrayBuffer>;
  #len = 0;

  constructor(capacity = 256) {
    this.#buf = new Uint8Array(capacity);
  }

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

  /** A non-negative safe integer as 8 bytes. */
  u64(value: number): this {
    const at = this.#reserve(8);
    new DataView(this.#buf.buffer).setBigUint64(at, BigInt(value));
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

  /** Writes a string as UTF-8 with a u16 length. */
  string16(value: string): this {
    return this.vec16(encoder.encode(value));
  }

  finish(): Uint8Array {
    return this.#len === this.#buf.byteLength ? this.#buf : this.#buf.slice(0, this.#len);
  }
}

/** Reads fields from a byte string, failing with the caller's error on bad input. */
export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #what: string;
  readonly #error: ByteErrorFactory;
  #pos = 0;

  /**
   * @param buf The bytes to read.
   * @param what What is being read, for error messages ("ClientHello", "identity file").
   * @param error Makes the error for truncated, malformed or over-long input.
   */
  constructor(buf: Uint8Array, what: string, error: ByteErrorFactory) {
    this.#buf = buf;
    this.#what = what;
    this.#error = error;
  }

  /** Throws this reader's error for malformed input with the given detail. */
  fail(detail: string): never {
    throw this.#error(`Malformed ${this.#what}: ${detail}`, "malformed");
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

  /** Reads 8 bytes; fails unless they hold a safe integer. */
  u64(field: string): number {
    const at = this.#take(8, field);
    const v = new DataView(this.#buf.buffer, this.#buf.byteOffset).getBigUint64(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.fail(`'${field}' must be a safe integer: current value is ${v}`);
    }
    return Number(v);
  }

  /** Copies `n` bytes, so that the result outlives a caller-owned buffer. */
  bytes(n: number, field: string): Uint8Array {
    const at = this.#take(n, field);
    return this.#buf.slice(at, at + n);
  }

  /** Reads a u16 length then the bytes; a length over `max` is refused as too large. */
  vec16(field: string, max = 0xffff): Uint8Array {
    const n = this.u16(field);
    if (n > max) {
      throw this.#error(
        `Refused ${this.#what}: '${field}' must be at most ${max} bytes: current size is ${n}`,
        "too-large",
      );
    }
    return this.bytes(n, field);
  }

  vec32(field: string): Uint8Array {
    return this.bytes(this.u32(field), field);
  }

  /** Reads a UTF-8 string with a u16 length of at most `max` bytes. */
  string16(field: string, max = 0xffff): string {
    const bytes = this.vec16(field, max);
    try {
      return decoder.decode(bytes);
    } catch {
      return this.fail(`'${field}' is not UTF-8`);
    }
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
