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

// Scratch space: the functions below never yield, so one set serves every call.
const W = new Int32Array(64);
const state = new Int32Array(8);
const block = new Uint8Array(BLOCK);
const inner = new Uint8Array(32);

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
    let at = 0;
    total += part.byteLength;
    if (fill > 0) {
      const take = Math.min(BLOCK - fill, part.byteLength);
      block.set(part.subarray(0, take), fill);
      fill += take;
      at = take;
      if (fill < BLOCK) continue;
      compress(h, block, 0);
      fill = 0;
    }
    for (; at + BLOCK <= part.byteLength; at += BLOCK) compress(h, part, at);
    block.set(part.subarray(at), 0);
    fill = part.byteLength - at;
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

/** An HMAC-SHA-256 key: the hash states after its inner and outer padded blocks. */
export interface HmacKey {
  readonly inner: Int32Array;
  readonly outer: Int32Array;
}

/** Prepares `key` for {@linkcode hmacWith}. */
export function hmacKey(key: Uint8Array): HmacKey {
  const padded = new Uint8Array(BLOCK);
  if (key.byteLength > BLOCK) {
    state.set(IV);
    finish(state, 0, [key], padded);
    padded.fill(0, 32);
  } else {
    padded.set(key);
  }
  const keyed = (pad: number) => {
    const h = Int32Array.from(IV);
    for (let i = 0; i < BLOCK; i++) block[i] = padded[i] ^ pad;
    compress(h, block, 0);
    return h;
  };
  const prepared = { inner: keyed(0x36), outer: keyed(0x5c) };
  padded.fill(0);
  block.fill(0);
  return prepared;
}

/** HMAC-SHA-256 under a prepared key of the concatenation of `parts`. */
export function hmacWith(key: HmacKey, ...parts: Uint8Array[]): Uint8Array {
  state.set(key.inner);
  finish(state, BLOCK, parts, inner);
  const out = new Uint8Array(32);
  state.set(key.outer);
  finish(state, BLOCK, [inner], out);
  // The scratch held what the output is made of: the output may be a secret key.
  state.fill(0);
  inner.fill(0);
  block.fill(0);
  return out;
}

/** HMAC-SHA-256 of `message` under `key`. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmacWith(hmacKey(key), message);
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
  const key = prk instanceof Uint8Array ? hmacKey(prk) : prk;
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  const counter = new Uint8Array(1);
  for (let at = 0, i = 1; at < length; at += 32, i++) {
    counter[0] = i;
    previous = hmacWith(key, previous, info, counter);
    out.set(previous.subarray(0, Math.min(32, length - at)), at);
  }
  return out;
}
