/**
 * The peers mDNS discovery knows, with their expiry: a state machine fed parsed responses and
 * the current time, asked for its next deadline and polled when it passes. It owns no timer and
 * no clock, so expiry is tested by moving a number.
 *
 * @module
 */

import type { ParsedResponse } from "./mdns_records.ts";

/** A UDP address at which a discovered peer listens. */
export interface MdnsPeerAddress {
  /** IPv4 address literal. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** A peer found on the local link. */
export interface MdnsPeer {
  /** The peer id from the TXT `peer=` key. */
  peerId: string;
  /** Where the peer listens: each announced address with the SRV port. */
  addresses: MdnsPeerAddress[];
  /** The DNS-SD instance label the peer announced. */
  instance: string;
  /** The protocol version from TXT `v=`, or `undefined` if the peer sent none. */
  version: string | undefined;
}

/** A change in the set of known peers. */
export type PeerTableEvent =
  | { type: "discovered"; peer: MdnsPeer }
  | { type: "expired"; peerId: string };

/** What feeding one response changed, and what was not taken. */
export interface ObserveResult {
  /** Peers discovered (or changed) and peers withdrawn. */
  events: PeerTableEvent[];
  /** Instances that carried our own peer id. */
  own: number;
  /** Instances that lacked SRV, TXT or addresses and were not known before. */
  incomplete: number;
  /** New peers refused because the table was full. */
  overflow: number;
}

/** Options of a {@linkcode PeerTable}. */
export interface PeerTableOptions {
  /** Our own peer id; instances carrying it are ignored. */
  ownPeerId: string;
  /** Most peers kept; new ones beyond it are refused until others expire. */
  maxPeers: number;
}

interface Component {
  seenAt: number;
  ttlMs: number;
}

interface Entry {
  key: string;
  instance: string;
  peerId: string;
  version: string | undefined;
  port: number;
  target: string;
  addresses: string[];
  srv: Component;
  txt: Component;
  addr: Component;
  /** Fractions of the TTL at which refresh queries were already asked for. */
  refreshStage: number;
}

/** RFC 6762 section 5.2 asks again at 80%, 85%, 90% and 95% of a record's TTL; two suffice here. */
const REFRESH_FRACTIONS = [0.8, 0.9];

/**
 * Tracks discovered peers and their expiry from parsed responses and an injected clock.
 *
 * @example Discovering a peer, then letting it expire
 * ```ts
 * import { PeerTable } from "./mdns_peers.ts";
 * import { buildAnnouncement, parseResponse } from "./mdns_records.ts";
 *
 * const table = new PeerTable({ ownPeerId: "me", maxPeers: 16 });
 * const limits = { maxRecordSize: 1300, maxRecords: 64, isValidPeerId: () => true };
 * const res = buildAnnouncement({
 *   instance: "b", hostname: "b.local", port: 9001, peerId: "B", version: "1",
 *   addresses: ["10.0.0.2"],
 * }, 120);
 * const { events } = table.observe(parseResponse(res, limits), 0);
 * console.assert(events[0].type === "discovered");
 * console.assert(table.poll(120_000).events[0].type === "expired");
 * ```
 */
export class PeerTable {
  readonly #ownPeerId: string;
  readonly #maxPeers: number;
  readonly #byKey = new Map<string, Entry>();

  /**
   * Creates an empty table.
   *
   * @param options Our peer id and the size limit.
   */
  constructor(options: PeerTableOptions) {
    this.#ownPeerId = options.ownPeerId;
    this.#maxPeers = options.maxPeers;
  }

  /** How many peers are known. */
  get size(): number {
    return this.#byKey.size;
  }

  /**
   * Feeds one parsed response received at time `now`.
   *
   * @example
   * ```ts
   * import { PeerTable } from "./mdns_peers.ts";
   *
   * const table = new PeerTable({ ownPeerId: "me", maxPeers: 16 });
   * const r = table.observe({ services: [], hosts: new Map(), rejected: [] }, 0);
   * console.assert(r.events.length === 0);
   * ```
   *
   * @param parsed The response, as {@linkcode parseResponse} returned it.
   * @param now The current time in milliseconds.
   * @returns Events to emit and counts of what was not taken.
   */
  observe(parsed: ParsedResponse, now: number): ObserveResult {
    const result: ObserveResult = { events: [], own: 0, incomplete: 0, overflow: 0 };
    const touched = new Set<Entry>();

    for (const s of parsed.services) {
      const existing = this.#byKey.get(s.key);
      if (s.txt?.peerId === this.#ownPeerId) {
        result.own++;
        continue;
      }
      if (s.goodbye) {
        if (existing !== undefined) this.#remove(existing, result.events);
        continue;
      }
      const peerId = s.txt?.peerId ?? existing?.peerId;
      // Records missing from this packet are taken from what is known of the same peer only:
      // another peer id under this instance name is a different peer with nothing to inherit.
      const same = existing !== undefined && existing.peerId === peerId ? existing : undefined;
      const srv = s.srv !== undefined
        ? { port: s.srv.port, target: s.srv.target, seen: { seenAt: now, ttlMs: s.srv.ttl * 1000 } }
        : same && { port: same.port, target: same.target, seen: same.srv };
      if (peerId === undefined || srv === undefined) {
        result.incomplete++;
        continue;
      }
      const host = parsed.hosts.get(srv.target);
      const addr = host !== undefined
        ? { addresses: host.addresses, seen: { seenAt: now, ttlMs: host.ttl * 1000 } }
        : same?.target === srv.target
        ? { addresses: same.addresses, seen: same.addr }
        : undefined;
      const txt = s.txt !== undefined
        ? { version: s.txt.version, seen: { seenAt: now, ttlMs: s.txt.ttl * 1000 } }
        : same && { version: same.version, seen: same.txt };
      if (addr === undefined || txt === undefined) {
        result.incomplete++;
        continue;
      }

      // Another peer id under the same instance name is a different peer.
      if (existing !== undefined && existing !== same) this.#remove(existing, result.events);
      const prior = same ?? this.#findPeer(peerId);
      if (prior === undefined && this.#byKey.size >= this.#maxPeers) {
        result.overflow++;
        continue;
      }
      const before = prior === undefined ? undefined : snapshot(prior);
      if (prior !== undefined && prior.key !== s.key) this.#byKey.delete(prior.key);

      const entry: Entry = {
        key: s.key,
        instance: s.instance,
        peerId,
        version: txt.version,
        port: srv.port,
        target: srv.target,
        addresses: [...addr.addresses],
        srv: srv.seen,
        txt: txt.seen,
        addr: addr.seen,
        refreshStage: 0,
      };
      this.#byKey.set(s.key, entry);
      touched.add(entry);
      const after = snapshot(entry);
      if (before === undefined || !samePeer(before, after)) {
        result.events.push({ type: "discovered", peer: after });
      }
    }

    // Address-only records refresh or change the peers whose SRV points at that host.
    for (const [hostname, host] of parsed.hosts) {
      for (const entry of this.#byKey.values()) {
        if (entry.target !== hostname || touched.has(entry)) continue;
        const before = snapshot(entry);
        entry.addresses = [...host.addresses];
        entry.addr = { seenAt: now, ttlMs: host.ttl * 1000 };
        entry.refreshStage = 0;
        const after = snapshot(entry);
        if (!samePeer(before, after)) result.events.push({ type: "discovered", peer: after });
      }
    }
    return result;
  }

  /**
   * Expires peers whose records ran out by `now`, and says whether a refresh query is due.
   *
   * @example
   * ```ts
   * import { PeerTable } from "./mdns_peers.ts";
   *
   * const table = new PeerTable({ ownPeerId: "me", maxPeers: 16 });
   * console.assert(table.poll(1000).refresh === false);
   * ```
   *
   * @param now The current time in milliseconds.
   * @returns Expired events, and `refresh: true` when some peer reached 80% or 90% of its TTL.
   */
  poll(now: number): { events: PeerTableEvent[]; refresh: boolean } {
    const events: PeerTableEvent[] = [];
    let refresh = false;
    for (const entry of [...this.#byKey.values()]) {
      if (expiresAt(entry) <= now) {
        this.#remove(entry, events);
        continue;
      }
      while (entry.refreshStage < REFRESH_FRACTIONS.length && refreshAt(entry) <= now) {
        entry.refreshStage++;
        refresh = true;
      }
    }
    return { events, refresh };
  }

  /**
   * The earliest time at which {@linkcode PeerTable.poll} has something to do.
   *
   * @example
   * ```ts
   * import { PeerTable } from "./mdns_peers.ts";
   *
   * console.assert(new PeerTable({ ownPeerId: "me", maxPeers: 1 }).nextDeadline() === undefined);
   * ```
   *
   * @returns A time in milliseconds, or `undefined` when no peer is known.
   */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const entry of this.#byKey.values()) {
      const t = entry.refreshStage < REFRESH_FRACTIONS.length
        ? Math.min(refreshAt(entry), expiresAt(entry))
        : expiresAt(entry);
      if (next === undefined || t < next) next = t;
    }
    return next;
  }

  /**
   * The peers known now.
   *
   * @example
   * ```ts
   * import { PeerTable } from "./mdns_peers.ts";
   *
   * console.assert(new PeerTable({ ownPeerId: "me", maxPeers: 1 }).peers().length === 0);
   * ```
   *
   * @returns One snapshot per peer.
   */
  peers(): MdnsPeer[] {
    return [...this.#byKey.values()].map(snapshot);
  }

  /**
   * Forgets every peer, returning an expired event for each.
   *
   * @example
   * ```ts
   * import { PeerTable } from "./mdns_peers.ts";
   *
   * console.assert(new PeerTable({ ownPeerId: "me", maxPeers: 1 }).clear().length === 0);
   * ```
   *
   * @returns The expired events.
   */
  clear(): PeerTableEvent[] {
    const events: PeerTableEvent[] = [];
    for (const entry of [...this.#byKey.values()]) this.#remove(entry, events);
    return events;
  }

  #findPeer(peerId: string): Entry | undefined {
    for (const entry of this.#byKey.values()) if (entry.peerId === peerId) return entry;
    return undefined;
  }

  #remove(entry: Entry, events: PeerTableEvent[]): void {
    this.#byKey.delete(entry.key);
    events.push({ type: "expired", peerId: entry.peerId });
  }
}

function earliest(entry: Entry): Component {
  let c = entry.srv;
  for (const o of [entry.txt, entry.addr]) if (o.seenAt + o.ttlMs < c.seenAt + c.ttlMs) c = o;
  return c;
}

function expiresAt(entry: Entry): number {
  const c = earliest(entry);
  return c.seenAt + c.ttlMs;
}

function refreshAt(entry: Entry): number {
  const c = earliest(entry);
  return c.seenAt + c.ttlMs * REFRESH_FRACTIONS[entry.refreshStage];
}

function snapshot(entry: Entry): MdnsPeer {
  return {
    peerId: entry.peerId,
    addresses: entry.addresses.map((hostname) => ({ hostname, port: entry.port })),
    instance: entry.instance,
    version: entry.version,
  };
}

function samePeer(a: MdnsPeer, b: MdnsPeer): boolean {
  return a.peerId === b.peerId && a.instance === b.instance && a.version === b.version &&
    a.addresses.length === b.addresses.length &&
    a.addresses.every((x, i) =>
      x.hostname === b.addresses[i].hostname && x.port === b.addresses[i].port
    );
}
