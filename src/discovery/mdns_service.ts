/**
 * `MdnsService`: mDNS discovery bound to a {@linkcode QuicTransport}. It announces the
 * transport's peer id and port, dials the peers it discovers (the handshake checks that the
 * peer at the address holds the announced peer id) and disconnects the peers it connected
 * when they say goodbye or their records expire. It only uses the transport's public API.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { networkMetrics } from "../metrics/_network_metrics.ts";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import type { PeerId } from "../identity/peer_id.ts";
import type { QuicTransport } from "../transport/transport.ts";
import type { TransportEventMap } from "../transport/events.ts";
import { TypedEventTarget } from "../transport/events.ts";
import { MdnsDiscovery, type MdnsDiscoveryOptions, type MdnsStats } from "./mdns.ts";
import type { MdnsPeer, MdnsPeerAddress } from "./mdns_peers.ts";
import { zeroMdnsStats } from "./_mdns_stats.ts";

const log = getLogger(["cretoai", "discovery", "mdns"]);

/** Options of {@linkcode MdnsService}; the rest are {@linkcode MdnsDiscoveryOptions}. */
export interface MdnsServiceOptions
  extends Omit<MdnsDiscoveryOptions, "peerId" | "port" | "isValidPeerId"> {
  /**
   * Dial discovered peers. Off, the service still announces the node and reports peers.
   *
   * @default {true}
   */
  dial?: boolean;
  /**
   * UDP port announced in the SRV record, when peers reach the node on another port than the
   * one it is bound to (a port forward).
   *
   * @default {the transport's bound port}
   */
  port?: number;
}

/** Detail of the service's `expired` event. */
export interface MdnsExpiredDetail {
  /** The peer that said goodbye or whose records ran out. */
  peerId: string;
  /**
   * Whether the service connected this peer and is now disconnecting it. Peers the
   * application connected, or that dialed in, stay connected.
   */
  disconnect: boolean;
}

/** Detail of the service's `mdns:dial-failed` event. */
export interface MdnsDialFailedDetail {
  /** The announced peer id. */
  peerId: string;
  /** The announced address that was dialed. */
  address: MdnsPeerAddress;
  /**
   * Why: a `NetworkError` with `ERR_PEER_ID_MISMATCH` when another peer answered at the
   * address (that address is not dialed again while the peer stays known), or any other
   * `connectPeer` failure.
   */
  error: Error;
}

/** The events of an {@linkcode MdnsService}, by name. */
export interface MdnsServiceEventMap {
  /** A peer was found, or its addresses, port, version or instance changed. */
  "mdns:discovered": CustomEvent<MdnsPeer>;
  /** A peer said goodbye or its records expired. */
  "mdns:expired": CustomEvent<MdnsExpiredDetail>;
  /** Dialing one address of a discovered peer failed. */
  "mdns:dial-failed": CustomEvent<MdnsDialFailedDetail>;
  /** An mDNS socket failed after start; the service keeps running on the others. */
  "mdns:error": CustomEvent<NetworkError>;
}

/** Counters of an {@linkcode MdnsService}. */
export interface MdnsServiceStats {
  /** The discovery's own counters (packets, drops, peers known). */
  discovery: MdnsStats;
  /** Dial attempts, one per address tried. */
  dials: number;
  /** Dials that connected a peer that was not connected before. */
  connected: number;
  /** Dials that failed because another peer id answered at the announced address. */
  peerIdMismatches: number;
  /** Dials that failed otherwise (timeout, refused, pool full, ...). */
  failures: number;
  /** Discovered peers not dialed because they announce another protocol version (`v=`). */
  versionSkipped: number;
  /** Peers disconnected because their mDNS records went away. */
  dropped: number;
  /** Peers connected now because the service dialed them. */
  managed: number;
}

interface Dial {
  controller: AbortController;
}

/**
 * Runs mDNS discovery for a {@linkcode QuicTransport}: announces its peer id and port, dials
 * discovered peers with `connectPeer(address, { expectedPeerId })`, and drops them again when
 * they leave the link. Does nothing when the transport's config has `enableMdns: false`.
 *
 * Which peers it drops: only those it connected itself, that were not connected before its
 * dial, when their records go away or the service closes. Peers the application connected,
 * peers that dialed in, and peers handed over with {@linkcode MdnsService.release} stay.
 *
 * Close the service before the transport, so that the goodbye goes out while the node still
 * answers; with `await using`, declare the service after the transport.
 *
 * Needs `--allow-net` (UDP port 5353 on 0.0.0.0 and the group 224.0.0.251: a narrowed flag
 * must list `0.0.0.0:5353,224.0.0.251:5353`) and, when interfaces are chosen by name or by
 * default, `--allow-sys=networkInterfaces`.
 *
 * @example A node that finds and connects the other nodes on its LAN
 * ```ts ignore
 * import { Identity, MdnsService, QuicTransport } from "@cretoai/network";
 *
 * await using transport = new QuicTransport({
 *   identity: Identity.generate(),
 *   config: { listenAddr: "192.168.1.20", quicPort: 9001 },
 * });
 * await transport.bindAndListen();
 * await using mdns = new MdnsService(transport); // announces 192.168.1.20:9001
 * mdns.addEventListener("mdns:discovered", (e) => console.log("found", e.detail.peerId));
 * mdns.addEventListener("mdns:expired", (e) => console.log("gone", e.detail.peerId));
 * transport.addEventListener("peer:connected", (e) => console.log("connected", e.detail.peerId));
 * await mdns.start();
 * ```
 */
export class MdnsService extends TypedEventTarget<MdnsServiceEventMap> implements AsyncDisposable {
  readonly #transport: QuicTransport;
  readonly #options: Omit<MdnsServiceOptions, "dial">;
  readonly #dial: boolean;
  #discovery: MdnsDiscovery | undefined;
  #state: "new" | "running" | "disabled" | "closed" = "new";
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Dials in flight, by announced peer id. */
  readonly #dials = new Map<string, Dial>();
  /** Peers this service connected: the ones it disconnects when they leave. */
  readonly #managed = new Set<string>();
  /** Addresses (`host:port`) where another peer answered, by announced peer id. */
  readonly #mismatched = new Map<string, Set<string>>();
  readonly #counters = {
    dials: 0,
    connected: 0,
    peerIdMismatches: 0,
    failures: 0,
    versionSkipped: 0,
    dropped: 0,
  };
  readonly #onDisconnected = (e: TransportEventMap["peer:disconnected"]) => {
    this.#managed.delete(e.detail.peerId.toString());
  };

  /**
   * Creates the service; nothing is sent until {@linkcode MdnsService.start}.
   *
   * @example
   * ```ts
   * import { Identity, MdnsService, QuicTransport } from "@cretoai/network";
   *
   * const transport = new QuicTransport({ identity: Identity.generate() });
   * const mdns = new MdnsService(transport, { dial: false, interfaces: ["10.0.0.5"] });
   * console.assert(mdns.stats().dials === 0);
   * await mdns.close();
   * await transport.close();
   * ```
   *
   * @param transport The transport whose peer id and port are announced and which dials.
   * @param options Discovery options and whether to dial; see {@linkcode MdnsServiceOptions}.
   * @throws {InvalidConfigError} When an option breaks its rule; the message names it.
   */
  constructor(transport: QuicTransport, options: MdnsServiceOptions = {}) {
    super();
    if (transport === null || typeof transport !== "object" || !("connectPeer" in transport)) {
      throw new InvalidConfigError("transport", "a QuicTransport", transport);
    }
    const { dial = true, ...rest } = options;
    if (typeof dial !== "boolean") throw new InvalidConfigError("dial", "a boolean", dial);
    this.#transport = transport;
    this.#dial = dial;
    this.#options = rest;
  }

  /**
   * Whether the service announces and browses now: started, not closed, and `enableMdns` on.
   */
  get running(): boolean {
    return this.#state === "running";
  }

  /**
   * Starts announcing and browsing. The transport must be bound. Resolves at once, without
   * opening a socket, when the transport's config has `enableMdns: false`.
   *
   * @example
   * ```ts ignore
   * await transport.bindAndListen();
   * const mdns = new MdnsService(transport, { interfaces: ["eth0"] });
   * await mdns.start();
   * ```
   *
   * @returns Resolves once the first announcement and query are sent.
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` when the transport is not bound or closed;
   * `ERR_MDNS` when the transport listens on a loopback or IPv6 address (not reachable over
   * IPv4 multicast on the link), a socket cannot be bound, or the service was started or
   * closed before.
   * @throws {InvalidConfigError} When a discovery option breaks its rule.
   */
  start(): Promise<void> {
    if (this.#state !== "new" || this.#closing !== undefined || this.#starting !== undefined) {
      const state = this.#closing !== undefined ? "closed" : "started";
      return Promise.reject(
        new NetworkError("ERR_MDNS", `Cannot start the mDNS service: it is ${state}`),
      );
    }
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (!this.#transport.config.enableMdns) {
      this.#state = "disabled";
      log.info("mDNS is off (enableMdns: false)");
      return;
    }
    const local = this.#transport.localAddr;
    let { interfaces, port = local.port, ...rest } = this.#options;
    if (interfaces === undefined && local.hostname !== "0.0.0.0") {
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(local.hostname) || local.hostname.startsWith("127.")) {
        throw new NetworkError(
          "ERR_MDNS",
          `Cannot announce the transport over mDNS: it listens on ${local.hostname}, which ` +
            `peers on the link cannot reach over IPv4; listen on 0.0.0.0 or a LAN address`,
        );
      }
      // A node bound to one address is reachable only there: announce and browse on it.
      interfaces = [local.hostname];
    }
    const discovery = new MdnsDiscovery({
      ...rest,
      interfaces,
      port,
      peerId: this.#transport.peerId.toString(),
    });
    discovery.on("discovered", (peer) => this.#onDiscovered(peer));
    discovery.on("expired", ({ peerId }) => this.#onExpired(peerId));
    discovery.on("error", (error) => this.#emit("mdns:error", error));
    this.#discovery = discovery;
    this.#transport.addEventListener("peer:disconnected", this.#onDisconnected);
    this.#state = "running";
    try {
      await discovery.start();
    } catch (e) {
      this.#state = "closed";
      this.#transport.removeEventListener("peer:disconnected", this.#onDisconnected);
      throw e;
    }
    log.info("mDNS announces {peer} on port {port}", {
      peer: this.#transport.peerId.toString(),
      port,
    });
  }

  /**
   * Sends the goodbye, stops browsing, abandons dials in flight, then disconnects the peers
   * the service connected (other peers stay; those that dialed this node because of mDNS drop
   * it when they hear the goodbye). Safe to call more than once; later calls wait for the
   * first.
   *
   * @example
   * ```ts ignore
   * await mdns.close(); // first: the goodbye goes out
   * await transport.close();
   * ```
   *
   * @returns Resolves when the mDNS sockets are closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#starting?.catch(() => {});
      this.#state = "closed";
      for (const dial of this.#dials.values()) dial.controller.abort();
      await this.#discovery?.close();
      this.#transport.removeEventListener("peer:disconnected", this.#onDisconnected);
      const managed = [...this.#managed];
      this.#managed.clear();
      await Promise.all(managed.map((peerId) => this.#disconnect(peerId)));
    })();
    return this.#closing;
  }

  /** Same as {@linkcode MdnsService.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Hands a peer the service connected over to the application: it is no longer disconnected
   * when its mDNS records go away.
   *
   * @example
   * ```ts ignore
   * mdns.addEventListener("mdns:discovered", (e) => {
   *   if (isValidator(e.detail.peerId)) mdns.release(e.detail.peerId);
   * });
   * ```
   *
   * @param peerId The peer's id.
   * @returns Whether the service was managing the peer.
   */
  release(peerId: PeerId | string): boolean {
    return this.#managed.delete(peerId.toString());
  }

  /**
   * The peers known on the link now, connected or not.
   *
   * @example
   * ```ts ignore
   * for (const { peerId, addresses } of mdns.peers()) console.log(peerId, addresses);
   * ```
   *
   * @returns One snapshot per peer; empty before start and when disabled.
   */
  peers(): MdnsPeer[] {
    return this.#discovery?.peers() ?? [];
  }

  /**
   * Counters of dials and drops, with the discovery's own.
   *
   * @example
   * ```ts
   * import { Identity, MdnsService, QuicTransport } from "@cretoai/network";
   *
   * const transport = new QuicTransport({ identity: Identity.generate() });
   * const mdns = new MdnsService(transport);
   * const { dials, peerIdMismatches, discovery } = mdns.stats();
   * console.assert(dials === 0 && peerIdMismatches === 0 && discovery.peers === 0);
   * await transport.close();
   * ```
   *
   * @returns A copy of the counters.
   */
  stats(): MdnsServiceStats {
    const discovery = this.#discovery?.stats() ?? zeroMdnsStats();
    return { discovery, ...this.#counters, managed: this.#managed.size };
  }

  #onDiscovered(peer: MdnsPeer): void {
    networkMetrics()?.mdnsPeers.add(1);
    this.#emit("mdns:discovered", peer);
    if (!this.#dial || this.#state !== "running") return;
    const version = this.#options.version ?? "1";
    if (peer.version !== undefined && peer.version !== version) {
      this.#counters.versionSkipped++;
      log.info("Not dialing {peer}: it announces protocol v={theirs}, this node v={ours}", {
        peer: peer.peerId,
        theirs: peer.version,
        ours: version,
      });
      return;
    }
    // A dial in flight goes on with the addresses it has; a changed record while it runs is
    // not dialed again.
    if (this.#dials.has(peer.peerId) || this.#isConnected(peer.peerId)) return;
    const dial: Dial = { controller: new AbortController() };
    this.#dials.set(peer.peerId, dial);
    this.#connect(peer, dial).finally(() => this.#dials.delete(peer.peerId));
  }

  /** Tries the announced addresses in order until one connects. */
  async #connect(peer: MdnsPeer, dial: Dial): Promise<void> {
    const { peerId } = peer;
    for (const address of peer.addresses) {
      const where = `${address.hostname}:${address.port}`;
      if (this.#mismatched.get(peerId)?.has(where)) continue;
      if (dial.controller.signal.aborted) return;
      // A peer the application (or the peer itself) connected meanwhile is not ours.
      if (this.#isConnected(peerId)) return;
      this.#counters.dials++;
      try {
        await this.#transport.connectPeer(address, {
          expectedPeerId: peerId,
          signal: dial.controller.signal,
        });
        if (dial.controller.signal.aborted) return;
        this.#managed.add(peerId);
        this.#counters.connected++;
        log.info("Connected {peer} at {address}, found by mDNS", { peer: peerId, address: where });
        return;
      } catch (e) {
        if (dial.controller.signal.aborted || this.#state !== "running") return;
        const error = e instanceof Error ? e : new Error(String(e));
        if (error instanceof NetworkError && error.code === "ERR_PEER_ID_MISMATCH") {
          this.#counters.peerIdMismatches++;
          const seen = this.#mismatched.get(peerId) ?? new Set();
          seen.add(where);
          this.#mismatched.set(peerId, seen);
          log.warn(
            "Another peer answered at {address}, announced as {peer}; not dialing it again: {error}",
            { peer: peerId, address: where, error: error.message },
          );
        } else {
          this.#counters.failures++;
          log.info("Cannot connect {peer} at {address}, found by mDNS: {error}", {
            peer: peerId,
            address: where,
            error: error.message,
          });
        }
        this.#emit("mdns:dial-failed", { peerId, address, error });
      }
    }
  }

  #onExpired(peerId: string): void {
    this.#mismatched.delete(peerId);
    this.#dials.get(peerId)?.controller.abort();
    const disconnect = this.#managed.delete(peerId);
    this.#emit("mdns:expired", { peerId, disconnect });
    if (!disconnect) return;
    this.#counters.dropped++;
    log.info("Disconnecting {peer}: its mDNS records went away", { peer: peerId });
    this.#disconnect(peerId);
  }

  #disconnect(peerId: string): Promise<void> {
    return this.#transport.disconnectPeer(peerId).catch((e) => {
      log.warn("Cannot disconnect {peer}: {error}", { peer: peerId, error: String(e) });
    });
  }

  #isConnected(peerId: string): boolean {
    return this.#transport.peers().some((p) => p.peerId.toString() === peerId);
  }

  #emit<K extends keyof MdnsServiceEventMap & string>(
    type: K,
    detail: MdnsServiceEventMap[K]["detail"],
  ): void {
    try {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    } catch {
      // dispatchEvent reports listener exceptions itself; the receive path must go on.
    }
  }
}
