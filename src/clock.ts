/**
 * The injected sense of time of the module's state machines (pool, limiter, STUN client,
 * DHT). Nothing in them reads the system clock or arms a real timer directly, so tests and
 * simulators drive them on a virtual clock.
 *
 * @module
 */

import { scheduleTimeout as schedule } from "./_timer.ts";

/**
 * Reads the current time and arms one-shot timers.
 *
 * @example A clock that a test moves by hand and that never fires timers
 * ```ts
 * import type { Clock } from "@cretoai/network";
 *
 * let t = 0;
 * const clock: Clock = { now: () => t, schedule: () => () => {} };
 * t += 1000;
 * console.assert(clock.now() === 1000);
 * ```
 */
export interface Clock {
  /** The current time in milliseconds; see {@linkcode systemClock} and {@linkcode wallClock}. */
  now(): number;
  /**
   * Calls `callback` once, after about `delayMs` milliseconds.
   *
   * @param callback Called when the timer fires.
   * @param delayMs Delay in milliseconds; 0 or more, may be fractional, may exceed `setTimeout`'s
   * limit of 2^31-1 ms (the system clocks wait in steps); `Infinity` never fires.
   * @returns A function that cancels the timer; calling it after the timer fired does nothing.
   */
  schedule(callback: () => void, delayMs: number): () => void;
}

/**
 * The system's monotonic clock, `performance.now()`, and `setTimeout`: for code that only
 * measures intervals (rates, timeouts, retransmissions), which a wall-clock step must not upset.
 *
 * @example
 * ```ts
 * import { systemClock } from "@cretoai/network";
 *
 * const start = systemClock.now();
 * const cancel = systemClock.schedule(() => console.log("never"), 1000);
 * cancel();
 * console.assert(systemClock.now() >= start);
 * ```
 */
export const systemClock: Clock = { now: () => performance.now(), schedule };

/**
 * The wall clock, `Date.now()`, and `setTimeout`: for times that other nodes read, such as
 * the absolute expiry times of DHT records.
 *
 * @example
 * ```ts
 * import { wallClock } from "@cretoai/network";
 *
 * const cancel = wallClock.schedule(() => console.log("late"), 10_000);
 * cancel();
 * console.assert(wallClock.now() > 1_600_000_000_000);
 * ```
 */
export const wallClock: Clock = { now: () => Date.now(), schedule };
