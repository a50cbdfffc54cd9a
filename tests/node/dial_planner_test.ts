import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { type DialCandidate, DialPlanner } from "../../src/node/dial_planner.ts";

const dht = (id: string, port = 9000): DialCandidate => ({
  peerId: id,
  addresses: [`127.0.0.1:${port}`],
  foundBy: "dht",
});
const ids = (list: DialCandidate[]) => list.map((c) => c.peerId ?? c.addresses[0]);

Deno.test("DialPlanner dials up to the target, counting connected and dialing peers", () => {
  const planner = new DialPlanner({ targetPeers: 3 });
  for (const [i, id] of ["a", "b", "c", "d", "e"].entries()) planner.add(dht(id, 9000 + i));
  planner.connected("a", "127.0.0.1:9000");
  assertEquals(ids(planner.next(0)), ["b", "c"]);
  assertEquals(planner.next(0), [], "two in flight and one connected make three");
  planner.dialSucceeded(planner.get("b")!, "b");
  planner.connected("b", "127.0.0.1:9001");
  assertEquals(planner.next(0), [], "c still in flight");
});

Deno.test("DialPlanner keeps at most maxParallelDials in flight", () => {
  const planner = new DialPlanner({ targetPeers: 10, maxParallelDials: 2 });
  for (let i = 0; i < 5; i++) planner.add(dht(`p${i}`, 9000 + i));
  assertEquals(planner.next(0).length, 2);
  assertEquals(planner.next(0).length, 0);
});

Deno.test("DialPlanner backs a failing peer off, doubling up to retryMaxMs", () => {
  const planner = new DialPlanner({ targetPeers: 1, retryBaseMs: 100, retryMaxMs: 350 });
  planner.add(dht("a"));
  const waits: number[] = [];
  let now = 0;
  for (let i = 0; i < 4; i++) {
    const [c] = planner.next(now);
    assert(c !== undefined, `due at ${now}`);
    const wait = planner.dialFailed(c, now)!;
    waits.push(wait);
    assertEquals(planner.next(now + wait - 1), [], "not before its time");
    assertEquals(planner.nextDueAt(now), now + wait);
    now += wait;
  }
  assertEquals(waits, [100, 200, 350, 350]);
});

Deno.test("DialPlanner prefers candidates that failed least", () => {
  const planner = new DialPlanner({ targetPeers: 1, retryBaseMs: 10 });
  planner.add(dht("flaky", 9000));
  planner.dialFailed(planner.next(0)[0], 0);
  planner.add(dht("fresh", 9001));
  assertEquals(ids(planner.next(100)), ["fresh"]);
});

Deno.test("DialPlanner replaces a lost peer: it is due again retryBaseMs after it left", () => {
  const planner = new DialPlanner({ targetPeers: 1, retryBaseMs: 1000 });
  planner.add(dht("a"));
  planner.connected("a", "127.0.0.1:9000");
  assertEquals(planner.next(0), []);
  planner.disconnected("a", 5000);
  assert(planner.starved(5000), "below target with nobody due");
  assertEquals(planner.next(5999), []);
  assertEquals(ids(planner.next(6000)), ["a"]);
});

Deno.test("DialPlanner files a bootstrap address under the peer id that answered", () => {
  const planner = new DialPlanner({ targetPeers: 2 });
  planner.add({ peerId: undefined, addresses: ["127.0.0.1:9001"], foundBy: "bootstrap" });
  const [boot] = planner.next(0);
  planner.connected("b", "127.0.0.1:9001");
  planner.dialSucceeded(boot, "b");
  assertEquals(planner.get("b")?.foundBy, "bootstrap");
  assertEquals(planner.size, 1);
  assertEquals(planner.next(0), [], "connected under its id");
  assert(!planner.add({ peerId: undefined, addresses: ["127.0.0.1:9001"], foundBy: "bootstrap" }));
  assert(!planner.add(dht("b", 9001)), "known already; merged");
  assertEquals(planner.get("b")?.foundBy, "bootstrap", "keeps how it was first found");
});

Deno.test("DialPlanner does not dial a bootstrap address a connected peer already holds", () => {
  const planner = new DialPlanner({ targetPeers: 3 });
  planner.connected("x", "127.0.0.1:9001");
  assert(!planner.add({ peerId: undefined, addresses: ["127.0.0.1:9001"], foundBy: "bootstrap" }));
  assertEquals(planner.next(0), []);
});

Deno.test("DialPlanner holds at most maxCandidates, dropping the most failed, never bootstrap", () => {
  const planner = new DialPlanner({ targetPeers: 1, maxCandidates: 2, retryBaseMs: 10 });
  planner.add({ peerId: undefined, addresses: ["127.0.0.1:1"], foundBy: "bootstrap" });
  planner.add(dht("a", 2));
  planner.dialFailed(planner.next(0)[0], 0); // the bootstrap address fails, not dropped
  planner.add(dht("b", 3));
  assertEquals(planner.size, 2);
  assertEquals(planner.get("b")?.peerId, "b");
  assert(planner.get("a") === undefined || planner.get("b") === undefined);
});

Deno.test("DialPlanner rejects bad options by name", () => {
  assertThrows(() => new DialPlanner({ targetPeers: -1 }), InvalidConfigError, "'targetPeers'");
  assertThrows(
    () => new DialPlanner({ targetPeers: 1, retryBaseMs: 10, retryMaxMs: 5 }),
    InvalidConfigError,
    "'retryMaxMs'",
  );
  assertThrows(
    () => new DialPlanner({ targetPeers: 1, maxParallelDials: 0 }),
    InvalidConfigError,
    "'maxParallelDials'",
  );
});

Deno.test("DialPlanner forgets a candidate after maxFailures in a row, never a bootstrap one", () => {
  const planner = new DialPlanner({ targetPeers: 2, maxFailures: 2, retryBaseMs: 1 });
  planner.add(dht("a"));
  planner.add({ peerId: undefined, addresses: ["127.0.0.1:1"], foundBy: "bootstrap" });
  let now = 0;
  for (let round = 0; round < 3; round++, now += 100) {
    for (const c of planner.next(now)) planner.dialFailed(c, now);
  }
  assertEquals(planner.get("a"), undefined);
  assertEquals(planner.size, 1, "the bootstrap address stays");
  assert(planner.add(dht("a")), "found again, it is new");
});
