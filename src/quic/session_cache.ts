/**
 * TLS session tickets remembered per remote peer, so that reconnecting resumes the session
 * and can send 0-RTT early data.
 *
 * @module
 */

/**
 * A bounded least-recently-used map from a peer key (for example `"127.0.0.1:9001"`) to the
 * last session quiche handed out for it.
 *
 * @example
 * ```ts
 * import { SessionCache } from "@cretoai/network/quic";
 *
 * const cache = new SessionCache(2);
 * cache.set("a", new Uint8Array([1]));
 * cache.set("b", new Uint8Array([2]));
 * cache.set("c", new Uint8Array([3])); // evicts "a"
 * console.assert(cache.get("a") === undefined && cache.get("c")?.[0] === 3);
 * ```
 */
export class SessionCache {
  #capacity: number;
  #entries = new Map<string, Uint8Array>();

  /**
   * Creates an empty cache.
   *
   * @param capacity Most sessions kept; 0 keeps none.
   */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /**
   * The session for a peer, marking it recently used.
   *
   * @param key The peer key.
   * @returns The session, if one is kept.
   */
  get(key: string): Uint8Array | undefined {
    const session = this.#entries.get(key);
    if (session !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, session);
    }
    return session;
  }

  /**
   * Remembers a peer's session, evicting the least recently used beyond capacity.
   *
   * @param key The peer key.
   * @param session The serialized session from quiche.
   */
  set(key: string, session: Uint8Array): void {
    if (this.#capacity === 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, session);
    if (this.#entries.size > this.#capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  /** Number of sessions kept. */
  get size(): number {
    return this.#entries.size;
  }
}
