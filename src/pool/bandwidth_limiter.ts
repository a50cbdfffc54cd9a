/**
 * The node's send-side bandwidth limiter: a node-wide token bucket and one bucket per peer,
 * with priority classes so consensus traffic is not starved by vertex or bulk traffic.
 *
 * @module
 */

import { NetworkError } from "../errors.ts";
import { type Clock, systemClock } from "../clock.ts";
import { RateMeter } from "./rate_meter.ts";
import { TokenBucket } from "./token_bucket.ts";
import { WaiterQueue } from "./_waiter_queue.ts";
import { requireByteCount, requirePositive, requirePositiveFinite } from "../_validate.ts";

/**
 * Traffic classes, most urgent first: consensus messages, then DAG vertices, then the rest.
 */
export type TrafficClass = "consensus" | "vertex" | "other";

const RANK: Readonly<Record<TrafficClass, number>> = { consensus: 2, vertex: 1, other: 0 };

/** Options of {@linkcode BandwidthLimiter}. */
export interface BandwidthLimiterOptions {
  /**
   * Node-wide send rate in bytes per second; `Infinity` for no node-wide limit.
   *
   * @default {134217728} 128 MiB/s, about a 1 Gbit/s link.
   */
  totalRate?: number;
  /**
   * Node-wide burst in bytes.
   *
   * @default {4194304} 4 MiB.
   */
  totalBurst?: number;
  /**
   * Send rate to each peer in bytes per second; `Infinity` for no per-peer limit.
   *
   * @default {33554432} 32 MiB/s, so one peer cannot take more than a quarter of the default total.
   */
  peerRate?: number;
  /**
   * Burst to each peer in bytes.
   *
   * @default {1048576} 1 MiB.
   */
  peerBurst?: number;
  /**
   * Window of the usage meters in milliseconds.
   *
   * @default {1000}
   */
  windowMs?: number;
  /**
   * Source of the current time, and the timers that wake waiting `acquire` calls.
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/** Current send usage: the node-wide rate and the rate of every known peer. */
export interface BandwidthUsage {
  /** Node-wide bytes per second over the meter window. */
  total: number;
  /** Bytes per second to each peer over the meter window. */
  peers: Map<string, number>;
}

interface PeerState {
  bucket: TokenBucket;
  meter: RateMeter;
}

interface Request {
  peer: string;
  state: PeerState;
  bytes: number;
}

/**
 * Grants sends against a node-wide and a per-peer token bucket, served strictly by traffic
 * class and first come first served within a class.
 *
 * A send goes when both buckets hold its bytes. The first waiter that is held back only by
 * the node-wide bucket reserves it: no waiter behind it, of any peer, takes node-wide tokens
 * before it, so a queued consensus message goes before every vertex or bulk message. A waiter
 * held back by its own peer's bucket reserves nothing node-wide, so one slow peer does not
 * stall the others; it only holds back the later waiters of that same peer.
 * Sends larger than a burst are granted whole once the bucket is full and leave it in debt
 * (see {@linkcode TokenBucket}).
 *
 * @example On the transport's send path
 * ```ts
 * import { BandwidthLimiter } from "@cretoai/network/pool";
 *
 * const limiter = new BandwidthLimiter({ totalRate: 10_000_000, peerRate: 2_000_000 });
 * const frame = new Uint8Array(1200);
 * await limiter.acquire("peer-a", frame.byteLength, "consensus");
 * // ... write the frame to the stream ...
 * console.assert(limiter.usage().peers.has("peer-a"));
 * limiter.removePeer("peer-a"); // when the connection closes
 * ```
 */
export class BandwidthLimiter {
  #total: TokenBucket;
  #totalMeter: RateMeter;
  #peers = new Map<string, PeerState>();
  #peerRate: number;
  #peerBurst: number;
  #windowMs: number;
  #clock: Clock;
  #queue: WaiterQueue<Request>;

  /**
   * Creates a limiter with full buckets.
   *
   * @param options Rates, bursts, meter window and clock.
   * @throws {InvalidConfigError} If a rate is not greater than 0, a burst is not finite and
   * greater than 0, or `windowMs` is not finite and greater than 0.
   */
  constructor(options: BandwidthLimiterOptions = {}) {
    const {
      totalRate = 128 * 1024 * 1024,
      totalBurst = 4 * 1024 * 1024,
      peerRate = 32 * 1024 * 1024,
      peerBurst = 1024 * 1024,
      windowMs = 1000,
      clock = systemClock,
    } = options;
    // Checked here, under the limiter's option names, and before the first send creates a
    // peer bucket.
    requirePositive("totalRate", totalRate);
    requirePositiveFinite("totalBurst", totalBurst);
    requirePositive("peerRate", peerRate);
    requirePositiveFinite("peerBurst", peerBurst);
    requirePositiveFinite("windowMs", windowMs);
    this.#total = new TokenBucket({ rate: totalRate, burst: totalBurst, clock });
    this.#totalMeter = new RateMeter({ windowMs, clock });
    this.#peerRate = peerRate;
    this.#peerBurst = peerBurst;
    this.#windowMs = windowMs;
    this.#clock = clock;
    this.#queue = new WaiterQueue(clock, (queue) => this.#serve(queue));
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
   * Waits until `bytes` may be sent to `peer`, then counts them as sent.
   *
   * @example
   * ```ts
   * import { BandwidthLimiter } from "@cretoai/network/pool";
   *
   * const limiter = new BandwidthLimiter();
   * const controller = new AbortController();
   * await limiter.acquire("peer-a", 1200, "vertex", controller.signal);
   * ```
   *
   * @param peer The receiving peer's id.
   * @param bytes Bytes about to be sent.
   * @param priority The traffic class.
   * @param signal Aborting it drops the request and rejects with `ERR_ABORTED`.
   * @returns A promise that resolves once the bytes are granted.
   * @throws {RangeError} If `bytes` is not a non-negative integer.
   * @throws {NetworkError} `ERR_ABORTED` (rejection) if the signal aborts first or the peer
   * is removed while waiting; `cause` is the signal's reason.
   */
  acquire(
    peer: string,
    bytes: number,
    priority: TrafficClass = "other",
    signal?: AbortSignal,
  ): Promise<void> {
    requireByteCount("bytes", bytes);
    const request: Request = { peer, state: this.#peer(peer), bytes };
    return this.#queue.enqueue(
      request,
      RANK[priority],
      signal,
      `acquire ${bytes} bytes for peer ${JSON.stringify(peer)}`,
    );
  }

  /**
   * Grants `bytes` to `peer` now if both buckets hold them and nobody is waiting; for
   * traffic that is dropped rather than delayed, such as unreliable datagrams.
   *
   * @example
   * ```ts
   * import { BandwidthLimiter } from "@cretoai/network/pool";
   *
   * const limiter = new BandwidthLimiter();
   * if (!limiter.tryAcquire("peer-a", 1200)) {
   *   // drop the datagram
   * }
   * ```
   *
   * @param peer The receiving peer's id.
   * @param bytes Bytes about to be sent.
   * @returns `true` if granted and counted; `false` if the caller must wait or drop.
   * @throws {RangeError} If `bytes` is not a non-negative integer.
   */
  tryAcquire(peer: string, bytes: number): boolean {
    requireByteCount("bytes", bytes);
    // Waiters were first, and may be of a more urgent class.
    if (this.#queue.size > 0) return false;
    const state = this.#peer(peer);
    if (state.bucket.delayUntil(bytes) > 0 || this.#total.delayUntil(bytes) > 0) return false;
    this.#grant(state, bytes);
    return true;
  }

  /**
   * The send rate to one peer, or node-wide, over the meter window.
   *
   * @example
   * ```ts
   * import { BandwidthLimiter } from "@cretoai/network/pool";
   *
   * const limiter = new BandwidthLimiter();
   * console.assert(limiter.bytesPerSecond() === 0);
   * console.assert(limiter.bytesPerSecond("peer-a") === 0);
   * ```
   *
   * @param peer A peer's id; omitted for the node-wide rate.
   * @returns Bytes per second; 0 for a peer the limiter does not know.
   */
  bytesPerSecond(peer?: string): number {
    if (peer === undefined) return this.#totalMeter.bytesPerSecond();
    return this.#peers.get(peer)?.meter.bytesPerSecond() ?? 0;
  }

  /**
   * The node-wide send rate and that of every known peer.
   *
   * @example
   * ```ts
   * import { BandwidthLimiter } from "@cretoai/network/pool";
   *
   * const limiter = new BandwidthLimiter();
   * limiter.tryAcquire("peer-a", 100);
   * const { total, peers } = limiter.usage();
   * console.assert(total >= 0 && peers.has("peer-a"));
   * ```
   *
   * @returns Bytes per second, node-wide and per peer.
   */
  usage(): BandwidthUsage {
    const peers = new Map<string, number>();
    for (const [peer, state] of this.#peers) peers.set(peer, state.meter.bytesPerSecond());
    return { total: this.#totalMeter.bytesPerSecond(), peers };
  }

  /**
   * Forgets a peer's bucket and meter, rejecting its waiting sends with `ERR_ABORTED`; call it
   * when the peer's connection closes, else per-peer state grows with every peer ever seen.
   *
   * @example
   * ```ts
   * import { BandwidthLimiter } from "@cretoai/network/pool";
   *
   * const limiter = new BandwidthLimiter();
   * limiter.tryAcquire("peer-a", 100);
   * limiter.removePeer("peer-a");
   * console.assert(!limiter.usage().peers.has("peer-a"));
   * ```
   *
   * @param peer The peer's id.
   */
  removePeer(peer: string): void {
    if (!this.#peers.delete(peer)) return;
    this.#queue.rejectWhere(
      (request) => request.peer === peer,
      new NetworkError(
        "ERR_ABORTED",
        `Cannot send to peer ${JSON.stringify(peer)}: the peer was removed from the limiter`,
      ),
    );
  }

  #peer(peer: string): PeerState {
    let state = this.#peers.get(peer);
    if (state === undefined) {
      const clock = this.#clock;
      state = {
        bucket: new TokenBucket({ rate: this.#peerRate, burst: this.#peerBurst, clock }),
        meter: new RateMeter({ windowMs: this.#windowMs, clock }),
      };
      this.#peers.set(peer, state);
    }
    return state;
  }

  #grant(state: PeerState, bytes: number): void {
    state.bucket.tryTake(bytes);
    this.#total.tryTake(bytes);
    state.meter.record(bytes);
    this.#totalMeter.record(bytes);
  }

  #serve(queue: readonly Request[]): { granted: Request[]; retryInMs: number | undefined } {
    const granted: Request[] = [];
    const blockedPeers = new Set<string>();
    let totalReserved = false;
    let retry = Infinity;
    for (const request of queue) {
      if (blockedPeers.has(request.peer)) continue;
      const peerDelay = request.state.bucket.delayUntil(request.bytes);
      const totalDelay = this.#total.delayUntil(request.bytes);
      if (peerDelay === 0 && totalDelay === 0 && !totalReserved) {
        this.#grant(request.state, request.bytes);
        granted.push(request);
        continue;
      }
      // Later sends of this peer keep their order behind this one.
      blockedPeers.add(request.peer);
      if (peerDelay === 0) totalReserved = true;
      // A waiter held back only by a reservation ahead has nothing of its own to wait for;
      // the reserving waiter's delay wakes the queue.
      const delay = Math.max(peerDelay, totalDelay);
      if (delay > 0) retry = Math.min(retry, delay);
    }
    return { granted, retryInMs: retry === Infinity ? undefined : retry };
  }
}
