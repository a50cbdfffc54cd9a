import assert from "node:assert/strict";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { TokenBucket } from "../../src/pool/token_bucket.ts";
import { VirtualClock } from "../_virtual_clock.ts";

function bucket(rate: number, burst: number, clock: VirtualClock): TokenBucket {
  return new TokenBucket({ rate, burst, clock });
}

Deno.test("TokenBucket rejects invalid rate and burst, naming the field and value", () => {
  const clock = new VirtualClock();
  const cases: [number, number, string][] = [
    [0, 1, "rate"],
    [-5, 1, "rate"],
    [NaN, 1, "rate"],
    [1, 0, "burst"],
    [1, Infinity, "burst"],
  ];
  for (const [rate, burst, field] of cases) {
    assert.throws(
      () => bucket(rate, burst, clock),
      (e: unknown) =>
        e instanceof InvalidConfigError && e.code === "ERR_INVALID_CONFIG" && e.field === field &&
        e.message.includes(`'${field}'`),
    );
  }
  assert.throws(() => bucket(10, 10, clock).tryTake(-1), RangeError);
  assert.throws(() => bucket(10, 10, clock).tryTake(1.5), /'bytes' must be a non-negative integer/);
});

Deno.test("TokenBucket starts full, then refills at the rate up to the burst", async () => {
  const clock = new VirtualClock();
  const b = bucket(1000, 500, clock);
  assert.ok(b.tryTake(500));
  assert.ok(!b.tryTake(1));
  assert.equal(b.delayUntil(100), 100);
  await clock.advance(100);
  assert.ok(b.tryTake(100));
  await clock.advance(10_000);
  assert.equal(b.available, 500, "capped at the burst after a long pause");
});

Deno.test("TokenBucket sends a request larger than the burst whole, then waits out the debt", async () => {
  const clock = new VirtualClock();
  const b = bucket(1000, 1000, clock);
  assert.ok(b.tryTake(3000), "a full bucket grants an oversized request");
  assert.equal(b.available, -2000);
  assert.equal(b.delayUntil(1), 2001);
  const start = clock.now();
  let at = -1;
  b.acquire(5000).then(() => (at = clock.now()));
  await clock.advance(10_000);
  assert.equal(at - start, 3000, "waits for the debt to clear and the bucket to refill");
});

Deno.test("TokenBucket.acquire holds the rate within 1% over 10 virtual seconds", async () => {
  const clock = new VirtualClock();
  const rate = 100_000;
  const b = bucket(rate, 10_000, clock);
  b.tryTake(10_000); // start empty, so the burst does not count as throughput
  let sent = 0;
  let running = true;
  const sender = (async () => {
    while (running) {
      await b.acquire(1200);
      sent += 1200;
    }
  })();
  await clock.advance(10_000);
  running = false;
  const measured = sent / 10;
  assert.ok(Math.abs(measured - rate) / rate < 0.01, `measured ${measured} B/s`);
  await clock.advance(1000);
  await sender;
});

Deno.test("TokenBucket.acquire serves higher priority first and FIFO within a priority", async () => {
  const clock = new VirtualClock();
  const b = bucket(100, 100, clock);
  b.tryTake(100);
  const order: string[] = [];
  const wait = (name: string, priority: number) =>
    b.acquire(100, { priority }).then(() => order.push(name));
  const all = [wait("low1", 0), wait("low2", 0), wait("high1", 1), wait("high2", 1)];
  assert.equal(b.pending, 4);
  assert.ok(!b.tryTake(0), "tryTake does not jump the queue");
  await clock.advance(4000);
  await Promise.all(all);
  assert.deepEqual(order, ["high1", "high2", "low1", "low2"]);
});

Deno.test("TokenBucket.acquire rejects with ERR_ABORTED and the reason, and frees the queue", async () => {
  const clock = new VirtualClock();
  const b = bucket(100, 100, clock);
  b.tryTake(100);
  const controller = new AbortController();
  const aborted = b.acquire(100, { signal: controller.signal });
  let nextDone = false;
  const next = b.acquire(50).then(() => (nextDone = true));
  const reason = new Error("peer gone");
  controller.abort(reason);
  await assert.rejects(aborted, (e: unknown) => {
    assert.ok(e instanceof NetworkError);
    assert.equal(e.code, "ERR_ABORTED");
    assert.equal(e.cause, reason);
    return true;
  });
  assert.equal(b.pending, 1);
  await clock.advance(500);
  assert.ok(nextDone, "the waiter behind the aborted one goes after 500 ms, not 1000 ms");
  await next;

  const already = AbortSignal.abort("early");
  await assert.rejects(
    b.acquire(1, { signal: already }),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_ABORTED" && e.cause === "early",
  );
  assert.equal(clock.timers, 0, "no timer is left armed");
});

Deno.test("TokenBucket with an infinite rate never waits", () => {
  const clock = new VirtualClock();
  const b = bucket(Infinity, 10, clock);
  assert.ok(b.tryTake(10));
  assert.equal(b.delayUntil(10), 0);
  assert.ok(b.tryTake(1_000_000));
});
