/**
 * Shares one in-flight operation per key among concurrent callers.
 *
 * @module
 */

/**
 * Runs at most one operation per key at a time; callers that ask for a key while its
 * operation runs get the same promise. The key is free again once the promise settles, so a
 * failed dial is retried by the next call rather than cached.
 *
 * @example Concurrent connects to one peer share one dial
 * ```ts
 * import { SingleFlight } from "@cretoai/network/pool";
 *
 * const dials = new SingleFlight<string, string>();
 * let started = 0;
 * const dial = (peer: string) =>
 *   dials.run(peer, async () => {
 *     started++;
 *     return `connection to ${peer}`;
 *   });
 * const [a, b] = await Promise.all([dial("peer-a"), dial("peer-a")]);
 * console.assert(a === b && started === 1);
 * ```
 */
export class SingleFlight<K, V> {
  #inFlight = new Map<K, Promise<V>>();

  /**
   * Number of keys with an operation in flight.
   *
   * @returns The count.
   */
  get size(): number {
    return this.#inFlight.size;
  }

  /**
   * The in-flight promise for a key.
   *
   * @example
   * ```ts
   * import { SingleFlight } from "@cretoai/network/pool";
   *
   * const flights = new SingleFlight<string, number>();
   * console.assert(flights.get("k") === undefined);
   * ```
   *
   * @param key The key.
   * @returns The promise, or `undefined` when nothing runs for `key`.
   */
  get(key: K): Promise<V> | undefined {
    return this.#inFlight.get(key);
  }

  /**
   * Starts `operation` for `key` unless one is already running, and returns its promise.
   *
   * @example
   * ```ts
   * import { SingleFlight } from "@cretoai/network/pool";
   *
   * const flights = new SingleFlight<string, number>();
   * console.assert((await flights.run("k", () => Promise.resolve(1))) === 1);
   * ```
   *
   * @param key The key, for example a peer id.
   * @param operation Started only when no operation runs for `key`; a synchronous throw
   * becomes a rejection.
   * @returns The promise of the running operation, shared by every caller for `key`.
   */
  run(key: K, operation: () => Promise<V>): Promise<V> {
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running;
    let started: Promise<V>;
    try {
      started = operation();
    } catch (error) {
      return Promise.reject(error);
    }
    // The key stays taken until the operation settles, whether it succeeded or not.
    const promise = started.finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, promise);
    return promise;
  }
}
