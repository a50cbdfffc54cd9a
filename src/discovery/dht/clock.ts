/**
 * The time source the DHT runs on. Lookups, the routing table, rate limits and record expiry
 * read time only through this interface, so a simulator can drive thousands of nodes on a
 * virtual clock while the real node uses the system clock.
 *
 * @module
 */

/**
 * Reads the current time and schedules callbacks.
 *
 * @example A clock that never fires timers, for pure bookkeeping tests
 * ```ts
 * import type { DhtClock } from "@cretoai/network";
 *
 * let now = 0;
 * const clock: DhtClock = { now: () => now, setTimer: () => () => {} };
 * now += 1000;
 * console.assert(clock.now() === 1000);
 * ```
 */
export interface DhtClock {
  /** Current time in milliseconds; only differences and comparisons with expiry times matter. */
  now(): number;
  /**
   * Calls `callback` once, `delayMs` milliseconds from now.
   *
   * @returns A function that cancels the timer; calling it after the timer fired does nothing.
   */
  setTimer(callback: () => void, delayMs: number): () => void;
}

/**
 * The wall clock: `Date.now()` and the global `setTimeout`.
 *
 * @example
 * ```ts
 * import { systemClock } from "@cretoai/network";
 *
 * const cancel = systemClock.setTimer(() => console.log("late"), 10_000);
 * cancel();
 * console.assert(systemClock.now() > 0);
 * ```
 */
export const systemClock: DhtClock = {
  now: () => Date.now(),
  setTimer(callback, delayMs) {
    const handle = setTimeout(callback, delayMs);
    return () => clearTimeout(handle);
  },
};
