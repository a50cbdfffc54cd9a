import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  bucketIndex,
  commonPrefixLength,
  compareDistance,
  contentKey,
  keyToHex,
  peerIdToKey,
  randomKeyInBucket,
  xorDistance,
} from "../../../src/discovery/dht/mod.ts";
import { NetworkError } from "../../../src/errors.ts";
import { Prng } from "./_simulator.ts";

function keyWith(bytes: Record<number, number>): Uint8Array {
  const k = new Uint8Array(32);
  for (const [i, v] of Object.entries(bytes)) k[Number(i)] = v;
  return k;
}

Deno.test("peerIdToKey is SHA-256 of the id's UTF-8 string form", () => {
  const id = "12D3KooWpeer-é";
  assert.deepEqual(peerIdToKey(id), sha256(new TextEncoder().encode(id)));
  assert.equal(peerIdToKey(id).length, 32);
  assert.throws(() => peerIdToKey(""), NetworkError);
});

Deno.test("contentKey hashes strings and bytes alike", () => {
  assert.deepEqual(contentKey("abc"), contentKey(new TextEncoder().encode("abc")));
  assert.notDeepEqual(contentKey("abc"), contentKey("abd"));
});

Deno.test("xorDistance and compareDistance agree with big-integer XOR", () => {
  const rng = new Prng(7);
  const big = (k: Uint8Array) => BigInt("0x" + keyToHex(k));
  for (let n = 0; n < 200; n++) {
    const t = rng.bytes(32), a = rng.bytes(32), b = rng.bytes(32);
    assert.equal(big(xorDistance(a, t)), big(a) ^ big(t));
    const da = big(a) ^ big(t), db = big(b) ^ big(t);
    assert.equal(Math.sign(compareDistance(t, a, b)), da < db ? -1 : da > db ? 1 : 0);
  }
  assert.equal(compareDistance(keyWith({}), keyWith({ 5: 1 }), keyWith({ 5: 1 })), 0);
  assert.throws(() => xorDistance(new Uint8Array(31), new Uint8Array(32)), /31 bytes/);
});

Deno.test("commonPrefixLength counts shared leading bits", () => {
  const zero = keyWith({});
  assert.equal(commonPrefixLength(zero, zero), 256);
  assert.equal(commonPrefixLength(zero, keyWith({ 0: 0x80 })), 0);
  assert.equal(commonPrefixLength(zero, keyWith({ 0: 0x01 })), 7);
  assert.equal(commonPrefixLength(zero, keyWith({ 1: 0x40 })), 9);
  assert.equal(commonPrefixLength(zero, keyWith({ 31: 1 })), 255);
});

Deno.test("bucketIndex is the position of the highest differing bit", () => {
  const self = keyWith({});
  assert.equal(bucketIndex(self, keyWith({ 0: 0xff })), 255);
  assert.equal(bucketIndex(self, keyWith({ 0: 0x40 })), 254);
  assert.equal(bucketIndex(self, keyWith({ 1: 0x80 })), 247);
  assert.equal(bucketIndex(self, keyWith({ 31: 0x02 })), 1);
  assert.equal(bucketIndex(self, keyWith({ 31: 0x01 })), 0);
  assert.throws(() => bucketIndex(self, self), NetworkError);
});

Deno.test("bucket i holds distances in [2^i, 2^(i+1))", () => {
  const rng = new Prng(3);
  for (let n = 0; n < 100; n++) {
    const a = rng.bytes(32), b = rng.bytes(32);
    const d = BigInt("0x" + keyToHex(xorDistance(a, b)));
    const i = bucketIndex(a, b);
    assert.ok(d >= 1n << BigInt(i) && d < 1n << BigInt(i + 1));
  }
});

Deno.test("randomKeyInBucket lands in the asked bucket", () => {
  const rng = new Prng(11);
  const self = contentKey("me");
  for (const i of [0, 1, 7, 8, 9, 100, 247, 254, 255]) {
    for (let n = 0; n < 20; n++) {
      assert.equal(bucketIndex(self, randomKeyInBucket(self, i, (len) => rng.bytes(len))), i);
    }
  }
  assert.throws(
    () => randomKeyInBucket(self, 256, (len) => rng.bytes(len)),
    /current value is 256/,
  );
});
