import assert from "node:assert/strict";
import { SessionCache } from "../../src/quic/session_cache.ts";

const bytes = (n: number) => new Uint8Array([n]);

Deno.test("session cache: keeps the most recent sessions up to capacity", () => {
  const cache = new SessionCache(3);
  for (let i = 0; i < 5; i++) cache.set(`p${i}`, bytes(i));
  assert.equal(cache.size, 3);
  assert.equal(cache.get("p0"), undefined);
  assert.equal(cache.get("p1"), undefined);
  assert.deepEqual([2, 3, 4].map((i) => cache.get(`p${i}`)?.[0]), [2, 3, 4]);
});

Deno.test("session cache: a get marks the entry recently used", () => {
  const cache = new SessionCache(2);
  cache.set("a", bytes(1));
  cache.set("b", bytes(2));
  assert.equal(cache.get("a")?.[0], 1); // now b is the oldest
  cache.set("c", bytes(3));
  assert.equal(cache.get("b"), undefined);
  assert.equal(cache.get("a")?.[0], 1);
  assert.equal(cache.get("c")?.[0], 3);
  assert.equal(cache.get("missing"), undefined);
  assert.equal(cache.size, 2, "a miss adds nothing");
});

Deno.test("session cache: setting a key again replaces it and makes it recent", () => {
  const cache = new SessionCache(2);
  cache.set("a", bytes(1));
  cache.set("b", bytes(2));
  cache.set("a", bytes(9));
  assert.equal(cache.size, 2);
  cache.set("c", bytes(3)); // evicts b, the least recently used
  assert.equal(cache.get("b"), undefined);
  assert.equal(cache.get("a")?.[0], 9);
});

Deno.test("session cache: capacity 0 keeps nothing, capacity 1 keeps the last", () => {
  const none = new SessionCache(0);
  none.set("a", bytes(1));
  assert.equal(none.size, 0);
  assert.equal(none.get("a"), undefined);
  const one = new SessionCache(1);
  one.set("a", bytes(1));
  one.set("b", bytes(2));
  assert.equal(one.size, 1);
  assert.equal(one.get("a"), undefined);
  assert.equal(one.get("b")?.[0], 2);
});
