/**
 * The Kademlia routing table: 256 k-buckets of contacts ordered by when they were last seen,
 * each with a replacement cache, and the bookkeeping of which buckets need a refresh lookup.
 *
 * The table does no I/O. When a full bucket meets a new contact, {@linkcode RoutingTable.update}
 * asks the caller to ping the bucket's least recently seen contact and to report the outcome
 * with {@linkcode RoutingTable.pingResult}: long-lived contacts are kept in preference to new
 * ones (they are the likeliest to stay online, and a flood of new ids cannot flush them).
 *
 * @module
 */

import type { DhtContact } from "./contact.ts";
import { type Clock, wallClock } from "../../clock.ts";
import { bucketIndex, commonPrefixLength, compareDistance, type DhtKey, KEY_BITS } from "./key.ts";
import { requireInteger } from "../../_validate.ts";

/** Options of a {@linkcode RoutingTable}. */
export interface RoutingTableOptions {
  /**
   * Bucket size: contacts per bucket, and how many closest contacts lookups return.
   *
   * @default {20}
   */
  k?: number;
  /**
   * Contacts per bucket waiting in the replacement cache for a slot to free up.
   *
   * @default {20}
   */
  replacementCacheSize?: number;
  /**
   * Consecutive failed requests after which a contact is dropped from its bucket.
   *
   * @default {2}
   */
  maxFailures?: number;
  /**
   * A bucket that saw no lookup for this long needs a refresh lookup.
   *
   * @default {3_600_000}
   */
  refreshIntervalMs?: number;
  /**
   * Time source.
   *
   * @default {wallClock}
   */
  clock?: Clock;
}

/** What {@linkcode RoutingTable.update} did with a contact. */
export type RoutingUpdate =
  /** The contact was new and its bucket had room. */
  | { readonly status: "added" }
  /** The contact was known; it moved to the most recently seen end of its bucket. */
  | { readonly status: "updated" }
  /**
   * The bucket is full: the new contact waits in the replacement cache, and the caller must
   * ping `ping` (the least recently seen contact) and report with `pingResult`.
   */
  | { readonly status: "ping"; readonly ping: DhtContact }
  /** The bucket is full and its oldest contact is already being pinged; the contact waits. */
  | { readonly status: "cached" }
  /** The contact is the local node; tables never hold themselves. */
  | { readonly status: "self" };

interface Entry {
  contact: DhtContact;
  lastSeen: number;
  failures: number;
  /** First 32 bits of the key, so most distance comparisons are one XOR. */
  head: number;
}

function entry(contact: DhtContact, lastSeen: number): Entry {
  return { contact, lastSeen, failures: 0, head: head32(contact.key) };
}

function head32(key: DhtKey): number {
  return ((key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]) >>> 0;
}

/**
 * The k-buckets of one node.
 *
 * @example Filling a table and asking for the closest contacts
 * ```ts
 * import { contentKey, makeContact, RoutingTable } from "@cretoai/network/dht";
 *
 * const table = new RoutingTable(makeContact("me").key, { k: 20 });
 * for (let i = 0; i < 100; i++) {
 *   const update = table.update(makeContact(`peer-${i}`));
 *   if (update.status === "ping") table.pingResult(update.ping.id, true);
 * }
 * const closest = table.closest(contentKey("some file"), 5);
 * console.assert(closest.length === 5);
 * ```
 */
export class RoutingTable {
  /** The local node's key. */
  readonly selfKey: DhtKey;
  /** Bucket size. */
  readonly k: number;
  readonly #replacementCacheSize: number;
  readonly #maxFailures: number;
  readonly #refreshIntervalMs: number;
  readonly #clock: Clock;
  readonly #buckets: Entry[][] = Array.from({ length: KEY_BITS }, () => []);
  readonly #replacements: DhtContact[][] = Array.from({ length: KEY_BITS }, () => []);
  readonly #bucketOf = new Map<string, number>();
  readonly #pinging = new Set<string>();
  readonly #lastRefresh: Float64Array;
  /** Index of the nearest non-empty bucket, or KEY_BITS when all are empty; -1 = unknown. */
  #nearest = KEY_BITS;

  /**
   * Creates an empty table.
   *
   * @param selfKey The local node's key.
   * @param options Bucket size, cache size, failure and refresh policy, clock.
   * @throws {InvalidConfigError} If an option is not a positive integer.
   */
  constructor(selfKey: DhtKey, options: RoutingTableOptions = {}) {
    const {
      k = 20,
      replacementCacheSize = 20,
      maxFailures = 2,
      refreshIntervalMs = 3_600_000,
      clock = wallClock,
    } = options;
    requireInteger("k", k, 1);
    requireInteger("maxFailures", maxFailures, 1);
    requireInteger("refreshIntervalMs", refreshIntervalMs, 1);
    requireInteger("replacementCacheSize", replacementCacheSize, 0);
    this.selfKey = selfKey;
    this.k = k;
    this.#replacementCacheSize = replacementCacheSize;
    this.#maxFailures = maxFailures;
    this.#refreshIntervalMs = refreshIntervalMs;
    this.#clock = clock;
    // A fresh table counts as refreshed: bootstrap does its own lookups.
    this.#lastRefresh = new Float64Array(KEY_BITS).fill(clock.now());
  }

  /** Number of contacts in the buckets (not counting replacement caches). */
  get size(): number {
    return this.#bucketOf.size;
  }

  /**
   * Records that a contact was seen alive (it answered, or sent a request).
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * const table = new RoutingTable(makeContact("me").key);
   * console.assert(table.update(makeContact("peer")).status === "added");
   * console.assert(table.update(makeContact("peer")).status === "updated");
   * ```
   *
   * @param contact The contact seen.
   * @returns What the table did; on `"ping"` the caller must ping and call `pingResult`.
   */
  update(contact: DhtContact): RoutingUpdate {
    if (compareDistance(this.selfKey, contact.key, this.selfKey) === 0) return SELF;
    const index = bucketIndex(this.selfKey, contact.key);
    const bucket = this.#buckets[index];
    const now = this.#clock.now();
    const at = this.#bucketOf.has(contact.id)
      ? bucket.findIndex((e) => e.contact.id === contact.id)
      : -1;
    if (at >= 0) {
      bucket.splice(at, 1);
      // Addresses can change between sightings; the latest sighting wins.
      bucket.push(entry(contact, now));
      return UPDATED;
    }
    if (bucket.length < this.k) {
      bucket.push(entry(contact, now));
      this.#bucketOf.set(contact.id, index);
      if (index < this.#nearest) this.#nearest = index;
      this.#removeReplacement(index, contact.id);
      return ADDED;
    }
    this.#addReplacement(index, contact);
    const oldest = bucket[0].contact;
    if (this.#pinging.has(oldest.id)) return CACHED;
    this.#pinging.add(oldest.id);
    return { status: "ping", ping: oldest };
  }

  /**
   * Reports the outcome of a ping asked for by `update`. A live contact moves to the most
   * recently seen end; a dead one is dropped and the newest replacement takes its slot.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * const table = new RoutingTable(makeContact("me").key, { k: 1 });
   * let update = table.update(makeContact("first"));
   * for (let i = 0; update.status !== "ping"; i++) {
   *   update = table.update(makeContact(`peer-${i}`)); // until some bucket overflows
   * }
   * const promoted = table.pingResult(update.ping.id, false);
   * console.assert(promoted !== undefined && !table.has(update.ping.id));
   * ```
   *
   * @param id The pinged contact's id.
   * @param alive Whether it answered.
   * @returns The contact promoted from the replacement cache, if one was.
   */
  pingResult(id: string, alive: boolean): DhtContact | undefined {
    this.#pinging.delete(id);
    const index = this.#bucketOf.get(id);
    if (index === undefined) return undefined;
    const bucket = this.#buckets[index];
    const at = bucket.findIndex((e) => e.contact.id === id);
    if (alive) {
      const [old] = bucket.splice(at, 1);
      bucket.push(entry(old.contact, this.#clock.now()));
      return undefined;
    }
    return this.#evict(index, at);
  }

  /**
   * Records that a request to a contact failed (timed out or errored). After `maxFailures`
   * consecutive failures the contact is dropped and the newest replacement takes its slot.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * const table = new RoutingTable(makeContact("me").key, { maxFailures: 2 });
   * table.update(makeContact("flaky"));
   * table.recordFailure("flaky");
   * console.assert(table.has("flaky"));
   * table.recordFailure("flaky");
   * console.assert(!table.has("flaky"));
   * ```
   *
   * @param id The contact's id.
   * @returns `true` if the contact was dropped.
   */
  recordFailure(id: string): boolean {
    const index = this.#bucketOf.get(id);
    if (index === undefined) {
      for (let i = 0; i < KEY_BITS; i++) this.#removeReplacement(i, id);
      return false;
    }
    const bucket = this.#buckets[index];
    const at = bucket.findIndex((e) => e.contact.id === id);
    if (++bucket[at].failures < this.#maxFailures) return false;
    this.#evict(index, at);
    return true;
  }

  /**
   * Drops a contact now, promoting a replacement into its slot.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * const table = new RoutingTable(makeContact("me").key);
   * table.update(makeContact("gone"));
   * console.assert(table.remove("gone") && table.size === 0);
   * ```
   *
   * @param id The contact's id.
   * @returns `true` if it was in a bucket.
   */
  remove(id: string): boolean {
    const index = this.#bucketOf.get(id);
    if (index === undefined) return false;
    this.#evict(index, this.#buckets[index].findIndex((e) => e.contact.id === id));
    return true;
  }

  /**
   * Tells whether a contact is in a bucket.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * console.assert(!new RoutingTable(makeContact("me").key).has("peer"));
   * ```
   *
   * @param id The contact's id.
   * @returns Whether the table holds it.
   */
  has(id: string): boolean {
    return this.#bucketOf.has(id);
  }

  /**
   * Returns the contacts of one bucket, least recently seen first.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * console.assert(new RoutingTable(makeContact("me").key).bucket(255).length === 0);
   * ```
   *
   * @param index The bucket, 0 to 255.
   * @returns A copy of the bucket's contacts.
   */
  bucket(index: number): DhtContact[] {
    return (this.#buckets[index] ?? []).map((e) => e.contact);
  }

  /**
   * Returns the replacement cache of one bucket, oldest first.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * console.assert(new RoutingTable(makeContact("me").key).replacements(255).length === 0);
   * ```
   *
   * @param index The bucket, 0 to 255.
   * @returns A copy of the waiting contacts.
   */
  replacements(index: number): DhtContact[] {
    return [...(this.#replacements[index] ?? [])];
  }

  /**
   * Returns the known contacts closest to a key, closest first.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * const table = new RoutingTable(makeContact("me").key);
   * const peer = makeContact("peer");
   * table.update(peer);
   * console.assert(table.closest(peer.key, 1)[0].id === "peer");
   * ```
   *
   * @param target The key.
   * @param count How many to return at most.
   * @param exclude A peer id to leave out, typically the one who asked.
   * @returns Up to `count` contacts.
   */
  closest(target: DhtKey, count: number = this.k, exclude?: string): DhtContact[] {
    // Bucket i holds contacts whose distance to self has its top bit at i, so seen from the
    // target, bit i of d(self, target) decides the order of whole buckets: where it is 1 the
    // bucket's contacts are closer than every lower bucket (farthest such bucket first), where
    // it is 0 farther (nearest first). Only the buckets actually taken need sorting.
    const out: DhtContact[] = [];
    const buckets = this.#buckets;
    const d = new Uint8Array(32);
    for (let b = 0; b < 32; b++) d[b] = this.selfKey[b] ^ target[b];
    const th = head32(target);
    const order: number[] = [];
    const dist: number[] = [];
    const take = (bucket: Entry[]) => {
      // Insertion sort on the 32-bit distance heads: buckets are small, and this runs for
      // every FIND_NODE a node answers.
      const n = bucket.length;
      for (let a = 0; a < n; a++) {
        const d = (bucket[a].head ^ th) >>> 0;
        let b = a;
        while (
          b > 0 &&
          (dist[b - 1] > d ||
            (dist[b - 1] === d &&
              compareDistance(target, bucket[order[b - 1]].contact.key, bucket[a].contact.key) >
                0))
        ) {
          dist[b] = dist[b - 1];
          order[b] = order[b - 1];
          b--;
        }
        dist[b] = d;
        order[b] = a;
      }
      for (let a = 0; a < n && out.length < count; a++) {
        const contact = bucket[order[a]].contact;
        if (contact.id !== exclude) out.push(contact);
      }
    };
    // Buckets below the nearest non-empty one are empty; skip them without looking.
    const low = this.#nearestBucket();
    for (let i = KEY_BITS - 1; i >= low && out.length < count; i--) {
      if (buckets[i].length > 0 && ((d[31 - (i >> 3)] >> (i & 7)) & 1) === 1) take(buckets[i]);
    }
    for (let i = low; i < KEY_BITS && out.length < count; i++) {
      if (buckets[i].length > 0 && ((d[31 - (i >> 3)] >> (i & 7)) & 1) === 0) take(buckets[i]);
    }
    return out;
  }

  /**
   * Returns every contact in the buckets.
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * console.assert(new RoutingTable(makeContact("me").key).all().length === 0);
   * ```
   *
   * @returns The contacts, bucket by bucket.
   */
  all(): DhtContact[] {
    return this.#buckets.flatMap((b) => b.map((e) => e.contact));
  }

  /**
   * Records that a lookup for `target` ran, which counts as a refresh of the target's bucket.
   *
   * @example
   * ```ts
   * import { contentKey, makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * const table = new RoutingTable(makeContact("me").key);
   * table.markRefreshed(contentKey("anything"));
   * ```
   *
   * @param target The lookup's target.
   */
  markRefreshed(target: DhtKey): void {
    const cpl = commonPrefixLength(this.selfKey, target);
    if (cpl < KEY_BITS) this.#lastRefresh[KEY_BITS - 1 - cpl] = this.#clock.now();
  }

  /**
   * Lists the buckets that need a refresh lookup: those not looked up for `refreshIntervalMs`,
   * among the buckets from the farthest down to the nearest one that holds a contact (nearer
   * buckets are empty because the key space there is empty, and the self lookup covers them).
   *
   * @example
   * ```ts
   * import { makeContact, RoutingTable } from "@cretoai/network/dht";
   *
   * let now = 0;
   * const clock = { now: () => now, schedule: () => () => {} };
   * const table = new RoutingTable(makeContact("me").key, { clock, refreshIntervalMs: 1000 });
   * table.update(makeContact("peer"));
   * now = 1000;
   * console.assert(table.bucketsToRefresh().length > 0);
   * ```
   *
   * @param all When `true`, list every bucket in that range however recently it was looked
   *   up (bootstrap refreshes them all once).
   * @returns Bucket indices, farthest first.
   */
  bucketsToRefresh(all = false): number[] {
    const nearest = this.#nearestBucket();
    const now = this.#clock.now();
    const out: number[] = [];
    for (let i = KEY_BITS - 1; i >= nearest; i--) {
      if (all || now - this.#lastRefresh[i] >= this.#refreshIntervalMs) out.push(i);
    }
    return out;
  }

  #nearestBucket(): number {
    if (this.#nearest < 0) {
      this.#nearest = KEY_BITS;
      for (let i = 0; i < KEY_BITS; i++) {
        if (this.#buckets[i].length > 0) {
          this.#nearest = i;
          break;
        }
      }
    }
    return this.#nearest;
  }

  #evict(index: number, at: number): DhtContact | undefined {
    const bucket = this.#buckets[index];
    const [gone] = bucket.splice(at, 1);
    this.#bucketOf.delete(gone.contact.id);
    this.#pinging.delete(gone.contact.id);
    const promoted = this.#replacements[index].pop();
    if (promoted === undefined) {
      if (bucket.length === 0 && index === this.#nearest) this.#nearest = -1;
      return undefined;
    }
    bucket.push(entry(promoted, this.#clock.now()));
    this.#bucketOf.set(promoted.id, index);
    return promoted;
  }

  #addReplacement(index: number, contact: DhtContact): void {
    if (this.#replacementCacheSize === 0) return;
    const cache = this.#replacements[index];
    this.#removeReplacement(index, contact.id);
    cache.push(contact);
    if (cache.length > this.#replacementCacheSize) cache.shift();
  }

  #removeReplacement(index: number, id: string): void {
    const cache = this.#replacements[index];
    const at = cache.findIndex((c) => c.id === id);
    if (at >= 0) cache.splice(at, 1);
  }
}

const SELF: RoutingUpdate = { status: "self" };
const ADDED: RoutingUpdate = { status: "added" };
const UPDATED: RoutingUpdate = { status: "updated" };
const CACHED: RoutingUpdate = { status: "cached" };
