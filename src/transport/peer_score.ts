/**
 * A small score per peer that protocol violations lower and time restores, without I/O: the
 * transport bans a peer whose score falls to the threshold. Services feed it too (the DHT for
 * bad records, gossip for rejected messages) through `QuicTransport.penalize`.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { requireInteger, requirePositive } from "../_validate.ts";
import { InvalidConfigError } from "../errors.ts";

/** What a peer did wrong. */
export type PenaltyReason =
  /** A frame that does not decode, or a protocol rule broken on the wire. */
  | "malformed-frame"
  /** A sealed frame that does not authenticate. */
  | "decrypt-failure"
  /** A resource limit broken (streams, message size, buffered bytes). */
  | "limit-exceeded"
  /** A DHT record with a bad signature, a wrong peer id or malformed bytes. */
  | "bad-dht-record"
  /** A gossip message the application rejected as invalid. */
  | "rejected-gossip";

/** Options of {@linkcode PeerScore}. */
export interface PeerScoreOptions {
  /**
   * Points each reason costs; the defaults take a peer to the ban threshold with three
   * malformed frames, five broken limits, ten bad DHT records or three rejected gossip
   * messages within about a half-life (gossip forwards only what its validator accepted, so
   * an honest peer sends no message a deterministic validator rejects; three rejects are
   * also where the gossip router stops reading a peer).
   * @default {{ "malformed-frame": 40, "decrypt-failure": 40, "limit-exceeded": 25, "bad-dht-record": 12, "rejected-gossip": 34 }}
   */
  penalties?: Partial<Record<PenaltyReason, number>>;
  /**
   * A penalty loses half its weight in this many milliseconds.
   * @default {600000} 10 minutes.
   */
  halfLifeMs?: number;
  /**
   * Points of penalty at which the peer is to be banned.
   * @default {100}
   */
  banThreshold?: number;
  /**
   * Peers scored at once; beyond it the peer penalized longest ago is forgotten.
   * @default {10000}
   */
  maxPeers?: number;
  /**
   * Source of time for the decay.
   * @default {systemClock}
   */
  clock?: Clock;
}

/** The result of {@linkcode PeerScore.penalize}. */
export interface PenaltyResult {
  /** The peer's penalty points now, after decay and this penalty. */
  penalty: number;
  /** The threshold was reached: ban the peer. Its score starts again from 0. */
  ban: boolean;
}

const DEFAULT_PENALTIES: Readonly<Record<PenaltyReason, number>> = {
  "malformed-frame": 40,
  "decrypt-failure": 40,
  "limit-exceeded": 25,
  "bad-dht-record": 12,
  "rejected-gossip": 34,
};

/**
 * Penalty points per peer with exponential decay.
 *
 * @example Three malformed frames in a row earn a ban
 * ```ts
 * import { PeerScore } from "@cretoai/network/transport";
 *
 * let now = 0;
 * const scores = new PeerScore({ clock: { now: () => now, schedule: () => () => {} } });
 * scores.penalize("mallory", "malformed-frame");
 * scores.penalize("mallory", "malformed-frame");
 * console.assert(scores.penalize("mallory", "malformed-frame").ban);
 * // One bad frame a half-life ago weighs half.
 * scores.penalize("bob", "malformed-frame");
 * now += 600_000;
 * console.assert(scores.penalty("bob") === 20);
 * ```
 */
export class PeerScore {
  /** Points of penalty at which a peer is to be banned. */
  readonly banThreshold: number;
  readonly #penalties: Readonly<Record<PenaltyReason, number>>;
  readonly #halfLifeMs: number;
  readonly #maxPeers: number;
  readonly #clock: Clock;
  // Map order is penalty order, oldest first: penalize re-inserts.
  #entries = new Map<string, { points: number; at: number }>();

  /**
   * Creates a score table with no peers.
   *
   * @param options Penalties, half-life, threshold, bound and clock.
   * @throws {InvalidConfigError} for a penalty that is not a number of at least 0, or a
   * half-life, threshold or bound that is not positive.
   */
  constructor(options: PeerScoreOptions = {}) {
    const {
      penalties = {},
      halfLifeMs = 600_000,
      banThreshold = 100,
      maxPeers = 10_000,
      clock = systemClock,
    } = options;
    for (const [reason, points] of Object.entries(penalties)) {
      if (!(reason in DEFAULT_PENALTIES) || !(typeof points === "number" && points >= 0)) {
        throw new InvalidConfigError(`penalties.${reason}`, "a known reason, 0 or more", points);
      }
    }
    requirePositive("halfLifeMs", halfLifeMs);
    requirePositive("banThreshold", banThreshold);
    requireInteger("maxPeers", maxPeers, 1);
    this.#penalties = { ...DEFAULT_PENALTIES, ...penalties };
    this.#halfLifeMs = halfLifeMs;
    this.banThreshold = banThreshold;
    this.#maxPeers = maxPeers;
    this.#clock = clock;
  }

  /**
   * Adds a penalty.
   *
   * @example
   * ```ts
   * import { PeerScore } from "@cretoai/network/transport";
   *
   * const scores = new PeerScore({ banThreshold: 10 });
   * console.assert(scores.penalize("p", "bad-dht-record").ban);
   * console.assert(scores.penalty("p") === 0);
   * ```
   *
   * @param peer The peer id.
   * @param reason What it did.
   * @returns The points now, and whether to ban.
   */
  penalize(peer: string, reason: PenaltyReason): PenaltyResult {
    const points = this.penalty(peer) + this.#penalties[reason];
    this.#entries.delete(peer);
    if (points >= this.banThreshold) return { penalty: points, ban: true };
    this.#entries.set(peer, { points, at: this.#clock.now() });
    if (this.#entries.size > this.#maxPeers) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return { penalty: points, ban: false };
  }

  /**
   * A peer's penalty points now.
   *
   * @example
   * ```ts
   * import { PeerScore } from "@cretoai/network/transport";
   *
   * console.assert(new PeerScore().penalty("nobody") === 0);
   * ```
   *
   * @param peer The peer id.
   * @returns The points, 0 for a peer never penalized.
   */
  penalty(peer: string): number {
    const entry = this.#entries.get(peer);
    if (entry === undefined) return 0;
    const elapsed = Math.max(0, this.#clock.now() - entry.at);
    return entry.points * 2 ** (-elapsed / this.#halfLifeMs);
  }

  /**
   * Peers with a penalty held, for statistics.
   *
   * @returns The count.
   */
  get size(): number {
    return this.#entries.size;
  }
}
