/**
 * Input generators of the fuzzers: seeded mutation of valid encodings (bit flips, boundary
 * values in length fields, truncation, growth, splicing two seeds, JSON field swaps) and
 * random bytes. Everything is drawn from a {@linkcode Prng}, so a seed replays a campaign.
 *
 * @module
 */

import type { Prng } from "../_prng.ts";

/** Byte values that sit on boundaries decoders compare against. */
const INTERESTING_U8 = [0, 1, 2, 0x3f, 0x40, 0x7f, 0x80, 0xfe, 0xff];
/** u16/u32 values for length and count fields: zero, one, signed and unsigned edges. */
const INTERESTING_U32 = [
  0,
  1,
  0x7f,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fff_ffff,
  0x8000_0000,
  0xffff_ffff,
];
/** Values a JSON field can be swapped for: wrong types, edges, and oversized ones. */
const INTERESTING_JSON: readonly unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e300,
  -1e300,
  2 ** 53 + 2,
  "",
  "x".repeat(600),
  "127.0.0.1:1",
  "::1",
  "0".repeat(32),
  [],
  [null],
  [{}],
  [{ hostname: "127.0.0.1", port: 0 }],
  [{ hostname: "256.1.1.1", port: 1 }],
  Array.from({ length: 9 }, (_, i) => ({ hostname: "10.0.0.1", port: i + 1 })),
  {},
  { hostname: 7, port: "x" },
];

/** Random bytes, mostly short (most decoders fail early), sometimes up to `maxBytes`. */
export function randomInput(rng: Prng, maxBytes: number): Uint8Array {
  const limit = rng.next() < 0.8 ? Math.min(maxBytes, 64) : maxBytes;
  return rng.bytes(rng.int(0, limit));
}

/**
 * One to four stacked mutations of `seed` (never changed itself), bounded by `maxBytes`.
 *
 * @param others Further valid inputs to splice with.
 */
export function mutate(
  rng: Prng,
  seed: Uint8Array,
  others: readonly Uint8Array[],
  maxBytes: number,
): Uint8Array {
  let out: Uint8Array = seed.slice();
  const rounds = rng.int(1, 4);
  for (let i = 0; i < rounds; i++) {
    out = MUTATIONS[rng.int(0, MUTATIONS.length - 1)](rng, out, others);
    if (out.byteLength > maxBytes) out = out.subarray(0, maxBytes);
  }
  return out;
}

type Mutation = (rng: Prng, input: Uint8Array, others: readonly Uint8Array[]) => Uint8Array;

const MUTATIONS: readonly Mutation[] = [
  // Flip one bit.
  (rng, input) => {
    if (input.byteLength === 0) return input;
    input[rng.int(0, input.byteLength - 1)] ^= 1 << rng.int(0, 7);
    return input;
  },
  // Set a byte to a random or a boundary value.
  (rng, input) => {
    if (input.byteLength === 0) return input;
    input[rng.int(0, input.byteLength - 1)] = rng.next() < 0.5
      ? rng.int(0, 255)
      : rng.pick(INTERESTING_U8);
    return input;
  },
  // Write a boundary value as a big-endian u16 or u32 (length and count fields).
  (rng, input) => {
    const width = rng.next() < 0.5 ? 2 : 4;
    if (input.byteLength < width) return input;
    const at = rng.int(0, input.byteLength - width);
    const value = rng.pick(INTERESTING_U32);
    const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    if (width === 2) view.setUint16(at, value & 0xffff);
    else view.setUint32(at, value);
    return input;
  },
  // Nudge a byte by a small amount (off-by-one lengths).
  (rng, input) => {
    if (input.byteLength === 0) return input;
    const at = rng.int(0, input.byteLength - 1);
    input[at] = (input[at] + rng.int(-3, 3)) & 0xff;
    return input;
  },
  // Truncate.
  (rng, input) => input.slice(0, rng.int(0, input.byteLength)),
  // Append random bytes.
  (rng, input) => concat(input, rng.bytes(rng.int(1, 32))),
  // Delete a range.
  (rng, input) => {
    if (input.byteLength === 0) return input;
    const from = rng.int(0, input.byteLength - 1);
    const to = rng.int(from, Math.min(input.byteLength, from + 64));
    return concat(input.subarray(0, from), input.subarray(to));
  },
  // Duplicate a range in place.
  (rng, input) => {
    if (input.byteLength === 0) return input;
    const from = rng.int(0, input.byteLength - 1);
    const to = rng.int(from, Math.min(input.byteLength, from + 64));
    return concat(input.subarray(0, to), input.subarray(from));
  },
  // Splice: a prefix of this input, a suffix of another seed.
  (rng, input, others) => {
    if (others.length === 0) return input;
    const other = rng.pick(others);
    return concat(
      input.subarray(0, rng.int(0, input.byteLength)),
      other.subarray(rng.int(0, other.byteLength)),
    );
  },
  // For JSON bodies: swap one field's value for an interesting one.
  (rng, input) => mutateJson(rng, input) ?? input,
];

/** Replaces one field of a JSON object input; `undefined` when the input is not one. */
function mutateJson(rng: Prng, input: Uint8Array): Uint8Array | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const keys = [...Object.keys(o), "extra"];
  const key = rng.pick(keys);
  if (rng.next() < 0.15) delete o[key];
  else o[key] = rng.pick(INTERESTING_JSON);
  return new TextEncoder().encode(JSON.stringify(o));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/** Lowercase hex, how findings carry their input. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bytes of a hex string made by {@linkcode toHex}. */
export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** A 32-bit FNV-1a hash: seeds the per-input PRNG a target may use, so an input replays alone. */
export function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}
