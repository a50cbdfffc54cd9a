/**
 * A Kademlia DHT node: the routing table, record stores, lookups and republishing of one
 * peer, over an abstract {@linkcode DhtRpc}. The node owns no socket and no timer loop: the
 * transport delivers incoming requests to its `handle*` methods and calls `refresh` and
 * `republish` when {@linkcode DhtNode.nextMaintenanceAt} says so.
 *
 * @module
 */

import { networkMetrics } from "../../metrics/_network_metrics.ts";
import { type Clock, wallClock } from "../../clock.ts";
import { type DhtContact, makeContact } from "./contact.ts";
import { assertKey, type DhtKey, keyToHex, peerIdToKey, randomKeyInBucket } from "./key.ts";
import {
  iterativeLookup,
  type LookupQuery,
  type LookupResult,
  type LookupStats,
} from "./lookup.ts";
import {
  decodePeerRecord,
  type PeerIdBinding,
  type ProviderRecord,
  type RecordLimits,
  type RecordSigner,
  type RecordVerifier,
  type SignedPeerRecord,
  signPeerRecord,
  validateProviderRecord,
  verifyPeerRecord,
} from "./records.ts";
import { PeerRecordStore, ProviderStore } from "./record_store.ts";
import { RepublishSchedule } from "./republish.ts";
import { RoutingTable } from "./routing_table.ts";
import type { DhtRpc, DhtRpcHandler, FindProvidersReply, GetPeerRecordReply } from "./rpc.ts";
import { PeerRateLimiter } from "../../_peer_rate_limiter.ts";
import { requireInteger, requirePositiveFinite } from "../../_validate.ts";
import { NetworkError } from "../../errors.ts";

/** Per-peer limit on incoming requests. */
export interface DhtRateLimit {
  /** Sustained requests per second per peer. */
  readonly requestsPerSecond: number;
  /** Requests a peer may send at once before the sustained rate applies. */
  readonly burst: number;
}

/** Options of a {@linkcode DhtNode}. */
export interface DhtNodeOptions {
  /** The local peer id's string form. */
  id: string;
  /** The local node's transport addresses, published in its peer record. */
  addresses: readonly string[];
  /** Sends requests to other nodes. */
  rpc: DhtRpc;
  /** Signs the local peer record with the node's identity. */
  signer: RecordSigner;
  /** Checks other peers' record signatures. */
  verifier: RecordVerifier;
  /** Checks that a record's public key belongs to its peer id. */
  peerIdMatches: PeerIdBinding;
  /**
   * Time source.
   *
   * @default {wallClock}
   */
  clock?: Clock;
  /**
   * Source of random bytes for refresh targets.
   *
   * @default {(n) => crypto.getRandomValues(new Uint8Array(n))}
   */
  randomBytes?: (length: number) => Uint8Array;
  /**
   * Bucket size and lookup width.
   *
   * @default {20}
   */
  k?: number;
  /**
   * Parallel queries per lookup.
   *
   * @default {3}
   */
  alpha?: number;
  /**
   * Timeout of every outgoing request, in milliseconds.
   *
   * @default {5000}
   */
  requestTimeoutMs?: number;
  /**
   * Lifetime of the records this node publishes, in milliseconds.
   *
   * @default {86_400_000}
   */
  recordTtlMs?: number;
  /**
   * How long a bucket may go without a lookup before it is refreshed, in milliseconds.
   *
   * @default {3_600_000}
   */
  refreshIntervalMs?: number;
  /**
   * Limit on incoming requests per peer.
   *
   * @default {{ requestsPerSecond: 50, burst: 200 }}
   */
  rateLimit?: DhtRateLimit;
  /**
   * Size and lifetime limits on records.
   *
   * @default {{}}
   */
  limits?: RecordLimits;
}

/** The outcome of {@linkcode DhtNode.lookupPeer}. */
export interface PeerLookup {
  /** The verified record with the highest sequence number found, if any. */
  readonly record: SignedPeerRecord | undefined;
  /** Counters of the lookup; zero hops when the record was held locally. */
  readonly stats: LookupStats;
}

const SELF_ITEM = "self";
const PROVIDER_ITEM = "provider:";

/**
 * One DHT node.
 *
 * @example Two nodes wired to each other in memory
 * ```ts
 * import { type DhtContact, DhtNode, type DhtRpc } from "@cretoai/network/dht";
 *
 * const nodes = new Map<string, DhtNode>();
 * const rpcFrom = (self: () => DhtContact): DhtRpc => ({
 *   ping: async (to) => nodes.get(to.id)!.handlePing(self()),
 *   findNode: async (to, target) => nodes.get(to.id)!.handleFindNode(self(), target),
 *   getPeerRecord: async (to, id) => nodes.get(to.id)!.handleGetPeerRecord(self(), id),
 *   putPeerRecord: (to, record) => nodes.get(to.id)!.handlePutPeerRecord(self(), record),
 *   findProviders: async (to, key) => nodes.get(to.id)!.handleFindProviders(self(), key),
 *   addProvider: async (to, record) => nodes.get(to.id)!.handleAddProvider(self(), record),
 * });
 * // Toy identity: the public key is the peer id's bytes and every signature is accepted.
 * const make = (id: string) => {
 *   const node: DhtNode = new DhtNode({
 *     id, addresses: [`${id}.example:4433`], rpc: rpcFrom(() => node.contact),
 *     signer: { publicKey: new TextEncoder().encode(id), sign: () => new Uint8Array([1]) },
 *     verifier: { verify: () => true },
 *     peerIdMatches: (key, peerId) => new TextDecoder().decode(key) === peerId,
 *   });
 *   nodes.set(id, node);
 *   return node;
 * };
 * const a = make("a"), b = make("b");
 * await a.bootstrap([]);
 * await b.bootstrap([a.contact]);
 * const record = await a.findPeer("b");
 * console.assert(record?.addresses[0] === "b.example:4433");
 * a.close();
 * b.close();
 * ```
 */
export class DhtNode implements DhtRpcHandler {
  /** The local node as other nodes see it. */
  readonly contact: DhtContact;
  /** The routing table, for inspection. */
  readonly table: RoutingTable;
  readonly #rpc: DhtRpc;
  readonly #signer: RecordSigner;
  readonly #verifier: RecordVerifier;
  readonly #peerIdMatches: PeerIdBinding;
  readonly #clock: Clock;
  readonly #randomBytes: (length: number) => Uint8Array;
  readonly #k: number;
  readonly #alpha: number;
  readonly #requestTimeoutMs: number;
  readonly #recordTtlMs: number;
  readonly #refreshIntervalMs: number;
  readonly #limits: RecordLimits;
  readonly #limiter: PeerRateLimiter;
  readonly #rateLimit: DhtRateLimit;
  readonly #peerRecords: PeerRecordStore;
  readonly #providers: ProviderStore;
  readonly #schedule = new RepublishSchedule();
  readonly #provided = new Map<string, DhtKey>();
  readonly #timers = new Set<() => void>();
  #ownRecord: { record: SignedPeerRecord; bytes: Uint8Array } | undefined;
  #seq = 0;
  #closed = false;

  /**
   * Creates a node; it knows nobody until {@linkcode DhtNode.bootstrap}.
   *
   * @param options Identity, RPC, clock and tuning.
   * @throws {InvalidConfigError} If a numeric option is out of range.
   * @throws {NetworkError} `ERR_DHT` if `id` is empty.
   */
  constructor(options: DhtNodeOptions) {
    const {
      id,
      addresses,
      rpc,
      signer,
      verifier,
      peerIdMatches,
      clock = wallClock,
      randomBytes = (n: number) => crypto.getRandomValues(new Uint8Array(n)),
      k = 20,
      alpha = 3,
      requestTimeoutMs = 5000,
      recordTtlMs = 86_400_000,
      refreshIntervalMs = 3_600_000,
      rateLimit = { requestsPerSecond: 50, burst: 200 },
      limits = {},
    } = options;
    requireInteger("k", k, 1);
    requireInteger("alpha", alpha, 1);
    requirePositiveFinite("requestTimeoutMs", requestTimeoutMs);
    requirePositiveFinite("recordTtlMs", recordTtlMs);
    requirePositiveFinite("rateLimit.requestsPerSecond", rateLimit.requestsPerSecond);
    requireInteger("rateLimit.burst", rateLimit.burst, 1);
    this.contact = makeContact(id, addresses);
    this.#rpc = rpc;
    this.#signer = signer;
    this.#verifier = verifier;
    this.#peerIdMatches = peerIdMatches;
    this.#clock = clock;
    this.#randomBytes = randomBytes;
    this.#k = k;
    this.#alpha = alpha;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#recordTtlMs = recordTtlMs;
    this.#refreshIntervalMs = refreshIntervalMs;
    this.#limits = limits;
    this.#rateLimit = rateLimit;
    this.table = new RoutingTable(this.contact.key, { k, clock, refreshIntervalMs });
    this.#limiter = new PeerRateLimiter(
      rateLimit.requestsPerSecond,
      rateLimit.burst,
      10_000,
      clock,
    );
    this.#peerRecords = new PeerRecordStore({ clock });
    this.#providers = new ProviderStore({ clock });
  }

  /**
   * Joins the DHT: adds the bootstrap contacts, looks up the node's own key (which fills the
   * near buckets and announces the node to its neighbours), refreshes every farther bucket,
   * and publishes the node's peer record. With no contacts, the node starts a new DHT.
   *
   * @example
   * ```ts ignore
   * await node.bootstrap([makeContact(bootstrapId, ["198.51.100.1:4433"])]);
   * ```
   *
   * @param contacts Nodes already in the DHT.
   * @returns The number of contacts in the routing table afterwards.
   * @throws {NetworkError} `ERR_DHT` if contacts were given and none of them answered.
   */
  async bootstrap(contacts: readonly DhtContact[]): Promise<number> {
    this.#checkOpen();
    for (const c of contacts) if (c.id !== this.contact.id) this.table.update(c);
    const result = await this.#findNode(this.contact.key);
    if (contacts.length > 0 && result.closest.length === 0) {
      throw new NetworkError(
        "ERR_DHT",
        `Cannot bootstrap: none of the ${contacts.length} bootstrap contacts answered ` +
          `(${contacts.slice(0, 3).map((c) => c.id).join(", ")}${
            contacts.length > 3 ? ", ..." : ""
          })`,
      );
    }
    await this.#refreshBuckets(this.table.bucketsToRefresh(true));
    await this.#publishSelf(result.closest);
    return this.table.size;
  }

  /**
   * Signs a fresh peer record (next sequence number, full lifetime) and stores it at the k
   * nodes closest to the local key. Bootstrap and `republish` call this.
   *
   * @example
   * ```ts ignore
   * const stored = await node.publishSelf();
   * ```
   *
   * @returns How many nodes accepted the record.
   */
  async publishSelf(): Promise<number> {
    this.#checkOpen();
    return await this.#publishSelf(undefined);
  }

  /** Publishes to `closest`, or to the result of a fresh self lookup. */
  async #publishSelf(closest: readonly DhtContact[] | undefined): Promise<number> {
    const now = this.#clock.now();
    // Wall-clock sequence numbers keep increasing across restarts without stored state.
    this.#seq = Math.max(this.#seq + 1, Math.floor(now));
    const expiresAt = Math.floor(now + this.#recordTtlMs);
    const bytes = await signPeerRecord(
      { peerId: this.contact.id, addresses: this.contact.addresses, seq: this.#seq, expiresAt },
      this.#signer,
      this.#limits,
    );
    this.#ownRecord = { bytes, record: decodePeerRecord(bytes, this.#limits) };
    this.#schedule.schedule(SELF_ITEM, now, expiresAt);
    closest ??= (await this.#findNode(this.contact.key)).closest;
    return await this.#storeAt(closest, (c) => this.#rpc.putPeerRecord(c, bytes));
  }

  /**
   * Finds the signed record of a peer: its addresses, checked against its identity.
   *
   * @example
   * ```ts ignore
   * const record = await node.findPeer("12D3KooWpeer");
   * if (record !== undefined) console.log(record.addresses);
   * ```
   *
   * @param peerId The peer id.
   * @returns The verified record with the highest sequence number found, or `undefined`.
   */
  async findPeer(peerId: string): Promise<SignedPeerRecord | undefined> {
    return (await this.lookupPeer(peerId)).record;
  }

  /**
   * Like {@linkcode DhtNode.findPeer}, and also returns the lookup's counters.
   *
   * @example
   * ```ts ignore
   * const { record, stats } = await node.lookupPeer("12D3KooWpeer");
   * console.log(record?.addresses, stats.hops);
   * ```
   *
   * @param peerId The peer id.
   * @returns The record, if found, and the lookup's counters.
   */
  async lookupPeer(peerId: string): Promise<PeerLookup> {
    this.#checkOpen();
    const local = peerId === this.contact.id ? this.#ownRecord : this.#peerRecords.get(peerId);
    if (local !== undefined) {
      return { record: local.record, stats: { hops: 0, queried: 0, failed: 0, durationMs: 0 } };
    }
    const target = peerIdToKey(peerId);
    const result = await this.#lookup<SignedPeerRecord>(target, async (c) => {
      const reply = await this.#rpc.getPeerRecord(c, peerId);
      if (reply.record === undefined) return reply;
      try {
        return { closer: reply.closer, values: [await this.#verify(reply.record, peerId)] };
      } catch {
        // One node serving a forged or stale record must not end the lookup.
        return { closer: reply.closer };
      }
    }, (values) => values.length > 0);
    let best: SignedPeerRecord | undefined;
    for (const r of result.values) if (best === undefined || r.seq > best.seq) best = r;
    return { record: best, stats: result.stats };
  }

  /**
   * Announces that this node provides the content under `key`: stores a provider record at
   * the k nodes closest to the key, and republishes it before it expires.
   *
   * @example
   * ```ts ignore
   * await node.provide(contentKey("models/llama-7b.gguf"));
   * ```
   *
   * @param key The content key.
   * @returns How many nodes accepted the record.
   * @throws {NetworkError} `ERR_DHT` if `key` is not 32 bytes.
   */
  async provide(key: DhtKey): Promise<number> {
    this.#checkOpen();
    assertKey(key, "key");
    const now = this.#clock.now();
    const record: ProviderRecord = {
      key,
      providerId: this.contact.id,
      addresses: this.contact.addresses,
      expiresAt: Math.floor(now + this.#recordTtlMs),
    };
    const hex = keyToHex(key);
    this.#providers.add(record);
    this.#provided.set(hex, key);
    this.#schedule.schedule(PROVIDER_ITEM + hex, now, record.expiresAt);
    const { closest } = await this.#findNode(key);
    return await this.#storeAt(closest, (c) => this.#rpc.addProvider(c, record));
  }

  /**
   * Stops republishing the provider record of `key` (it expires at the other nodes).
   *
   * @example
   * ```ts ignore
   * node.unprovide(contentKey("models/llama-7b.gguf"));
   * ```
   *
   * @param key The content key.
   * @returns Whether the node was providing it.
   */
  unprovide(key: DhtKey): boolean {
    const hex = keyToHex(key);
    this.#schedule.cancel(PROVIDER_ITEM + hex);
    return this.#provided.delete(hex);
  }

  /**
   * Finds providers of the content under `key`.
   *
   * @example
   * ```ts ignore
   * const providers = await node.findProviders(contentKey("models/llama-7b.gguf"));
   * ```
   *
   * @param key The content key.
   * @param count Stop once this many distinct providers are known.
   * @returns Provider records, distinct by provider, up to `count`.
   * @throws {NetworkError} `ERR_DHT` if `key` is not 32 bytes.
   */
  async findProviders(key: DhtKey, count: number = this.#k): Promise<ProviderRecord[]> {
    this.#checkOpen();
    assertKey(key, "key");
    const found = new Map<string, ProviderRecord>();
    for (const p of this.#providers.get(key, count)) found.set(p.providerId, p);
    if (found.size >= count) return [...found.values()];
    const result = await this.#lookup<ProviderRecord>(key, async (c) => {
      const reply = await this.#rpc.findProviders(c, key);
      const now = this.#clock.now();
      const values = reply.providers.filter((p) => {
        try {
          validateProviderRecord(p, { now, limits: this.#limits });
          return keyToHex(p.key) === keyToHex(key);
        } catch {
          return false;
        }
      });
      return { closer: reply.closer, values };
    }, (values) => {
      for (const p of values) found.set(p.providerId, p);
      return found.size >= count;
    });
    for (const p of result.values) found.set(p.providerId, p);
    return [...found.values()].slice(0, count);
  }

  /**
   * Finds the k nodes closest to a key that answered (FIND_NODE lookup).
   *
   * @example
   * ```ts ignore
   * const { closest, stats } = await node.findClosest(contentKey("x"));
   * ```
   *
   * @param target The key.
   * @returns The closest contacts and the lookup's counters.
   * @throws {NetworkError} `ERR_DHT` if `target` is not 32 bytes.
   */
  findClosest(target: DhtKey): Promise<LookupResult<never>> {
    this.#checkOpen();
    assertKey(target, "target");
    return this.#findNode(target);
  }

  /**
   * Runs a lookup for a random key in every bucket that saw no lookup for `refreshIntervalMs`.
   *
   * @example
   * ```ts ignore
   * if (clock.now() >= (node.nextMaintenanceAt() ?? Infinity)) await node.refresh();
   * ```
   *
   * @returns How many buckets were refreshed.
   */
  async refresh(): Promise<number> {
    this.#checkOpen();
    const due = this.table.bucketsToRefresh();
    await this.#refreshBuckets(due);
    return due.length;
  }

  /**
   * Republishes the peer record and provider records that are due (halfway to expiry), and
   * drops expired records held for others.
   *
   * @example
   * ```ts ignore
   * await node.republish();
   * ```
   *
   * @returns How many items were republished.
   */
  async republish(): Promise<number> {
    this.#checkOpen();
    this.#peerRecords.prune();
    this.#providers.prune();
    const due = this.#schedule.due(this.#clock.now());
    for (const item of due) {
      if (item === SELF_ITEM) await this.publishSelf();
      else {
        const key = this.#provided.get(item.slice(PROVIDER_ITEM.length));
        if (key !== undefined) await this.provide(key);
      }
    }
    return due.length;
  }

  /**
   * Returns when `refresh` or `republish` next has work, so the driver can set one timer.
   *
   * @example
   * ```ts ignore
   * const at = node.nextMaintenanceAt();
   * ```
   *
   * @returns A clock time, possibly in the past.
   */
  nextMaintenanceAt(): number {
    const republishAt = this.#schedule.nextDueAt() ?? Infinity;
    const refreshAt = this.table.bucketsToRefresh().length > 0
      ? this.#clock.now()
      : this.#clock.now() + this.#refreshIntervalMs;
    return Math.min(republishAt, refreshAt);
  }

  /**
   * Stops the node: cancels its pending request timers; later calls throw.
   *
   * @example
   * ```ts ignore
   * node.close();
   * ```
   */
  close(): void {
    this.#closed = true;
    for (const cancel of this.#timers) cancel();
    this.#timers.clear();
  }

  /**
   * Answers PING.
   *
   * @example
   * ```ts ignore
   * node.handlePing(from);
   * ```
   *
   * @param from The sender.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the sender is over its rate limit.
   */
  handlePing(from: DhtContact): void {
    this.#admit(from);
  }

  /**
   * Answers FIND_NODE with the k closest known contacts to `target`.
   *
   * @example
   * ```ts ignore
   * const closer = node.handleFindNode(from, target);
   * ```
   *
   * @param from The sender.
   * @param target The key looked up.
   * @returns Up to k contacts.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the sender is over its rate limit;
   *   `ERR_DHT` if `target` is not 32 bytes.
   */
  handleFindNode(from: DhtContact, target: DhtKey): DhtContact[] {
    this.#admit(from);
    assertKey(target, "target");
    return this.#closer(target, from);
  }

  /**
   * Answers GET_PEER_RECORD with the record if held, and the closest known contacts.
   *
   * @example
   * ```ts ignore
   * const { record, closer } = node.handleGetPeerRecord(from, peerId);
   * ```
   *
   * @param from The sender.
   * @param peerId The peer whose record is asked for.
   * @returns The encoded record if held, and up to k contacts.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the sender is over its rate limit.
   */
  handleGetPeerRecord(from: DhtContact, peerId: string): GetPeerRecordReply {
    this.#admit(from);
    const held = peerId === this.contact.id ? this.#ownRecord : this.#peerRecords.get(peerId);
    const closer = this.#closer(peerIdToKey(peerId), from);
    return held === undefined ? { closer } : { record: held.bytes, closer };
  }

  /**
   * Verifies and stores a peer record.
   *
   * @example
   * ```ts ignore
   * await node.handlePutPeerRecord(from, bytes);
   * ```
   *
   * @param from The sender.
   * @param record The encoded signed record.
   * @throws {DhtRecordError} If the record is unsigned, badly signed, stale, expired or too
   *   large.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the sender is over its rate limit or the
   *   store is full.
   */
  async handlePutPeerRecord(from: DhtContact, record: Uint8Array): Promise<void> {
    this.#admit(from);
    const verified = await this.#verify(record);
    if (verified.peerId === this.contact.id) return;
    this.#peerRecords.put(verified, record, { peer: from.id, address: from.addresses[0] });
  }

  /**
   * Answers GET_PROVIDERS with the providers held for `key` and the closest known contacts.
   *
   * @example
   * ```ts ignore
   * const { providers, closer } = node.handleFindProviders(from, key);
   * ```
   *
   * @param from The sender.
   * @param key The content key.
   * @returns Up to k providers and up to k contacts.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the sender is over its rate limit;
   *   `ERR_DHT` if `key` is not 32 bytes.
   */
  handleFindProviders(from: DhtContact, key: DhtKey): FindProvidersReply {
    this.#admit(from);
    assertKey(key, "key");
    return { providers: this.#providers.get(key, this.#k), closer: this.#closer(key, from) };
  }

  /**
   * Stores a provider record sent by the provider itself.
   *
   * @example
   * ```ts ignore
   * node.handleAddProvider(from, record);
   * ```
   *
   * @param from The sender; must be the record's provider.
   * @param record The provider record.
   * @throws {DhtRecordError} If the sender is not the provider, or the record is expired or
   *   too large.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` if the sender is over its rate limit or the
   *   store is full.
   */
  handleAddProvider(from: DhtContact, record: ProviderRecord): void {
    this.#admit(from);
    validateProviderRecord(record, {
      now: this.#clock.now(),
      senderId: from.id,
      limits: this.#limits,
    });
    this.#providers.add(record, { peer: from.id, address: from.addresses[0] });
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new NetworkError("ERR_DHT", `DHT node ${this.contact.id} is closed`);
    }
  }

  #admit(from: DhtContact): void {
    this.#checkOpen();
    if (!this.#limiter.take(from.id)) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `DHT request from ${from.id} refused: over the limit of ${this.#rateLimit.burst} ` +
          `requests at once and ${this.#rateLimit.requestsPerSecond} per second`,
      );
    }
    this.#seen(from);
  }

  #closer(target: DhtKey, from: DhtContact): DhtContact[] {
    // The asker knows itself; one more contact is worth more than echoing it back.
    return this.table.closest(target, this.#k, from.id);
  }

  #seen(contact: DhtContact): void {
    const update = this.table.update(contact);
    if (update.status !== "ping") return;
    const oldest = update.ping;
    this.#withTimeout(this.#rpc.ping(oldest)).then(
      () => this.table.pingResult(oldest.id, true),
      () => this.table.pingResult(oldest.id, false),
    );
  }

  #verify(bytes: Uint8Array, expectedPeerId?: string): Promise<SignedPeerRecord> {
    return verifyPeerRecord(bytes, {
      verifier: this.#verifier,
      peerIdMatches: this.#peerIdMatches,
      now: this.#clock.now(),
      expectedPeerId,
      limits: this.#limits,
    });
  }

  #lookup<T>(
    target: DhtKey,
    query: LookupQuery<T>,
    enough?: (values: readonly T[]) => boolean,
  ): Promise<LookupResult<T>> {
    this.table.markRefreshed(target);
    const lookup = iterativeLookup(target, this.table.closest(target), query, {
      clock: this.#clock,
      k: this.#k,
      alpha: this.#alpha,
      requestTimeoutMs: this.#requestTimeoutMs,
      selfId: this.contact.id,
      enough,
      onReply: (c) => this.#seen(c),
      onFailure: (c) => this.table.recordFailure(c.id),
    });
    const metrics = networkMetrics();
    return metrics === undefined ? lookup : lookup.then((result) => {
      const outcome = result.values.length > 0
        ? "found"
        : result.closest.length > 0
        ? "converged"
        : "failed";
      metrics.dhtLookups.add(1, { outcome });
      metrics.dhtLookupDuration.record(result.stats.durationMs, { outcome });
      metrics.dhtLookupHops.record(result.stats.hops, { outcome });
      return result;
    });
  }

  #findNode(target: DhtKey): Promise<LookupResult<never>> {
    return this.#lookup<never>(
      target,
      async (c) => ({ closer: await this.#rpc.findNode(c, target) }),
    );
  }

  async #refreshBuckets(indices: readonly number[]): Promise<void> {
    await Promise.all(
      indices.map((i) => this.#findNode(randomKeyInBucket(this.contact.key, i, this.#randomBytes))),
    );
  }

  async #storeAt(
    contacts: readonly DhtContact[],
    send: (c: DhtContact) => Promise<void>,
  ): Promise<number> {
    const outcomes = await Promise.all(
      contacts.map((c) => this.#withTimeout(send(c)).then(() => true, () => false)),
    );
    return outcomes.filter(Boolean).length;
  }

  #withTimeout<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cancel = this.#clock.schedule(() => {
        this.#timers.delete(cancel);
        reject(
          new NetworkError(
            "ERR_TIMEOUT",
            `DHT request got no answer within ${this.#requestTimeoutMs} ms`,
          ),
        );
      }, this.#requestTimeoutMs);
      this.#timers.add(cancel);
      promise.then(
        (v) => {
          this.#timers.delete(cancel);
          cancel();
          resolve(v);
        },
        (e) => {
          this.#timers.delete(cancel);
          cancel();
          reject(e);
        },
      );
    });
  }
}
