/**
 * The records a DHT node holds for others: peer records by peer id and provider records by
 * content key, bounded in number and dropped when they expire.
 *
 * @module
 */

import { equalBytes } from "../../_bytes.ts";
import { type Clock, wallClock } from "../../clock.ts";
import { type DhtKey, keyToHex } from "./key.ts";
import type { ProviderRecord, SignedPeerRecord } from "./records.ts";
import { DhtRecordError } from "./record_error.ts";
import { requireInteger } from "../../_validate.ts";
import { NetworkError } from "../../errors.ts";
import { type RecordSource, SourceQuota } from "./_source_quota.ts";

export type { RecordSource } from "./_source_quota.ts";

/** A peer record as held: decoded, and the exact bytes to serve. */
export interface StoredPeerRecord {
  /** The verified record. */
  readonly record: SignedPeerRecord;
  /** Its encoding, served as is so the signature stays checkable. */
  readonly bytes: Uint8Array;
}

/** Options of a {@linkcode PeerRecordStore}. */
export interface PeerRecordStoreOptions {
  /**
   * Most records held at once.
   *
   * @default {10_000}
   */
  maxRecords?: number;
  /**
   * Most records one peer may have stored here at once (records put without a source are
   * not counted).
   *
   * @default {64}
   */
  maxRecordsPerPeer?: number;
  /**
   * Most records the peers of one network prefix (IPv4 /24, IPv6 /64; loopback apart) may
   * have stored here at once.
   *
   * @default {256}
   */
  maxRecordsPerPrefix?: number;
  /**
   * Time source for expiry.
   *
   * @default {wallClock}
   */
  clock?: Clock;
}

/**
 * Peer records by peer id, newest sequence number wins.
 *
 * @example
 * ```ts
 * import { PeerRecordStore } from "@cretoai/network/dht";
 *
 * const store = new PeerRecordStore();
 * const record = {
 *   peerId: "peer", publicKey: new Uint8Array(32), addresses: [], seq: 1,
 *   expiresAt: Date.now() + 60_000, signature: new Uint8Array(64),
 * };
 * store.put(record, new Uint8Array(0));
 * console.assert(store.get("peer")?.record.seq === 1);
 * ```
 */
export class PeerRecordStore {
  readonly #records = new Map<string, StoredPeerRecord>();
  readonly #sources = new Map<string, RecordSource>();
  readonly #maxRecords: number;
  readonly #quota: SourceQuota;
  readonly #clock: Clock;

  /**
   * Creates an empty store.
   *
   * @param options Capacity and clock.
   * @throws {InvalidConfigError} If `maxRecords` is not a positive integer.
   */
  constructor(options: PeerRecordStoreOptions = {}) {
    const {
      maxRecords = 10_000,
      maxRecordsPerPeer = 64,
      maxRecordsPerPrefix = 256,
      clock = wallClock,
    } = options;
    requireInteger("maxRecords", maxRecords, 1);
    requireInteger("maxRecordsPerPeer", maxRecordsPerPeer, 1);
    requireInteger("maxRecordsPerPrefix", maxRecordsPerPrefix, 1);
    this.#maxRecords = maxRecords;
    this.#quota = new SourceQuota(maxRecordsPerPeer, maxRecordsPerPrefix);
    this.#clock = clock;
  }

  /** Number of records held, expired ones included until the next `prune`. */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Stores a record that was already verified with `verifyPeerRecord`.
   *
   * @example Refusing a stale record
   * ```ts
   * import { DhtRecordError, PeerRecordStore } from "@cretoai/network/dht";
   *
   * const store = new PeerRecordStore();
   * const base = {
   *   peerId: "peer", publicKey: new Uint8Array(32), addresses: [],
   *   expiresAt: Date.now() + 60_000, signature: new Uint8Array(64),
   * };
   * store.put({ ...base, seq: 2 }, new Uint8Array(0));
   * try {
   *   store.put({ ...base, seq: 1 }, new Uint8Array(0));
   * } catch (e) {
   *   console.assert(e instanceof DhtRecordError && e.reason === "stale");
   * }
   * ```
   *
   * @param record The verified record.
   * @param bytes Its encoding.
   * @param source The peer that sent it, counted against its quota until the record goes.
   * @returns `true` if stored, `false` if the same sequence number with the same bytes was
   *   already held (a harmless repeat).
   * @throws {DhtRecordError} `stale` if a record with a higher or equal sequence number (and
   *   different bytes) is held.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the store is full of unexpired records, or
   *   the source or its prefix holds its most records.
   */
  put(record: SignedPeerRecord, bytes: Uint8Array, source?: RecordSource): boolean {
    const held = this.#live(record.peerId);
    if (held !== undefined && held.record.seq >= record.seq) {
      if (held.record.seq === record.seq && equalBytes(held.bytes, bytes)) return false;
      throw new DhtRecordError(
        "stale",
        `Refused peer record of ${record.peerId}: sequence ${record.seq} is not above the ` +
          `held ${held.record.seq}`,
      );
    }
    if (held === undefined && this.#records.size >= this.#maxRecords) {
      this.prune();
      if (this.#records.size >= this.#maxRecords) {
        throw new NetworkError(
          "ERR_LIMIT_EXCEEDED",
          `Cannot store peer record of ${record.peerId}: store holds its maximum of ` +
            `${this.#maxRecords} records`,
        );
      }
    }
    const previous = this.#sources.get(record.peerId);
    if (previous !== undefined) this.#quota.release(previous);
    if (source !== undefined) {
      try {
        takeOrPrune(this.#quota, source, `peer record of ${record.peerId}`, () => this.prune());
      } catch (e) {
        if (previous !== undefined) this.#quota.take(previous, "");
        throw e;
      }
    }
    this.#sources.delete(record.peerId);
    this.#records.set(record.peerId, { record, bytes });
    if (source !== undefined) this.#sources.set(record.peerId, source);
    return true;
  }

  /**
   * Returns the unexpired record of a peer.
   *
   * @example
   * ```ts
   * import { PeerRecordStore } from "@cretoai/network/dht";
   *
   * console.assert(new PeerRecordStore().get("nobody") === undefined);
   * ```
   *
   * @param peerId The peer id.
   * @returns The record and its bytes, or `undefined`.
   */
  get(peerId: string): StoredPeerRecord | undefined {
    return this.#live(peerId);
  }

  /**
   * Drops expired records.
   *
   * @example
   * ```ts
   * import { PeerRecordStore } from "@cretoai/network/dht";
   *
   * console.assert(new PeerRecordStore().prune() === 0);
   * ```
   *
   * @returns How many were dropped.
   */
  prune(): number {
    const now = this.#clock.now();
    let dropped = 0;
    for (const [id, held] of this.#records) {
      if (held.record.expiresAt <= now) {
        this.#delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  #live(peerId: string): StoredPeerRecord | undefined {
    const held = this.#records.get(peerId);
    if (held === undefined) return undefined;
    if (held.record.expiresAt > this.#clock.now()) return held;
    this.#delete(peerId);
    return undefined;
  }

  #delete(peerId: string): void {
    this.#records.delete(peerId);
    const source = this.#sources.get(peerId);
    if (source === undefined) return;
    this.#sources.delete(peerId);
    this.#quota.release(source);
  }
}

/** Options of a {@linkcode ProviderStore}. */
export interface ProviderStoreOptions {
  /**
   * Most content keys held at once.
   *
   * @default {10_000}
   */
  maxKeys?: number;
  /**
   * Most providers held per content key; when full, the record expiring soonest gives way.
   *
   * @default {64}
   */
  maxProvidersPerKey?: number;
  /**
   * Most provider records one peer may have stored here at once.
   *
   * @default {1024}
   */
  maxRecordsPerPeer?: number;
  /**
   * Most provider records the peers of one network prefix (IPv4 /24, IPv6 /64; loopback
   * apart) may have stored here at once.
   *
   * @default {4096}
   */
  maxRecordsPerPrefix?: number;
  /**
   * Time source for expiry.
   *
   * @default {wallClock}
   */
  clock?: Clock;
}

/**
 * Provider records by content key.
 *
 * @example
 * ```ts
 * import { contentKey, ProviderStore } from "@cretoai/network/dht";
 *
 * const store = new ProviderStore();
 * const key = contentKey("file");
 * store.add({ key, providerId: "peer", addresses: [], expiresAt: Date.now() + 60_000 });
 * console.assert(store.get(key).length === 1);
 * ```
 */
export class ProviderStore {
  readonly #byKey = new Map<string, Map<string, ProviderRecord>>();
  readonly #sources = new Map<string, RecordSource>();
  readonly #maxKeys: number;
  readonly #maxProvidersPerKey: number;
  readonly #quota: SourceQuota;
  readonly #clock: Clock;

  /**
   * Creates an empty store.
   *
   * @param options Capacity and clock.
   * @throws {InvalidConfigError} If a capacity is not a positive integer.
   */
  constructor(options: ProviderStoreOptions = {}) {
    const {
      maxKeys = 10_000,
      maxProvidersPerKey = 64,
      maxRecordsPerPeer = 1024,
      maxRecordsPerPrefix = 4096,
      clock = wallClock,
    } = options;
    requireInteger("maxKeys", maxKeys, 1);
    requireInteger("maxProvidersPerKey", maxProvidersPerKey, 1);
    requireInteger("maxRecordsPerPeer", maxRecordsPerPeer, 1);
    requireInteger("maxRecordsPerPrefix", maxRecordsPerPrefix, 1);
    this.#maxKeys = maxKeys;
    this.#maxProvidersPerKey = maxProvidersPerKey;
    this.#quota = new SourceQuota(maxRecordsPerPeer, maxRecordsPerPrefix);
    this.#clock = clock;
  }

  /**
   * Stores a validated provider record, replacing the provider's earlier record for the key.
   *
   * @example
   * ```ts
   * import { contentKey, ProviderStore } from "@cretoai/network/dht";
   *
   * const store = new ProviderStore({ maxProvidersPerKey: 1 });
   * const key = contentKey("file");
   * store.add({ key, providerId: "a", addresses: [], expiresAt: Date.now() + 1000 });
   * store.add({ key, providerId: "b", addresses: [], expiresAt: Date.now() + 9000 });
   * console.assert(store.get(key)[0].providerId === "b");
   * ```
   *
   * @param record The record, already checked with `validateProviderRecord`.
   * @param source The peer that sent it, counted against its quota until the record goes.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the key is new and the store holds
   *   `maxKeys` keys with unexpired records, or the source or its prefix holds its most
   *   records.
   */
  add(record: ProviderRecord, source?: RecordSource): void {
    const hex = keyToHex(record.key);
    const id = `${hex}/${record.providerId}`;
    const previous = this.#sources.get(id);
    if (source !== undefined && previous === undefined) {
      const what = `provider record of ${record.providerId} for key ${hex}`;
      takeOrPrune(this.#quota, source, what, () => this.prune());
    }
    let stored = false;
    try {
      stored = this.#add(hex, record);
    } finally {
      if (source !== undefined && previous === undefined) {
        if (stored) this.#sources.set(id, source);
        else this.#quota.release(source);
      }
    }
  }

  /** Returns false when the record gave way to providers that expire later. */
  #add(hex: string, record: ProviderRecord): boolean {
    let providers = this.#byKey.get(hex);
    if (providers === undefined) {
      if (this.#byKey.size >= this.#maxKeys) this.prune();
      if (this.#byKey.size >= this.#maxKeys) {
        throw new NetworkError(
          "ERR_LIMIT_EXCEEDED",
          `Cannot store provider record for key ${hex}: store holds its maximum of ` +
            `${this.#maxKeys} keys`,
        );
      }
      providers = new Map();
      this.#byKey.set(hex, providers);
    }
    if (!providers.has(record.providerId) && providers.size >= this.#maxProvidersPerKey) {
      let soonest: ProviderRecord | undefined;
      for (const p of providers.values()) {
        if (soonest === undefined || p.expiresAt < soonest.expiresAt) soonest = p;
      }
      // A newcomer that would expire first is the one to give way.
      if (soonest === undefined || soonest.expiresAt >= record.expiresAt) return false;
      this.#delete(hex, providers, soonest.providerId);
    }
    providers.set(record.providerId, record);
    return true;
  }

  /**
   * Returns the unexpired providers of a key.
   *
   * @example
   * ```ts
   * import { contentKey, ProviderStore } from "@cretoai/network/dht";
   *
   * console.assert(new ProviderStore().get(contentKey("nothing")).length === 0);
   * ```
   *
   * @param key The content key.
   * @param limit Most records to return.
   * @returns The records, in the order they were added.
   */
  get(key: DhtKey, limit: number = Infinity): ProviderRecord[] {
    const providers = this.#byKey.get(keyToHex(key));
    if (providers === undefined) return [];
    const now = this.#clock.now();
    const out: ProviderRecord[] = [];
    for (const [id, p] of providers) {
      if (p.expiresAt <= now) this.#delete(keyToHex(key), providers, id);
      else if (out.length < limit) out.push(p);
    }
    return out;
  }

  /**
   * Drops expired records and keys left without providers.
   *
   * @example
   * ```ts
   * import { ProviderStore } from "@cretoai/network/dht";
   *
   * console.assert(new ProviderStore().prune() === 0);
   * ```
   *
   * @returns How many records were dropped.
   */
  prune(): number {
    const now = this.#clock.now();
    let dropped = 0;
    for (const [hex, providers] of this.#byKey) {
      for (const [id, p] of providers) {
        if (p.expiresAt <= now) {
          this.#delete(hex, providers, id);
          dropped++;
        }
      }
      if (providers.size === 0) this.#byKey.delete(hex);
    }
    return dropped;
  }

  #delete(hex: string, providers: Map<string, ProviderRecord>, providerId: string): void {
    providers.delete(providerId);
    const id = `${hex}/${providerId}`;
    const source = this.#sources.get(id);
    if (source === undefined) return;
    this.#sources.delete(id);
    this.#quota.release(source);
  }
}

/** Counts a record against its source's quota, after dropping expired records if it is full. */
function takeOrPrune(quota: SourceQuota, source: RecordSource, what: string, prune: () => void) {
  try {
    quota.take(source, what);
  } catch {
    prune();
    quota.take(source, what);
  }
}
