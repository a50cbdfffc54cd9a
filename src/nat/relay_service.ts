/**
 * `RelayService`: connections through TURN relays for peers that cannot reach each other
 * directly (for example two symmetric NATs). A service over the transport's public API: it
 * allocates on the configured TURN servers through the transport's datagram port, swaps
 * relayed addresses with the peer over a small request protocol (through a peer both sides
 * are connected to), registers the peer on the transport's `RelaySocket`, then dials the peer's
 * relayed address with `connectPeer`. The end-to-end handshake is unchanged, so the relay sees
 * only ciphertext.
 *
 * Signalling, `/cretoai/relay/1`, JSON requests answered with JSON:
 * - `{"t":"forward","to":PEER,"relayed":"H:P"}` to a peer both sides are connected to, which
 *   passes it on to PEER as `{"t":"offer","from":REQUESTER,"relayed":"H:P"}` and returns the
 *   answer; the forwarder names the requester as it authenticated it.
 * - `{"t":"offer","relayed":"H:P"}` (as forwarded, or sent straight by a peer that has a
 *   connection one way only): the peer relays the offered address (permission and channel on
 *   its TURN server) and answers `{"relayed":"H:P"}` with its own.
 * - Failures answer `{"error":{"code":"ERR_...","message":"..."}}`.
 *
 * A forwarder can make a peer install a TURN permission for an address it chooses; that only
 * lets datagrams from that address through the peer's relay, and whoever connects still has
 * to pass the identity handshake (the dialer checks `expectedPeerId`).
 *
 * A relayed connection moves to a direct path when one appears: `NatService` (with this
 * service as its fallback) retries hole punching and migrates the connection; see
 * {@link RelayService}.
 *
 * @module
 */

import { networkMetrics } from "../metrics/_network_metrics.ts";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import { PeerId } from "../identity/peer_id.ts";
import { formatAddress, parseAddress } from "../quic/address.ts";
import { PeerRateLimiter } from "../_peer_rate_limiter.ts";
import { observedHosts, withBasis } from "./_address.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import { type Clock, systemClock } from "../clock.ts";
import type { TurnServerConfig } from "../transport/config.ts";
import type { QuicTransport } from "../transport/transport.ts";
import {
  type PeerConnectedDetail,
  type RequestContext,
  type TransportEventMap,
  TypedEventTarget,
} from "../transport/mod.ts";
import type { RelaySocket } from "./relay_socket.ts";
import { TurnClient, type TurnError } from "./turn_client.ts";

/** The signalling protocol id of {@link RelayService}. */
export const RELAY_PROTOCOL = "/cretoai/relay/1";

/** How a connected peer is reached: straight to its address, or through a TURN relay. */
export type PeerPath = "direct" | "relay";

/** Options of {@link RelayService}'s constructor. */
export interface RelayServiceOptions {
  /**
   * The `RelaySocket` the transport was created with (`new QuicTransport({ socket })`).
   * Without it the service only forwards other peers' signalling (a public node in the
   * middle), and `turnServers` must be empty.
   *
   * @default {undefined}
   */
  relaySocket?: RelaySocket;
  /**
   * TURN servers to allocate on, tried in order until one grants an allocation.
   *
   * @default {the transport config's `turnServers`}
   */
  turnServers?: readonly TurnServerConfig[];
  /**
   * Allocation lifetime to ask for, in seconds (the server may grant less); the allocation is
   * refreshed before it runs out.
   *
   * @default {600}
   */
  lifetimeSecs?: number;
  /**
   * Time one signalling exchange may take, in ms (a forward includes the second hop).
   *
   * @default {the transport config's `requestTimeoutMs`}
   */
  signalTimeoutMs?: number;
  /**
   * Clock and timers (the TURN client's refreshes, and forgetting offers nobody used).
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/** Options of {@link RelayService.connect}. */
export interface RelayConnectOptions {
  /**
   * The connected peer to signal through, one both sides are connected to (in either
   * direction: a public node both dialed). Omitted: the connected peers are tried in turn (at
   * most three).
   *
   * @default {undefined}
   */
  via?: PeerId | string;
  /** Abandons signalling and the dial. */
  signal?: AbortSignal;
}

/** Detail of `relay:connected`. */
export interface RelayConnectedDetail {
  /** The peer. */
  peerId: PeerId;
  /** The peer's relayed address, as the connection uses it. */
  address: UdpAddress;
  /** Whether this node dialed. */
  direction: "inbound" | "outbound";
  /** Always `"relay"`. */
  path: PeerPath;
}

/** The events of a {@link RelayService}, by name. */
export interface RelayServiceEventMap {
  /** A peer connected over a relayed path (either direction). */
  "relay:connected": CustomEvent<RelayConnectedDetail>;
  /**
   * The allocation expired (refreshes failed until its lifetime ran out, or the server lost
   * it); `connect` fails with this error until `start()` allocates again.
   */
  "relay:expired": CustomEvent<TurnError>;
}

/** What the NAT service's fallback hook receives about a peer it could not reach directly. */
export interface RelayFallbackInfo {
  /** A connected peer to signal through (see {@link RelayConnectOptions.via}). */
  via?: PeerId | string;
  /** Abandons the attempt. */
  signal?: AbortSignal;
}

interface Offer {
  t: "offer" | "forward";
  relayed: string;
  from?: string;
  to?: string;
}

const MAX_SIGNAL_BYTES = 1024;
const MAX_VIA_TRIES = 3;
/**
 * Signalling requests (offers and forwards) a peer may make: sustained per second, and at
 * once. Each offer costs two TURN transactions and a channel number.
 */
const SIGNALS_PER_SECOND = 2;
const SIGNALS_BURST = 8;
/** Peers whose request rate is tracked; beyond it the oldest entries are forgotten. */
const RATE_TRACKED_PEERS = 256;
/** Offers taken that no peer connected through yet; further offers are refused meanwhile. */
const MAX_PENDING_OFFERS = 32;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Relayed connections over a {@linkcode QuicTransport} that runs on a {@linkcode RelaySocket}.
 * Both peers run the service with TURN servers; a peer in the middle (connected to both)
 * runs it to forward. `path(peerId)` tells how a peer is reached.
 *
 * Moving to a direct path later: QUIC path migration cannot do it here (RFC 9000 lets only
 * the client move, to an address of its own, and quiche's path API is not driven by the QUIC
 * layer), so a new connection replaces the relayed one: with this service as the fallback of a
 * `NatService`, the NAT service retries hole punching every `directRetryMs` and, when it
 * works, moves the peer with `QuicTransport.migratePeer` (messages under way finish on the
 * relay, later ones take the direct path, none lost or reordered). This service then frees
 * the peer's permission and channel once the relayed connection has drained.
 *
 * @example Two nodes behind NATs connect through TURN, signalling through a node both reach
 * ```ts ignore
 * import { DenoUdpSocket, Identity, QuicTransport, RelayService, RelaySocket } from "@cretoai/network";
 *
 * const relaySocket = new RelaySocket(DenoUdpSocket.bind({ hostname: "0.0.0.0", port: 0 }));
 * const transport = new QuicTransport({
 *   identity: Identity.generate(),
 *   socket: relaySocket,
 *   config: {
 *     turnServers: [{ address: "192.0.2.1:3478", username: "test", password: "secret" }],
 *   },
 * });
 * await transport.bindAndListen();
 * await using relay = new RelayService(transport, { relaySocket });
 * console.log("relayed at", await relay.start());
 * const bootstrap = await transport.connectPeer("198.51.100.1:9001");
 * const peer = await relay.connect("<the other peer's id>", { via: bootstrap });
 * console.assert(relay.path(peer) === "relay");
 * ```
 */
export class RelayService extends TypedEventTarget<RelayServiceEventMap>
  implements AsyncDisposable {
  readonly #transport: QuicTransport;
  readonly #socket: RelaySocket | undefined;
  readonly #servers: readonly TurnServerConfig[];
  readonly #lifetime: number;
  readonly #signalTimeoutMs: number;
  readonly #clock: Clock;
  /**
   * Relayed addresses this service registered, with the timer that forgets an unused one;
   * `pending` until a peer connected through it.
   */
  readonly #registered = new Map<
    string,
    { address: UdpAddress; forget: () => void; pending: boolean }
  >();
  readonly #signals: PeerRateLimiter;
  #turn: TurnClient | undefined;
  #starting: Promise<UdpAddress | undefined> | undefined;
  #expired: TurnError | undefined;
  #removeHandler: (() => void) | undefined;
  #closed = false;

  /**
   * Creates the service; nothing happens until {@linkcode RelayService.start}.
   *
   * @example A forwarding-only service on a public node
   * ```ts
   * import { Identity, QuicTransport, RelayService } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({
   *   identity: Identity.generate(),
   *   config: { listenAddr: "127.0.0.1", quicPort: 0 },
   * });
   * await transport.bindAndListen();
   * await using relay = new RelayService(transport);
   * console.assert((await relay.start()) === undefined); // no TURN servers: forwards only
   * ```
   *
   * @param transport The transport, created with `socket: relaySocket` when relaying itself.
   * @param options The relay socket, TURN servers, lifetime, timeouts, clock.
   * @throws {InvalidConfigError} If an option breaks its rule, or TURN servers are given
   * without a relay socket.
   */
  constructor(transport: QuicTransport, options: RelayServiceOptions = {}) {
    super();
    const {
      relaySocket,
      turnServers = transport.config.turnServers,
      lifetimeSecs: lifetime = 600,
      signalTimeoutMs = transport.config.requestTimeoutMs,
      clock = systemClock,
    } = options;
    if (!Array.isArray(turnServers)) {
      throw new InvalidConfigError("turnServers", "an array", turnServers);
    }
    turnServers.forEach((s, i) => {
      try {
        parseAddress(s?.address);
      } catch {
        throw new InvalidConfigError(
          `turnServers[${i}].address`,
          "a HOST:PORT address",
          s?.address,
        );
      }
    });
    if (turnServers.length > 0 && relaySocket === undefined) {
      throw new InvalidConfigError(
        "relaySocket",
        "the RelaySocket the transport runs on, when turnServers are set",
        relaySocket,
      );
    }
    if (!(Number.isInteger(lifetime) && lifetime > 0 && lifetime <= 0xffffffff)) {
      throw new InvalidConfigError(
        "lifetimeSecs",
        "a positive integer number of seconds",
        lifetime,
      );
    }
    if (!(Number.isInteger(signalTimeoutMs) && signalTimeoutMs > 0)) {
      throw new InvalidConfigError("signalTimeoutMs", "a positive integer of ms", signalTimeoutMs);
    }
    this.#transport = transport;
    this.#socket = relaySocket;
    this.#servers = turnServers.map((s) => ({ ...s }));
    this.#lifetime = lifetime;
    this.#signalTimeoutMs = signalTimeoutMs;
    this.#clock = clock;
    this.#signals = new PeerRateLimiter(
      SIGNALS_PER_SECOND,
      SIGNALS_BURST,
      RATE_TRACKED_PEERS,
      clock,
    );
  }

  /** This node's relayed address, once allocated and while not expired. */
  get relayedAddress(): UdpAddress | undefined {
    return this.#turn === undefined || this.#expired !== undefined
      ? undefined
      : this.#turn.relayedAddress;
  }

  /** The TURN client of the current allocation (lifetime, expiry, server), if any. */
  get turn(): TurnClient | undefined {
    return this.#turn;
  }

  /**
   * Starts answering the signalling protocol and allocates on the first TURN server that
   * grants an allocation (the transport must be bound). Again after an expiry, it allocates
   * anew; otherwise it returns the current allocation.
   *
   * @example
   * ```ts ignore
   * const relayed = await relay.start(); // { hostname: "192.0.2.1", port: 49170 }
   * ```
   *
   * @returns The relayed address, or `undefined` when there are no TURN servers (forwarding
   * only).
   * @throws {TurnError} Of the first server when none granted one: `ERR_TURN_AUTH` (wrong
   * credentials), `ERR_TURN` (no answer, another error response).
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` if the service or transport is closed or the
   * transport is not bound.
   */
  start(): Promise<UdpAddress | undefined> {
    if (this.#closed) return Promise.reject(closedError("start"));
    if (this.#turn !== undefined && this.#expired === undefined) {
      return Promise.resolve(this.#turn.relayedAddress);
    }
    this.#starting ??= this.#start().finally(() => this.#starting = undefined);
    return this.#starting;
  }

  /**
   * How a connected peer is reached.
   *
   * @example
   * ```ts ignore
   * if (relay.path(peer) === "relay") console.log("relayed through", relay.turn?.server);
   * ```
   *
   * @param peerId The peer.
   * @returns `"relay"` or `"direct"`, or `undefined` when the peer is not connected.
   */
  path(peerId: PeerId | string): PeerPath | undefined {
    const id = typeof peerId === "string" ? peerId : peerId.toString();
    const info = this.#transport.peers().find((p) => p.peerId.toString() === id);
    if (info === undefined) return undefined;
    const address = parseAddress(info.addresses[0]);
    return this.#socket?.isRelayed(address) ? "relay" : "direct";
  }

  /**
   * Connects to a peer through the TURN relays: swaps relayed addresses with it through a
   * connected peer, registers its relayed address on the relay socket (permission and
   * channel), then dials it with `connectPeer(address, { expectedPeerId })`. A peer already
   * connected resolves at once, on whatever path it has.
   *
   * @example
   * ```ts ignore
   * const peer = await relay.connect(otherPeerId, { via: bootstrapPeerId });
   * await transport.send(peer, { type: "vertex", data });
   * ```
   *
   * @param peerId The peer to reach.
   * @param options The peer to signal through, abort signal.
   * @returns The peer's id, once the handshake over the relay is done.
   * @throws {TurnError} `ERR_TURN_ALLOCATION_EXPIRED` if the allocation expired; `ERR_TURN`
   * if a channel to the peer could not be bound.
   * @throws {NetworkError} `ERR_NAT_TRAVERSAL_FAILED` if no peer to signal through answered
   * with the peer's relayed address (the message says why); `ERR_ENDPOINT_CLOSED` before
   * {@linkcode RelayService.start} or after close; the errors of `connectPeer` (handshake,
   * `ERR_PEER_ID_MISMATCH`, timeouts).
   */
  async connect(peerId: PeerId | string, options: RelayConnectOptions = {}): Promise<PeerId> {
    const target = toPeerId(peerId);
    const { via, signal } = options;
    if (this.path(target) !== undefined) return target;
    const turn = this.#usable("connect");
    const relays = via === undefined
      ? this.#transport.peers().slice(0, MAX_VIA_TRIES).map((p) => p.peerId)
      : [toPeerId(via)];
    if (relays.length === 0) {
      throw new NetworkError(
        "ERR_NAT_TRAVERSAL_FAILED",
        `Cannot relay to ${target}: no connected peer to signal through`,
      );
    }
    const own = formatAddress(turn.relayedAddress);
    const failures: string[] = [];
    let answer: UdpAddress | undefined;
    for (const relay of relays) {
      const offer: Offer = { t: "forward", to: target.toString(), relayed: own };
      try {
        const bytes = await this.#transport.request(relay, RELAY_PROTOCOL, encode(offer), {
          signal,
          timeoutMs: this.#signalTimeoutMs,
        });
        answer = parseAnswer(bytes);
        break;
      } catch (e) {
        if (signal?.aborted) throw e;
        failures.push(`via ${relay}: ${(e as Error).message}`);
      }
    }
    if (answer === undefined) {
      throw new NetworkError(
        "ERR_NAT_TRAVERSAL_FAILED",
        `Cannot relay to ${target}: ${failures.join("; ")}`,
      );
    }
    await this.#register(answer, turn);
    try {
      return await this.#transport.connectPeer(answer, { expectedPeerId: target, signal });
    } catch (e) {
      this.#unregister(answer);
      throw e;
    }
  }

  /**
   * The shape of the NAT service's `fallback` hook: reaches a peer through the relay.
   *
   * @example
   * ```ts ignore
   * const nat = new NatService(transport, { fallback: relay.fallback });
   * ```
   *
   * @param peerId The peer the direct attempt could not reach.
   * @param info A connected peer to signal through, abort signal.
   * @returns The peer's id once connected over the relay.
   */
  readonly fallback = (peerId: PeerId | string, info: RelayFallbackInfo = {}): Promise<PeerId> =>
    this.connect(peerId, { via: info.via, signal: info.signal });

  /**
   * Stops answering the protocol, forgets the relayed peers it registered and frees the
   * allocation. Connections over the relay stop working. Close the service before the
   * transport: freeing the allocation sends through the transport's socket (after it closed,
   * the server frees the allocation only when its lifetime runs out). Idempotent.
   *
   * @returns Resolves once the allocation is freed (or the server did not answer).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#removeHandler?.();
    this.#transport.removeEventListener("peer:connected", this.#onConnected);
    this.#transport.removeEventListener("peer:disconnected", this.#onDisconnected);
    this.#transport.removeEventListener("peer:migrated", this.#onMigrated);
    for (const key of [...this.#registered.keys()]) this.#unregister(parseAddress(key));
    await this.#starting?.catch(() => {});
    await this.#turn?.close();
  }

  /** Same as {@linkcode RelayService.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #start(): Promise<UdpAddress | undefined> {
    if (this.#removeHandler === undefined) {
      this.#removeHandler = this.#transport.handle(RELAY_PROTOCOL, (r, c) => this.#answer(r, c));
      this.#transport.addEventListener("peer:connected", this.#onConnected);
      this.#transport.addEventListener("peer:disconnected", this.#onDisconnected);
      this.#transport.addEventListener("peer:migrated", this.#onMigrated);
    }
    if (this.#servers.length === 0) return undefined;
    const port = this.#transport.datagramPort;
    const errors: unknown[] = [];
    for (const server of this.#servers) {
      try {
        const turn = await TurnClient.allocate(port, {
          server: parseAddress(server.address),
          username: server.username,
          password: server.password,
          lifetimeSecs: this.#lifetime,
          clock: this.#clock,
        });
        if (this.#closed) {
          await turn.close();
          throw closedError("start");
        }
        const old = this.#turn;
        this.#turn = turn;
        this.#expired = undefined;
        networkMetrics()?.relayAllocations.add(1, { outcome: "allocated" });
        turn.onExpired = (error) => {
          if (this.#turn !== turn) return;
          this.#expired = error;
          networkMetrics()?.relayAllocations.add(1, { outcome: "expired" });
          this.dispatchEvent(new CustomEvent("relay:expired", { detail: error }));
        };
        await old?.close();
        return turn.relayedAddress;
      } catch (e) {
        if (this.#closed) throw e;
        networkMetrics()?.relayAllocations.add(1, { outcome: "failed" });
        errors.push(e);
      }
    }
    throw errors[0];
  }

  /** Answers a signalling request: forwards it, or takes an offer. */
  async #answer(request: Uint8Array, context: RequestContext): Promise<Uint8Array> {
    try {
      if (!this.#signals.take(context.peerId.toString())) {
        throw new NetworkError(
          "ERR_LIMIT_EXCEEDED",
          `more than ${SIGNALS_PER_SECOND} relay signalling requests a second from ${context.peerId}`,
        );
      }
      const offer = parseOffer(request);
      if (offer.t === "forward") {
        const target = PeerId.parse(offer.to!);
        if (target.equals(context.peerId) || target.equals(this.#transport.peerId)) {
          throw new NetworkError("ERR_NAT_TRAVERSAL_FAILED", `cannot forward to ${target}`);
        }
        const forwarded: Offer = {
          t: "offer",
          from: context.peerId.toString(),
          relayed: offer.relayed,
        };
        // The target's answer goes back as it is; the requester checks it.
        return await this.#transport.request(target, RELAY_PROTOCOL, encode(forwarded), {
          timeoutMs: this.#signalTimeoutMs,
        });
      }
      const turn = this.#usable("take a relay offer");
      // A relayed address is on a TURN server: a loopback or private one only in a scope this
      // node reaches its own TURN server or sees the requester in.
      const basis = [
        turn.relayedAddress.hostname,
        ...observedHosts(this.#transport, context.peerId),
      ];
      const [address] = withBasis([parseAddress(offer.relayed)], basis, 1);
      if (address === undefined) {
        throw new NetworkError(
          "ERR_NAT_TRAVERSAL_FAILED",
          `Cannot relay ${offer.relayed}: not an address this node may send to on a peer's word`,
        );
      }
      const pending = [...this.#registered.values()].filter((e) => e.pending).length;
      if (pending >= MAX_PENDING_OFFERS && !this.#registered.has(formatAddress(address))) {
        throw new NetworkError(
          "ERR_LIMIT_EXCEEDED",
          `Cannot take a relay offer: ${MAX_PENDING_OFFERS} are waiting for their peer`,
        );
      }
      await this.#register(address, turn);
      return encode({ relayed: formatAddress(turn.relayedAddress) });
    } catch (e) {
      const code = e instanceof NetworkError ? e.code : "ERR_NAT_TRAVERSAL_FAILED";
      return encode({ error: { code, message: (e as Error).message } });
    }
  }

  /** Relays `address` on the socket; forgotten if no peer connects from it in time. */
  async #register(address: UdpAddress, turn: TurnClient): Promise<void> {
    await this.#socket!.addPeer(address, turn);
    const key = formatAddress(address);
    this.#registered.get(key)?.forget();
    const c = this.#transport.config;
    const forget = this.#clock.schedule(
      () => this.#unregister(address),
      c.connectionTimeoutMs + c.handshakeTimeoutMs,
    );
    this.#registered.set(key, { address, forget, pending: true });
  }

  #unregister(address: UdpAddress): void {
    const key = formatAddress(address);
    const entry = this.#registered.get(key);
    if (entry === undefined) return;
    entry.forget();
    this.#registered.delete(key);
    this.#socket?.removePeer(address);
  }

  #onConnected = (e: TransportEventMap["peer:connected"]): void => {
    const detail: PeerConnectedDetail = e.detail;
    const entry = this.#registered.get(formatAddress(detail.address));
    if (entry === undefined) return;
    // In use: kept until the peer disconnects.
    entry.forget();
    entry.forget = () => {};
    entry.pending = false;
    this.dispatchEvent(
      new CustomEvent("relay:connected", {
        detail: {
          peerId: detail.peerId,
          address: detail.address,
          direction: detail.direction,
          path: "relay",
        },
      }),
    );
  };

  #onDisconnected = (e: TransportEventMap["peer:disconnected"]): void => {
    this.#unregister(e.detail.address);
  };

  /** A relayed peer that moved keeps its relay until the old connection closed. */
  #onMigrated = (e: TransportEventMap["peer:migrated"]): void => {
    const { previousAddress, retired } = e.detail;
    if (!this.#registered.has(formatAddress(previousAddress))) return;
    retired.then(() => this.#unregister(previousAddress));
  };

  #usable(what: string): TurnClient {
    if (this.#closed) throw closedError(what);
    if (this.#expired !== undefined) throw this.#expired;
    if (this.#turn === undefined) {
      throw new NetworkError(
        "ERR_ENDPOINT_CLOSED",
        `Cannot ${what}: no TURN allocation, call start() with turnServers configured`,
      );
    }
    return this.#turn;
  }
}

function toPeerId(peer: PeerId | string): PeerId {
  return peer instanceof PeerId ? peer : PeerId.parse(peer);
}

function closedError(what: string): NetworkError {
  return new NetworkError("ERR_ENDPOINT_CLOSED", `Cannot ${what}: the relay service is closed`);
}

function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function decodeJson(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.byteLength > MAX_SIGNAL_BYTES) {
    throw new NetworkError(
      "ERR_MALFORMED_FRAME",
      `relay signalling message of ${bytes.byteLength} bytes, above ${MAX_SIGNAL_BYTES}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    value = undefined;
  }
  if (typeof value !== "object" || value === null) {
    throw new NetworkError("ERR_MALFORMED_FRAME", "relay signalling message is not a JSON object");
  }
  return value as Record<string, unknown>;
}

function parseOffer(bytes: Uint8Array): Offer {
  const o = decodeJson(bytes);
  const ok = (o.t === "offer" || (o.t === "forward" && typeof o.to === "string")) &&
    typeof o.relayed === "string";
  if (!ok) throw new NetworkError("ERR_MALFORMED_FRAME", "relay signalling: not an offer");
  return o as unknown as Offer;
}

/** The peer's relayed address from an answer, or the error it carries. */
function parseAnswer(bytes: Uint8Array): UdpAddress {
  const o = decodeJson(bytes);
  if (typeof o.relayed === "string") return parseAddress(o.relayed);
  const error = o.error as { code?: unknown; message?: unknown } | undefined;
  throw new NetworkError(
    "ERR_NAT_TRAVERSAL_FAILED",
    `the peer refused: ${String(error?.code)} ${String(error?.message)}`,
  );
}
