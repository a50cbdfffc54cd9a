import assert from "node:assert/strict";
import { InvalidConfigError } from "../../src/errors.ts";
import { RateMeter } from "../../src/pool/rate_meter.ts";
import { VirtualClock } from "../_virtual_clock.ts";

Deno.test("RateMeter reads a steady flow at its rate", async () => {
  const clock = new VirtualClock();
  const meter = new RateMeter({ windowMs: 1000, slots: 10, clock });
  for (let i = 0; i < 50; i++) {
    meter.record(500); // 500 bytes every 50 ms = 10 kB/s
    await clock.advance(50);
    // The first window is still filling, and its reading depends on where samples fall.
    if (clock.now() < 1000) continue;
    const rate = meter.bytesPerSecond();
    assert.ok(Math.abs(rate - 10_000) / 10_000 < 0.06, `at ${clock.now()} ms read ${rate}`);
  }
  assert.equal(meter.totalBytes, 25_000);
});

Deno.test("RateMeter forgets bytes older than the window", async () => {
  const clock = new VirtualClock();
  const meter = new RateMeter({ windowMs: 1000, clock });
  meter.record(1000);
  await clock.advance(500);
  assert.ok(meter.bytesPerSecond() > 0);
  await clock.advance(1000);
  assert.equal(meter.bytesPerSecond(), 0);
  assert.equal(meter.totalBytes, 1000);
});

Deno.test("RateMeter rejects invalid options and byte counts", () => {
  assert.throws(() => new RateMeter({ windowMs: 0 }), InvalidConfigError);
  assert.throws(
    () => new RateMeter({ slots: 1 }),
    (e: unknown) => e instanceof InvalidConfigError && e.field === "slots",
  );
  assert.throws(() => new RateMeter().record(-1), RangeError);
});
