/**
 * HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256 (RFC 5869) for the handshake's key schedules (and the
 * stateless Initial close's keys), without allocations beyond the outputs: a resumed handshake computes about 28 HMACs of 32-byte keys
 * over inputs of a few dozen bytes, and `@noble/hashes` spends most of its 4 µs per HMAC making
 * hash objects, views and buffers (profile of an in-memory resumed handshake); `node:crypto`'s
 * per-call cost is higher still. A key's inner and outer states are computed once per HMAC key,
 * so HKDF-Expand costs two compressions per 32-byte block. Checked against RFC 4231 and RFC 5869
 * and against `@noble/hashes` on random inputs (tests/_hmac_sha256_test.ts).
 *
 * @module
 */

const K = Int32Array.from([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);
const IV = Int32Array.from([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);
const BLOCK = 64;

// Scratch space: the functions below never yield, so one set serves every call. A typed array
// costs about 1 µs to allocate in Deno 2.9 (against 0.3 µs for a whole SHA-256 compression), so
// nothing here allocates but the outputs.
const W = new Int32Array(64);
const state = new Int32Array(8);
const block = new Uint8Array(BLOCK);
const digest = new Uint8Array(32);
const chained = new Uint8Array(32);
const counter = new Uint8Array(1);
const padded = new Uint8Array(BLOCK);
const oneShotKey: HmacKey = { states: new Int32Array(16) };

function compress(h: Int32Array, data: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++, at += 4) {
    W[i] = (data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3];
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15], w2 = W[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + b) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
  h[5] = (h[5] + f) | 0;
  h[6] = (h[6] + g) | 0;
  h[7] = (h[7] + k) | 0;
}

/**
 * Continues the hash in `h` (which has processed `done` bytes, a multiple of 64) over `parts`,
 * pads it and writes the digest into `out`.
 */
function finish(h: Int32Array, done: number, parts: readonly Uint8Array[], out: Uint8Array): void {
  let fill = 0;
  let total = done;
  for (const part of parts) {
    const length = part.byteLength;
    total += length;
    let at = 0;
    while (at < length) {
      if (fill === 0 && at + BLOCK <= length) {
        compress(h, part, at);
        at += BLOCK;
        continue;
      }
      // Byte by byte: a subarray to copy from would cost more than these few bytes.
      while (fill < BLOCK && at < length) block[fill++] = part[at++];
      if (fill === BLOCK) {
        compress(h, block, 0);
        fill = 0;
      }
    }
  }
  block[fill++] = 0x80;
  if (fill > BLOCK - 8) {
    block.fill(0, fill);
    compress(h, block, 0);
    fill = 0;
  }
  block.fill(0, fill, BLOCK - 8);
  const bits = total * 8;
  const high = Math.floor(bits / 0x100000000);
  block[56] = high >>> 24;
  block[57] = high >>> 16;
  block[58] = high >>> 8;
  block[59] = high;
  block[60] = bits >>> 24;
  block[61] = bits >>> 16;
  block[62] = bits >>> 8;
  block[63] = bits;
  compress(h, block, 0);
  for (let i = 0; i < 8; i++) {
    out[i * 4] = h[i] >>> 24;
    out[i * 4 + 1] = h[i] >>> 16;
    out[i * 4 + 2] = h[i] >>> 8;
    out[i * 4 + 3] = h[i];
  }
}

/** SHA-256 of `data`, for inputs of up to a few KiB (larger ones go faster natively). */
export function sha256Js(data: Uint8Array): Uint8Array<ArrayBuffer> {
  state.set(IV);
  const out = new Uint8Array(32);
  finish(state, 0, [data], out);
  forgetScratch();
  return out;
}

/**
 * An HMAC-SHA-256 key made ready for {@linkcode hmacWith}: the hash states after its inner
 * (`states[0..8]`) and outer (`states[8..16]`) padded blocks.
 */
export interface HmacKey {
  readonly states: Int32Array;
}

/** Prepares `key` for {@linkcode hmacWith}. */
export function hmacKey(key: Uint8Array): HmacKey {
  return prepareInto({ states: new Int32Array(16) }, key);
}

function prepareInto(prepared: HmacKey, key: Uint8Array): HmacKey {
  if (key.byteLength > BLOCK) {
    state.set(IV);
    finish(state, 0, [key], padded);
    padded.fill(0, 32);
  } else {
    padded.set(key);
    padded.fill(0, key.byteLength);
  }
  for (let half = 0; half < 2; half++) {
    const pad = half === 0 ? 0x36 : 0x5c;
    for (let i = 0; i < BLOCK; i++) block[i] = padded[i] ^ pad;
    state.set(IV);
    compress(state, block, 0);
    prepared.states.set(state, half * 8);
  }
  padded.fill(0);
  forgetScratch();
  return prepared;
}

/** Zeroes the scratch space: it held what secrets and keys are made of. */
function forgetScratch(): void {
  state.fill(0);
  block.fill(0);
  digest.fill(0);
}

/** The HMAC of `parts` under `key` into `digest`. */
function hmacIntoDigest(key: HmacKey, parts: readonly Uint8Array[]): void {
  const states = key.states;
  for (let i = 0; i < 8; i++) state[i] = states[i];
  finish(state, BLOCK, parts, digest);
  for (let i = 0; i < 8; i++) state[i] = states[i + 8];
  finish(state, BLOCK, [digest], digest);
}

/** HMAC-SHA-256 under a prepared key of the concatenation of `parts`. */
export function hmacWith(key: HmacKey, ...parts: Uint8Array[]): Uint8Array {
  hmacIntoDigest(key, parts);
  const out = digest.slice();
  forgetScratch();
  return out;
}

/** HMAC-SHA-256 of `message` under `key`. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  const out = hmacWith(prepareInto(oneShotKey, key), message);
  oneShotKey.states.fill(0);
  return out;
}

/** HKDF-Extract with SHA-256: the pseudo-random key of `ikm` under `salt`. */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt, ikm);
}

/** HKDF-Expand with SHA-256: `length` bytes (at most 8160) of `prk` for `info`. */
export function hkdfExpand(
  prk: Uint8Array | HmacKey,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > 255 * 32) {
    throw new RangeError(`HKDF-Expand gives 0 to 8160 bytes, not ${length}`);
  }
  const key = prk instanceof Uint8Array ? prepareInto(oneShotKey, prk) : prk;
  const out = new Uint8Array(length);
  for (let at = 0, i = 1; at < length; at += 32, i++) {
    counter[0] = i;
    hmacIntoDigest(key, i === 1 ? [info, counter] : [chained, info, counter]);
    chained.set(digest);
    const take = Math.min(32, length - at);
    for (let j = 0; j < take; j++) out[at + j] = digest[j];
  }
  chained.fill(0);
  forgetScratch();
  if (key === oneShotKey) oneShotKey.states.fill(0);
  return out;
}
