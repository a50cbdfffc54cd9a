/**
 * The timers of a TURN allocation as pure state (RFC 8656): when to refresh the allocation,
 * each permission and each channel binding, and when the allocation has expired. No clock of
 * its own: every call takes the current time in milliseconds, and the driver asks for the next
 * deadline and for the tasks due. Private to `src/nat/`.
 *
 * @module
 */

import type { UdpAddress } from "../quic/datagram_port.ts";
import { CHANNEL_MAX, CHANNEL_MIN } from "./_turn_codec.ts";

/** Lifetime of a permission on the server (RFC 8656 section 9, not negotiable). */
export const PERMISSION_LIFETIME_MS = 300_000;
/** Lifetime of a channel binding on the server (RFC 8656 section 12, not negotiable). */
export const CHANNEL_LIFETIME_MS = 600_000;

/**
 * Longest allocation lifetime the client keeps between refreshes, in seconds: RFC 8656 section
 * 3.2 recommends servers cap allocations at an hour. A longer grant (LIFETIME is 32 bits on the
 * wire, up to 136 years) is refreshed as if it were this, so no timer waits beyond it.
 */
export const MAX_ALLOCATION_LIFETIME_S = 3600;

/** Something the driver must refresh now. */
export type TurnTask =
  | { kind: "allocation" }
  | { kind: "permission"; ip: string }
  | { kind: "channel"; peer: UdpAddress; channel: number };

/** How long after a grant each refresh is due. */
export interface TurnTimings {
  /** Delay from a permission grant to its refresh; below {@link PERMISSION_LIFETIME_MS}. */
  permissionRefreshMs: number;
  /** Delay from a channel grant to its refresh; below {@link CHANNEL_LIFETIME_MS}. */
  channelRefreshMs: number;
}

/**
 * When to refresh an allocation granted for `lifetimeSeconds`: a quarter of the lifetime early,
 * but never more than a minute early (600 s -> 540 s; 10 s -> 7.5 s), so a refresh has time
 * for its retransmissions and one retry.
 */
export function allocationRefreshDelayMs(lifetimeSeconds: number): number {
  const lifetimeMs = lifetimeSeconds * 1000;
  return lifetimeMs - Math.min(60_000, lifetimeMs / 4);
}

interface Timer {
  /** When the refresh is due; `Infinity` while one is in flight. */
  refreshAt: number;
  /** When the server forgets it. */
  expiresAt: number;
}

interface ChannelEntry extends Timer {
  peer: UdpAddress;
  channel: number;
}

/** The refresh and expiry timers of one allocation, its permissions and its channels. */
export class TurnAllocationState {
  readonly #timings: TurnTimings;
  #allocation: Timer | undefined;
  readonly #permissions = new Map<string, Timer>();
  readonly #channels = new Map<string, ChannelEntry>();
  readonly #peersByChannel = new Map<number, ChannelEntry>();
  #nextChannel = CHANNEL_MIN;

  /** @param timings Refresh delays of permissions and channels. */
  constructor(timings: TurnTimings) {
    this.#timings = timings;
  }

  /** When the allocation expires, or `undefined` before the first grant. */
  get expiresAt(): number | undefined {
    return this.#allocation?.expiresAt;
  }

  /** Records an Allocate or Refresh success granting `lifetimeSeconds` at `now`. */
  allocated(now: number, lifetimeSeconds: number): void {
    this.#allocation = {
      refreshAt: now + allocationRefreshDelayMs(lifetimeSeconds),
      expiresAt: now + lifetimeSeconds * 1000,
    };
  }

  /** Records a CreatePermission success for `ip` at `now`. */
  permitted(now: number, ip: string): void {
    this.#permissions.set(ip, {
      refreshAt: now + this.#timings.permissionRefreshMs,
      expiresAt: now + PERMISSION_LIFETIME_MS,
    });
  }

  /** Whether a permission for `ip` is installed and not expired at `now`. */
  hasPermission(now: number, ip: string): boolean {
    const p = this.#permissions.get(ip);
    return p !== undefined && p.expiresAt > now;
  }

  /**
   * The channel number to use for `peer`: the bound one, or the next free one (not yet
   * recorded; {@link bound} records it). `undefined` when all 4096 are taken.
   */
  channelFor(peer: UdpAddress): number | undefined {
    const bound = this.#channels.get(peerKey(peer));
    if (bound !== undefined) return bound.channel;
    // Bounded: one pass over the channel range.
    for (let i = 0; i <= CHANNEL_MAX - CHANNEL_MIN; i++) {
      const channel = this.#nextChannel;
      this.#nextChannel = channel === CHANNEL_MAX ? CHANNEL_MIN : channel + 1;
      if (!this.#peersByChannel.has(channel)) return channel;
    }
    return undefined;
  }

  /** The channel bound to `peer`, if any. */
  boundChannel(peer: UdpAddress): number | undefined {
    return this.#channels.get(peerKey(peer))?.channel;
  }

  /** The peer bound to `channel`, if any. */
  peerOf(channel: number): UdpAddress | undefined {
    return this.#peersByChannel.get(channel)?.peer;
  }

  /**
   * Records a ChannelBind success at `now`. A binding also installs or refreshes the
   * permission for the peer's IP (RFC 8656 section 12.2).
   */
  bound(now: number, peer: UdpAddress, channel: number): void {
    const entry: ChannelEntry = {
      peer: { hostname: peer.hostname, port: peer.port },
      channel,
      refreshAt: now + this.#timings.channelRefreshMs,
      expiresAt: now + CHANNEL_LIFETIME_MS,
    };
    this.#channels.set(peerKey(peer), entry);
    this.#peersByChannel.set(channel, entry);
    this.permitted(now, peer.hostname);
  }

  /** Whether the allocation was granted and has run out at `now`. */
  expired(now: number): boolean {
    return this.#allocation !== undefined && this.#allocation.expiresAt <= now;
  }

  /**
   * The earliest time something is due: a refresh, or the allocation's expiry. `undefined`
   * when nothing is (before the first grant, or while every refresh is in flight and no
   * expiry is set).
   */
  nextDeadline(): number | undefined {
    let at = Infinity;
    const a = this.#allocation;
    if (a !== undefined) at = Math.min(a.refreshAt, a.expiresAt);
    for (const p of this.#permissions.values()) at = Math.min(at, p.refreshAt, p.expiresAt);
    for (const c of this.#channels.values()) at = Math.min(at, c.refreshAt, c.expiresAt);
    return at === Infinity ? undefined : at;
  }

  /**
   * The refreshes due at `now`, each marked in flight so it is handed out once; the driver
   * reports back with {@link allocated}/{@link permitted}/{@link bound} or {@link failed}.
   * Permissions and channels that expired without a refresh are dropped.
   */
  due(now: number): TurnTask[] {
    const tasks: TurnTask[] = [];
    const a = this.#allocation;
    if (a !== undefined && a.refreshAt <= now) {
      a.refreshAt = Infinity;
      tasks.push({ kind: "allocation" });
    }
    for (const [key, c] of this.#channels) {
      if (c.expiresAt <= now) {
        this.#channels.delete(key);
        this.#peersByChannel.delete(c.channel);
      } else if (c.refreshAt <= now) {
        c.refreshAt = Infinity;
        tasks.push({ kind: "channel", peer: c.peer, channel: c.channel });
      }
    }
    for (const [ip, p] of this.#permissions) {
      if (p.expiresAt <= now) {
        this.#permissions.delete(ip);
      } else if (p.refreshAt <= now) {
        p.refreshAt = Infinity;
        // A channel refresh refreshes this permission too.
        const byChannel = tasks.some((t) => t.kind === "channel" && t.peer.hostname === ip);
        if (byChannel) continue;
        tasks.push({ kind: "permission", ip });
      }
    }
    return tasks;
  }

  /**
   * Reports that a refresh failed at `now`: it is retried after half the time left before
   * its expiry (at least 250 ms later), or left to expire when that is too late.
   */
  failed(now: number, task: TurnTask): void {
    const timer = task.kind === "allocation"
      ? this.#allocation
      : task.kind === "permission"
      ? this.#permissions.get(task.ip)
      : this.#channels.get(peerKey(task.peer));
    if (timer === undefined) return;
    const retryAt = now + Math.max(250, (timer.expiresAt - now) / 2);
    timer.refreshAt = retryAt < timer.expiresAt ? retryAt : Infinity;
  }
}

/** Map key of a peer address. */
export function peerKey(peer: UdpAddress): string {
  return `${peer.hostname.toLowerCase()}|${peer.port}`;
}
