import { assertEquals } from "../_assert.ts";
import { VirtualClock } from "../_virtual_clock.ts";
import { DeadlineSweep } from "../../src/transport/_deadline_sweep.ts";

/** A sweep on a virtual clock, and a log of which deadline expired when. */
function setup(timeoutMs = 1000) {
  const clock = new VirtualClock();
  const sweep = new DeadlineSweep(clock, timeoutMs);
  const expired: string[] = [];
  const deadline = (name: string) => () => expired.push(`${name}@${clock.now()}`);
  return { clock, sweep, expired, deadline };
}

Deno.test("DeadlineSweep: each deadline expires timeoutMs after it was armed, in arming order, with one timer", async () => {
  const { clock, sweep, expired, deadline } = setup();
  sweep.arm(deadline("a"));
  await clock.advance(300);
  sweep.arm(deadline("b"));
  sweep.arm(deadline("c"));
  assertEquals(clock.timers, 1);
  await clock.advance(699);
  assertEquals(expired, []);
  await clock.advance(1);
  assertEquals(expired, ["a@1000"]);
  assertEquals(clock.timers, 1); // re-armed for b and c
  await clock.advance(300);
  assertEquals(expired, ["a@1000", "b@1300", "c@1300"]);
  assertEquals([sweep.size, clock.timers], [0, 0]);
});

Deno.test("DeadlineSweep: a disarmed deadline never expires; the timer stops when none is left", async () => {
  const { clock, sweep, expired, deadline } = setup();
  const a = deadline("a");
  const b = deadline("b");
  sweep.arm(a);
  await clock.advance(500);
  sweep.arm(b);
  sweep.disarm(a); // the timer, due at 1000, now wakes early and re-arms for b
  await clock.advance(1000);
  assertEquals(expired, ["b@1500"]);
  sweep.arm(a);
  sweep.disarm(a);
  sweep.disarm(a); // twice, or after it expired: nothing
  sweep.disarm(b);
  assertEquals([sweep.size, clock.timers], [0, 0]);
  await clock.advance(5000);
  assertEquals(expired, ["b@1500"]);
});

Deno.test("DeadlineSweep: arming an armed deadline again moves it to timeoutMs from now", async () => {
  const { clock, sweep, expired, deadline } = setup();
  const a = deadline("a");
  sweep.arm(a);
  await clock.advance(400);
  sweep.arm(deadline("b"));
  sweep.arm(a);
  await clock.advance(1000);
  assertEquals(expired, ["b@1400", "a@1400"]);
  assertEquals(clock.timers, 0);
});

Deno.test("DeadlineSweep: a deadline armed by an expiring one is covered, and so are the ones before it", async () => {
  const { clock, sweep, expired, deadline } = setup();
  const again = deadline("again");
  sweep.arm(() => {
    expired.push(`a@${clock.now()}`);
    sweep.arm(again);
  });
  await clock.advance(1000);
  assertEquals(expired, ["a@1000"]);
  assertEquals(clock.timers, 1);
  // b is armed before `again` is due: both expire, each on time.
  await clock.advance(100);
  sweep.arm(deadline("b"));
  await clock.advance(2000);
  assertEquals(expired, ["a@1000", "again@2000", "b@2100"]);
  assertEquals(clock.timers, 0);
});

Deno.test("DeadlineSweep: a timer that fires before the clock reached the deadline re-arms for the rest", async () => {
  const clock = new VirtualClock();
  let early = true;
  // The first timer fires half a millisecond before the time it was armed for.
  const skewed = {
    now: () => clock.now(),
    schedule(callback: () => void, delayMs: number) {
      const skewMs = early ? 0.5 : 0;
      early = false;
      return clock.schedule(callback, delayMs - skewMs);
    },
  };
  const sweep = new DeadlineSweep(skewed, 1000);
  const expired: number[] = [];
  sweep.arm(() => expired.push(clock.now()));
  await clock.advance(999.5);
  assertEquals([expired, clock.timers], [[], 1]);
  await clock.advance(0.5);
  assertEquals([expired, clock.timers], [[1000], 0]);
});
