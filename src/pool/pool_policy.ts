/**
 * Connection pool bookkeeping without I/O: which peers hold a connection, when each was last
 * used, which are protected, and which to close when the pool is full or a connection idles.
 * The transport owns the connections and acts on the decisions.
 *
 * @module
 */

import { requireLimit, requirePositive } from "../_validate.ts";

/** Options of {@linkcode PoolPolicy}. */
export interface PoolPolicyOptions {
  /**
   * Most connections kept open; protected peers may exceed it (see {@linkcode PoolPolicy.admit}).
   * `Infinity` for no limit.
   *
   * @default {256}
   */
  maxConnections?: number;
  /**
   * Milliseconds without use after which an unprotected connection is closed; `Infinity`
   * never closes for idleness. Keep it above the QUIC keep-alive interval, which keeps the
   * connection itself alive but does not count as use.
   *
   * @default {120000} 2 minutes.
   */
  idleTimeoutMs?: number;
  /**
   * Milliseconds after which a peer counts as long-lived: when the pool is full, peers
   * younger than this are evicted first (least recently used first), so that a stream of
   * fresh identities only displaces each other and at most one long-lived peer per
   * `settleMs`. `Infinity` evicts purely by recency.
   *
   * @default {60000} 1 minute.
   */
  settleMs?: number;
}

/** The answer to {@linkcode PoolPolicy.admit}. */
export type AdmitDecision =
  | {
    /** The peer is in the pool. */
    admitted: true;
    /** Peers removed from the pool to make room; the caller closes their connections. */
    evict: string[];
  }
  | {
    /** The pool is full of protected peers and the new peer is not protected. */
    admitted: false;
    /** Always `"full"`. */
    reason: "full";
  };

/**
 * Connection pool policy: one entry per peer, least-recently-used eviction, idle detection,
 * and protection tags.
 *
 * Time is passed in (`now`, milliseconds on any monotonic clock), so the policy is a pure
 * state machine. A peer is protected while it holds at least one tag; protected peers are
 * never evicted and never closed for idleness. Tags belong to the peer, not to a connection:
 * they may be set before connecting and survive {@linkcode PoolPolicy.remove}.
 *
 * @example Driving the policy from a transport
 * ```ts
 * import { PoolPolicy } from "@cretoai/network/pool";
 *
 * const pool = new PoolPolicy({ maxConnections: 2, idleTimeoutMs: 60_000 });
 * pool.protect("validator-1", "consensus");
 * pool.admit("validator-1", 0);
 * pool.admit("peer-a", 10);
 * const decision = pool.admit("peer-b", 20); // full: evicts the least recently used
 * console.assert(decision.admitted && decision.evict[0] === "peer-a");
 * console.assert(pool.collectIdle(60_020).join() === "peer-b");
 * ```
 */
export class PoolPolicy {
  /** Most connections kept open, protected peers aside. */
  readonly maxConnections: number;
  /** Milliseconds without use before an unprotected connection counts as idle. */
  readonly idleTimeoutMs: number;
  /** Milliseconds after admission from which a peer is evicted only after younger ones. */
  readonly settleMs: number;
  #admittedAt = new Map<string, number>();
  // Map order is recency order, oldest first: touch re-inserts, so LRU is the first entry.
  #lastUsed = new Map<string, number>();
  /** The last key of `#lastUsed`: touching it again needs no move (a delete and a set). */
  #newest: string | undefined;
  #tags = new Map<string, Set<string>>();

  /**
   * Creates an empty pool.
   *
   * @param options Limit and idle timeout.
   * @throws {InvalidConfigError} If `maxConnections` is not an integer of at least 1 or
   * `Infinity`, or `idleTimeoutMs` is not a number greater than 0.
   */
  constructor(options: PoolPolicyOptions = {}) {
    const { maxConnections = 256, idleTimeoutMs = 120_000, settleMs = 60_000 } = options;
    requireLimit("maxConnections", maxConnections);
    requirePositive("idleTimeoutMs", idleTimeoutMs);
    requirePositive("settleMs", settleMs);
    this.maxConnections = maxConnections;
    this.idleTimeoutMs = idleTimeoutMs;
    this.settleMs = settleMs;
  }

  /**
   * Number of peers in the pool.
   *
   * @returns The count.
   */
  get size(): number {
    return this.#lastUsed.size;
  }

  /**
   * The peers in the pool, least recently used first.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy();
   * pool.admit("a", 0);
   * pool.admit("b", 1);
   * pool.touch("a", 2);
   * console.assert(pool.peers().join() === "b,a");
   * ```
   *
   * @returns Peer ids.
   */
  peers(): string[] {
    return [...this.#lastUsed.keys()];
  }

  /**
   * Whether a peer is in the pool.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy();
   * pool.admit("a", 0);
   * console.assert(pool.has("a") && !pool.has("b"));
   * ```
   *
   * @param peer The peer's id.
   * @returns `true` if the peer has an entry.
   */
  has(peer: string): boolean {
    return this.#lastUsed.has(peer);
  }

  /**
   * Adds a peer whose connection just opened (dialed or accepted), making room if the pool
   * is full.
   *
   * A peer already in the pool is only touched. When the pool is full, unprotected peers are
   * removed until there is room, and returned in `evict` for the caller to close with
   * `APP_ERROR_EVICTED`: first those admitted less than `settleMs` ago, then long-lived ones,
   * each group least recently used first. If every peer is protected, a protected newcomer
   * is admitted over the limit, while an unprotected one is refused: close its connection.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy({ maxConnections: 1 });
   * pool.protect("a", "bootstrap");
   * pool.admit("a", 0);
   * const decision = pool.admit("b", 1);
   * console.assert(!decision.admitted);
   * ```
   *
   * @param peer The peer's id.
   * @param now The current time in milliseconds.
   * @returns Whether the peer was admitted, and which peers to close.
   */
  admit(peer: string, now: number): AdmitDecision {
    if (this.#lastUsed.has(peer)) {
      this.touch(peer, now);
      return { admitted: true, evict: [] };
    }
    const evict: string[] = [];
    const settled = (candidate: string) => now - this.#admittedAt.get(candidate)! >= this.settleMs;
    for (const longLived of [false, true]) {
      for (const candidate of this.#lastUsed.keys()) {
        if (this.#lastUsed.size - evict.length < this.maxConnections) break;
        if (!this.isProtected(candidate) && settled(candidate) === longLived) evict.push(candidate);
      }
    }
    if (this.#lastUsed.size - evict.length >= this.maxConnections && !this.isProtected(peer)) {
      // Refused: nothing is evicted for a peer that will not get in.
      return { admitted: false, reason: "full" };
    }
    for (const evicted of evict) this.remove(evicted);
    this.#lastUsed.set(peer, now);
    this.#newest = peer;
    this.#admittedAt.set(peer, now);
    return { admitted: true, evict };
  }

  /**
   * Marks a peer's connection as used now: on every message sent or received and every
   * stream opened.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy();
   * pool.admit("a", 0);
   * console.assert(pool.touch("a", 5) && !pool.touch("b", 5));
   * ```
   *
   * @param peer The peer's id.
   * @param now The current time in milliseconds.
   * @returns `false` if the peer is not in the pool.
   */
  touch(peer: string, now: number): boolean {
    const last = this.#lastUsed.get(peer);
    if (last === undefined) return false;
    // Every message touches its peer: most touches are of the peer touched last, already in
    // place, and a move would churn the map's table for nothing.
    if (peer !== this.#newest) {
      this.#lastUsed.delete(peer);
      this.#newest = peer;
    }
    // A late `now` from an out-of-order caller must not make the peer look older.
    this.#lastUsed.set(peer, Math.max(last, now));
    return true;
  }

  /**
   * Forgets a peer whose connection closed. Its protection tags stay.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy();
   * pool.admit("a", 0);
   * console.assert(pool.remove("a") && pool.size === 0);
   * ```
   *
   * @param peer The peer's id.
   * @returns `false` if the peer was not in the pool.
   */
  remove(peer: string): boolean {
    this.#admittedAt.delete(peer);
    if (peer === this.#newest) this.#newest = undefined;
    return this.#lastUsed.delete(peer);
  }

  /**
   * Adds a protection tag to a peer, for example `"consensus"` for a validator or
   * `"streams"` while the peer has open streams.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy();
   * pool.protect("a", "consensus");
   * console.assert(pool.isProtected("a"));
   * ```
   *
   * @param peer The peer's id; it need not be in the pool yet.
   * @param tag Why the peer is protected; each tag counts once.
   */
  protect(peer: string, tag: string): void {
    let tags = this.#tags.get(peer);
    if (tags === undefined) this.#tags.set(peer, tags = new Set());
    tags.add(tag);
  }

  /**
   * Removes a protection tag; the peer stays protected while it has others.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy();
   * pool.protect("a", "consensus");
   * pool.protect("a", "streams");
   * pool.unprotect("a", "streams");
   * console.assert(pool.isProtected("a"));
   * ```
   *
   * @param peer The peer's id.
   * @param tag The tag given to {@linkcode PoolPolicy.protect}.
   * @returns `true` if the peer had the tag.
   */
  unprotect(peer: string, tag: string): boolean {
    const tags = this.#tags.get(peer);
    if (tags === undefined || !tags.delete(tag)) return false;
    if (tags.size === 0) this.#tags.delete(peer);
    return true;
  }

  /**
   * Whether a peer holds any protection tag.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * console.assert(!new PoolPolicy().isProtected("a"));
   * ```
   *
   * @param peer The peer's id.
   * @returns `true` if protected.
   */
  isProtected(peer: string): boolean {
    return this.#tags.has(peer);
  }

  /**
   * Removes and returns the unprotected peers unused for `idleTimeoutMs` or longer; the caller
   * closes their connections with `APP_ERROR_IDLE_TIMEOUT`.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy({ idleTimeoutMs: 1000 });
   * pool.admit("a", 0);
   * console.assert(pool.collectIdle(999).length === 0);
   * console.assert(pool.collectIdle(1000).join() === "a");
   * ```
   *
   * @param now The current time in milliseconds.
   * @returns Peer ids, least recently used first.
   */
  collectIdle(now: number): string[] {
    const idle: string[] = [];
    for (const [peer, last] of this.#lastUsed) {
      if (now - last >= this.idleTimeoutMs && !this.isProtected(peer)) idle.push(peer);
    }
    for (const peer of idle) this.remove(peer);
    return idle;
  }

  /**
   * When the next unprotected peer turns idle, for the transport's idle timer.
   *
   * @example
   * ```ts
   * import { PoolPolicy } from "@cretoai/network/pool";
   *
   * const pool = new PoolPolicy({ idleTimeoutMs: 1000 });
   * pool.admit("a", 50);
   * console.assert(pool.nextIdleAt() === 1050);
   * ```
   *
   * @returns The time in milliseconds at which {@linkcode PoolPolicy.collectIdle} will
   * return a peer, or `undefined` when no unprotected peer can idle.
   */
  nextIdleAt(): number | undefined {
    let next = Infinity;
    for (const [peer, last] of this.#lastUsed) {
      if (!this.isProtected(peer)) next = Math.min(next, last + this.idleTimeoutMs);
    }
    return next === Infinity ? undefined : next;
  }
}
