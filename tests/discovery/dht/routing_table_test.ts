import assert from "node:assert/strict";
import {
  bucketIndex,
  compareDistance,
  type DhtContact,
  makeContact,
  randomKeyInBucket,
  RoutingTable,
} from "../../../src/discovery/dht/mod.ts";
import { InvalidConfigError } from "../../../src/errors.ts";
import { Prng } from "./_simulator.ts";
import { VirtualClock } from "../../_virtual_clock.ts";

const self = makeContact("self");

/** Contacts whose keys fall in `bucket` of `self`, found by trying ids. */
function contactsInBucket(bucket: number, count: number, prefix = "p"): DhtContact[] {
  const out: DhtContact[] = [];
  for (let i = 0; out.length < count; i++) {
    const c = makeContact(`${prefix}-${i}`);
    if (bucketIndex(self.key, c.key) === bucket) out.push(c);
  }
  return out;
}

Deno.test("update adds, then moves a known contact to the most recent end", () => {
  const table = new RoutingTable(self.key, { k: 3 });
  const [a, b, c] = contactsInBucket(255, 3);
  assert.equal(table.update(a).status, "added");
  assert.equal(table.update(b).status, "added");
  assert.equal(table.update(c).status, "added");
  assert.equal(table.update(a).status, "updated");
  assert.deepEqual(table.bucket(255).map((x) => x.id), [b.id, c.id, a.id]);
  assert.equal(table.update(self).status, "self");
  assert.equal(table.size, 3);
});

Deno.test("full bucket: least recently seen is pinged; alive keeps its slot", () => {
  const table = new RoutingTable(self.key, { k: 2 });
  const [a, b, c, d] = contactsInBucket(255, 4);
  table.update(a);
  table.update(b);
  const update = table.update(c);
  assert.equal(update.status, "ping");
  assert.equal(update.status === "ping" && update.ping.id, a.id);
  // A second newcomer while the ping is out does not ping again.
  assert.equal(table.update(d).status, "cached");
  assert.deepEqual(table.replacements(255).map((x) => x.id), [c.id, d.id]);
  assert.equal(table.pingResult(a.id, true), undefined);
  assert.deepEqual(table.bucket(255).map((x) => x.id), [b.id, a.id]);
  assert.ok(!table.has(c.id) && !table.has(d.id));
});

Deno.test("full bucket: a dead least-recently-seen contact gives way to the newest replacement", () => {
  const table = new RoutingTable(self.key, { k: 2 });
  const [a, b, c, d] = contactsInBucket(255, 4);
  table.update(a);
  table.update(b);
  table.update(c);
  table.update(d);
  const promoted = table.pingResult(a.id, false);
  assert.equal(promoted?.id, d.id);
  assert.deepEqual(table.bucket(255).map((x) => x.id), [b.id, d.id]);
  assert.deepEqual(table.replacements(255).map((x) => x.id), [c.id]);
  // The next overflow pings b, now the least recently seen.
  const e = contactsInBucket(255, 5)[4];
  const update = table.update(e);
  assert.equal(update.status === "ping" && update.ping.id, b.id);
});

Deno.test("replacement cache is bounded, deduplicated, newest last", () => {
  const table = new RoutingTable(self.key, { k: 1, replacementCacheSize: 2 });
  const [a, b, c, d] = contactsInBucket(255, 4);
  table.update(a);
  table.update(b);
  table.update(c);
  table.update(b);
  assert.deepEqual(table.replacements(255).map((x) => x.id), [c.id, b.id]);
  table.update(d);
  assert.deepEqual(table.replacements(255).map((x) => x.id), [b.id, d.id]);
  const none = new RoutingTable(self.key, { k: 1, replacementCacheSize: 0 });
  none.update(a);
  none.update(b);
  assert.equal(none.replacements(255).length, 0);
});

Deno.test("recordFailure evicts after maxFailures and promotes a replacement", () => {
  const table = new RoutingTable(self.key, { k: 1, maxFailures: 2 });
  const [a, b] = contactsInBucket(254, 2);
  table.update(a);
  table.update(b);
  assert.equal(table.recordFailure(a.id), false);
  assert.ok(table.has(a.id));
  assert.equal(table.recordFailure(a.id), true);
  assert.ok(!table.has(a.id) && table.has(b.id));
  // Seeing a contact again resets its failure count.
  table.recordFailure(b.id);
  table.update(b);
  assert.equal(table.recordFailure(b.id), false);
  assert.ok(table.remove(b.id) && table.size === 0);
});

Deno.test("closest matches a brute-force sort by XOR distance", () => {
  const rng = new Prng(5);
  const table = new RoutingTable(self.key, { k: 20 });
  for (let i = 0; i < 2000; i++) {
    const u = table.update(makeContact(`peer-${i}`));
    if (u.status === "ping") table.pingResult(u.ping.id, rng.next() < 0.5);
  }
  const all = table.all();
  assert.ok(all.length > 100);
  const targets = [self.key, ...Array.from({ length: 50 }, () => rng.bytes(32))];
  for (let i = 0; i < 30; i++) targets.push(all[i].key);
  for (const target of targets) {
    for (const count of [1, 20, 37, all.length + 5]) {
      const expected = [...all].sort((a, b) => compareDistance(target, a.key, b.key))
        .slice(0, count).map((c) => c.id);
      assert.deepEqual(table.closest(target, count).map((c) => c.id), expected);
    }
  }
  const excluded = table.closest(all[0].key, 5, all[0].id);
  assert.ok(excluded.length === 5 && excluded.every((c) => c.id !== all[0].id));
});

Deno.test("bucketsToRefresh lists stale buckets down to the nearest non-empty one", async () => {
  const clock = new VirtualClock(0);
  const table = new RoutingTable(self.key, { clock, refreshIntervalMs: 1000 });
  assert.deepEqual(table.bucketsToRefresh(), []);
  table.update(contactsInBucket(250, 1)[0]);
  assert.deepEqual(table.bucketsToRefresh(), []);
  assert.deepEqual(table.bucketsToRefresh(true), [255, 254, 253, 252, 251, 250]);
  await clock.advance(1000);
  {
    table.markRefreshed(randomKeyInBucket(self.key, 253, (n) => new Uint8Array(n).fill(7)));
    assert.deepEqual(table.bucketsToRefresh(), [255, 254, 252, 251, 250]);
    table.markRefreshed(self.key); // the self key has no bucket: nothing changes
    assert.equal(table.bucketsToRefresh().length, 5);
  }
});

Deno.test("options are validated", () => {
  assert.throws(() => new RoutingTable(self.key, { k: 0 }), InvalidConfigError);
  assert.throws(() => new RoutingTable(self.key, { replacementCacheSize: -1 }), /-1/);
});
