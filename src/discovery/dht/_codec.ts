/**
 * Length-prefixed binary writer and reader for DHT records. The reader refuses truncated
 * input and over-long fields with {@linkcode DhtRecordError}, so decoders need no checks of
 * their own beyond the field limits they pass in.
 *
 * @module
 */

import { DhtRecordError } from "./record_error.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Appends fields to a growing buffer. */
export class Writer {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u16(v: number): this {
    this.#reserve(2);
    this.#view.setUint16(this.#len, v);
    this.#len += 2;
    return this;
  }

  /** A non-negative safe integer as 8 bytes. */
  u64(v: number): this {
    this.#reserve(8);
    this.#view.setBigUint64(this.#len, BigInt(v));
    this.#len += 8;
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    return this;
  }

  /** Bytes with a 16-bit length prefix. */
  bytes16(bytes: Uint8Array): this {
    return this.u16(bytes.length).raw(bytes);
  }

  /** A UTF-8 string with a 16-bit length prefix. */
  string16(s: string): this {
    return this.bytes16(encoder.encode(s));
  }

  get length(): number {
    return this.#len;
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Reads fields in order; every failure is a `malformed` or `too-large` DhtRecordError. */
export class Reader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  #pos = 0;

  constructor(buf: Uint8Array, what: string) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#what = what;
  }

  get position(): number {
    return this.#pos;
  }

  #need(n: number, field: string): void {
    if (this.#pos + n > this.#buf.length) {
      throw new DhtRecordError(
        "malformed",
        `Malformed ${this.#what}: '${field}' needs ${n} bytes at offset ${this.#pos}, ` +
          `only ${this.#buf.length - this.#pos} left`,
      );
    }
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#buf[this.#pos++];
  }

  u16(field: string): number {
    this.#need(2, field);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }

  u64(field: string): number {
    this.#need(8, field);
    const v = this.#view.getBigUint64(this.#pos);
    this.#pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new DhtRecordError(
        "malformed",
        `Malformed ${this.#what}: '${field}' must be a safe integer: current value is ${v}`,
      );
    }
    return Number(v);
  }

  raw(n: number, field: string): Uint8Array {
    this.#need(n, field);
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  bytes16(field: string, max: number): Uint8Array {
    const n = this.u16(field);
    if (n > max) {
      throw new DhtRecordError(
        "too-large",
        `Refused ${this.#what}: '${field}' must be at most ${max} bytes: current size is ${n}`,
      );
    }
    return this.raw(n, field);
  }

  string16(field: string, max: number): string {
    const bytes = this.bytes16(field, max);
    try {
      return decoder.decode(bytes);
    } catch {
      throw new DhtRecordError("malformed", `Malformed ${this.#what}: '${field}' is not UTF-8`);
    }
  }

  end(): void {
    if (this.#pos !== this.#buf.length) {
      throw new DhtRecordError(
        "malformed",
        `Malformed ${this.#what}: ${this.#buf.length - this.#pos} trailing bytes`,
      );
    }
  }
}

/** UTF-8 length of a string. */
export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}
