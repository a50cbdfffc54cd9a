import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { LatencyHistogram } from "../../src/transport/latency_histogram.ts";

Deno.test("latency histogram: percentiles within the bucket width", () => {
  const h = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 .. 100 ms
  assertEquals(h.count, 1000);
  assert(Math.abs(h.mean - 50.05) < 1e-9);
  for (const [p, expected] of [[50, 50], [90, 90], [99, 99], [100, 100]]) {
    const got = h.percentile(p);
    assert(Math.abs(got - expected) / expected < 0.03, `p${p}: ${got} vs ${expected}`);
  }
  assert(h.percentile(0) >= 0.1);
});

Deno.test("latency histogram: empty, zero, huge and bad samples", () => {
  const h = new LatencyHistogram();
  assertEquals([h.mean, h.percentile(50)], [0, 0]);
  h.record(0);
  h.record(1e9); // beyond the last bucket: clamped into it, max still exact
  assertEquals(h.percentile(100), 1e9);
  assertEquals(h.percentile(50), 0);
  for (const bad of [-1, NaN, Infinity]) assertThrows(() => h.record(bad), RangeError, "'ms'");
  assertThrows(() => h.percentile(101), RangeError, "'p'");
});
