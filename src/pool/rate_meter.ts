/**
 * A sliding-window throughput meter on an injected clock.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { requireByteCount, requireInteger, requirePositiveFinite } from "../_validate.ts";

/** Options of {@linkcode RateMeter}. */
export interface RateMeterOptions {
  /**
   * Length of the window the rate is averaged over, in milliseconds.
   *
   * @default {1000}
   */
  windowMs?: number;
  /**
   * Number of slots the window is cut into; the window slides one slot at a time, so more
   * slots follow changes more smoothly at the cost of memory.
   *
   * @default {10}
   */
  slots?: number;
  /**
   * Source of the current time; the meter arms no timers.
   *
   * @default {systemClock}
   */
  clock?: Pick<Clock, "now">;
}

/**
 * Measures bytes per second over the last `windowMs` milliseconds.
 *
 * The window slides in steps of `windowMs / slots`; the rate is the bytes of the current,
 * partial slot and the `slots - 1` slots before it, divided by the time they span.
 *
 * @example
 * ```ts
 * import { RateMeter } from "@cretoai/network/pool";
 *
 * let now = 0;
 * const meter = new RateMeter({ clock: { now: () => now } });
 * for (; now < 2000; now += 100) meter.record(100);
 * console.assert(Math.abs(meter.bytesPerSecond() - 1000) < 1);
 * ```
 */
export class RateMeter {
  /** Window length in milliseconds. */
  readonly windowMs: number;
  #slotMs: number;
  #counts: number[];
  #ids: number[];
  #clock: Pick<Clock, "now">;
  #start: number;
  #total = 0;

  /**
   * Creates an empty meter.
   *
   * @param options Window, slot count and clock.
   * @throws {InvalidConfigError} If `windowMs` is not finite and greater than 0, or `slots`
   * is not an integer of at least 2.
   */
  constructor(options: RateMeterOptions = {}) {
    const { windowMs = 1000, slots = 10, clock = systemClock } = options;
    requirePositiveFinite("windowMs", windowMs);
    // One slot would be a tumbling window, which forgets everything at each boundary.
    requireInteger("slots", slots, 2);
    this.windowMs = windowMs;
    this.#slotMs = windowMs / slots;
    this.#counts = new Array<number>(slots).fill(0);
    this.#ids = new Array<number>(slots).fill(-Infinity);
    this.#clock = clock;
    this.#start = clock.now();
  }

  /**
   * Bytes recorded since the meter was created.
   *
   * @returns The running total.
   */
  get totalBytes(): number {
    return this.#total;
  }

  /**
   * Records `bytes` as sent or received now.
   *
   * @param bytes Number of bytes, 0 or more.
   * @throws {RangeError} If `bytes` is not a non-negative integer.
   */
  record(bytes: number): void {
    requireByteCount("bytes", bytes);
    const id = Math.floor(this.#clock.now() / this.#slotMs);
    const i = this.#index(id);
    if (this.#ids[i] !== id) {
      this.#ids[i] = id;
      this.#counts[i] = 0;
    }
    this.#counts[i] += bytes;
    this.#total += bytes;
  }

  /**
   * The average rate over the window ending now.
   *
   * @returns Bytes per second; 0 when nothing was recorded within the window.
   */
  bytesPerSecond(): number {
    const now = this.#clock.now();
    const id = Math.floor(now / this.#slotMs);
    const slots = this.#counts.length;
    let sum = 0;
    for (let i = 0; i < slots; i++) {
      if (this.#ids[i] > id - slots && this.#ids[i] <= id) sum += this.#counts[i];
    }
    if (sum === 0) return 0;
    // Divide by the span actually covered: the full slots, the part of the current one, and
    // no more than the meter's age, so a steady flow reads steady from the first slot on.
    const span = Math.min(
      (slots - 1) * this.#slotMs + (now - id * this.#slotMs),
      now - this.#start,
    );
    return (sum * 1000) / Math.max(span, this.#slotMs);
  }

  #index(id: number): number {
    const n = this.#counts.length;
    return ((id % n) + n) % n;
  }
}
