/**
 * Banned peers and when each ban ends, without I/O: the transport refuses a banned peer at
 * its gate. Entries are plain data so that a node can persist them.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { requireInteger } from "../_validate.ts";
import { InvalidConfigError } from "../errors.ts";

/** Longest reason kept, in UTF-16 code units. */
const MAX_REASON_LENGTH = 200;

/** One ban. */
export interface BanEntry {
  /** The banned peer's id. */
  peerId: string;
  /** Why, as given to the ban (at most 200 characters). */
  reason: string;
  /** When the ban ends, on the list's clock; `Infinity` for never. */
  expiresAt: number;
}

/** Options of {@linkcode BanList}. */
export interface BanListOptions {
  /**
   * Bans held at once; a new one beyond it replaces the one that ends soonest.
   * @default {10000}
   */
  maxBans?: number;
  /**
   * Source of time for expiry.
   * @default {systemClock}
   */
  clock?: Clock;
}

/**
 * Peer bans with expiry.
 *
 * @example
 * ```ts
 * import { BanList } from "@cretoai/network/transport";
 *
 * let now = 0;
 * const bans = new BanList({ clock: { now: () => now, schedule: () => () => {} } });
 * bans.ban("mallory", 60_000, "spam");
 * console.assert(bans.get("mallory")?.reason === "spam");
 * now = 60_000;
 * console.assert(bans.get("mallory") === undefined);
 * ```
 */
export class BanList {
  readonly #maxBans: number;
  readonly #clock: Clock;
  #entries = new Map<string, BanEntry>();

  /**
   * Creates an empty list.
   *
   * @param options Bound and clock.
   * @throws {InvalidConfigError} If `maxBans` is not a positive integer.
   */
  constructor(options: BanListOptions = {}) {
    const { maxBans = 10_000, clock = systemClock } = options;
    requireInteger("maxBans", maxBans, 1);
    this.#maxBans = maxBans;
    this.#clock = clock;
  }

  /**
   * Bans a peer, or changes its ban, for `durationMs` from now.
   *
   * @example
   * ```ts
   * import { BanList } from "@cretoai/network/transport";
   *
   * const bans = new BanList();
   * console.assert(bans.ban("p", Infinity, "operator").expiresAt === Infinity);
   * ```
   *
   * @param peer The peer id.
   * @param durationMs Milliseconds, greater than 0; `Infinity` for a permanent ban.
   * @param reason Why; cut to 200 characters.
   * @returns The entry.
   * @throws {InvalidConfigError} for a duration that is not greater than 0 or a reason that
   * is not a string.
   */
  ban(peer: string, durationMs: number, reason: string): BanEntry {
    if (!(typeof durationMs === "number" && durationMs > 0)) {
      throw new InvalidConfigError(
        "durationMs",
        "a number of milliseconds above 0, or Infinity",
        durationMs,
      );
    }
    if (typeof reason !== "string") throw new InvalidConfigError("reason", "a string", reason);
    const entry = {
      peerId: peer,
      reason: reason.slice(0, MAX_REASON_LENGTH),
      expiresAt: this.#clock.now() + durationMs,
    };
    this.#entries.delete(peer);
    if (this.#entries.size >= this.#maxBans) this.#dropSoonest();
    this.#entries.set(peer, entry);
    return { ...entry };
  }

  /**
   * Lifts a ban.
   *
   * @example
   * ```ts
   * import { BanList } from "@cretoai/network/transport";
   *
   * const bans = new BanList();
   * bans.ban("p", 1000, "test");
   * console.assert(bans.unban("p") && !bans.unban("p"));
   * ```
   *
   * @param peer The peer id.
   * @returns Whether the peer was banned.
   */
  unban(peer: string): boolean {
    return this.get(peer) !== undefined && this.#entries.delete(peer);
  }

  /**
   * The ban of a peer, if it is banned now.
   *
   * @param peer The peer id.
   * @returns A copy of the entry, or `undefined`.
   */
  get(peer: string): BanEntry | undefined {
    const entry = this.#entries.get(peer);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.#clock.now()) return { ...entry };
    this.#entries.delete(peer);
    return undefined;
  }

  /**
   * The bans in force.
   *
   * @example
   * ```ts
   * import { BanList } from "@cretoai/network/transport";
   *
   * const bans = new BanList();
   * bans.ban("p", 1000, "test");
   * console.assert(bans.list().length === 1);
   * ```
   *
   * @returns Copies of the entries, oldest ban first.
   */
  list(): BanEntry[] {
    const now = this.#clock.now();
    for (const [peer, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(peer);
    }
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  #dropSoonest(): void {
    let soonest: BanEntry | undefined;
    for (const entry of this.#entries.values()) {
      if (soonest === undefined || entry.expiresAt < soonest.expiresAt) soonest = entry;
    }
    if (soonest !== undefined) this.#entries.delete(soonest.peerId);
  }
}
