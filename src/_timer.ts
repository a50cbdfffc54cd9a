/**
 * Timers that honour any delay. `setTimeout` holds delays in a signed 32-bit integer: above
 * 2^31-1 ms (about 24.8 days) it fires after 1 ms and prints a TimeoutOverflowWarning, so a
 * loop that re-arms for a far deadline (a record TTL or lifetime read from the wire) spins.
 * Every timer of the module whose delay is not a small constant goes through these.
 *
 * @module
 */

/** The longest delay `setTimeout` honours, in milliseconds (2^31-1, about 24.8 days). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * A delay `setTimeout` honours: `NaN` and negative delays become 0, longer ones
 * {@linkcode MAX_TIMER_DELAY_MS}. A timer armed with it may fire early, never spin: for loops
 * that look at the time again when they wake.
 */
export function timerDelayMs(delayMs: number): number {
  return delayMs > 0 ? Math.min(delayMs, MAX_TIMER_DELAY_MS) : 0;
}

/**
 * Calls `callback` once after `delayMs`, also beyond {@linkcode MAX_TIMER_DELAY_MS}: a longer
 * wait is covered by timers of at most that length, one after the other. `Infinity` never fires.
 *
 * @returns A function that cancels the timer; calling it after the timer fired does nothing.
 */
export function scheduleTimeout(callback: () => void, delayMs: number): () => void {
  let id: ReturnType<typeof setTimeout>;
  const arm = (remainingMs: number) => {
    id = remainingMs > MAX_TIMER_DELAY_MS
      ? setTimeout(() => arm(remainingMs - MAX_TIMER_DELAY_MS), MAX_TIMER_DELAY_MS)
      : setTimeout(callback, timerDelayMs(remainingMs));
  };
  arm(delayMs);
  return () => clearTimeout(id);
}
