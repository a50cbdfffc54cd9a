/**
 * A token bucket on an injected clock: tokens are bytes, refilled continuously at `rate` bytes
 * per second up to `burst`. Waiting `acquire` calls are served by priority, then in order.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { WaiterQueue } from "./_waiter_queue.ts";
import { requireByteCount, requirePositive, requirePositiveFinite } from "../_validate.ts";

// Tokens are floats; a shortfall below this is rounding, not a reason to wait.
const EPSILON = 1e-6;

/** Options of {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Refill rate in bytes per second; `Infinity` never limits. Must be greater than 0. */
  rate: number;
  /** Bucket capacity in bytes, the most that can be sent at once after a pause. Must be finite and greater than 0. */
  burst: number;
  /**
   * Source of the current time, and the timers that wake waiting `acquire` calls.
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/** Options of {@linkcode TokenBucket.prototype.acquire}. */
export interface AcquireOptions {
  /**
   * Aborting it drops the request from the queue and rejects with `ERR_ABORTED`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Higher is served first; equal priorities are served in arrival order.
   *
   * @default {0}
   */
  priority?: number;
}

/**
 * Limits a byte stream to `rate` bytes per second with bursts of up to `burst` bytes.
 *
 * The bucket starts full. A request for more than `burst` bytes is granted once the bucket is
 * full and leaves it in debt (negative tokens), which later requests wait out: the long-run
 * rate holds and large messages are never split or refused.
 *
 * @example Pacing sends to 1 MB/s
 * ```ts
 * import { TokenBucket } from "@cretoai/network/pool";
 *
 * const bucket = new TokenBucket({ rate: 1_000_000, burst: 64_000 });
 * await bucket.acquire(1200); // resolves at once: the bucket starts full
 * console.assert(bucket.tryTake(1200));
 * ```
 */
export class TokenBucket {
  /** Refill rate in bytes per second. */
  readonly rate: number;
  /** Capacity in bytes. */
  readonly burst: number;
  #clock: Clock;
  #tokens: number;
  #last: number;
  // Requests are objects, not bare numbers: two waiters for the same size are two entries.
  #queue: WaiterQueue<{ bytes: number }>;

  /**
   * Creates a full bucket.
   *
   * @param options Rate, burst and clock.
   * @throws {InvalidConfigError} If `rate` is not greater than 0, or `burst` is not finite
   * and greater than 0.
   */
  constructor(options: TokenBucketOptions) {
    const { rate, burst, clock = systemClock } = options;
    requirePositive("rate", rate);
    requirePositiveFinite("burst", burst);
    this.rate = rate;
    this.burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
    this.#queue = new WaiterQueue(clock, (queue) => {
      const granted: { bytes: number }[] = [];
      for (const request of queue) {
        const delay = this.delayUntil(request.bytes);
        if (delay > 0) return { granted, retryInMs: delay };
        this.#take(request.bytes);
        granted.push(request);
      }
      return { granted, retryInMs: undefined };
    });
  }

  /**
   * Tokens available now in bytes; negative while the bucket is in debt.
   *
   * @returns The current token count.
   */
  get available(): number {
    this.#refill();
    return this.#tokens;
  }

  /**
   * Number of `acquire` calls waiting.
   *
   * @returns The queue length.
   */
  get pending(): number {
    return this.#queue.size;
  }

  /**
   * Takes `bytes` tokens now if they are available and no `acquire` call is waiting.
   *
   * @example
   * ```ts
   * import { TokenBucket } from "@cretoai/network/pool";
   *
   * const bucket = new TokenBucket({ rate: 1000, burst: 1000 });
   * console.assert(bucket.tryTake(1000));
   * console.assert(!bucket.tryTake(1)); // empty until refilled
   * ```
   *
   * @param bytes Number of bytes to send.
   * @returns `true` if the tokens were taken; `false` if the caller must wait or drop.
   * @throws {RangeError} If `bytes` is not a non-negative integer.
   */
  tryTake(bytes: number): boolean {
    requireByteCount("bytes", bytes);
    // Waiters were first: taking their tokens would starve them.
    if (this.#queue.size > 0 || this.delayUntil(bytes) > 0) return false;
    this.#take(bytes);
    return true;
  }

  /**
   * Milliseconds until `bytes` tokens are available, ignoring waiting `acquire` calls.
   *
   * @example
   * ```ts
   * import { TokenBucket } from "@cretoai/network/pool";
   *
   * let now = 0;
   * const clock = { now: () => now, schedule: () => () => {} };
   * const bucket = new TokenBucket({ rate: 1000, burst: 1000, clock });
   * bucket.tryTake(1000);
   * console.assert(bucket.delayUntil(250) === 250);
   * ```
   *
   * @param bytes Number of bytes to send; above `burst` it waits for a full bucket.
   * @returns 0 if available now, else the wait in milliseconds (may be fractional).
   * @throws {RangeError} If `bytes` is not a non-negative integer.
   */
  delayUntil(bytes: number): number {
    requireByteCount("bytes", bytes);
    this.#refill();
    const missing = Math.min(bytes, this.burst) - this.#tokens;
    if (missing <= EPSILON) return 0;
    return (missing * 1000) / this.rate;
  }

  /**
   * Waits until `bytes` tokens are available and takes them.
   *
   * @example Abandoning a send
   * ```ts
   * import { NetworkError } from "@cretoai/network";
   * import { TokenBucket } from "@cretoai/network/pool";
   *
   * const bucket = new TokenBucket({ rate: 10, burst: 10 });
   * bucket.tryTake(10);
   * const controller = new AbortController();
   * const waiting = bucket.acquire(10, { signal: controller.signal });
   * controller.abort(new Error("peer gone"));
   * try {
   *   await waiting;
   * } catch (e) {
   *   console.assert(e instanceof NetworkError && e.code === "ERR_ABORTED");
   * }
   * ```
   *
   * @param bytes Number of bytes to send; above `burst` it waits for a full bucket, then
   * leaves the bucket in debt.
   * @param options Abort signal and priority.
   * @returns A promise that resolves once the tokens are taken.
   * @throws {RangeError} If `bytes` is not a non-negative integer.
   * @throws {NetworkError} `ERR_ABORTED` (rejection) if the signal aborts first; `cause` is
   * the signal's reason.
   */
  acquire(bytes: number, options: AcquireOptions = {}): Promise<void> {
    const { signal, priority = 0 } = options;
    requireByteCount("bytes", bytes);
    return this.#queue.enqueue({ bytes }, priority, signal, `acquire ${bytes} bytes`);
  }

  #take(bytes: number): void {
    this.#tokens -= bytes;
  }

  #refill(): void {
    const now = this.#clock.now();
    // A clock that stepped back must not drain the bucket, so time only moves forward here.
    if (now <= this.#last) return;
    this.#tokens = this.rate === Infinity
      ? this.burst
      : Math.min(this.burst, this.#tokens + ((now - this.#last) * this.rate) / 1000);
    this.#last = now;
  }
}
