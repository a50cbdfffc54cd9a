import assert from "node:assert/strict";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import {
  BandwidthLimiter,
  type BandwidthLimiterOptions,
  type TrafficClass,
} from "../../src/pool/bandwidth_limiter.ts";
import { VirtualClock } from "../_virtual_clock.ts";

function limiter(clock: VirtualClock, options: BandwidthLimiterOptions): BandwidthLimiter {
  return new BandwidthLimiter({ ...options, clock });
}

Deno.test("BandwidthLimiter rejects invalid options under their own names", () => {
  for (const field of ["totalRate", "totalBurst", "peerRate", "peerBurst", "windowMs"]) {
    assert.throws(
      () => new BandwidthLimiter({ [field]: -1 }),
      (e: unknown) => e instanceof InvalidConfigError && e.field === field,
    );
  }
});

Deno.test("BandwidthLimiter serves a consensus waiter queued after vertex waiters first", async () => {
  const clock = new VirtualClock();
  const l = limiter(clock, { totalRate: 1000, totalBurst: 1000, peerRate: Infinity });
  assert.ok(l.tryAcquire("a", 1000)); // drain the node-wide bucket
  const order: string[] = [];
  const send = (name: string, peer: string, priority: TrafficClass) =>
    l.acquire(peer, 500, priority).then(() => order.push(name));
  const all = [
    send("vertex1", "a", "vertex"),
    send("other1", "c", "other"),
    send("vertex2", "b", "vertex"),
    send("consensus1", "c", "consensus"),
    send("vertex3", "a", "vertex"),
    send("consensus2", "b", "consensus"),
  ];
  await clock.advance(500);
  assert.deepEqual(order, ["consensus1"]);
  await clock.advance(2500);
  await Promise.all(all);
  assert.deepEqual(order, ["consensus1", "consensus2", "vertex1", "vertex2", "vertex3", "other1"]);
});

Deno.test("BandwidthLimiter keeps FIFO within a class", async () => {
  const clock = new VirtualClock();
  const l = limiter(clock, { totalRate: 100, totalBurst: 100, peerRate: Infinity });
  l.tryAcquire("x", 100);
  const order: number[] = [];
  const all = [0, 1, 2, 3, 4].map((i) =>
    l.acquire(`p${i % 2}`, 100, "vertex").then(() => order.push(i))
  );
  await clock.advance(5000);
  await Promise.all(all);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
});

Deno.test("BandwidthLimiter: a peer held back by its own bucket does not stall other peers", async () => {
  const clock = new VirtualClock();
  const l = limiter(clock, {
    totalRate: 10_000,
    totalBurst: 10_000,
    peerRate: 100,
    peerBurst: 100,
  });
  assert.ok(l.tryAcquire("slow", 100));
  let slowDone = false;
  let fastDone = false;
  const slow = l.acquire("slow", 100, "consensus").then(() => (slowDone = true));
  const fast = l.acquire("fast", 100, "other").then(() => (fastDone = true));
  await clock.advance(0);
  assert.ok(fastDone && !slowDone);
  await clock.advance(1000);
  assert.ok(slowDone);
  await Promise.all([slow, fast]);
});

Deno.test("BandwidthLimiter holds node-wide and per-peer rates within 1% over 10 virtual seconds", async () => {
  const clock = new VirtualClock();
  const l = limiter(clock, {
    totalRate: 50_000,
    totalBurst: 5000,
    peerRate: 20_000,
    peerBurst: 2000,
  });
  let running = true;
  const sent = new Map<string, number>();
  const sender = async (peer: string, priority: TrafficClass) => {
    while (running) {
      await l.acquire(peer, 1000, priority);
      sent.set(peer, (sent.get(peer) ?? 0) + 1000);
    }
  };
  // Drain the initial bursts so they do not count as throughput.
  for (const peer of ["a", "b", "c", "d"]) l.tryAcquire(peer, 2000);
  l.tryAcquire("e", 5000);
  const senders = ["a", "b", "c", "d"].map((p) => sender(p, "vertex"));
  await clock.advance(10_000);
  running = false;
  const total = [...sent.values()].reduce((x, y) => x + y, 0) / 10;
  assert.ok(Math.abs(total - 50_000) / 50_000 < 0.01, `node-wide ${total} B/s`);
  for (const [peer, bytes] of sent) {
    assert.ok(bytes / 10 <= 20_000 * 1.01, `peer ${peer} sent ${bytes / 10} B/s`);
  }
  const usage = l.usage();
  assert.ok(Math.abs(usage.total - 50_000) / 50_000 < 0.05, `meter reads ${usage.total}`);
  assert.equal(usage.total, l.bytesPerSecond());
  assert.equal(usage.peers.get("a"), l.bytesPerSecond("a"));
  await clock.advance(1000);
  await Promise.all(senders);
});

Deno.test("BandwidthLimiter honours abort and rejects waiters of a removed peer", async () => {
  const clock = new VirtualClock();
  const l = limiter(clock, { totalRate: 100, totalBurst: 100, peerRate: Infinity });
  l.tryAcquire("a", 100);
  const controller = new AbortController();
  const aborted = l.acquire("a", 100, "consensus", controller.signal);
  const removed = l.acquire("b", 100, "vertex");
  let otherDone = false;
  const other = l.acquire("c", 50, "other").then(() => (otherDone = true));
  controller.abort("timeout");
  await assert.rejects(
    aborted,
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_ABORTED" && e.cause === "timeout",
  );
  l.removePeer("b");
  await assert.rejects(
    removed,
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_ABORTED",
  );
  assert.ok(!l.usage().peers.has("b"));
  await clock.advance(500);
  assert.ok(otherDone);
  await other;
  assert.equal(l.pending, 0);
  assert.equal(clock.timers, 0);
});

Deno.test("BandwidthLimiter.tryAcquire does not jump waiting sends", () => {
  const clock = new VirtualClock();
  const l = limiter(clock, { totalRate: 100, totalBurst: 100, peerRate: Infinity });
  assert.ok(l.tryAcquire("a", 60));
  const waiting = l.acquire("a", 60, "consensus");
  assert.ok(!l.tryAcquire("b", 10), "tokens are there, but a consensus send is waiting");
  l.removePeer("a");
  return assert.rejects(waiting);
});
