/**
 * `DhtService`: the Kademlia DHT as a service of a {@linkcode QuicTransport}. It serves DHT
 * requests under {@linkcode DHT_PROTOCOL_ID}, bootstraps from the configured peers, publishes
 * the node's signed peer record, keeps its records and routing table fresh on timers, and
 * lets the application find peers and content providers and connect to a peer by id.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type Clock, wallClock } from "../../clock.ts";
import { InvalidAddressError, InvalidConfigError, NetworkError } from "../../errors.ts";
import { MAX_TIMER_DELAY_MS } from "../../_timer.ts";
import { Identity } from "../../identity/identity.ts";
import { PeerId } from "../../identity/peer_id.ts";
import { formatAddress } from "../../quic/address.ts";
import type { QuicTransport } from "../../transport/transport.ts";
import { type TransportEventMap, TypedEventTarget } from "../../transport/events.ts";
import { type DhtContact, makeContact } from "./contact.ts";
import { DhtNode } from "./dht_node.ts";
import { type DhtKey, peerIdToKey } from "./key.ts";
import type { ProviderRecord, SignedPeerRecord } from "./records.ts";
import {
  identityPeerIdBinding,
  identityRecordSigner,
  identityRecordVerifier,
} from "./identity_records.ts";
import { type DhtWireLimits, QuicDhtRpc } from "./quic_rpc.ts";
import { untilAborted } from "./_until_aborted.ts";

const log = getLogger(["cretoai", "dht"]);

/** Detail of `dht:joined`. */
export interface DhtJoinedDetail {
  /** Contacts in the routing table after the join. */
  contacts: number;
}

/** The events of a {@linkcode DhtService}, by name. */
export interface DhtServiceEventMap {
  /**
   * The node joined the DHT: at start (through the bootstrap peers, or alone as the first
   * node) and after each {@linkcode DhtService.join}.
   */
  "dht:joined": CustomEvent<DhtJoinedDetail>;
}

/** Options of {@linkcode DhtService}. */
export interface DhtServiceOptions {
  /** The transport's identity, which signs the node's peer record. */
  identity: Identity;
  /**
   * Addresses published in the node's peer record.
   *
   * @default {the transport's bound address, or none when it is bound to a wildcard address}
   */
  addresses?: readonly string[];
  /**
   * `HOST:PORT` addresses of nodes already in the DHT.
   *
   * @default {the transport's `config.bootstrapPeers`}
   */
  bootstrapPeers?: readonly string[];
  /**
   * Time source of record expiry, lookups and maintenance; record times are wall-clock
   * milliseconds that other nodes compare with their own clocks.
   *
   * @default {wallClock}
   */
  clock?: Clock;
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
   * Time one DHT request may take, dialling the peer included, in milliseconds.
   *
   * @default {5000}
   */
  requestTimeoutMs?: number;
  /**
   * Lifetime of the records this node publishes, in milliseconds; they are republished
   * halfway through.
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
   * Limit on incoming DHT requests per peer.
   *
   * @default {{ requestsPerSecond: 50, burst: 200 }}
   */
  rateLimit?: { readonly requestsPerSecond: number; readonly burst: number };
  /**
   * Size limits of records and DHT messages.
   *
   * @default {{}}
   */
  limits?: DhtWireLimits;
}

/**
 * A Kademlia DHT running over a {@linkcode QuicTransport}: find any peer's signed record by
 * peer id, announce and find providers of content, and connect to a peer knowing only its
 * id. While started, the transport's `connectPeer` also accepts a `PeerId` and resolves it
 * through this service.
 *
 * @example A node joins through another and finds it by id
 * ```ts
 * import { DhtService, Identity, QuicTransport } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
 * const ids = [Identity.generate(), Identity.generate()];
 * await using a = new QuicTransport({ identity: ids[0], config });
 * await using b = new QuicTransport({ identity: ids[1], config });
 * const { port } = await a.bindAndListen();
 * await b.bindAndListen();
 * await using dhtA = new DhtService(a, { identity: ids[0] });
 * await using dhtB = new DhtService(b, {
 *   identity: ids[1],
 *   bootstrapPeers: [`127.0.0.1:${port}`],
 * });
 * await dhtA.start();
 * await dhtB.start();
 * const record = await dhtB.findPeer(a.peerId);
 * console.assert(record?.addresses[0] === `127.0.0.1:${port}`);
 * ```
 */
export class DhtService extends TypedEventTarget<DhtServiceEventMap> implements AsyncDisposable {
  readonly #transport: QuicTransport;
  readonly #identity: Identity;
  readonly #addresses: readonly string[] | undefined;
  readonly #bootstrapPeers: readonly string[];
  readonly #clock: Clock;
  readonly #options: DhtServiceOptions;
  #rpc: QuicDhtRpc | undefined;
  #node: DhtNode | undefined;
  #starting: Promise<void> | undefined;
  #closed = false;
  #cancelMaintenance: (() => void) | undefined;
  #maintaining: Promise<void> | undefined;
  #detach: (() => void)[] = [];
  readonly #onConnected = (e: TransportEventMap["peer:connected"]) => {
    this.#addContact(makeContact(e.detail.peerId.toString(), [formatAddress(e.detail.address)]));
  };

  /**
   * Creates the service; nothing runs until {@linkcode DhtService.start}.
   *
   * @example
   * ```ts ignore
   * const dht = new DhtService(transport, { identity });
   * ```
   *
   * @param transport The transport to run on; it must be bound before
   *   {@linkcode DhtService.start}.
   * @param options Identity, bootstrap peers and tuning.
   * @throws {InvalidConfigError} If `identity` is not the transport's, or an address or a
   *   tuning option is invalid.
   */
  constructor(transport: QuicTransport, options: DhtServiceOptions) {
    super();
    const { identity, addresses, bootstrapPeers, clock = wallClock } = options;
    if (!(identity instanceof Identity) || !identity.peerId.equals(transport.peerId)) {
      throw new InvalidConfigError("identity", "the transport's identity", identity?.peerId);
    }
    this.#transport = transport;
    this.#identity = identity;
    this.#addresses = addresses === undefined ? undefined : [...addresses];
    this.#bootstrapPeers = [...(bootstrapPeers ?? transport.config.bootstrapPeers)];
    this.#clock = clock;
    this.#options = options;
  }

  /** The number of contacts in the routing table (0 before start). */
  get routingTableSize(): number {
    return this.#node?.table.size ?? 0;
  }

  /**
   * Starts serving DHT requests, joins the DHT through the bootstrap peers (with none, this
   * node starts a new DHT), publishes the node's peer record and arms the maintenance timer.
   * Connected peers enter the routing table as they connect. Calling it again returns the
   * first call's promise.
   *
   * @example
   * ```ts ignore
   * await dht.start();
   * ```
   *
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` if the transport is not bound; `ERR_DHT` if
   *   bootstrap peers were given and none of them could be reached. The service then still
   *   serves requests; close it, or rely on peers that connect later.
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#checkOpen();
    const transport = this.#transport;
    const bound = transport.localAddr;
    const wildcard = bound.hostname === "0.0.0.0" || bound.hostname === "::";
    const addresses = this.#addresses ?? (wildcard ? [] : [formatAddress(bound)]);
    const o = this.#options;
    const rpc = new QuicDhtRpc(transport, { timeoutMs: o.requestTimeoutMs, limits: o.limits });
    const node = new DhtNode({
      id: transport.peerId.toString(),
      addresses,
      rpc,
      signer: identityRecordSigner(this.#identity),
      verifier: identityRecordVerifier,
      peerIdMatches: identityPeerIdBinding,
      clock: this.#clock,
      k: o.k,
      alpha: o.alpha,
      requestTimeoutMs: o.requestTimeoutMs,
      recordTtlMs: o.recordTtlMs,
      refreshIntervalMs: o.refreshIntervalMs,
      rateLimit: o.rateLimit,
      limits: o.limits,
    });
    this.#rpc = rpc;
    this.#node = node;
    this.#detach.push(rpc.serve(node));
    transport.addEventListener("peer:connected", this.#onConnected);
    this.#detach.push(() => transport.removeEventListener("peer:connected", this.#onConnected));
    this.#detach.push(
      transport.addPeerResolver((peerId, signal) => this.resolveAddresses(peerId, signal)),
    );
    for (const p of transport.peers()) {
      this.#addContact(makeContact(p.peerId.toString(), p.addresses));
    }
    const contacts = await this.#connectBootstrapPeers();
    this.#checkOpen();
    await node.bootstrap(contacts);
    log.info("DHT started with {contacts} contacts", { contacts: node.table.size });
    this.#joined(node);
    this.#scheduleMaintenance();
  }

  /**
   * The contacts of the routing table: the DHT nodes this node knows, with their addresses.
   *
   * @example
   * ```ts ignore
   * for (const { id, addresses } of dht.contacts()) console.log(id, addresses);
   * ```
   *
   * @returns The contacts, none before start.
   */
  contacts(): DhtContact[] {
    return this.#node?.table.all() ?? [];
  }

  /**
   * Joins the DHT again through the peers connected now: looks up this node's own key (which
   * finds its neighbours and announces it to them), refreshes the farther buckets and
   * publishes the peer record. For a node that started before any bootstrap peer answered,
   * or that runs short of peers.
   *
   * @example
   * ```ts ignore
   * await transport.connectPeer("198.51.100.1:9001");
   * await dht.join();
   * ```
   *
   * @returns The number of contacts in the routing table afterwards.
   * @throws {NetworkError} `ERR_DHT` before start, after close, or when no connected peer
   *   answered.
   */
  async join(): Promise<number> {
    const node = this.#running();
    const contacts = this.#transport.peers().map((p) =>
      makeContact(p.peerId.toString(), p.addresses)
    );
    const size = await node.bootstrap(contacts);
    this.#joined(node);
    return size;
  }

  #joined(node: DhtNode): void {
    this.dispatchEvent(new CustomEvent("dht:joined", { detail: { contacts: node.table.size } }));
  }

  /**
   * Finds a peer's signed record (its addresses), verified against its identity: from the
   * records this node holds, else by a lookup.
   *
   * @example
   * ```ts ignore
   * const record = await dht.findPeer(peerId);
   * if (record !== undefined) console.log(record.addresses);
   * ```
   *
   * @param peerId The peer.
   * @returns The record with the highest sequence number found, or `undefined`.
   * @throws {NetworkError} `ERR_INVALID_PEER_ID` for a string that is not a peer id;
   *   `ERR_DHT` before start or after close.
   */
  async findPeer(peerId: PeerId | string): Promise<SignedPeerRecord | undefined> {
    return await this.#running().findPeer(toPeerId(peerId).toString());
  }

  /**
   * Announces that this node provides the content under `key`, and keeps announcing it
   * (republishing before the records expire) until {@linkcode DhtService.unprovide}.
   *
   * @example
   * ```ts ignore
   * await dht.provide(contentKey("vertex:9f2c"));
   * ```
   *
   * @param key The content key, for example from `contentKey`.
   * @returns How many nodes accepted the provider record.
   * @throws {NetworkError} `ERR_DHT` if `key` is not 32 bytes, before start or after close.
   */
  async provide(key: DhtKey): Promise<number> {
    return await this.#running().provide(key);
  }

  /**
   * Stops announcing the content under `key`; the records already stored expire.
   *
   * @example
   * ```ts ignore
   * dht.unprovide(contentKey("vertex:9f2c"));
   * ```
   *
   * @param key The content key.
   * @returns Whether this node was providing it.
   */
  unprovide(key: DhtKey): boolean {
    return this.#running().unprovide(key);
  }

  /**
   * Finds providers of the content under `key`.
   *
   * @example
   * ```ts ignore
   * for (const p of await dht.findProviders(contentKey("vertex:9f2c"))) {
   *   await transport.connectPeer(PeerId.parse(p.providerId));
   * }
   * ```
   *
   * @param key The content key.
   * @param count Stop once this many distinct providers are known; defaults to `k`.
   * @returns Provider records, distinct by provider.
   * @throws {NetworkError} `ERR_DHT` if `key` is not 32 bytes, before start or after close.
   */
  async findProviders(key: DhtKey, count?: number): Promise<ProviderRecord[]> {
    return await this.#running().findProviders(key, count);
  }

  /**
   * Lists the addresses a peer may be reached at: those of its routing-table contact, then
   * those of its verified peer record (held, or found by a lookup). This is the resolver the
   * service registers with the transport's `connectPeer`.
   *
   * @example
   * ```ts ignore
   * const addresses = await dht.resolveAddresses(peerId);
   * ```
   *
   * @param peerId The peer.
   * @param signal Stops waiting for the lookup (which itself runs to its end).
   * @returns Distinct addresses, possibly none.
   * @throws {unknown} The signal's reason when `signal` aborts.
   * @throws {NetworkError} `ERR_DHT` before start or after close.
   */
  async resolveAddresses(peerId: PeerId | string, signal?: AbortSignal): Promise<string[]> {
    const node = this.#running();
    const id = toPeerId(peerId).toString();
    const out = new Set<string>();
    const [nearest] = node.table.closest(peerIdToKey(id), 1);
    if (nearest?.id === id) { for (const a of nearest.addresses) out.add(a); }
    const record = await untilAborted(node.findPeer(id), signal);
    for (const a of record?.addresses ?? []) out.add(a);
    return [...out];
  }

  /**
   * Connects to a peer knowing only its id: at once if connected, else at the addresses
   * {@linkcode DhtService.resolveAddresses} finds, checking that the peer there is `peerId`.
   *
   * @example
   * ```ts ignore
   * await dht.connect(peerId);
   * await transport.send(peerId, { type: "consensus", data });
   * ```
   *
   * @param peerId The peer.
   * @param options Abort signal.
   * @returns The peer's id.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER` when no address is found; the last dial's
   *   error when none of the addresses works; `ERR_DHT` before start or after close.
   */
  async connect(peerId: PeerId | string, options: { signal?: AbortSignal } = {}): Promise<PeerId> {
    this.#running();
    return await this.#transport.connectPeer(toPeerId(peerId), options);
  }

  /**
   * Stops the service: the maintenance timer, the request handler, the peer resolver and
   * every DHT request in flight; the transport stays open. Idempotent.
   *
   * @example
   * ```ts ignore
   * await dht.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelMaintenance?.();
    for (const detach of this.#detach.splice(0)) detach();
    this.#node?.close();
    this.#rpc?.close();
    await Promise.allSettled([this.#starting, this.#maintaining]);
  }

  /** Same as {@linkcode DhtService.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #connectBootstrapPeers(): Promise<DhtContact[]> {
    const settled = await Promise.allSettled(
      this.#bootstrapPeers.map((address) => this.#transport.connectPeer(address)),
    );
    const contacts: DhtContact[] = [];
    const failures: string[] = [];
    settled.forEach((s, i) => {
      const address = this.#bootstrapPeers[i];
      if (s.status === "fulfilled") contacts.push(makeContact(s.value.toString(), [address]));
      // A node listed among its own bootstrap peers just skips itself.
      else if (!(s.reason instanceof InvalidAddressError)) {
        failures.push(`${address}: ${(s.reason as Error).message}`);
      }
    });
    if (contacts.length === 0 && failures.length > 0) {
      throw new NetworkError(
        "ERR_DHT",
        `Cannot join the DHT: none of the ${failures.length} bootstrap peers could be reached ` +
          `(${failures.slice(0, 3).join("; ")})`,
      );
    }
    return contacts;
  }

  /** Adds a contact, pinging the oldest of a full bucket to see whether it may be replaced. */
  #addContact(contact: DhtContact): void {
    const node = this.#node;
    const rpc = this.#rpc;
    if (node === undefined || rpc === undefined || this.#closed) return;
    const update = node.table.update(contact);
    if (update.status !== "ping") return;
    const oldest = update.ping;
    rpc.ping(oldest).then(
      () => node.table.pingResult(oldest.id, true),
      () => node.table.pingResult(oldest.id, false),
    );
  }

  #scheduleMaintenance(): void {
    const node = this.#node;
    if (this.#closed || node === undefined) return;
    // At least a second apart, so that work that stays due cannot spin.
    const delay = Math.min(
      MAX_TIMER_DELAY_MS,
      Math.max(1000, node.nextMaintenanceAt() - this.#clock.now()),
    );
    this.#cancelMaintenance = this.#clock.schedule(() => {
      this.#maintaining = this.#maintain(node).finally(() => this.#scheduleMaintenance());
    }, delay);
  }

  async #maintain(node: DhtNode): Promise<void> {
    try {
      const refreshed = await node.refresh();
      const republished = await node.republish();
      log.debug("DHT maintenance: {refreshed} buckets refreshed, {republished} republished", {
        refreshed,
        republished,
      });
    } catch (e) {
      if (!this.#closed) log.warn("DHT maintenance failed: {error}", { error: String(e) });
    }
  }

  #running(): DhtNode {
    this.#checkOpen();
    if (this.#node === undefined) {
      throw new NetworkError("ERR_DHT", "The DHT service is not started: call start() first");
    }
    return this.#node;
  }

  #checkOpen(): void {
    if (this.#closed) throw new NetworkError("ERR_DHT", "The DHT service is closed");
  }
}

function toPeerId(peer: PeerId | string): PeerId {
  return peer instanceof PeerId ? peer : PeerId.parse(peer);
}
