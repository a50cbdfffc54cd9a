/**
 * Deadlines of one length that share one timer: a connection's request streams each have
 * `requestTimeoutMs` to be read and to be answered, and a peer may hold hundreds of them open.
 * A timer and a promise race per stream kept about 6 KB of JavaScript alive per stalled
 * stream; a deadline here is one entry of a map.
 *
 * @module
 */

import type { Clock } from "../clock.ts";

/**
 * Deadlines that all last `timeoutMs` on one monotonic clock, with at most one timer armed for
 * all of them. Armed in call order, they fall due in that order, so the map's insertion order
 * is its due order: arming and disarming cost O(1), and a sweep stops at the first deadline not
 * yet due.
 */
export class DeadlineSweep {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  /** What each armed deadline calls, and when it is due; earliest first. */
  readonly #armed = new Map<() => void, number>();
  /** Cancels the one timer, armed while any deadline is (and due no later than the first). */
  #cancelTimer: (() => void) | undefined;

  /**
   * @param clock A monotonic clock (`systemClock`): due order is arming order only if time
   *   never goes back.
   * @param timeoutMs How long each deadline lasts.
   */
  constructor(clock: Clock, timeoutMs: number) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
  }

  /** Deadlines armed and not yet due or disarmed. */
  get size(): number {
    return this.#armed.size;
  }

  /**
   * Arms a deadline `timeoutMs` from now (again, if `onExpire` is armed already): `onExpire`
   * runs once when it is due, and must not throw (the deadlines after it would wait for the
   * next sweep).
   */
  arm(onExpire: () => void): void {
    // Deleted first: a map keeps a key's first place, and this one is now the last due.
    this.#armed.delete(onExpire);
    this.#armed.set(onExpire, this.#clock.now() + this.#timeoutMs);
    // Otherwise the timer, or the sweep running now, covers an earlier deadline.
    if (this.#armed.size === 1) {
      this.#cancelTimer = this.#clock.schedule(this.#sweep, this.#timeoutMs);
    }
  }

  /** Takes a deadline back; the timer stops when none is left. Does nothing if none is armed. */
  disarm(onExpire: () => void): void {
    if (!this.#armed.delete(onExpire) || this.#armed.size > 0) return;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  /** Expires every deadline that is due, then arms the timer for the earliest one left. */
  #sweep = (): void => {
    this.#cancelTimer = undefined;
    const now = this.#clock.now();
    for (const [onExpire, dueAt] of this.#armed) {
      if (dueAt > now) break;
      this.#armed.delete(onExpire);
      onExpire();
    }
    // An onExpire that armed the only deadline left armed the timer too.
    const earliest = this.#armed.values().next();
    if (this.#cancelTimer !== undefined || earliest.done) return;
    this.#cancelTimer = this.#clock.schedule(this.#sweep, earliest.value - now);
  };
}
