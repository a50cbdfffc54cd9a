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
