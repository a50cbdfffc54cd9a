/**
 * `createNode`: one node from one configuration. It binds the transport, starts the services
 * the `NetworkConfig` enables in the order they depend on each other, keeps the node at its
 * target number of peers and remembers the peers it saw.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "../clock.ts";
import { DhtService, type DhtServiceOptions } from "../discovery/dht/dht_service.ts";
import { MdnsService, type MdnsServiceOptions } from "../discovery/mdns_service.ts";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import {
  GossipService,
  type GossipServiceOptions,
  type GossipServicePenaltyReason,
} from "../gossip/gossip_service.ts";
import { Identity } from "../identity/identity.ts";
import type { PeerId } from "../identity/peer_id.ts";
import { NatService, type NatServiceOptions } from "../nat/nat_service.ts";
import { type PeerPath, RelayService, type RelayServiceOptions } from "../nat/relay_service.ts";
import { RelaySocket } from "../nat/relay_socket.ts";
import { formatAddress, parseAddress } from "../quic/address.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import { DenoUdpSocket } from "../quic/udp_socket.ts";
import { type NetworkConfig, resolveNetworkConfig } from "../transport/config.ts";
import type { NetworkMessage } from "../transport/codec.ts";
import { TypedEventTarget } from "../transport/events.ts";
import { InboundQueue } from "../transport/_inbound_queue.ts";
import type { PenaltyReason } from "../transport/peer_score.ts";
import {
  type BanInfo,
  type BroadcastResult,
  type ConnectPeerOptions,
  type PeerInfo,
  QuicTransport,
  type RequestOptions,
  type SendOptions,
  type TransportStats,
} from "../transport/transport.ts";
import type { InboundMessage, PeerStats, RequestHandler } from "../transport/peer_api.ts";
import { ConnectionManager } from "./_connection_manager.ts";
import { DialPlanner } from "./dial_planner.ts";
import type {
  NodeEventMap,
  NodeServiceName,
  PeerOrigin,
  PeerSource,
  ServiceFailedDetail,
} from "./events.ts";
import { PeerStore } from "./peer_store.ts";

const log = getLogger(["cretoai", "node"]);

/** Options of {@linkcode createNode}. */
export interface NodeOptions {
  /**
   * The node's long-term identity.
   *
   * @default {loaded from `DATA_DIR/identity.key` (created there on the first run) with a
   *   `dataDir`, else a new one each run}
   */
  identity?: Identity;
  /**
   * The network configuration; which services run follows from it: the DHT with
   * `enableDht` (bootstrapped from `bootstrapPeers`), mDNS with `enableMdns` on a
   * non-loopback `listenAddr`, NAT traversal with `enableNatTraversal` (NAT discovery when
   * `stunServers` are given), relaying over `turnServers`.
   *
   * @default {{}}
   */
  config?: NetworkConfig;
  /**
   * Directory of the node's files: its identity key (`identity.key`) and its peer store
   * (`peers.kv`, Deno KV: needs `--unstable-kv`). Created if missing. Without it, the node
   * keeps its peers in memory only.
   *
   * @default {undefined}
   */
  dataDir?: string;
  /**
   * Peers the connection manager keeps connected: while fewer are, it dials peers found in
   * the DHT, on the local link or in the peer store, and replaces lost ones. At most
   * `config.maxConnections`; 0 turns the manager off.
   *
   * @default {the smaller of 20 and config.maxConnections}
   */
  targetPeers?: number;
  /**
   * Tuning of the DHT service (its transport, identity and bootstrap peers come from the node).
   *
   * @default {{}}
   */
  dht?: Omit<DhtServiceOptions, "identity" | "bootstrapPeers">;
  /**
   * Tuning of the mDNS service.
   *
   * @default {{}}
   */
  mdns?: MdnsServiceOptions;
  /**
   * Tuning of the NAT traversal service (its fallback is the relay when TURN servers are set).
   *
   * @default {{}}
   */
  nat?: Omit<NatServiceOptions, "fallback">;
  /**
   * Tuning of the relay service (its socket comes from the node).
   *
   * @default {{}}
   */
  relay?: Omit<RelayServiceOptions, "relaySocket">;
  /**
   * Gossip (topic publish/subscribe, `node.gossip`): `false` turns it off, an object tunes it.
   * Its frames travel as the transport's messages; the node hands them to the service and
   * yields the others from `node.messages()`. A peer the service penalizes (a message the
   * application's validator rejected, a malformed frame) loses points of its peer score, and
   * repeated offences ban it.
   *
   * @default {{}} (on)
   */
  gossip?: false | Omit<GossipServiceOptions, "transport" | "readMessages" | "penalize">;
  /**
   * Whether {@linkcode createNode} starts the node. Off, it returns the node unstarted, so that
   * listeners can be added before the first connections; then call `node.start()`.
   *
   * @default {true}
   */
  start?: boolean;
  /**
   * Clock and timers of the connection manager.
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/** A connected peer as the node sees it: the transport's view, how it was found, its path. */
export interface NodePeerInfo extends PeerInfo, PeerOrigin {}

/**
 * Creates a node and starts it: opens the peer store (and re-applies its bans), binds the
 * transport, then starts the relay, NAT traversal, the DHT and mDNS as the configuration
 * enables them, gossip unless the `gossip` option is `false`, and the connection manager. A
 * service that cannot start is reported with `service:failed` and the node runs on without it.
 *
 * @example Two nodes on loopback; the second joins through the first
 * ```ts
 * import { createNode } from "@cretoai/network";
 *
 * await using first = await createNode({ config: { listenAddr: "127.0.0.1", quicPort: 0 } });
 * await using second = await createNode({
 *   config: {
 *     listenAddr: "127.0.0.1",
 *     quicPort: 0,
 *     bootstrapPeers: [formatted(first.localAddr)],
 *   },
 * });
 * console.assert(second.peers()[0].foundBy === "bootstrap");
 * await second.send(first.peerId, { type: "consensus", data: new Uint8Array([1]) });
 *
 * function formatted(a: { hostname: string; port: number }) {
 *   return `${a.hostname}:${a.port}`;
 * }
 * ```
 *
 * @param options Identity, configuration, data directory, target number of peers.
 * @returns The started node (unstarted with `start: false`).
 * @throws {InvalidConfigError} naming the field, for a bad option or configuration.
 * @throws {NetworkError} when the transport cannot bind its address.
 */
export async function createNode(options: NodeOptions = {}): Promise<NetworkNode> {
  const { identity, dataDir } = options ?? {};
  let id = identity;
  if (id === undefined && typeof dataDir === "string" && dataDir !== "") {
    await Deno.mkdir(dataDir, { recursive: true });
    id = await loadOrCreateIdentity(`${dataDir}/identity.key`);
  }
  const node = new NetworkNode({ ...options, identity: id ?? Identity.generate() });
  if (options.start === false) return node;
  try {
    await node.start();
  } catch (e) {
    await node.close();
    throw e;
  }
  return node;
}

/**
 * A node: the transport with its services and a connection manager, built by
 * {@linkcode createNode}. It offers the transport's API directly and the services as fields
 * (`undefined` when off or failed), and bans that persist in its peer store. `close()` (or
 * `await using`) stops everything in reverse order of start.
 *
 * @example Messages between two nodes
 * ```ts
 * import { createNode } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0, enableDht: false };
 * await using a = await createNode({ config });
 * await using b = await createNode({ config });
 * await a.connectPeer(b.localAddr);
 * await a.broadcast({ type: "vertex", data: new Uint8Array([7]) });
 * for await (const { from, message } of b.messages()) {
 *   console.assert(from.equals(a.peerId) && message.type === "vertex");
 *   break;
 * }
 * ```
 */
export class NetworkNode extends TypedEventTarget<NodeEventMap> implements AsyncDisposable {
  /** The transport: peers, messages, requests. Usable on its own, as the services use it. */
  readonly transport: QuicTransport;
  readonly #options: NodeOptions;
  readonly #relaySocket: RelaySocket | undefined;
  readonly #planner: DialPlanner | undefined;
  readonly #manager: ConnectionManager | undefined;
  readonly #clock: Clock;
  readonly #identity: Identity;
  #peerStore: PeerStore | undefined;
  #relay: RelayService | undefined;
  #nat: NatService | undefined;
  #dht: DhtService | undefined;
  #mdns: MdnsService | undefined;
  readonly #gossip: GossipService | undefined;
  /**
   * The messages that are not gossip frames, for `messages()`, when gossip is on: the node's
   * loop takes every message from the transport and hands gossip frames to the service.
   */
  readonly #inbox: InboundQueue<InboundMessage> | undefined;
  #reading: Promise<void> | undefined;
  /** Set while bans from the peer store are re-applied, which need not be written again. */
  #restoringBans = false;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** How each connected peer was found. */
  readonly #origins = new Map<string, PeerSource>();
  /** How the peers of dials in flight were found, by address and by peer id. */
  readonly #dialHints = new Map<string, PeerSource>();
  readonly #bootstrapAddresses: ReadonlySet<string>;
  readonly #writes = new Set<Promise<void>>();
  readonly #detach: (() => void)[] = [];

  /**
   * Creates a node with a given identity; nothing runs until {@linkcode NetworkNode.start}.
   * Most programs call {@linkcode createNode}, which also finds the identity (in the data
   * directory, or a new one) and starts the node.
   *
   * @example
   * ```ts
   * import { Identity, NetworkNode } from "@cretoai/network";
   *
   * const identity = Identity.generate();
   * await using node = new NetworkNode({ identity, config: { quicPort: 0 }, targetPeers: 8 });
   * console.assert(node.dht === undefined); // services start with start()
   * ```
   *
   * @param options The identity, configuration, data directory, target number of peers.
   * @throws {InvalidConfigError} naming the field, for a bad option or configuration.
   */
  constructor(options: NodeOptions & { identity: Identity }) {
    super();
    if (typeof options !== "object" || options === null) {
      throw new InvalidConfigError("options", "an object", options);
    }
    const { identity, config = {}, dataDir, targetPeers, clock = systemClock, gossip } = options;
    if (!(identity instanceof Identity)) {
      throw new InvalidConfigError("identity", "an Identity", identity);
    }
    if (dataDir !== undefined && (typeof dataDir !== "string" || dataDir === "")) {
      throw new InvalidConfigError("dataDir", "a directory path", dataDir);
    }
    if (
      gossip !== undefined && gossip !== false && (typeof gossip !== "object" || gossip === null)
    ) {
      throw new InvalidConfigError("gossip", "false, or the gossip service's options", gossip);
    }
    // Checked before a socket is bound, so a bad config leaves nothing open.
    const resolved = resolveNetworkConfig(config);
    const { maxConnections } = resolved;
    const target = targetPeers ?? Math.min(20, maxConnections);
    if (!(Number.isSafeInteger(target) && target >= 0 && target <= maxConnections)) {
      throw new InvalidConfigError(
        "targetPeers",
        `an integer from 0 to maxConnections (${maxConnections})`,
        targetPeers,
      );
    }
    this.#options = options;
    this.#bootstrapAddresses = new Set(resolved.bootstrapPeers.map(normal));
    this.#identity = identity;
    this.#clock = clock;
    // Relayed connections share the node's socket, so with TURN servers the transport runs on
    // a RelaySocket.
    this.#relaySocket = resolved.enableNatTraversal && resolved.turnServers.length > 0
      ? new RelaySocket(
        DenoUdpSocket.bind({ hostname: resolved.listenAddr, port: resolved.quicPort }),
      )
      : undefined;
    this.transport = new QuicTransport({ identity, config, socket: this.#relaySocket });
    if (gossip !== false) {
      this.#gossip = new GossipService({
        ...gossip,
        transport: this.transport,
        readMessages: false,
        penalize: (peer, reason) => this.transport.penalize(peer, GOSSIP_PENALTIES[reason]),
      });
      this.#inbox = new InboundQueue(resolved.inboundQueueLength, resolved.inboundQueueBytes);
    }
    if (target > 0) {
      this.#planner = new DialPlanner({ targetPeers: target });
      this.#manager = new ConnectionManager({
        transport: this.transport,
        planner: this.#planner,
        dht: () => this.#dht,
        clock,
        dialing: (address, foundBy) => this.#hint(address, foundBy),
        dialFailed: (detail) => this.#emit("dial:failed", detail),
      });
    }
  }

  /** This node's peer id. */
  get peerId(): PeerId {
    return this.transport.peerId;
  }

  /** The address the transport is bound to. */
  get localAddr(): UdpAddress {
    return this.transport.localAddr;
  }

  /** The peer store: the peers seen, kept in the data directory (or in memory). */
  get peerStore(): PeerStore | undefined {
    return this.#peerStore;
  }

  /** The DHT service, when `enableDht` is on and it started. */
  get dht(): DhtService | undefined {
    return this.#dht;
  }

  /** The mDNS service, when `enableMdns` is on, the node listens beyond loopback, and it started. */
  get mdns(): MdnsService | undefined {
    return this.#mdns;
  }

  /** The NAT traversal service (hole punching, STUN discovery), when `enableNatTraversal` is on. */
  get nat(): NatService | undefined {
    return this.#nat;
  }

  /** The relay service (TURN and relay signalling), when `enableNatTraversal` is on. */
  get relay(): RelayService | undefined {
    return this.#relay;
  }

  /**
   * The gossip service (topic publish/subscribe), unless the `gossip` option is `false`. It
   * exists from construction, so topics can be subscribed before the first peer connects;
   * it follows peers from `start()` on.
   *
   * @example A topic between two nodes
   * ```ts
   * import { createNode } from "@cretoai/network";
   *
   * const config = { listenAddr: "127.0.0.1", quicPort: 0, enableDht: false };
   * await using a = await createNode({ config });
   * await using b = await createNode({ config });
   * const sub = b.gossip!.subscribe("vertices", {
   *   validate: ({ data }) => data.byteLength > 0 ? "accept" : "reject",
   * });
   * a.gossip!.subscribe("vertices");
   * await a.connectPeer(b.localAddr);
   * await a.gossip!.whenMeshed("vertices", 1);
   * const id = await a.gossip!.publish("vertices", new Uint8Array([1, 2, 3]));
   * for await (const message of sub) {
   *   console.assert(message.id === id && message.from.equals(a.peerId));
   *   break;
   * }
   * ```
   */
  get gossip(): GossipService | undefined {
    return this.#gossip;
  }

  /**
   * Starts the node, in dependency order: peer store (re-applying the bans it holds),
   * transport, relay, NAT traversal, a first dial of each bootstrap peer (resolved once each
   * connected or failed), DHT (whose join runs on in the background), mDNS, gossip,
   * connection manager. Calling it again returns the first call's promise.
   *
   * @example
   * ```ts ignore
   * const node = new NetworkNode({ config });
   * await node.start();
   * ```
   *
   * @throws {NetworkError} when the transport cannot bind, or the identity file in the data
   *   directory cannot be read or written.
   */
  start(): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new NetworkError("ERR_ENDPOINT_CLOSED", "The node is closed"));
    }
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { dataDir } = this.#options;
    if (dataDir !== undefined) await Deno.mkdir(dataDir, { recursive: true });
    this.#listen();
    if (this.#inbox !== undefined) this.#reading = this.#readMessages(this.#inbox);
    // Bans are in force before the first peer can connect.
    await this.#openPeerStore(dataDir === undefined ? undefined : `${dataDir}/peers.kv`);
    this.#restoreBans();
    await this.transport.bindAndListen();
    const config = this.transport.config;
    if (config.enableNatTraversal) {
      await this.#startRelay();
      this.#nat = new NatService(this.transport, {
        ...this.#options.nat,
        fallback: this.#relaySocket === undefined ? undefined : this.#relay?.fallback,
      });
      await this.#nat.start();
      if (config.stunServers.length > 0) {
        // In the background: discovery takes up to its timeout and nothing waits for it.
        this.#nat.discover().catch((e) => this.#failed("nat", e, true));
      }
    }
    // The first dial of each bootstrap peer, so that the node the caller gets holds the peers
    // it was told about; failures are the connection manager's to retry and report.
    await Promise.allSettled(
      [...this.#bootstrapAddresses].map(async (address) => {
        const done = this.#hint(address, "bootstrap");
        try {
          await this.transport.connectPeer(address);
        } finally {
          done();
        }
      }),
    );
    if (config.enableDht) this.#startDht();
    if (config.enableMdns && !isLoopback(config.listenAddr)) await this.#startMdns();
    await this.#gossip?.start();
    for (const peer of this.#peerStore?.list() ?? []) {
      this.#manager?.add({ peerId: peer.peerId, addresses: peer.addresses, foundBy: "peer-store" });
    }
    for (const address of this.#bootstrapAddresses) {
      this.#manager?.add({ peerId: undefined, addresses: [address], foundBy: "bootstrap" });
    }
    this.#manager?.kick();
  }

  async #openPeerStore(path: string | undefined): Promise<void> {
    try {
      this.#peerStore = await PeerStore.open({ path });
      return;
    } catch (e) {
      if (path === undefined) throw e;
      this.#failed("peerStore", e, true);
    }
    // Keep the unreadable file for a look later, and start afresh.
    const aside = `${path}.unreadable-${Date.now()}`;
    try {
      await Deno.rename(path, aside);
      for (const suffix of ["-wal", "-shm"]) {
        await Deno.rename(path + suffix, aside + suffix).catch(() => {});
      }
      this.#peerStore = await PeerStore.open({ path });
      log.warn("Peer store {path} could not be read; moved to {aside}, starting with no peers", {
        path,
        aside,
      });
    } catch (e) {
      log.warn("Peer store {path} unusable ({error}); keeping peers in memory", {
        path,
        error: String(e),
      });
      this.#peerStore = await PeerStore.open();
    }
  }

  /** Re-applies the bans of the peer store to the transport; ended ones are not listed. */
  #restoreBans(): void {
    const store = this.#peerStore;
    if (store === undefined) return;
    const now = Date.now();
    this.#restoringBans = true;
    try {
      for (const ban of store.bans(now)) {
        try {
          const durationMs = ban.expiresAt === null ? Infinity : ban.expiresAt - now;
          this.transport.ban(ban.peerId, durationMs, ban.reason);
        } catch (e) {
          // Not a peer id: nothing to refuse; forget the entry.
          log.warn("Stored ban of {peer} dropped: {error}", { peer: ban.peerId, error: String(e) });
          this.#track(store.deleteBan(ban.peerId));
        }
      }
    } finally {
      this.#restoringBans = false;
    }
  }

  /** Takes every message from the transport: gossip frames to the service, others to `inbox`. */
  async #readMessages(inbox: InboundQueue<InboundMessage>): Promise<void> {
    const closed = () => new NetworkError("ERR_ENDPOINT_CLOSED", "The node is closed");
    try {
      for await (const inbound of this.transport.messages()) {
        if (this.#gossip?.receive(inbound.from, inbound.message)) continue;
        // Waits while the inbox is full: the transport's queue then fills and pushes back on
        // the peers, as it does without gossip.
        await inbox.push(inbound, messageBytes(inbound.message), closed);
      }
    } catch (e) {
      if (!(e instanceof NetworkError && e.code === "ERR_ENDPOINT_CLOSED")) {
        log.error("The node's message loop stopped: {error}", { error: String(e) });
      }
    } finally {
      inbox.close();
    }
  }

  async #startRelay(): Promise<void> {
    const relay = new RelayService(this.transport, {
      ...this.#options.relay,
      relaySocket: this.#relaySocket,
    });
    this.#relay = relay;
    try {
      await relay.start();
    } catch (e) {
      // Without an allocation it still forwards other peers' signalling.
      this.#failed("relay", e, true);
    }
  }

  #startDht(): void {
    const dht = new DhtService(this.transport, { ...this.#options.dht, identity: this.#identity });
    this.#dht = dht;
    // In the background: joining takes lookups, and the node is usable meanwhile (the DHT
    // serves requests from the start).
    dht.start().catch(async (e) => {
      if (this.#closing !== undefined) return;
      if (e instanceof NetworkError && e.code === "ERR_DHT") {
        // No bootstrap peer answered: the connection manager joins once it reaches a peer.
        this.#failed("dht", e, true);
        return;
      }
      this.#dht = undefined;
      await dht.close();
      this.#failed("dht", e, false);
    });
  }

  async #startMdns(): Promise<void> {
    const mdns = new MdnsService(this.transport, this.#options.mdns);
    mdns.addEventListener("mdns:discovered", ({ detail }) => {
      const addresses = detail.addresses.map((a) => formatAddress(a));
      this.#hint(detail.peerId, "mdns");
      this.#manager?.add({ peerId: detail.peerId, addresses, foundBy: "mdns" });
    });
    try {
      await mdns.start();
      this.#mdns = mdns;
    } catch (e) {
      await mdns.close();
      this.#failed("mdns", e, false);
    }
  }

  #listen(): void {
    const t = this.transport;
    const on = <
      K extends "peer:connected" | "peer:disconnected" | "peer:migrated" | "peer:banned",
    >(
      type: K,
      listener: (
        event: Parameters<Parameters<typeof t.addEventListener<K>>[1] & object>[0],
      ) => void,
    ) => {
      t.addEventListener(type, listener);
      this.#detach.push(() => t.removeEventListener(type, listener));
    };
    on("peer:connected", ({ detail }) => {
      const id = detail.peerId.toString();
      const address = formatAddress(detail.address);
      const foundBy = this.#dialHints.get(id) ?? this.#dialHints.get(address) ??
        (detail.direction === "inbound"
          ? "inbound"
          // The DHT dials the bootstrap peers itself when it starts.
          : this.#bootstrapAddresses.has(address)
          ? "bootstrap"
          : this.#planner?.get(id)?.foundBy ?? (this.#dht === undefined ? "application" : "dht"));
      this.#origins.set(id, foundBy);
      const path = this.#pathOf(detail.address);
      if (path === "direct") {
        // Known to the manager from now on, so that it dials the peer again when it is lost.
        this.#planner?.add({ peerId: id, addresses: [address], foundBy });
        this.#remember(id, address, foundBy);
      }
      this.#planner?.connected(id, address);
      this.#emit("peer:connected", { ...detail, foundBy, path });
    });
    on("peer:disconnected", ({ detail }) => {
      const id = detail.peerId.toString();
      const foundBy = this.#origins.get(id) ?? "inbound";
      this.#origins.delete(id);
      this.#planner?.disconnected(id, this.#clock.now());
      this.#emit("peer:disconnected", { ...detail, foundBy, path: this.#pathOf(detail.address) });
      this.#manager?.kick();
    });
    on("peer:migrated", ({ detail }) => {
      this.#planner?.connected(detail.peerId.toString(), formatAddress(detail.address));
      this.#emit("peer:migrated", { ...detail, path: this.#pathOf(detail.address) });
    });
    on("peer:banned", ({ detail }) => {
      // Bans by the application and by the peer score alike outlive a restart.
      if (!this.#restoringBans) {
        const { peerId, reason, expiresAt } = detail;
        const store = this.#peerStore;
        if (store !== undefined) {
          this.#track(store.putBan({ peerId: peerId.toString(), reason, expiresAt }));
        }
      }
      this.#emit("peer:banned", detail);
    });
  }

  /**
   * Dials a peer by address, or by id through the DHT and the other resolvers; see
   * {@linkcode QuicTransport.connectPeer}.
   *
   * @example
   * ```ts ignore
   * const peer = await node.connectPeer("198.51.100.1:9001");
   * ```
   *
   * @param address `HOST:PORT`, an address object, or the peer's id.
   * @param options Expected peer id and abort signal.
   * @returns The peer's id.
   */
  async connectPeer(
    address: string | UdpAddress | PeerId,
    options: ConnectPeerOptions = {},
  ): Promise<PeerId> {
    const key = typeof address === "string"
      ? normal(address)
      : "hostname" in address
      ? formatAddress(address)
      : address.toString();
    const done = this.#hint(key, "application");
    try {
      return await this.transport.connectPeer(address, options);
    } finally {
      done();
    }
  }

  /**
   * Sends a message to a connected peer; see {@linkcode QuicTransport.send}.
   *
   * @example
   * ```ts ignore
   * await node.send(peer, { type: "consensus", data });
   * ```
   *
   * @param peer The peer.
   * @param message The message.
   * @param options Abort signal.
   */
  send(peer: PeerId | string, message: NetworkMessage, options?: SendOptions): Promise<void> {
    return this.transport.send(peer, message, options);
  }

  /**
   * Sends a message to every connected peer; see {@linkcode QuicTransport.broadcast}.
   *
   * @example
   * ```ts ignore
   * const results = await node.broadcast({ type: "consensus", data });
   * ```
   *
   * @param message The message.
   * @param options Abort signal.
   * @returns One result per peer.
   */
  broadcast(message: NetworkMessage, options?: SendOptions): Promise<BroadcastResult[]> {
    return this.transport.broadcast(message, options);
  }

  /**
   * The messages peers send, in arrival order, except gossip frames (which go to
   * {@linkcode NetworkNode.gossip}); see {@linkcode QuicTransport.messages}. With gossip on,
   * read them here, not from `node.transport.messages()`: the node's own loop takes the
   * transport's messages. While they are not read, at most `config.inboundQueueLength`
   * messages (`config.inboundQueueBytes` bytes) wait here, then the transport's queue fills
   * and its peers are not read, gossip included, as without gossip.
   *
   * @example
   * ```ts ignore
   * for await (const { from, message } of node.messages()) console.log(from, message.type);
   * ```
   *
   * @returns The messages, until the node closes.
   */
  messages(): AsyncGenerator<InboundMessage, void, undefined> {
    const inbox = this.#inbox;
    if (inbox === undefined) return this.transport.messages();
    return (async function* () {
      for (;;) {
        const next = await inbox.pull();
        if (next === undefined) return;
        yield next;
      }
    })();
  }

  /**
   * Sends a request under a protocol id and waits for the response; see
   * {@linkcode QuicTransport.request}.
   *
   * @example
   * ```ts ignore
   * const answer = await node.request(peer, "/app/echo/1", new Uint8Array([1]));
   * ```
   *
   * @param peer The peer.
   * @param protocolId The protocol.
   * @param data The request.
   * @param options Timeout and abort signal.
   * @returns The response.
   */
  request(
    peer: PeerId | string,
    protocolId: string,
    data: Uint8Array,
    options?: RequestOptions,
  ): Promise<Uint8Array> {
    return this.transport.request(peer, protocolId, data, options);
  }

  /**
   * Answers requests under a protocol id; see {@linkcode QuicTransport.handle}.
   *
   * @example
   * ```ts ignore
   * const remove = node.handle("/app/echo/1", (data) => data);
   * ```
   *
   * @param protocolId The protocol.
   * @param handler Returns the response.
   * @returns A function that removes the handler.
   */
  handle(protocolId: string, handler: RequestHandler): () => void {
    return this.transport.handle(protocolId, handler);
  }

  /**
   * Measures the round trip to a peer; see {@linkcode QuicTransport.ping}.
   *
   * @example
   * ```ts ignore
   * const rttMs = await node.ping(peer);
   * ```
   *
   * @param peer The peer.
   * @returns The round-trip time in milliseconds.
   */
  ping(peer: PeerId | string): Promise<number> {
    return this.transport.ping(peer);
  }

  /**
   * A peer's traffic counters and latency; see {@linkcode QuicTransport.getStats}.
   *
   * @example
   * ```ts ignore
   * console.log(node.getStats(peer).p50LatencyMs);
   * ```
   *
   * @param peer The peer.
   * @returns Its statistics.
   */
  getStats(peer: PeerId | string): PeerStats {
    return this.transport.getStats(peer);
  }

  /**
   * Node-wide counters; see {@linkcode QuicTransport.stats}.
   *
   * @example
   * ```ts ignore
   * console.log(node.stats().peers);
   * ```
   *
   * @returns The counters.
   */
  stats(): TransportStats {
    return this.transport.stats();
  }

  /**
   * The connected peers, with how each was found and its path.
   *
   * @example
   * ```ts ignore
   * for (const p of node.peers()) console.log(p.peerId, p.foundBy, p.path);
   * ```
   *
   * @returns One entry per peer.
   */
  peers(): NodePeerInfo[] {
    return this.transport.peers().map((p) => {
      const id = p.peerId.toString();
      return {
        ...p,
        foundBy: this.#origins.get(id) ?? (p.direction === "inbound" ? "inbound" : "application"),
        path: this.#relay?.path(id) ?? "direct",
      };
    });
  }

  /**
   * Closes the connection to a peer; see {@linkcode QuicTransport.disconnectPeer}. The
   * connection manager may dial it again later, when the node is below its target.
   *
   * @example
   * ```ts ignore
   * await node.disconnectPeer(peer);
   * ```
   *
   * @param peer The peer.
   */
  disconnectPeer(peer: PeerId | string): Promise<void> {
    return this.transport.disconnectPeer(peer);
  }

  /**
   * Bans a peer for `durationMs`; see {@linkcode QuicTransport.ban}. The ban is also written
   * to the peer store, so that with a `dataDir` it outlives a restart (so are the bans the
   * peer score gives). Emits `peer:banned`.
   *
   * @example
   * ```ts
   * import { createNode, Identity } from "@cretoai/network";
   *
   * await using node = await createNode({ config: { listenAddr: "127.0.0.1", quicPort: 0 } });
   * const mallory = Identity.generate().peerId;
   * node.ban(mallory, 60 * 60_000, "equivocation");
   * console.assert(node.bans()[0].peerId === mallory.toString());
   * console.assert(node.unban(mallory) && node.bans().length === 0);
   * ```
   *
   * @param peer The peer.
   * @param durationMs Milliseconds above 0; `Infinity` for a permanent ban.
   * @param reason Why, kept to 200 characters.
   * @returns The ban.
   * @throws {InvalidConfigError} for a bad duration or reason.
   */
  ban(peer: PeerId | string, durationMs: number, reason: string): BanInfo {
    return this.transport.ban(peer, durationMs, reason);
  }

  /**
   * Lifts a ban, in the transport and in the peer store; see {@linkcode QuicTransport.unban}.
   *
   * @example
   * ```ts ignore
   * node.unban(peer);
   * ```
   *
   * @param peer The peer.
   * @returns Whether the peer was banned.
   */
  unban(peer: PeerId | string): boolean {
    const had = this.transport.unban(peer);
    const store = this.#peerStore;
    if (store !== undefined && this.#closing === undefined) {
      this.#track(store.deleteBan(peer.toString()));
    }
    return had;
  }

  /**
   * The bans in force; see {@linkcode QuicTransport.bans}.
   *
   * @example
   * ```ts ignore
   * for (const { peerId, reason, expiresAt } of node.bans()) console.log(peerId, reason, expiresAt);
   * ```
   *
   * @returns One entry per banned peer.
   */
  bans(): BanInfo[] {
    return this.transport.bans();
  }

  /**
   * Stops the node in reverse order of start: connection manager, gossip, mDNS (its goodbye
   * goes out while the node still answers), DHT, NAT traversal, relay (freeing the allocation
   * through the socket), transport (which ends `messages()`), peer store. Idempotent.
   *
   * @example
   * ```ts ignore
   * await node.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@linkcode NetworkNode.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    await this.#starting?.catch(() => {});
    await this.#manager?.close();
    await this.#gossip?.close();
    await this.#mdns?.close();
    await this.#dht?.close();
    await this.#nat?.close();
    await this.#relay?.close();
    await this.transport.close();
    // Messages the inbox holds stay readable; a loop waiting for room in it stops.
    this.#inbox?.close();
    await this.#reading;
    for (const detach of this.#detach.splice(0)) detach();
    await Promise.allSettled([...this.#writes]);
    await this.#peerStore?.close();
  }

  #pathOf(address: UdpAddress): PeerPath {
    return this.#relaySocket?.isRelayed(address) ? "relay" : "direct";
  }

  /** Notes how the peer of a dial was found until the dial is over. */
  #hint(key: string, foundBy: PeerSource): () => void {
    if (this.#dialHints.size >= MAX_DIAL_HINTS) this.#dialHints.clear();
    this.#dialHints.set(key, foundBy);
    return () => {
      if (this.#dialHints.get(key) === foundBy) this.#dialHints.delete(key);
    };
  }

  #remember(peerId: string, address: string, foundBy: PeerSource): void {
    const store = this.#peerStore;
    if (store === undefined) return;
    this.#track(store.put({ peerId, addresses: [address], lastSeenMs: Date.now(), foundBy }));
  }

  /** Keeps a peer store write until it is done, so that `close()` waits for it. */
  #track(write: Promise<unknown>): void {
    const tracked: Promise<void> = write
      .then(() => {}, (e) => this.#failed("peerStore", e, true))
      .finally(() => this.#writes.delete(tracked));
    this.#writes.add(tracked);
  }

  #failed(service: NodeServiceName, error: unknown, running: boolean): void {
    const detail: ServiceFailedDetail = {
      service,
      error: error instanceof Error ? error : new Error(String(error)),
      running,
    };
    log.warn("{service} failed ({running}): {error}", {
      service,
      running: running ? "runs on" : "off",
      error: detail.error.message,
    });
    this.#emit("service:failed", detail);
  }

  #emit<K extends keyof NodeEventMap & string>(
    type: K,
    detail: NodeEventMap[K] extends CustomEvent<infer D> ? D : never,
  ): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The peer-score penalty of each reason the gossip service penalizes a peer for. */
const GOSSIP_PENALTIES: Readonly<Record<GossipServicePenaltyReason, PenaltyReason>> = {
  "invalid-message": "rejected-gossip",
  "malformed-frame": "malformed-frame",
  "too-many-topics": "limit-exceeded",
  "graft-in-backoff": "limit-exceeded",
};

/** Bytes a message counts for in the node's inbox: its payload, as the transport counts it. */
function messageBytes(message: NetworkMessage): number {
  return "data" in message ? message.data.byteLength : 0;
}

/** Hints kept at most; dials in flight are bounded by the planner and the pool. */
const MAX_DIAL_HINTS = 4096;

async function loadOrCreateIdentity(path: string): Promise<Identity> {
  try {
    return await Identity.load(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const identity = Identity.generate();
  await identity.save(path);
  return identity;
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

/** `HOST:PORT` as `formatAddress` writes it, so addresses from config and events compare. */
function normal(address: string): string {
  return formatAddress(parseAddress(address));
}
