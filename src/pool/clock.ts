/**
 * The injected sense of time of the pool's state machines. Nothing in `src/pool/` reads the
 * system clock or arms a real timer directly, so tests can drive it on a virtual clock.
 *
 * @module
 */

/**
 * A monotonic clock in milliseconds.
 *
 * @example A clock that a test moves by hand
 * ```ts
 * import type { Clock } from "@cretoai/network";
 *
 * let t = 0;
 * const clock: Clock = { now: () => t };
 * t += 1000;
 * console.assert(clock.now() === 1000);
 * ```
 */
export interface Clock {
  /** The current time in milliseconds; only differences between readings matter. */
  now(): number;
}

/**
 * Arms one-shot timers; the default is `setTimeout`, tests use a virtual scheduler.
 *
 * @example A scheduler backed by `setTimeout`
 * ```ts
 * import type { Scheduler } from "@cretoai/network";
 *
 * const scheduler: Scheduler = {
 *   schedule(callback, delayMs) {
 *     const id = setTimeout(callback, delayMs);
 *     return () => clearTimeout(id);
 *   },
 * };
 * scheduler.schedule(() => {}, 0)();
 * ```
 */
export interface Scheduler {
  /**
   * Calls `callback` once, after about `delayMs` milliseconds.
   *
   * @param callback Called when the timer fires.
   * @param delayMs Delay in milliseconds; 0 or more, may be fractional.
   * @returns A function that cancels the timer if it has not fired yet.
   */
  schedule(callback: () => void, delayMs: number): () => void;
}

/**
 * The system's monotonic clock, `performance.now()`.
 *
 * @example
 * ```ts
 * import { systemClock } from "@cretoai/network";
 *
 * const start = systemClock.now();
 * console.assert(systemClock.now() >= start);
 * ```
 */
export const systemClock: Clock = { now: () => performance.now() };

/**
 * The system's timers, `setTimeout` and `clearTimeout`.
 *
 * @example
 * ```ts
 * import { systemScheduler } from "@cretoai/network";
 *
 * const cancel = systemScheduler.schedule(() => console.log("never"), 1000);
 * cancel();
 * ```
 */
export const systemScheduler: Scheduler = {
  schedule(callback: () => void, delayMs: number): () => void {
    const id = setTimeout(callback, delayMs);
    return () => clearTimeout(id);
  },
};
