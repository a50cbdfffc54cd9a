/**
 * A set of keys that each expire a fixed time after they were added, with a cap on size. Keys
 * live in insertion order, so with one time to live the oldest are also the first to expire:
 * expiry and eviction both work from the front.
 *
 * @module
 */

export class ExpiringSet {
  readonly #ttlMs: number;
  readonly #maxSize: number;
  #expiry = new Map<string, number>();

  constructor(ttlMs: number, maxSize: number) {
    this.#ttlMs = ttlMs;
    this.#maxSize = maxSize;
  }

  get size(): number {
    return this.#expiry.size;
  }

  /** Whether `key` is held and has not expired at `now`. */
  has(key: string, now: number): boolean {
    const at = this.#expiry.get(key);
    return at !== undefined && at > now;
  }

  /** Adds `key` (or renews it) until `now + ttlMs`; the oldest key goes when the set is full. */
  add(key: string, now: number): void {
    this.#expiry.delete(key);
    this.#expiry.set(key, now + this.#ttlMs);
    if (this.#expiry.size > this.#maxSize) {
      this.#expiry.delete(this.#expiry.keys().next().value!);
    }
  }

  delete(key: string): void {
    this.#expiry.delete(key);
  }

  /** Drops the keys expired at `now`. */
  prune(now: number): void {
    for (const [key, at] of this.#expiry) {
      if (at > now) return;
      this.#expiry.delete(key);
    }
  }
}
