import assert from "node:assert/strict";
import {
  contentKey,
  DhtRecordError,
  PeerRecordStore,
  ProviderStore,
  RepublishSchedule,
  type SignedPeerRecord,
} from "../../../src/discovery/dht/mod.ts";
import { NetworkError } from "../../../src/errors.ts";
import { VirtualClock } from "../../_virtual_clock.ts";

function record(peerId: string, seq: number, expiresAt: number): SignedPeerRecord {
  return {
    peerId,
    publicKey: new Uint8Array(4),
    addresses: [],
    seq,
    expiresAt,
    signature: new Uint8Array([seq]),
  };
}

Deno.test("peer record store keeps the highest sequence number and refuses stale ones", () => {
  const clock = new VirtualClock(0);
  const store = new PeerRecordStore({ clock });
  assert.equal(store.put(record("p", 2, 100), new Uint8Array([2])), true);
  assert.equal(store.put(record("p", 2, 100), new Uint8Array([2])), false);
  for (const [seq, bytes] of [[1, [1]], [2, [9]]] as const) {
    assert.throws(
      () => store.put(record("p", seq, 100), new Uint8Array(bytes)),
      (e: unknown) => e instanceof DhtRecordError && e.reason === "stale",
    );
  }
  assert.equal(store.put(record("p", 3, 100), new Uint8Array([3])), true);
  assert.equal(store.get("p")?.record.seq, 3);
});

Deno.test("peer record store drops expired records and is bounded", async () => {
  const clock = new VirtualClock(0);
  const store = new PeerRecordStore({ clock, maxRecords: 2 });
  store.put(record("a", 1, 50), new Uint8Array());
  store.put(record("b", 1, 500), new Uint8Array());
  assert.throws(
    () => store.put(record("c", 1, 500), new Uint8Array()),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_LIMIT_EXCEEDED",
  );
  await clock.advance(50);
  assert.equal(store.get("a"), undefined);
  store.put(record("c", 1, 500), new Uint8Array());
  // After expiry, any sequence number is welcome again.
  await clock.advance(500);
  assert.equal(store.put(record("b", 0, 900), new Uint8Array()), true);
});

Deno.test("provider store keeps providers per key, replacing and expiring them", async () => {
  const clock = new VirtualClock(0);
  const store = new ProviderStore({ clock, maxProvidersPerKey: 2 });
  const key = contentKey("k");
  store.add({ key, providerId: "a", addresses: [], expiresAt: 100 });
  store.add({ key, providerId: "b", addresses: [], expiresAt: 300 });
  store.add({ key, providerId: "c", addresses: [], expiresAt: 50 }); // expires first: dropped
  assert.deepEqual(store.get(key).map((p) => p.providerId), ["a", "b"]);
  store.add({ key, providerId: "d", addresses: [], expiresAt: 400 }); // evicts a
  assert.deepEqual(store.get(key).map((p) => p.providerId), ["b", "d"]);
  assert.equal(store.get(key, 1).length, 1);
  await clock.advance(300);
  assert.deepEqual(store.get(key).map((p) => p.providerId), ["d"]);
  await clock.advance(100);
  assert.equal(store.prune(), 1);
  assert.deepEqual(store.get(key), []);
});

Deno.test("republish schedule: halfway to expiry, but at least minLeadMs before it", () => {
  const s = new RepublishSchedule({ fraction: 0.5, minLeadMs: 100 });
  assert.equal(s.schedule("a", 0, 1000), 500);
  assert.equal(s.schedule("b", 0, 150), 50);
  assert.equal(s.schedule("c", 0, 50), 0); // already inside the lead: now
  assert.equal(s.nextDueAt(), 0);
  assert.deepEqual(s.due(49), ["c"]);
  assert.deepEqual(s.due(600), ["b", "a"]);
  assert.equal(s.nextDueAt(), undefined);
  assert.throws(() => new RepublishSchedule({ fraction: 1.5 }), /1.5/);
});

Deno.test("peer record store: one peer, or one /24 or /64 of many peers, stores at most its quota", async () => {
  const clock = new VirtualClock(0);
  const store = new PeerRecordStore({ clock, maxRecordsPerPeer: 3, maxRecordsPerPrefix: 5 });
  const sybil = { peer: "sybil", address: "198.51.100.7:4000" };
  for (let i = 0; i < 3; i++) store.put(record(`r${i}`, 1, 100), new Uint8Array([i]), sybil);
  const full = assert.throws(
    () => store.put(record("r3", 1, 100), new Uint8Array([3]), sybil),
    (e: unknown) =>
      e instanceof NetworkError && e.code === "ERR_LIMIT_EXCEEDED" && e.message.includes("sybil"),
  );
  void full;
  // Replacing one of its own records with a newer one is no extra record.
  store.put(record("r0", 2, 100), new Uint8Array([9]), sybil);
  // Other identities in the same /24 share the prefix's quota of 5.
  store.put(record("s0", 1, 100), new Uint8Array([1]), { peer: "s", address: "198.51.100.9:1" });
  store.put(record("s1", 1, 100), new Uint8Array([1]), { peer: "s", address: "198.51.100.9:1" });
  assert.throws(
    () =>
      store.put(record("t0", 1, 100), new Uint8Array([1]), {
        peer: "t",
        address: "198.51.100.200:1",
      }),
    (e: unknown) => e instanceof NetworkError && e.message.includes("198.51.100.0/24"),
  );
  // IPv6: a /64 is one source however many addresses it uses.
  for (let i = 0; i < 5; i++) {
    store.put(record(`v${i}`, 1, 100), new Uint8Array([i]), {
      peer: `v${i}`,
      address: `[2001:db8:0:1::${i + 1}]:1`,
    });
  }
  assert.throws(
    () =>
      store.put(record("v5", 1, 100), new Uint8Array([5]), {
        peer: "v5",
        address: "[2001:db8:0:1:ffff::1]:1",
      }),
    (e: unknown) => e instanceof NetworkError && e.message.includes("2001:db8:0:1::/64"),
  );
  // Expired records give their quota back.
  await clock.advanceTo(100);
  store.put(record("r3", 1, 200), new Uint8Array([3]), sybil);
  store.put(record("t0", 1, 200), new Uint8Array([1]), { peer: "t", address: "198.51.100.200:1" });
});

Deno.test("provider store: a peer's provider records are capped; loopback has no prefix quota", () => {
  const clock = new VirtualClock(0);
  const store = new ProviderStore({ clock, maxRecordsPerPeer: 2, maxRecordsPerPrefix: 3 });
  const provide = (providerId: string, name: string, address: string) =>
    store.add({ key: contentKey(name), providerId, addresses: [], expiresAt: 100 }, {
      peer: providerId,
      address,
    });
  provide("p", "a", "127.0.0.1:1");
  provide("p", "b", "127.0.0.1:1");
  provide("p", "b", "127.0.0.1:1"); // a refresh of a held record
  assert.throws(
    () => provide("p", "c", "127.0.0.1:1"),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_LIMIT_EXCEEDED",
  );
  // Many local peers (a testnet on one machine) are not one prefix.
  for (let i = 0; i < 10; i++) provide(`local-${i}`, "a", "127.0.0.1:1");
  assert.equal(store.get(contentKey("a")).length, 11);
});
