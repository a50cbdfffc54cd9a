/**
 * Per-peer token buckets for requests a peer makes a service act on (DHT requests, rendezvous
 * introductions, relay offers). Kept tiny and private so services do not depend on the
 * transport's pool.
 *
 * @module
 */

import type { Clock } from "./clock.ts";

interface Bucket {
  tokens: number;
  at: number;
}

/** Admits at most `burst` requests at once and `perSecond` sustained, per peer id. */
export class PeerRateLimiter {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #maxPeers: number;
  readonly #clock: Clock;
  // Under an id flood the oldest-created buckets go first; a dropped peer only regains its burst.
  readonly #buckets = new Map<string, Bucket>();

  constructor(perSecond: number, burst: number, maxPeers: number, clock: Clock) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#maxPeers = maxPeers;
    this.#clock = clock;
  }

  /** Takes one token for `peerId`; returns `false` if the peer is over its rate. */
  take(peerId: string): boolean {
    const now = this.#clock.now();
    let bucket = this.#buckets.get(peerId);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, at: now };
      if (this.#buckets.size >= this.#maxPeers) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      this.#buckets.set(peerId, bucket);
    } else {
      const refill = (Math.max(0, now - bucket.at) / 1000) * this.#perSecond;
      bucket.tokens = Math.min(this.#burst, bucket.tokens + refill);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
