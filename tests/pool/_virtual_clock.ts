/**
 * A virtual clock and scheduler for the pool tests: time moves only when a test advances it,
 * timers fire in due order at their due time, and promise callbacks run between timers.
 *
 * @module
 */

import type { Clock, Scheduler } from "../../src/pool/clock.ts";

interface Timer {
  at: number;
  seq: number;
  callback: () => void;
}

/** Lets every pending promise callback run, including chains queued by those callbacks. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A clock and scheduler that only move when {@linkcode VirtualClock.advance} is called. */
export class VirtualClock implements Clock, Scheduler {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  schedule(callback: () => void, delayMs: number): () => void {
    const timer = { at: this.#now + Math.max(0, delayMs || 0), seq: this.#seq++, callback };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** Number of armed timers. */
  get timers(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await settle();
    }
    this.#now = target;
    await settle();
  }
}
