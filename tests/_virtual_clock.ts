/**
 * A virtual {@linkcode Clock} for unit tests: time moves only when a test advances it, timers
 * fire in due order (first armed first on ties) at their due time, and promise callbacks run
 * after each timer. The DHT simulator keeps its own event-queue clock
 * (`tests/discovery/dht/_simulator.ts`), built for thousands of nodes.
 *
 * @module
 */

import type { Clock } from "../src/clock.ts";

interface Timer {
  at: number;
  seq: number;
  callback: () => void;
}

/** Lets every pending promise callback run, including chains queued by those callbacks. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A clock that only moves when {@linkcode VirtualClock.advance} or `advanceTo` is called. */
export class VirtualClock implements Clock {
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
  advance(ms: number): Promise<void> {
    return this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `target`, firing due timers in order and settling after each. */
  async advanceTo(target: number): Promise<void> {
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
