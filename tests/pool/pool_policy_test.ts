import assert from "node:assert/strict";
import { InvalidConfigError } from "../../src/errors.ts";
import { PoolPolicy } from "../../src/pool/pool_policy.ts";

Deno.test("PoolPolicy rejects invalid options, naming the field", () => {
  for (
    const [options, field] of [
      [{ maxConnections: 0 }, "maxConnections"],
      [{ maxConnections: 1.5 }, "maxConnections"],
      [{ idleTimeoutMs: 0 }, "idleTimeoutMs"],
      [{ idleTimeoutMs: NaN }, "idleTimeoutMs"],
    ] as const
  ) {
    assert.throws(
      () => new PoolPolicy(options),
      (e: unknown) => e instanceof InvalidConfigError && e.field === field,
    );
  }
});

Deno.test("PoolPolicy keeps one entry per peer", () => {
  const pool = new PoolPolicy({ maxConnections: 2 });
  assert.deepEqual(pool.admit("a", 0), { admitted: true, evict: [] });
  assert.deepEqual(pool.admit("a", 5), { admitted: true, evict: [] });
  assert.equal(pool.size, 1);
  assert.deepEqual(pool.peers(), ["a"]);
});

Deno.test("PoolPolicy evicts the least recently used peer when full", () => {
  const pool = new PoolPolicy({ maxConnections: 3 });
  pool.admit("a", 0);
  pool.admit("b", 1);
  pool.admit("c", 2);
  pool.touch("a", 3); // b is now the least recently used
  assert.deepEqual(pool.admit("d", 4), { admitted: true, evict: ["b"] });
  assert.deepEqual(pool.peers(), ["c", "a", "d"]);
  assert.deepEqual(pool.admit("e", 5), { admitted: true, evict: ["c"] });
  assert.ok(!pool.has("b") && !pool.has("c"));
  assert.equal(pool.size, 3);
});

Deno.test("PoolPolicy never evicts protected peers", () => {
  const pool = new PoolPolicy({ maxConnections: 2 });
  pool.protect("a", "consensus");
  pool.admit("a", 0);
  pool.admit("b", 1);
  assert.deepEqual(pool.admit("c", 2), { admitted: true, evict: ["b"] });
  pool.protect("c", "streams");
  assert.deepEqual(pool.admit("d", 3), { admitted: false, reason: "full" });
  assert.deepEqual(pool.peers(), ["a", "c"], "a refused peer evicts nobody");
  // A protected newcomer gets in over the limit rather than being refused.
  pool.protect("v", "consensus");
  assert.deepEqual(pool.admit("v", 4), { admitted: true, evict: [] });
  assert.equal(pool.size, 3);
  // Once protection ends the peer is evictable again.
  assert.ok(pool.unprotect("c", "streams"));
  assert.ok(!pool.unprotect("c", "streams"));
  // Evicting c would not make room below the limit, so an unprotected newcomer is refused...
  assert.deepEqual(pool.admit("e", 5), { admitted: false, reason: "full" });
  // ...while a protected one takes c's place.
  pool.protect("f", "consensus");
  assert.deepEqual(pool.admit("f", 6), { admitted: true, evict: ["c"] });
  assert.deepEqual(pool.peers(), ["a", "v", "f"]);
});

Deno.test("PoolPolicy: a peer stays protected while it has any tag", () => {
  const pool = new PoolPolicy({ maxConnections: 1 });
  pool.protect("a", "consensus");
  pool.protect("a", "streams");
  pool.protect("a", "streams");
  pool.admit("a", 0);
  pool.unprotect("a", "streams");
  assert.ok(pool.isProtected("a"));
  assert.equal(pool.admit("b", 1).admitted, false);
  pool.unprotect("a", "consensus");
  assert.ok(!pool.isProtected("a"));
  assert.deepEqual(pool.admit("b", 2), { admitted: true, evict: ["a"] });
  pool.protect("x", "bootstrap");
  assert.ok(!pool.remove("x"));
  assert.ok(pool.isProtected("x"), "tags survive the connection");
});

Deno.test("PoolPolicy detects idle connections, skipping protected and recently used ones", () => {
  const pool = new PoolPolicy({ idleTimeoutMs: 1000 });
  assert.equal(pool.nextIdleAt(), undefined);
  pool.admit("a", 0);
  pool.admit("b", 100);
  pool.admit("p", 0);
  pool.protect("p", "consensus");
  assert.equal(pool.nextIdleAt(), 1000);
  pool.touch("a", 500);
  assert.equal(pool.nextIdleAt(), 1100);
  assert.deepEqual(pool.collectIdle(1099), []);
  assert.deepEqual(pool.collectIdle(1100), ["b"]);
  assert.ok(!pool.has("b"));
  assert.equal(pool.nextIdleAt(), 1500);
  pool.touch("a", 200); // late timestamp: must not make "a" look older
  assert.deepEqual(pool.collectIdle(1499), []);
  assert.deepEqual(pool.collectIdle(10_000), ["a"]);
  assert.deepEqual(pool.peers(), ["p"]);
  assert.equal(pool.nextIdleAt(), undefined);
  assert.ok(!pool.touch("gone", 0));
});

Deno.test("PoolPolicy with no limits never evicts or idles", () => {
  const pool = new PoolPolicy({ maxConnections: Infinity, idleTimeoutMs: Infinity });
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(pool.admit(`p${i}`, i), { admitted: true, evict: [] });
  }
  assert.deepEqual(pool.collectIdle(1e12), []);
  assert.equal(pool.nextIdleAt(), undefined);
});

Deno.test("PoolPolicy evicts young peers before long-lived ones: fresh identities displace each other", () => {
  const pool = new PoolPolicy({ maxConnections: 3, settleMs: 60_000 });
  pool.admit("honest-1", 0);
  pool.admit("honest-2", 1);
  pool.admit("honest-3", 2);
  // A minute later all three are long-lived; the least recently used one makes room once.
  assert.deepEqual(pool.admit("sybil-0", 60_002), { admitted: true, evict: ["honest-1"] });
  // Every further fresh identity evicts the previous one, not a long-lived peer.
  for (let i = 1; i <= 50; i++) {
    assert.deepEqual(pool.admit(`sybil-${i}`, 60_002 + i), {
      admitted: true,
      evict: [`sybil-${i - 1}`],
    });
  }
  assert.deepEqual(pool.peers(), ["honest-2", "honest-3", "sybil-50"]);
  // Even when the long-lived peers were used longer ago than the young one.
  pool.touch("sybil-50", 70_000);
  assert.deepEqual(pool.admit("sybil-51", 70_001).admitted && pool.has("honest-2"), true);
});

Deno.test("PoolPolicy: touching the newest peer again, or one removed and readmitted, keeps LRU order", () => {
  const pool = new PoolPolicy({ maxConnections: 3 });
  pool.admit("a", 0);
  pool.admit("b", 1);
  pool.admit("c", 2);
  pool.touch("a", 3);
  pool.touch("a", 4); // a is the newest already
  assert.deepEqual(pool.peers(), ["b", "c", "a"]);
  pool.remove("a");
  pool.admit("a", 5);
  pool.touch("b", 6);
  pool.touch("a", 7); // a is not the newest any more: it moves
  assert.deepEqual(pool.peers(), ["c", "b", "a"]);
  assert.deepEqual(pool.admit("d", 8), { admitted: true, evict: ["c"] });
  assert.deepEqual(pool.collectIdle(Infinity), ["b", "a", "d"]);
});
