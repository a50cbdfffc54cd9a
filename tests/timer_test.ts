/**
 * Timers beyond setTimeout's 2^31-1 ms limit: the real `setTimeout` is replaced by a recorder for
 * the length of each test, so a 50-day wait is checked without waiting and without a warning.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MAX_TIMER_DELAY_MS, scheduleTimeout, timerDelayMs } from "../src/_timer.ts";
import { systemClock, wallClock } from "../src/clock.ts";

interface Armed {
  delayMs: number;
  fire: () => void;
  cancelled: boolean;
}

/** Runs `body` with `setTimeout`/`clearTimeout` recording instead of arming real timers. */
function withRecordedTimers(body: (armed: Armed[]) => void): void {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const armed: Armed[] = [];
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  g.setTimeout = (fire: () => void, delayMs: number) => {
    armed.push({ delayMs, fire, cancelled: false });
    return armed.length;
  };
  g.clearTimeout = (id: number) => {
    if (armed[id - 1] !== undefined) armed[id - 1].cancelled = true;
  };
  try {
    body(armed);
  } finally {
    g.setTimeout = realSet;
    g.clearTimeout = realClear;
  }
}

Deno.test("timerDelayMs: NaN and negatives are 0, beyond 2^31-1 ms is 2^31-1 ms", () => {
  assert.deepEqual(
    [NaN, -5, 0, 1.5, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS + 1, 4.3e12, Infinity].map(
      timerDelayMs,
    ),
    [0, 0, 0, 1.5, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS],
  );
});

Deno.test("scheduleTimeout: a 50-day wait is armed in steps of at most 2^31-1 ms and fires once", () => {
  withRecordedTimers((armed) => {
    const fifty = 50 * 86_400_000;
    let fired = 0;
    scheduleTimeout(() => fired++, fifty);
    for (let step = 0; step < 10 && fired === 0; step++) armed.at(-1)!.fire();
    assert.equal(fired, 1);
    assert.ok(armed.every((a) => a.delayMs >= 0 && a.delayMs <= MAX_TIMER_DELAY_MS), "no overflow");
    assert.equal(armed.length, 3, "two full steps and the rest");
    assert.equal(armed.reduce((sum, a) => sum + a.delayMs, 0), fifty, "the steps add up");
  });
});

Deno.test("scheduleTimeout: cancel stops a long wait between steps; Infinity never fires", () => {
  withRecordedTimers((armed) => {
    let fired = 0;
    const cancel = scheduleTimeout(() => fired++, 3 * MAX_TIMER_DELAY_MS);
    armed[0].fire();
    cancel();
    assert.equal(armed[1].cancelled, true, "the step armed after the first is the one cancelled");

    scheduleTimeout(() => fired++, Infinity);
    for (let step = 0; step < 100; step++) armed.at(-1)!.fire();
    assert.equal(fired, 0);
    assert.ok(armed.every((a) => a.delayMs === MAX_TIMER_DELAY_MS));
  });
});

Deno.test("systemClock and wallClock never hand setTimeout more than 2^31-1 ms", () => {
  withRecordedTimers((armed) => {
    for (const clock of [systemClock, wallClock]) {
      clock.schedule(() => {}, 2 ** 40)();
      clock.schedule(() => {}, NaN)();
    }
    assert.deepEqual(armed.map((a) => a.delayMs), [
      MAX_TIMER_DELAY_MS,
      0,
      MAX_TIMER_DELAY_MS,
      0,
    ]);
  });
});
