/**
 * Token-bucket rates of new inbound handshakes per source address and per network prefix
 * (IPv4 /24, IPv6 /64), without I/O: a host cannot take the node's handshake capacity, and
 * neither can one host with a whole IPv6 /64 of addresses.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { requireInteger, requirePositive } from "../_validate.ts";
import { addressPrefix, isLoopback } from "../_address_prefix.ts";

/** Options of {@linkcode HandshakeRateLimiter}. */
export interface HandshakeRateLimiterOptions {
  /**
   * New handshakes per second one IP address may start, in the long run; `Infinity` for no
   * limit.
   * @default {2}
   */
  ratePerIp?: number;
  /**
   * New handshakes one IP address may start at once after a quiet spell.
   * @default {8}
   */
  burstPerIp?: number;
  /**
   * New handshakes per second the addresses of one IPv4 /24 or IPv6 /64 may start together.
   * @default {8}
   */
  ratePerPrefix?: number;
  /**
   * New handshakes the addresses of one prefix may start at once.
   * @default {32}
   */
  burstPerPrefix?: number;
  /**
   * Whether loopback sources (127.0.0.0/8, ::1) are limited too. They are this machine: a
   * local testnet of many nodes dials from 127.0.0.1.
   * @default {false}
   */
  limitLoopback?: boolean;
  /**
   * Sources tracked at once; beyond it, full buckets are forgotten first, then the oldest.
   * @default {4096}
   */
  maxSources?: number;
  /**
   * Source of time for the refill.
   * @default {systemClock}
   */
  clock?: Clock;
}

/** A refusal of {@linkcode HandshakeRateLimiter.take}. */
export interface HandshakeRateRefusal {
  /** Which rate: the address's own, or its prefix's. */
  scope: "ip" | "prefix";
  /** The address or the prefix, for example `"198.51.100.0/24"`. */
  subject: string;
  /** A message for logs and the close frame. */
  message: string;
}

interface Bucket {
  tokens: number;
  at: number;
  /** After a refusal: when the bucket holds a token again. */
  silentUntil?: number;
}

/**
 * Rates of new inbound handshakes per IP address and per prefix.
 *
 * @example A burst of 8 from one address, then 2 per second
 * ```ts
 * import { HandshakeRateLimiter } from "@cretoai/network/pool";
 *
 * let now = 0;
 * const rates = new HandshakeRateLimiter({ clock: { now: () => now, schedule: () => () => {} } });
 * for (let i = 0; i < 8; i++) console.assert(rates.take("198.51.100.7") === undefined);
 * console.assert(rates.take("198.51.100.7")?.scope === "ip");
 * now += 500;
 * console.assert(rates.take("198.51.100.7") === undefined);
 * console.assert(rates.take("127.0.0.1") === undefined); // loopback is not limited
 * ```
 */
export class HandshakeRateLimiter {
  readonly #ip: { rate: number; burst: number };
  readonly #prefix: { rate: number; burst: number };
  readonly #limitLoopback: boolean;
  readonly #maxSources: number;
  readonly #clock: Clock;
  #buckets = new Map<string, Bucket>();

  /**
   * Creates a limiter with every bucket full.
   *
   * @param options Rates, bursts, loopback, bound and clock.
   * @throws {InvalidConfigError} for a rate that is not a number above 0, or a burst
   * or bound that is not a positive integer.
   */
  constructor(options: HandshakeRateLimiterOptions = {}) {
    const {
      ratePerIp = 2,
      burstPerIp = 8,
      ratePerPrefix = 8,
      burstPerPrefix = 32,
      limitLoopback = false,
      maxSources = 4096,
      clock = systemClock,
    } = options;
    requirePositive("ratePerIp", ratePerIp);
    requirePositive("ratePerPrefix", ratePerPrefix);
    requireInteger("burstPerIp", burstPerIp, 1);
    requireInteger("burstPerPrefix", burstPerPrefix, 1);
    requireInteger("maxSources", maxSources, 2);
    this.#ip = { rate: ratePerIp, burst: burstPerIp };
    this.#prefix = { rate: ratePerPrefix, burst: burstPerPrefix };
    this.#limitLoopback = limitLoopback;
    this.#maxSources = maxSources;
    this.#clock = clock;
  }

  /**
   * Takes one handshake from the address's and its prefix's buckets, or neither.
   *
   * @param ip The source IP address.
   * @returns `undefined` when the handshake may start, else which rate refused it.
   */
  take(ip: string): HandshakeRateRefusal | undefined {
    if (!this.#limitLoopback && isLoopback(ip)) return undefined;
    const now = this.#clock.now();
    const prefix = addressPrefix(ip);
    const own = this.#refill(`ip ${ip}`, this.#ip, now);
    const shared = this.#refill(`prefix ${prefix}`, this.#prefix, now);
    const refusal = own.tokens < 1
      ? this.#refusal("ip", ip, this.#ip)
      : shared.tokens < 1
      ? this.#refusal("prefix", prefix, this.#prefix)
      : undefined;
    if (refusal !== undefined) {
      // Until the bucket holds a token again, every take would be refused: the source is
      // silenced (see below), so it is refused with an answer once per token at most.
      const [bucket, rate] = refusal.scope === "ip" ? [own, this.#ip] : [shared, this.#prefix];
      bucket.silentUntil = now + (1 - bucket.tokens) / rate.rate * 1000;
      return refusal;
    }
    own.tokens--;
    shared.tokens--;
    return undefined;
  }

  /**
   * Whether a source was refused by {@linkcode HandshakeRateLimiter.take} so lately that its
   * next attempts would be refused too: they can be refused before any work (no TLS, no
   * connection state), as it was told why once. Takes nothing.
   *
   * @example Told once, then silenced until its bucket refills
   * ```ts
   * import { HandshakeRateLimiter } from "@cretoai/network/pool";
   *
   * let now = 0;
   * const clock = { now: () => now, schedule: () => () => {} };
   * const rates = new HandshakeRateLimiter({ ratePerIp: 2, burstPerIp: 1, clock });
   * rates.take("198.51.100.7");
   * console.assert(!rates.silenced("198.51.100.7"));
   * console.assert(rates.take("198.51.100.7")?.scope === "ip"); // refused: told with a close
   * console.assert(rates.silenced("198.51.100.7")); // further attempts: dropped
   * now += 500; // a token again
   * console.assert(!rates.silenced("198.51.100.7"));
   * console.assert(rates.take("198.51.100.7") === undefined);
   * ```
   *
   * @param ip The source IP address.
   * @returns True from a refusal until the refusing bucket holds a token again (a take would
   *   be refused until then anyway).
   */
  silenced(ip: string): boolean {
    if (!this.#limitLoopback && isLoopback(ip)) return false;
    const now = this.#clock.now();
    const until = (key: string) => this.#buckets.get(key)?.silentUntil ?? -Infinity;
    return now < until(`ip ${ip}`) || now < until(`prefix ${addressPrefix(ip)}`);
  }

  /**
   * Sources tracked now.
   *
   * @returns The number of address and prefix buckets.
   */
  get size(): number {
    return this.#buckets.size;
  }

  #refill(key: string, rate: { rate: number; burst: number }, now: number): Bucket {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxSources) this.#forget(now);
      bucket = { tokens: rate.burst, at: now };
      this.#buckets.set(key, bucket);
      return bucket;
    }
    const elapsedSec = Math.max(0, now - bucket.at) / 1000;
    bucket.tokens = rate.rate === Infinity
      ? rate.burst
      : Math.min(rate.burst, bucket.tokens + elapsedSec * rate.rate);
    bucket.at = now;
    return bucket;
  }

  /** Makes room: drops the buckets that refilled (they hold no memory worth keeping). */
  #forget(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      const rate = key.startsWith("ip ") ? this.#ip : this.#prefix;
      if (
        rate.rate === Infinity || bucket.tokens + (now - bucket.at) / 1000 * rate.rate >= rate.burst
      ) {
        this.#buckets.delete(key);
      }
    }
    // A flood from more sources than tracked: the oldest give way.
    while (this.#buckets.size >= this.#maxSources) {
      this.#buckets.delete(this.#buckets.keys().next().value!);
    }
  }

  #refusal(
    scope: "ip" | "prefix",
    subject: string,
    rate: { rate: number; burst: number },
  ): HandshakeRateRefusal {
    return {
      scope,
      subject,
      message: `Too many new handshakes from ${subject}: at most ${rate.burst} at once and ` +
        `${rate.rate} per second`,
    };
  }
}
