/**
 * One budget of buffered bytes per peer connection: the peer's messages waiting in the
 * `messages()` queue, partial frames on its lanes and request streams, and requests being
 * served all draw from it, so that no mix of streams holds more than the budget.
 *
 * @module
 */

/** Bytes charged against a limit, with waiters for room. */
export class ByteBudget {
  /** The most bytes that may be charged (waiters get room only below it). */
  readonly limit: number;
  #used = 0;
  #waiters: { bytes: number; resolve: () => void }[] = [];
  #closed = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes charged now. */
  get used(): number {
    return this.#used;
  }

  /** Charges bytes already held; may go over the limit (the caller decides what that means). */
  charge(bytes: number): void {
    this.#used += bytes;
  }

  /** Returns bytes. */
  release(bytes: number): void {
    this.#used -= bytes;
    this.#wake();
  }

  /**
   * Charges `bytes` once they fit under the limit, or at once when nothing else is charged
   * (so that one frame larger than the budget can still pass alone). Waiters are served in
   * order; after {@linkcode ByteBudget.close} every wait returns at once.
   */
  reserve(bytes: number): Promise<void> | undefined {
    if (this.#fits(bytes) && this.#waiters.length === 0) {
      this.#used += bytes;
      return undefined;
    }
    return new Promise((resolve) => {
      this.#waiters.push({ bytes, resolve });
      this.#wake();
    });
  }

  /** Ends every wait: the connection is gone. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #fits(bytes: number): boolean {
    return this.#closed || this.#used === 0 || this.#used + bytes <= this.limit;
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0].bytes)) {
      const waiter = this.#waiters.shift()!;
      this.#used += waiter.bytes;
      waiter.resolve();
    }
  }
}
