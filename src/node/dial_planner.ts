/**
 * `DialPlanner`: the rules of the connection manager, free of I/O and of the clock. It holds
 * the peers the node could dial (with how it learned of them), which are connected, which are
 * being dialed and when a failed one may be tried again, and answers one question: whom to
 * dial now to get back to the target number of peers.
 *
 * @module
 */

import { requireInteger } from "../_validate.ts";
import type { PeerSource } from "./events.ts";

/** A peer the node may dial. */
export interface DialCandidate {
  /** The peer's id, when known; bootstrap addresses have none until the first connection. */
  peerId: string | undefined;
  /** `HOST:PORT` addresses to try, in order. */
  addresses: readonly string[];
  /** How the node learned of the peer. */
  foundBy: PeerSource;
}

/** Options of {@linkcode DialPlanner}. */
export interface DialPlannerOptions {
  /** Peers the node keeps connected; the planner proposes dials while fewer are. */
  targetPeers: number;
  /**
   * Dials in flight at once.
   *
   * @default {4}
   */
  maxParallelDials?: number;
  /**
   * Wait before the first retry of a peer whose dial failed, in milliseconds; it doubles with
   * each further failure.
   *
   * @default {1000}
   */
  retryBaseMs?: number;
  /**
   * Longest wait between two dials of one peer, in milliseconds.
   *
   * @default {60000}
   */
  retryMaxMs?: number;
  /**
   * Failed dials in a row after which a candidate is forgotten (until something finds it
   * again); bootstrap addresses are tried forever.
   *
   * @default {8}
   */
  maxFailures?: number;
  /**
   * Candidates kept; beyond it the one with the most failures (then the oldest) is dropped.
   * Bootstrap addresses are never dropped.
   *
   * @default {1000}
   */
  maxCandidates?: number;
}

interface Entry {
  candidate: DialCandidate;
  failures: number;
  retryAt: number;
  dialing: boolean;
}

/**
 * Decides whom the connection manager dials. Feed it candidates, connections and dial
 * outcomes with the current time; ask {@linkcode DialPlanner.next} for the dials to start.
 *
 * @example Two candidates, a target of two peers, one already connected
 * ```ts
 * import { DialPlanner } from "@cretoai/network/node";
 *
 * const planner = new DialPlanner({ targetPeers: 2 });
 * planner.add({ peerId: "a", addresses: ["127.0.0.1:9001"], foundBy: "dht" });
 * planner.add({ peerId: "b", addresses: ["127.0.0.1:9002"], foundBy: "dht" });
 * planner.connected("a", "127.0.0.1:9001");
 * const [dial] = planner.next(0);
 * console.assert(dial.peerId === "b" && planner.next(0).length === 0);
 * planner.dialFailed(dial, 0);
 * console.assert(planner.next(999).length === 0 && planner.next(1000).length === 1);
 * ```
 */
export class DialPlanner {
  readonly #targetPeers: number;
  readonly #maxParallelDials: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #maxCandidates: number;
  readonly #maxFailures: number;
  /** By peer id, or by `@ADDRESS` for an address whose peer id is not known yet. */
  readonly #entries = new Map<string, Entry>();
  /** Connected peers, with the address of their connection. */
  readonly #connected = new Map<string, string>();

  /**
   * Creates a planner that knows no peer.
   *
   * @example
   * ```ts
   * import { DialPlanner } from "@cretoai/network/node";
   *
   * console.assert(new DialPlanner({ targetPeers: 8 }).size === 0);
   * ```
   *
   * @param options The target and the retry rules.
   * @throws {InvalidConfigError} naming the option that breaks its rule.
   */
  constructor(options: DialPlannerOptions) {
    const {
      targetPeers,
      maxParallelDials = 4,
      retryBaseMs = 1000,
      retryMaxMs = 60_000,
      maxCandidates = 1000,
      maxFailures = 8,
    } = options;
    requireInteger("targetPeers", targetPeers, 0);
    requireInteger("maxParallelDials", maxParallelDials, 1, 1000);
    requireInteger("retryBaseMs", retryBaseMs, 1);
    requireInteger("retryMaxMs", retryMaxMs, retryBaseMs);
    requireInteger("maxCandidates", maxCandidates, 1);
    requireInteger("maxFailures", maxFailures, 1);
    this.#targetPeers = targetPeers;
    this.#maxParallelDials = maxParallelDials;
    this.#retryBaseMs = retryBaseMs;
    this.#retryMaxMs = retryMaxMs;
    this.#maxCandidates = maxCandidates;
    this.#maxFailures = maxFailures;
  }

  /** Peers the node keeps connected. */
  get targetPeers(): number {
    return this.#targetPeers;
  }

  /** The number of candidates known. */
  get size(): number {
    return this.#entries.size;
  }

  /** The number of peers connected. */
  get connectedCount(): number {
    return this.#connected.size;
  }

  /**
   * Adds a candidate, or merges its addresses into the one known (which keeps how it was
   * first found). A known peer's retry time is kept.
   *
   * @example
   * ```ts ignore
   * planner.add({ peerId: undefined, addresses: ["198.51.100.1:9001"], foundBy: "bootstrap" });
   * ```
   *
   * @param candidate The peer and where to reach it.
   * @returns Whether the peer was new.
   */
  add(candidate: DialCandidate): boolean {
    const key = keyOf(candidate);
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      const merged = [...new Set([...entry.candidate.addresses, ...candidate.addresses])];
      entry.candidate = { ...entry.candidate, addresses: merged };
      return false;
    }
    // A bootstrap address already known under its peer id adds nothing.
    if (candidate.peerId === undefined && this.#knownAt(candidate.addresses)) {
      return false;
    }
    this.#entries.set(key, {
      candidate: { ...candidate, addresses: [...candidate.addresses] },
      failures: 0,
      retryAt: -Infinity,
      dialing: false,
    });
    this.#bound();
    return true;
  }

  /**
   * The candidate known for a peer id, if any.
   *
   * @param peerId The peer.
   * @returns The candidate.
   */
  get(peerId: string): DialCandidate | undefined {
    return this.#entries.get(peerId)?.candidate;
  }

  /**
   * Records a connection (of any origin). A bootstrap address that turns out to be this
   * peer's becomes the peer's candidate.
   *
   * @param peerId The connected peer.
   * @param address The connection's remote address.
   */
  connected(peerId: string, address: string): void {
    this.#connected.set(peerId, address);
    const entry = this.#entries.get(peerId);
    if (entry !== undefined) {
      entry.failures = 0;
      entry.retryAt = -Infinity;
    }
  }

  /**
   * Records that a peer's connection closed; the peer is not dialed again before
   * `retryBaseMs` has passed, so a peer that went away for good costs few dials.
   *
   * @param peerId The peer.
   * @param now The current time, in milliseconds.
   */
  disconnected(peerId: string, now: number): void {
    this.#connected.delete(peerId);
    const entry = this.#entries.get(peerId);
    if (entry !== undefined) entry.retryAt = Math.max(entry.retryAt, now + this.#retryBaseMs);
  }

  /**
   * The dials to start now, marked as in flight: candidates that are not connected, not being
   * dialed and due, fewest failures first, as many as bring connected plus dialing peers to
   * the target (at most `maxParallelDials` in flight).
   *
   * @param now The current time, in milliseconds.
   * @returns The candidates to dial; report each outcome with `dialSucceeded` or `dialFailed`.
   */
  next(now: number): DialCandidate[] {
    const entries = [...this.#entries.values()];
    const dialing = entries.filter((e) => e.dialing).length;
    const room = Math.min(
      this.#targetPeers - this.#connected.size - dialing,
      this.#maxParallelDials - dialing,
    );
    if (room <= 0) return [];
    const due = entries
      .filter((e) => !e.dialing && e.retryAt <= now && !this.#isConnected(e.candidate))
      .sort((a, b) => a.failures - b.failures)
      .slice(0, room);
    for (const e of due) e.dialing = true;
    return due.map((e) => e.candidate);
  }

  /**
   * When the next candidate becomes due, for the driver's one timer.
   *
   * @param now The current time, in milliseconds.
   * @returns A time after `now`, or `undefined` when no waiting candidate could be dialed.
   */
  nextDueAt(now: number): number | undefined {
    let at: number | undefined;
    for (const e of this.#entries.values()) {
      if (e.dialing || e.retryAt <= now || this.#isConnected(e.candidate)) continue;
      at = Math.min(at ?? Infinity, e.retryAt);
    }
    return at;
  }

  /**
   * Whether the planner would dial now if asked: below the target with a candidate due.
   *
   * @param now The current time, in milliseconds.
   * @returns `true` when there is nobody to dial now (the driver may look for more peers).
   */
  starved(now: number): boolean {
    if (this.#connected.size >= this.#targetPeers) return false;
    for (const e of this.#entries.values()) {
      if (e.dialing) return false;
      if (e.retryAt <= now && !this.#isConnected(e.candidate)) return false;
    }
    return true;
  }

  /**
   * Records a successful dial. A bootstrap address's candidate is filed under the peer id.
   *
   * @param candidate The candidate from {@linkcode DialPlanner.next}.
   * @param peerId The peer that answered.
   */
  dialSucceeded(candidate: DialCandidate, peerId: string): void {
    const key = keyOf(candidate);
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    entry.dialing = false;
    entry.failures = 0;
    if (candidate.peerId === undefined) {
      this.#entries.delete(key);
      const known = this.#entries.get(peerId);
      if (known === undefined) {
        this.#entries.set(peerId, { ...entry, candidate: { ...entry.candidate, peerId } });
      } else {
        known.candidate = {
          ...known.candidate,
          // A bootstrap peer stays one: it is the peer the operator asked for.
          foundBy: entry.candidate.foundBy,
          addresses: [...new Set([...entry.candidate.addresses, ...known.candidate.addresses])],
        };
      }
    }
  }

  /**
   * Records a failed dial; the candidate is due again after `retryBaseMs` doubled per
   * failure, up to `retryMaxMs`, or forgotten after `maxFailures` in a row.
   *
   * @param candidate The candidate from {@linkcode DialPlanner.next}.
   * @param now The current time, in milliseconds.
   * @returns The wait before the next try, in milliseconds; `undefined` when forgotten.
   */
  dialFailed(candidate: DialCandidate, now: number): number | undefined {
    const key = keyOf(candidate);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    entry.dialing = false;
    entry.failures++;
    if (entry.failures >= this.#maxFailures && entry.candidate.foundBy !== "bootstrap") {
      this.#entries.delete(key);
      return undefined;
    }
    const wait = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** (entry.failures - 1));
    entry.retryAt = now + wait;
    return wait;
  }

  #isConnected(candidate: DialCandidate): boolean {
    if (candidate.peerId !== undefined) return this.#connected.has(candidate.peerId);
    return [...this.#connected.values()].some((address) => candidate.addresses.includes(address));
  }

  /** Whether a peer of known id is connected or known at one of these addresses. */
  #knownAt(addresses: readonly string[]): boolean {
    if ([...this.#connected.values()].some((address) => addresses.includes(address))) return true;
    return [...this.#entries.values()].some((e) =>
      e.candidate.peerId !== undefined && e.candidate.addresses.some((a) => addresses.includes(a))
    );
  }

  /** Drops the worst candidate while there are too many. */
  #bound(): void {
    while (this.#entries.size > this.#maxCandidates) {
      let worst: [string, Entry] | undefined;
      for (const item of this.#entries) {
        const [, e] = item;
        if (e.candidate.foundBy === "bootstrap" || e.dialing) continue;
        if (worst === undefined || e.failures > worst[1].failures) worst = item;
      }
      if (worst === undefined) return;
      this.#entries.delete(worst[0]);
    }
  }
}

function keyOf(candidate: DialCandidate): string {
  return candidate.peerId ?? `@${candidate.addresses.join(",")}`;
}
