/**
 * 256-bit Kademlia keys: peers and content live in one key space, and closeness is the XOR
 * of two keys read as a big-endian unsigned integer.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { NetworkError } from "../../errors.ts";

/** Length of a DHT key in bytes. */
export const KEY_BYTES = 32;
/** Length of a DHT key in bits, and the number of k-buckets of a routing table. */
export const KEY_BITS = 256;

/** A 256-bit DHT key: exactly {@linkcode KEY_BYTES} bytes. */
export type DhtKey = Uint8Array;

const encoder = new TextEncoder();

/**
 * Derives the DHT key of a peer: SHA-256 of the UTF-8 bytes of the peer id's string form.
 *
 * @example
 * ```ts
 * import { peerIdToKey } from "@cretoai/network/dht";
 *
 * const key = peerIdToKey("12D3KooWexample");
 * console.assert(key.length === 32);
 * ```
 *
 * @param peerId The peer id's string form.
 * @returns The peer's 32-byte key.
 * @throws {NetworkError} `ERR_DHT` if `peerId` is empty.
 */
export function peerIdToKey(peerId: string): DhtKey {
  if (peerId.length === 0) {
    throw new NetworkError("ERR_DHT", `Cannot derive a DHT key: 'peerId' is empty`);
  }
  return sha256(encoder.encode(peerId));
}

/**
 * Derives the DHT key of a piece of content from its name or bytes: SHA-256 of the input
 * (strings as UTF-8). Providers of the content are stored at the peers closest to this key.
 *
 * @example
 * ```ts
 * import { contentKey } from "@cretoai/network";
 *
 * const key = contentKey("models/llama-7b.gguf");
 * console.assert(key.length === 32);
 * ```
 *
 * @param content The content's name or identifying bytes.
 * @returns The content's 32-byte key.
 */
export function contentKey(content: string | Uint8Array): DhtKey {
  return sha256(typeof content === "string" ? encoder.encode(content) : content);
}

/**
 * Checks that a value is a 32-byte key.
 *
 * @example
 * ```ts
 * import { assertKey } from "@cretoai/network/dht";
 *
 * assertKey(new Uint8Array(32), "target");
 * ```
 *
 * @param key The value to check.
 * @param name The argument's name, for the error message.
 * @throws {NetworkError} `ERR_DHT` if `key` is not a 32-byte `Uint8Array`.
 */
export function assertKey(key: Uint8Array, name: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    const seen = key instanceof Uint8Array ? `${key.length} bytes` : typeof key;
    throw new NetworkError(
      "ERR_DHT",
      `Invalid DHT key: '${name}' must be ${KEY_BYTES} bytes: current value is ${seen}`,
    );
  }
}

/**
 * Computes the XOR distance of two keys.
 *
 * @example
 * ```ts
 * import { xorDistance } from "@cretoai/network/dht";
 *
 * const a = new Uint8Array(32);
 * const b = new Uint8Array(32);
 * b[31] = 5;
 * console.assert(xorDistance(a, b)[31] === 5);
 * ```
 *
 * @param a First key.
 * @param b Second key.
 * @returns `a XOR b`, 32 bytes.
 * @throws {NetworkError} `ERR_DHT` if either key is not 32 bytes.
 */
export function xorDistance(a: DhtKey, b: DhtKey): Uint8Array {
  assertKey(a, "a");
  assertKey(b, "b");
  const out = new Uint8Array(KEY_BYTES);
  for (let i = 0; i < KEY_BYTES; i++) out[i] = a[i] ^ b[i];
  return out;
}

/**
 * Orders two keys by their distance to a target, without allocating.
 *
 * @example Sorting keys closest-first
 * ```ts
 * import { compareDistance, contentKey } from "@cretoai/network/dht";
 *
 * const target = contentKey("t");
 * const keys = [contentKey("a"), contentKey("b"), target];
 * keys.sort((x, y) => compareDistance(target, x, y));
 * console.assert(keys[0] === target);
 * ```
 *
 * @param target The key distances are measured to.
 * @param a First key.
 * @param b Second key.
 * @returns A negative number if `a` is closer to `target`, positive if `b` is, 0 if equal.
 */
export function compareDistance(target: DhtKey, a: DhtKey, b: DhtKey): number {
  for (let i = 0; i < KEY_BYTES; i++) {
    const da = a[i] ^ target[i];
    const db = b[i] ^ target[i];
    if (da !== db) return da - db;
  }
  return 0;
}

/**
 * Counts the leading bits two keys share.
 *
 * @example
 * ```ts
 * import { commonPrefixLength } from "@cretoai/network/dht";
 *
 * const a = new Uint8Array(32);
 * const b = new Uint8Array(32);
 * b[0] = 0b0010_0000;
 * console.assert(commonPrefixLength(a, b) === 2);
 * console.assert(commonPrefixLength(a, a) === 256);
 * ```
 *
 * @param a First key.
 * @param b Second key.
 * @returns 0 to 256; 256 when the keys are equal.
 */
export function commonPrefixLength(a: DhtKey, b: DhtKey): number {
  for (let i = 0; i < KEY_BYTES; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return KEY_BITS;
}

/**
 * Finds the k-bucket a key falls in, seen from `self`: bucket `i` holds the keys whose XOR
 * distance from `self` lies in `[2^i, 2^(i+1))`, so bucket 255 covers half the key space and
 * bucket 0 a single key.
 *
 * @example
 * ```ts
 * import { bucketIndex } from "@cretoai/network/dht";
 *
 * const self = new Uint8Array(32);
 * const other = new Uint8Array(32);
 * other[0] = 0x80;
 * console.assert(bucketIndex(self, other) === 255);
 * other[0] = 0;
 * other[31] = 1;
 * console.assert(bucketIndex(self, other) === 0);
 * ```
 *
 * @param self The local key.
 * @param other The key to place.
 * @returns The bucket index, 0 to 255.
 * @throws {NetworkError} `ERR_DHT` if `other` equals `self`, which has no bucket.
 */
export function bucketIndex(self: DhtKey, other: DhtKey): number {
  const cpl = commonPrefixLength(self, other);
  if (cpl === KEY_BITS) {
    throw new NetworkError(
      "ERR_DHT",
      `Cannot place a key in a bucket: it equals the local key ${keyToHex(self)}`,
    );
  }
  return KEY_BITS - 1 - cpl;
}

/**
 * Makes a random key that falls in bucket `index` seen from `self`, the target of a bucket
 * refresh lookup.
 *
 * @example
 * ```ts
 * import { bucketIndex, contentKey, randomKeyInBucket } from "@cretoai/network/dht";
 *
 * const self = contentKey("me");
 * const key = randomKeyInBucket(self, 200, (n) => crypto.getRandomValues(new Uint8Array(n)));
 * console.assert(bucketIndex(self, key) === 200);
 * ```
 *
 * @param self The local key.
 * @param index The bucket, 0 to 255.
 * @param randomBytes Source of random bytes (injected so simulations are deterministic).
 * @returns A key whose bucket index seen from `self` is `index`.
 * @throws {NetworkError} `ERR_DHT` if `index` is not an integer in 0..255.
 */
export function randomKeyInBucket(
  self: DhtKey,
  index: number,
  randomBytes: (length: number) => Uint8Array,
): DhtKey {
  if (!Number.isInteger(index) || index < 0 || index >= KEY_BITS) {
    throw new NetworkError(
      "ERR_DHT",
      `Invalid bucket: 'index' must be an integer in 0..${KEY_BITS - 1}: current value is ${index}`,
    );
  }
  // Distance must have its highest set bit at position `index`: zero above, one at, random below.
  const distance = randomBytes(KEY_BYTES).slice(0, KEY_BYTES);
  const bytePos = KEY_BYTES - 1 - (index >> 3);
  const bit = index & 7;
  for (let i = 0; i < bytePos; i++) distance[i] = 0;
  distance[bytePos] = (distance[bytePos] & ((1 << bit) - 1)) | (1 << bit);
  const key = new Uint8Array(KEY_BYTES);
  for (let i = 0; i < KEY_BYTES; i++) key[i] = self[i] ^ distance[i];
  return key;
}

/**
 * Formats a key as lowercase hex, for maps and messages.
 *
 * @example
 * ```ts
 * import { keyToHex } from "@cretoai/network/dht";
 *
 * console.assert(keyToHex(new Uint8Array(32)) === "0".repeat(64));
 * ```
 *
 * @param key The key.
 * @returns 64 hex characters.
 */
export function keyToHex(key: DhtKey): string {
  let s = "";
  for (let i = 0; i < key.length; i++) s += HEX[key[i]];
  return s;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
