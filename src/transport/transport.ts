/**
 * `QuicTransport`: authenticated, post-quantum sealed messaging between peers over QUIC. This
 * file is the API and the wiring; the pieces live beside it (`_secure_session.ts`,
 * `_peer_connection.ts`, `codec.ts`, ...). NAT traversal, mDNS and the DHT are services built
 * on this public API (`connectPeer`, `handle`, `request`, events).
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { networkMetrics } from "../metrics/_network_metrics.ts";
import { observeTransport } from "../metrics/_transport_metrics.ts";
import {
  ConnectionClosedError,
  InvalidAddressError,
  InvalidConfigError,
  NetworkError,
} from "../errors.ts";
import { MAX_TIMER_DELAY_MS } from "../_timer.ts";
import { Identity } from "../identity/identity.ts";
import {
  NodeCredentials,
  PeerCertificateCache,
  type VerifiedPeer,
} from "../handshake/node_credentials.ts";
import { SessionTicketStore } from "../handshake/session_tickets.ts";
import { PeerId } from "../identity/peer_id.ts";
import { checkAddress, formatAddress, parseAddress } from "../quic/address.ts";
import type { QuicConnection } from "../quic/connection.ts";
import type { RawDatagramPort, UdpAddress } from "../quic/datagram_port.ts";
import type { DatagramSocket } from "../quic/udp_socket.ts";
import { QuicEndpoint } from "../quic/endpoint.ts";
import { BandwidthLimiter } from "../pool/bandwidth_limiter.ts";
import {
  APP_ERROR_BANNED,
  APP_ERROR_DUPLICATE_CONNECTION,
  APP_ERROR_EVICTED,
  APP_ERROR_HANDSHAKE_RATE,
  APP_ERROR_IDLE_TIMEOUT,
  APP_ERROR_LIMIT_EXCEEDED,
  APP_ERROR_NOT_ALLOWED,
  APP_ERROR_TRAFFIC_WATCHDOG,
  type LimitKind,
  type LimitViolation,
  ResourceLimits,
} from "../pool/limits.ts";
import { RateMeter } from "../pool/rate_meter.ts";
import { HandshakeRateLimiter } from "../pool/handshake_rate.ts";
import { isLoopback } from "../_address_prefix.ts";
import { SingleFlight } from "../pool/single_flight.ts";
import { type Clock, systemClock } from "../clock.ts";
import { type AdmissionCandidate, AdmissionPolicy, type OpenSignal } from "./admission_policy.ts";
import { PeerScore, type PeerScoreOptions, type PenaltyReason } from "./peer_score.ts";
import type { NetworkMessage } from "./codec.ts";
import { type NetworkConfig, type ResolvedNetworkConfig, resolveNetworkConfig } from "./config.ts";
import type { ConnectionDirection, TransportEventMap } from "./events.ts";
import { TypedEventTarget } from "./events.ts";
import { checkProtocolId, decodeControl, encodeControl, hashId } from "./_frames.ts";
import { newIncarnation } from "./_incarnation.ts";
import { FrameReader, FrameWriter } from "./_framed_stream.ts";
import { InboundQueue } from "./_inbound_queue.ts";
import { receiveWindowBytes } from "./_byte_budget.ts";
import {
  PeerConnection,
  type PeerHost,
  type QueuedMessage,
  withDeadline,
} from "./_peer_connection.ts";
import type { InboundMessage, PeerStats, RequestHandler } from "./peer_api.ts";
import { acceptSession, closeCodeOf, dialSession, type SecureSession } from "./_secure_session.ts";
import { APP_ERROR_HANDSHAKE_TIMEOUT, APP_ERROR_STALE_INCARNATION } from "./close_codes.ts";

const log = getLogger(["cretoai", "transport"]);

/** How often the traffic watchdog samples each connection's QUIC counters. */
const WATCHDOG_INTERVAL_MS = 10_000;

/**
 * QUIC flow-control windows a connection starts with; quiche auto-tunes them up to the
 * receive window the per-peer budget allows (`receiveWindowBytes`).
 */
const PRE_AUTH_CONNECTION_WINDOW_BYTES = 1024 * 1024;
const PRE_AUTH_STREAM_WINDOW_BYTES = 256 * 1024;

/** Options of {@linkcode QuicTransport}'s constructor. */
export interface QuicTransportOptions {
  /** This node's long-term identity; its peer id is the node's name. */
  identity: Identity;
  /**
   * Network settings; see {@linkcode NetworkConfig} for each field's default.
   * @default {{}}
   */
  config?: NetworkConfig;
  /**
   * The UDP socket to run on instead of binding `listenAddr:quicPort`, for example a
   * `RelaySocket` so that connections can also run through a TURN relay.
   */
  socket?: DatagramSocket;
  /**
   * Source of time of the admission rules (a dial refused as a duplicate waits on it for the
   * connection that won), the pool's idle collection, bans and rates; a test passes a virtual
   * clock.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * The only peers admitted, inbound or outbound: a permissioned committee lists its members
   * and nobody else gets past the handshake (refused with `ERR_PEER_NOT_ALLOWED`, close code
   * `APP_ERROR_NOT_ALLOWED`).
   * @default {undefined} (any authenticated peer)
   */
  allowedPeers?: Iterable<PeerId | string>;
  /**
   * Decides by peer id and address, after the handshake and before the peer is registered;
   * `false` refuses it as `allowedPeers` does. Called for peers the allowlist let through.
   * @default {undefined} (every peer)
   */
  gate?: ConnectionGate;
  /**
   * Penalty points of protocol violations (malformed frames, failed decryption, broken
   * limits, and what services report through {@linkcode QuicTransport.penalize}); a peer
   * reaching the threshold is banned for `autoBanMs`.
   * @default {{}} (see {@linkcode PeerScoreOptions} for each default)
   */
  peerScore?: Omit<PeerScoreOptions, "clock">;
  /**
   * How long a peer whose score reached the threshold stays banned, in milliseconds.
   * @default {3600000} 1 hour.
   */
  autoBanMs?: number;
}

/**
 * A ban as {@linkcode QuicTransport.bans} lists it: plain data, to persist and to restore with
 * `transport.ban(peerId, expiresAt - Date.now(), reason)`.
 */
export interface BanInfo {
  /** The banned peer's id. */
  peerId: string;
  /** Why. */
  reason: string;
  /** When the ban ends, in milliseconds since the epoch; `null` for never. */
  expiresAt: number | null;
}

/**
 * A connection gate: whether to admit an authenticated peer at an address.
 *
 * @example Only peers on private addresses
 * ```ts
 * import type { ConnectionGate } from "@cretoai/network";
 *
 * const gate: ConnectionGate = ({ address }) => address.hostname.startsWith("10.");
 * ```
 */
export type ConnectionGate = (candidate: GateCandidate) => boolean;

/** What a {@linkcode ConnectionGate} decides on. */
export interface GateCandidate {
  /** The authenticated peer. */
  peerId: PeerId;
  /** The peer's address on this connection. */
  address: UdpAddress;
  /** Whether this node dialed. */
  direction: ConnectionDirection;
}

/** Options of {@linkcode QuicTransport.connectPeer}. */
export interface ConnectPeerOptions {
  /**
   * The peer id expected at the address; another peer fails with `ERR_PEER_ID_MISMATCH`
   * before any application data flows.
   * @default {undefined} (any authenticated peer is accepted)
   */
  expectedPeerId?: PeerId | string;
  /** Abandons the dial (shared by concurrent dials of the same address). */
  signal?: AbortSignal;
}

/**
 * Finds addresses of a peer that {@linkcode QuicTransport.connectPeer} was given by id only;
 * services such as the DHT register one with {@linkcode QuicTransport.addPeerResolver}.
 */
export type PeerResolver = (peerId: PeerId, signal?: AbortSignal) => Promise<readonly string[]>;

/** Options of {@linkcode QuicTransport.migratePeer}. */
export interface MigratePeerOptions {
  /** Abandons the new connection's dial; the peer stays on its current connection. */
  signal?: AbortSignal;
}

/** Options of {@linkcode QuicTransport.send}. */
export interface SendOptions {
  /**
   * Stops waiting. A message already handed to QUIC may still be delivered.
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode QuicTransport.request}. */
export interface RequestOptions {
  /** Abandons the request and resets its stream. */
  signal?: AbortSignal;
  /**
   * Time the response may take, in milliseconds.
   * @default {the config's `requestTimeoutMs`}
   */
  timeoutMs?: number;
}

/** A connected peer. */
export interface PeerInfo {
  /** The peer's id. */
  peerId: PeerId;
  /** The peer's addresses as `HOST:PORT` (the connection's current one). */
  addresses: string[];
  /** Whether this node dialed. */
  direction: ConnectionDirection;
  /** Traffic counters and latency. */
  stats: PeerStats;
}

/**
 * Node-wide counters of a {@linkcode QuicTransport}, from {@linkcode QuicTransport.stats}.
 *
 * @example Watching limit violations
 * ```ts
 * import type { TransportStats } from "@cretoai/network";
 *
 * function refusedTotal(stats: TransportStats): number {
 *   return Object.values(stats.limitViolations).reduce((sum, n) => sum + n, 0);
 * }
 * ```
 */
export interface TransportStats {
  /** Peers connected now. */
  peers: number;
  /** Inbound identity handshakes in progress now. */
  pendingHandshakes: number;
  /** Connections closed for breaking a resource limit, by limit, since the transport started. */
  limitViolations: Record<LimitKind, number>;
  /** Connections closed after `idleTimeoutMs` without use. */
  idleClosed: number;
  /** Connections closed to make room in a full pool. */
  evicted: number;
  /**
   * Inbound connections refused because their address or prefix started handshakes too fast:
   * closed with 0x16 after the QUIC handshake, or, while the source is still over its rate,
   * their Initial refused before any TLS work (CONNECTION_REFUSED in a stateless Initial
   * packet, or no answer beyond the endpoint's bound on those).
   */
  handshakesRateLimited: number;
  /** Inbound connections closed for staying silent after the QUIC handshake. */
  silentHandshakesClosed: number;
  /**
   * Identity handshakes, in either direction, that resumed a session from a ticket (one round
   * trip, no ML-KEM operation: docs/handshake.md, "Resumption").
   */
  handshakesResumed: number;
  /** Connections the traffic watchdog closed (packets without useful traffic). */
  watchdogClosed: number;
  /** Node-wide send rate over the last second, in bytes per second (frames as written). */
  sendBytesPerSecond: number;
  /** Node-wide receive rate over the last second, in bytes per second. */
  receiveBytesPerSecond: number;
}

/** The outcome of a broadcast for one peer. */
export type BroadcastResult =
  | {
    /** The peer. */
    peerId: PeerId;
    /** The peer acknowledged the message. */
    ok: true;
  }
  | {
    /** The peer. */
    peerId: PeerId;
    /** The send failed. */
    ok: false;
    /** Why. */
    error: Error;
  };

/**
 * A peer-to-peer transport over QUIC. Every connection runs the identity handshake on its
 * first stream before anything else; with `pqEncryption` every frame is then sealed with
 * ChaCha20-Poly1305 under ML-KEM-768 session keys inside TLS.
 *
 * Delivery guarantee of {@linkcode QuicTransport.send}: the promise resolves once the peer's
 * transport has decoded the whole message, authenticated it and put it in its `messages()`
 * queue (a light acknowledgement on the connection's control stream, cumulative per lane).
 * It rejects if that cannot happen: the connection dies before the acknowledgement (with
 * `ConnectionClosedError`; the message may or may not have reached the peer's queue), the
 * message is too large, the signal aborts. Messages of one traffic class (consensus, vertex,
 * other) arrive in send order; classes travel on separate streams, so a consensus message
 * never waits behind a large vertex.
 *
 * @example Two nodes exchange a message
 * ```ts
 * import { Identity, QuicTransport } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
 * await using a = new QuicTransport({ identity: Identity.generate(), config });
 * await using b = new QuicTransport({ identity: Identity.generate(), config });
 * await a.bindAndListen();
 * const { port } = await b.bindAndListen();
 * const remote = await a.connectPeer(`127.0.0.1:${port}`);
 * await a.send(remote, { type: "vertex", data: new Uint8Array([1, 2, 3]) });
 * for await (const { from, message } of b.messages()) {
 *   console.assert(from.equals(a.peerId) && message.type === "vertex");
 *   break;
 * }
 * ```
 */
export class QuicTransport extends TypedEventTarget<TransportEventMap> implements AsyncDisposable {
  /** The configuration with defaults applied. */
  readonly config: ResolvedNetworkConfig;
  readonly #identity: Identity;
  /** Made when binding: the certificate binding this run's TLS and ML-KEM keys to the identity. */
  #credentials: NodeCredentials | undefined;
  /** Peers' certificates whose identity binding verified, so reconnects verify nothing. */
  readonly #certificateCache = new PeerCertificateCache();
  /** Resumption tickets: a reconnect to a peer's run skips ML-KEM and a round trip. */
  readonly #tickets = new SessionTicketStore();
  #endpoint: QuicEndpoint | undefined;
  #socket: DatagramSocket | undefined;
  #binding: Promise<UdpAddress> | undefined;
  #peers = new Map<string, PeerConnection>();
  #handlers = new Map<string, RequestHandler>();
  #dials = new SingleFlight<string, PeerId>();
  /** Own migration dials in flight, by peer id. */
  #migrations = new SingleFlight<string, PeerId>();
  #resolvers = new Set<PeerResolver>();
  #inbound: InboundQueue<QueuedMessage>;
  #limiter: BandwidthLimiter | undefined;
  #admission: AdmissionPolicy<PeerConnection>;
  /** This process's incarnation, sent in `open` and `ready` frames. */
  readonly #incarnation = newIncarnation();
  #clock: Clock;
  #scores: PeerScore;
  /** Wall-clock time minus the clock's, fixed at construction: ban ends in epoch time. */
  #epochOffsetMs: number;
  #autoBanMs: number;
  #limits: ResourceLimits;
  #handshakeRates: HandshakeRateLimiter;
  #handshakesRateLimited = 0;
  #silentClosed = 0;
  #handshakesResumed = 0;
  #watchdogClosed = 0;
  #cancelWatchdog: (() => void) | undefined;
  /** Inbound connections in their identity handshake; `release` frees the slot once. */
  #pendingInbound = new Map<QuicConnection, { release: () => void }>();
  #sendMeter = new RateMeter();
  #receiveMeter = new RateMeter();
  #cancelIdleTimer: (() => void) | undefined;
  #idleTimerAt = Infinity;
  #idleClosed = 0;
  #evicted = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  #host: PeerHost;
  #stopMetrics: (() => void) | undefined;

  /**
   * Creates a transport; nothing is bound until {@linkcode QuicTransport.bindAndListen}.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * const transport = new QuicTransport({ identity: Identity.generate(), config: { quicPort: 0 } });
   * console.assert(transport.config.maxConnections === 100);
   * await transport.close();
   * ```
   *
   * @param options Identity and configuration.
   * @throws {InvalidConfigError} naming the field, the rule and the value, for a bad config.
   */
  constructor(options: QuicTransportOptions) {
    super();
    const {
      identity,
      config = {},
      socket,
      clock = systemClock,
      allowedPeers,
      gate,
      peerScore = {},
      autoBanMs = 3_600_000,
    } = options ?? {};
    if (!(typeof autoBanMs === "number" && autoBanMs > 0)) {
      throw new InvalidConfigError("autoBanMs", "a number of milliseconds above 0", autoBanMs);
    }
    this.#autoBanMs = autoBanMs;
    this.#scores = new PeerScore({ ...peerScore, clock });
    if (!(identity instanceof Identity)) {
      throw new InvalidConfigError("identity", "an Identity", identity);
    }
    this.#identity = identity;
    this.#socket = socket;
    this.#clock = clock;
    this.#epochOffsetMs = Date.now() - clock.now();
    this.config = resolveNetworkConfig(config);
    const c = this.config;
    this.#inbound = new InboundQueue(c.inboundQueueLength, c.inboundQueueBytes);
    if (c.maxBandwidthBps !== Infinity || c.maxPeerBandwidthBps !== Infinity) {
      // Buckets in bytes; a burst of a tenth of a second, at least a few large frames.
      const totalRate = c.maxBandwidthBps / 8;
      const peerRate = c.maxPeerBandwidthBps / 8;
      const burst = (rate: number) =>
        rate === Infinity ? 256 * 1024 : Math.max(256 * 1024, rate / 10);
      this.#limiter = new BandwidthLimiter({
        totalRate,
        totalBurst: burst(totalRate),
        peerRate,
        peerBurst: burst(peerRate),
      });
    }
    this.#admission = new AdmissionPolicy({
      localPeerId: identity.peerId.toString(),
      maxConnections: c.maxConnections,
      idleTimeoutMs: c.idleTimeoutMs === 0 ? Infinity : c.idleTimeoutMs,
      allowedPeers: allowedPeers === undefined
        ? undefined
        : [...allowedPeers].map((p) => toPeerId(p).toString()),
      gate: gate === undefined ? undefined : (candidate: AdmissionCandidate) =>
        gate({
          peerId: PeerId.parse(candidate.peer),
          address: parseAddress(candidate.address),
          direction: candidate.direction,
        }),
      incarnation: this.#incarnation,
      clock,
    });
    this.#limits = new ResourceLimits({
      inboundPerIp: c.maxInboundPerIp,
      pendingHandshakes: c.maxPendingHandshakes,
      streamsPerPeer: c.maxStreamsPerPeer,
      messageBytes: c.maxMessageBytes,
      bufferedBytesPerPeer: c.maxBufferedBytesPerPeer,
    });
    this.#handshakeRates = new HandshakeRateLimiter({
      ratePerIp: c.inboundHandshakeRatePerIp,
      burstPerIp: c.inboundHandshakeBurstPerIp,
      ratePerPrefix: c.inboundHandshakeRatePerPrefix,
      burstPerPrefix: c.inboundHandshakeBurstPerPrefix,
      limitLoopback: c.limitLoopback,
      clock,
    });
    const metrics = networkMetrics();
    this.#stopMetrics = metrics && observeTransport(this, metrics, {
      pathOf: (address) => socket?.isRelayed?.(address) ? "relay" : "direct",
      queueDepth: () => this.#inbound.length,
    });
    this.#host = {
      metrics,
      maxMessageBytes: c.maxMessageBytes,
      requestTimeoutMs: c.requestTimeoutMs,
      inbound: this.#inbound,
      limiter: this.#limiter,
      limits: this.#limits,
      sendMeter: this.#sendMeter,
      receiveMeter: this.#receiveMeter,
      handler: (id) => this.#handlers.get(id),
      touch: (peer) => this.#admission.touch(peer.key),
      penalize: (peer, reason) => this.penalize(peer.peerId, reason),
      closed: (peer, error) => this.#onPeerClosed(peer, error),
    };
  }

  /** This node's peer id. */
  get peerId(): PeerId {
    return this.#identity.peerId;
  }

  /**
   * The node's UDP socket for datagrams that are not QUIC (STUN, TURN, hole punches): the
   * NAT mapping they find or open is the one QUIC uses.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({
   *   identity: Identity.generate(),
   *   config: { listenAddr: "127.0.0.1", quicPort: 0 },
   * });
   * await transport.bindAndListen();
   * console.assert(transport.datagramPort.localAddr.port === transport.localAddr.port);
   * ```
   *
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` before {@linkcode QuicTransport.bindAndListen}.
   */
  get datagramPort(): RawDatagramPort {
    return this.#requireEndpoint("use the datagram port");
  }

  /**
   * The bound UDP address.
   *
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` before {@linkcode QuicTransport.bindAndListen}.
   */
  get localAddr(): UdpAddress {
    return this.#requireEndpoint("read localAddr").localAddr;
  }

  /**
   * Binds the QUIC endpoint to `listenAddr:quicPort` and starts accepting peers.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({
   *   identity: Identity.generate(),
   *   config: { listenAddr: "127.0.0.1", quicPort: 0 },
   * });
   * const { hostname, port } = await transport.bindAndListen();
   * console.assert(hostname === "127.0.0.1" && port > 0);
   * ```
   *
   * @returns The bound hostname and port.
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` after close; the bind error when the port is
   * taken.
   */
  bindAndListen(): Promise<UdpAddress> {
    if (this.#closing !== undefined) return Promise.reject(closedError("bind"));
    this.#binding ??= this.#bind();
    return this.#binding;
  }

  /**
   * Connects to a peer, runs the handshake and resolves with the peer's id once both sides
   * accepted the connection. Concurrent calls for one address share one dial; an address or
   * peer already connected resolves at once. When two peers dial each other at the same
   * time, both end up on the connection the `keepOutbound` rule picks. Given a `PeerId`, the
   * transport asks its peer resolvers (see {@linkcode QuicTransport.addPeerResolver}) for
   * addresses and dials them in turn, expecting that peer.
   *
   * @example
   * ```ts ignore
   * const remote = await transport.connectPeer("127.0.0.1:9002", { expectedPeerId });
   * ```
   *
   * @param address `HOST:PORT`, an address object, or the `PeerId` of the peer.
   * @param options Expected peer id and abort signal.
   * @returns The remote peer's id.
   * @throws {InvalidAddressError} for an invalid address or this node's own.
   * @throws {NetworkError} `ERR_CONNECT_TIMEOUT`, `ERR_HANDSHAKE_TIMEOUT`,
   * `ERR_HANDSHAKE_FAILED`, `ERR_PEER_ID_MISMATCH`, `ERR_LIMIT_EXCEEDED` (pool full of
   * protected peers), `ERR_ABORTED`, `ERR_ENDPOINT_CLOSED`; `ERR_UNKNOWN_PEER` for a
   * `PeerId` no resolver found an address of (else the last dial's error).
   * @throws {ConnectionClosedError} when the peer refuses the connection.
   */
  async connectPeer(
    address: string | UdpAddress | PeerId,
    options: ConnectPeerOptions = {},
  ): Promise<PeerId> {
    if (address instanceof PeerId) return await this.#connectById(address, options.signal);
    const endpoint = this.#requireEndpoint("connect");
    const remote = typeof address === "string" ? parseAddress(address) : checkAddress(address);
    const { signal } = options;
    const expected = options.expectedPeerId === undefined
      ? undefined
      : toPeerId(options.expectedPeerId);
    if (expected !== undefined && this.#peers.has(expected.toString())) return expected;
    const where = formatAddress(remote);
    if (expected !== undefined) {
      const candidate = {
        peer: expected.toString(),
        address: where,
        direction: "outbound",
        replace: false,
      } as const;
      const ban = this.#admission.bans.get(candidate.peer);
      if (ban !== undefined) throw banned(candidate.peer, ban.reason);
      if (!this.#admission.allows(candidate)) throw notAllowed(candidate.peer);
    }
    const local = endpoint.localAddr;
    if (remote.port === local.port && isOwnHost(remote.hostname, local.hostname)) {
      throw new InvalidAddressError(where, "it is this node's own address");
    }
    for (const peer of this.#peers.values()) {
      if (formatAddress(peer.address) === where && (expected?.equals(peer.peerId) ?? true)) {
        return peer.peerId;
      }
    }
    return await this.#dials.run(where, async () => {
      try {
        return await this.#dial(endpoint, remote, expected, signal, false);
      } finally {
        this.#admission.dialEnded(where);
      }
    });
  }

  /**
   * Moves a connected peer to a new connection at `address`, for example from a TURN relay
   * to a direct path found later. The new connection runs the full handshake, expecting the
   * same peer; the peer accepts it as the replacement of the current one. Messages and
   * requests already under way finish on the old connection, and each traffic class starts
   * on the new one only after its last message on the old one was acknowledged, so nothing
   * is lost or reordered. The old connection then closes with `APP_ERROR_MIGRATED`; no
   * `peer:disconnected` is emitted, `peer:migrated` is, on both sides. When the new
   * connection fails, the peer stays on the old one. When both sides move at once, the
   * `keepOutbound` rule picks one move and both end up on it; a move that reaches the peer
   * after it took the peer's own move, but before that move's ready frame came back, is
   * refused, and both end up on the peer's move (this call resolves; see docs/handshake.md).
   *
   * @example A second connection takes over (to the same address here; usually a better path)
   * ```ts
   * import { Identity, type PeerMigratedDetail, QuicTransport } from "@cretoai/network";
   *
   * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
   * await using a = new QuicTransport({ identity: Identity.generate(), config });
   * await using b = new QuicTransport({ identity: Identity.generate(), config });
   * await a.bindAndListen();
   * const { port } = await b.bindAndListen();
   * const peer = await a.connectPeer(`127.0.0.1:${port}`);
   * const moved = new Promise<PeerMigratedDetail>((resolve) =>
   *   b.addEventListener("peer:migrated", (e) => resolve(e.detail), { once: true })
   * );
   * await a.migratePeer(peer, `127.0.0.1:${port}`);
   * await a.send(peer, { type: "consensus", data: new Uint8Array([1]) });
   * console.assert(await (await moved).retired, "the old connection drained and closed");
   * ```
   *
   * @param peer The connected peer.
   * @param address `HOST:PORT` or an address object where the peer is reachable.
   * @param options Abort signal.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER` when not connected; the dial's errors as for
   * {@linkcode QuicTransport.connectPeer} (`ERR_CONNECT_TIMEOUT`, `ERR_PEER_ID_MISMATCH`,
   * `ERR_ABORTED`, ...).
   * @throws {InvalidAddressError} for an invalid address or this node's own.
   */
  async migratePeer(
    peer: PeerId | string,
    address: string | UdpAddress,
    options: MigratePeerOptions = {},
  ): Promise<void> {
    const id = toPeerId(peer);
    this.#peer(id);
    const endpoint = this.#requireEndpoint("migrate a peer");
    const remote = typeof address === "string" ? parseAddress(address) : checkAddress(address);
    const local = endpoint.localAddr;
    if (remote.port === local.port && isOwnHost(remote.hostname, local.hostname)) {
      throw new InvalidAddressError(formatAddress(remote), "it is this node's own address");
    }
    const key = id.toString();
    await this.#migrations.run(key, async () => {
      this.#admission.migrationStarted(key);
      try {
        return await this.#dial(endpoint, remote, id, options.signal, true);
      } finally {
        this.#admission.migrationEnded(key);
      }
    });
  }

  /**
   * Registers a resolver that {@linkcode QuicTransport.connectPeer} consults, in the order
   * added, when given a `PeerId` that is not connected.
   *
   * @example
   * ```ts ignore
   * const remove = transport.addPeerResolver(async (peerId) => directory.get(peerId.toString()) ?? []);
   * ```
   *
   * @param resolver Returns addresses of a peer; a rejection counts as none.
   * @returns A function that removes the resolver.
   */
  addPeerResolver(resolver: PeerResolver): () => void {
    this.#resolvers.add(resolver);
    return () => {
      this.#resolvers.delete(resolver);
    };
  }

  async #connectById(peer: PeerId, signal: AbortSignal | undefined): Promise<PeerId> {
    if (this.#peers.has(peer.toString())) return peer;
    let failure: unknown = new NetworkError(
      "ERR_UNKNOWN_PEER",
      `Cannot connect to ${peer}: no peer resolver found an address`,
    );
    for (const resolve of [...this.#resolvers]) {
      let addresses: readonly string[] = [];
      try {
        addresses = await resolve(peer, signal);
      } catch (e) {
        failure = e;
      }
      for (const address of addresses) {
        try {
          return await this.connectPeer(address, { expectedPeerId: peer, signal });
        } catch (e) {
          failure = e;
        }
      }
    }
    throw failure;
  }

  /**
   * Sends a message to a connected peer and resolves once the peer's transport holds all of
   * it (see the class documentation for the exact guarantee).
   *
   * @example
   * ```ts ignore
   * await transport.send(remote, { type: "consensus", data: new Uint8Array([1]) });
   * ```
   *
   * @param peer The peer's id.
   * @param message The message.
   * @param options Abort signal.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER` when not connected; `ERR_MESSAGE_TOO_LARGE`
   * above `maxMessageBytes` (the connection stays up); `ERR_ABORTED`.
   * @throws {ConnectionClosedError} when the connection closes before the acknowledgement.
   * @throws {TypeError} for a message of the wrong shape.
   */
  send(peer: PeerId | string, message: NetworkMessage, options: SendOptions = {}): Promise<void> {
    try {
      return this.#peer(peer).send(message, options.signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Sends a message to every connected peer in parallel.
   *
   * @example
   * ```ts ignore
   * const results = await transport.broadcast({ type: "consensus", data });
   * const failed = results.filter((r) => !r.ok);
   * ```
   *
   * @param message The message.
   * @param options Abort signal, shared by every send.
   * @returns One result per peer, success or the error.
   */
  async broadcast(message: NetworkMessage, options: SendOptions = {}): Promise<BroadcastResult[]> {
    const peers = [...this.#peers.values()];
    const settled = await Promise.allSettled(peers.map((p) => p.send(message, options.signal)));
    return settled.map((s, i): BroadcastResult =>
      s.status === "fulfilled"
        ? { peerId: peers[i].peerId, ok: true }
        : { peerId: peers[i].peerId, ok: false, error: s.reason }
    );
  }

  /**
   * The messages received from all peers, in arrival order. The queue behind it is bounded
   * (`inboundQueueLength`, `inboundQueueBytes`): while it is full, peers are not read and
   * their sends stay pending. Several iterators share one queue; each message goes to one.
   * Iteration ends when the transport closes.
   *
   * @example
   * ```ts ignore
   * for await (const { from, message } of transport.messages()) {
   *   if (message.type === "vertex") handleVertex(from, message.data);
   * }
   * ```
   *
   * @returns An async iterator of `{ from, message }`.
   */
  async *messages(): AsyncGenerator<InboundMessage, void, undefined> {
    for (;;) {
      const next = await this.#inbound.pull();
      if (next === undefined) return;
      next.release();
      yield next.item;
    }
  }

  /**
   * Counters and latency of a connected peer.
   *
   * @example
   * ```ts ignore
   * const { p99LatencyMs, messagesSent } = transport.getStats(remote);
   * ```
   *
   * @param peer The peer's id.
   * @returns The statistics.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER` when not connected.
   */
  getStats(peer: PeerId | string): PeerStats {
    return this.#peer(peer).stats();
  }

  /**
   * Node-wide counters: peers, pending handshakes, limit violations by limit, idle closes,
   * evictions, and the current send and receive rates.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({
   *   identity: Identity.generate(),
   *   config: { listenAddr: "127.0.0.1", quicPort: 0 },
   * });
   * const { peers, limitViolations } = transport.stats();
   * console.assert(peers === 0 && limitViolations.inboundPerIp === 0);
   * ```
   *
   * @returns A snapshot.
   */
  stats(): TransportStats {
    return {
      peers: this.#peers.size,
      pendingHandshakes: this.#limits.pendingHandshakes,
      limitViolations: this.#limits.violations(),
      idleClosed: this.#idleClosed,
      evicted: this.#evicted,
      handshakesRateLimited: this.#handshakesRateLimited,
      silentHandshakesClosed: this.#silentClosed,
      handshakesResumed: this.#handshakesResumed,
      watchdogClosed: this.#watchdogClosed,
      sendBytesPerSecond: this.#sendMeter.bytesPerSecond(),
      receiveBytesPerSecond: this.#receiveMeter.bytesPerSecond(),
    };
  }

  /**
   * Measures the round-trip time to a peer on the control stream; the sample also feeds the
   * peer's latency statistics.
   *
   * @example
   * ```ts ignore
   * const rttMs = await transport.ping(remote);
   * ```
   *
   * @param peer The peer's id.
   * @returns Milliseconds.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER`; `ERR_TIMEOUT` after `requestTimeoutMs`.
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  ping(peer: PeerId | string): Promise<number> {
    try {
      return this.#peer(peer).ping();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The connected peers.
   *
   * @example
   * ```ts ignore
   * for (const { peerId, addresses, direction } of transport.peers()) console.log(peerId, addresses, direction);
   * ```
   *
   * @returns One entry per peer.
   */
  peers(): PeerInfo[] {
    return [...this.#peers.values()].map((p) => ({
      peerId: p.peerId,
      addresses: [formatAddress(p.address)],
      direction: p.direction,
      stats: p.stats(),
    }));
  }

  /**
   * Closes the connection to a peer (application code 0); a peer not connected is ignored.
   * The peer is gone at once (`peer:disconnected`); the promise resolves once the connection
   * has sent its close and QUIC's draining period is over (three probe timeouts, 2 s at most),
   * so that nothing more goes to the peer on it (a NAT's mapping to the peer can then lapse).
   *
   * @example
   * ```ts ignore
   * await transport.disconnectPeer(remote);
   * ```
   *
   * @param peer The peer's id.
   */
  async disconnectPeer(peer: PeerId | string): Promise<void> {
    const connection = this.#peers.get(toPeerId(peer).toString());
    if (connection === undefined) return;
    const closed = new Promise<void>((resolve) => {
      const onDisconnected = (e: TransportEventMap["peer:disconnected"]) => {
        if (!e.detail.peerId.equals(connection.peerId)) return;
        this.removeEventListener("peer:disconnected", onDisconnected);
        resolve();
      };
      this.addEventListener("peer:disconnected", onDisconnected);
    });
    const released = connection.close(0, "disconnect").catch(() => {});
    await Promise.all([closed, released]);
  }

  /**
   * Registers the handler of a request/response protocol; replaces an earlier one.
   *
   * @example
   * ```ts ignore
   * transport.handle("/echo/1", (request) => request);
   * ```
   *
   * @param protocolId 1 to 255 bytes of UTF-8, for example `"/cretoai/dht/1"`.
   * @param handler Returns the response; throwing resets the stream (the requester sees
   * `ERR_STREAM_RESET`).
   * @returns A function that removes the handler.
   * @throws {TypeError} for an invalid protocol id or handler.
   */
  handle(protocolId: string, handler: RequestHandler): () => void {
    checkProtocolId(protocolId);
    if (typeof handler !== "function") {
      throw new TypeError(`Invalid 'handler' for ${JSON.stringify(protocolId)}: not a function`);
    }
    this.#handlers.set(protocolId, handler);
    return () => {
      if (this.#handlers.get(protocolId) === handler) this.#handlers.delete(protocolId);
    };
  }

  /**
   * Sends a request to a peer on a new stream (protocol id first) and returns the response.
   *
   * @example Echo between two nodes
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
   * await using a = new QuicTransport({ identity: Identity.generate(), config });
   * await using b = new QuicTransport({ identity: Identity.generate(), config });
   * b.handle("/echo/1", (request) => request);
   * await a.bindAndListen();
   * const { port } = await b.bindAndListen();
   * const remote = await a.connectPeer(`127.0.0.1:${port}`);
   * const response = await a.request(remote, "/echo/1", new Uint8Array([4, 2]));
   * console.assert(response.join() === "4,2");
   * ```
   *
   * @param peer The peer's id.
   * @param protocolId The protocol.
   * @param request The request bytes, at most `maxMessageBytes`.
   * @param options Abort signal and timeout.
   * @returns The response bytes.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER`; `ERR_UNKNOWN_PROTOCOL` when the peer has no
   * handler; `ERR_MESSAGE_TOO_LARGE`; `ERR_TIMEOUT`; `ERR_ABORTED`.
   * @throws {StreamResetError} when the peer's handler failed.
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  async request(
    peer: PeerId | string,
    protocolId: string,
    request: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    const { signal, timeoutMs = this.config.requestTimeoutMs } = options;
    const protocolBytes = checkProtocolId(protocolId);
    if (!(request instanceof Uint8Array)) {
      throw new TypeError(`Invalid 'request': must be a Uint8Array: got ${typeof request}`);
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMER_DELAY_MS) {
      throw new InvalidConfigError(
        "timeoutMs",
        `an integer from 1 to ${MAX_TIMER_DELAY_MS}`,
        timeoutMs,
      );
    }
    return await this.#peer(peer).request(protocolId, protocolBytes, request, signal, timeoutMs);
  }

  /**
   * Protects a peer from eviction when the pool is full (for example validators); tags may be
   * set before the peer connects.
   *
   * @example
   * ```ts ignore
   * transport.protect(validator, "consensus");
   * ```
   *
   * @param peer The peer's id.
   * @param tag Why; the peer stays protected while it has any tag.
   */
  protect(peer: PeerId | string, tag: string): void {
    this.#admission.pool.protect(toPeerId(peer).toString(), tag);
  }

  /**
   * Bans a peer for `durationMs`: its connection, if any, closes with `APP_ERROR_BANNED`
   * (0x1c), and it is refused after the handshake (`ERR_PEER_BANNED`) until the ban ends;
   * dials of it fail before any packet. Banning again replaces the earlier ban. Emits
   * `peer:banned`.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({ identity: Identity.generate(), config: { quicPort: 0 } });
   * const mallory = Identity.generate().peerId;
   * transport.ban(mallory, 60_000, "equivocation");
   * console.assert(transport.bans()[0].reason === "equivocation");
   * console.assert(transport.unban(mallory) && transport.bans().length === 0);
   * ```
   *
   * @param peer The peer's id.
   * @param durationMs Milliseconds above 0; `Infinity` for a permanent ban.
   * @param reason Why, kept to 200 characters; the closed connection carries it.
   * @returns The ban.
   * @throws {InvalidConfigError} for a bad duration or reason.
   */
  ban(peer: PeerId | string, durationMs: number, reason: string): BanInfo {
    return this.#ban(toPeerId(peer), durationMs, reason, false);
  }

  /**
   * Lifts a ban.
   *
   * @example
   * ```ts ignore
   * transport.unban(peer);
   * ```
   *
   * @param peer The peer's id.
   * @returns Whether the peer was banned.
   */
  unban(peer: PeerId | string): boolean {
    return this.#admission.bans.unban(toPeerId(peer).toString());
  }

  /**
   * The bans in force, as plain data to persist.
   *
   * @example
   * ```ts ignore
   * await Deno.writeTextFile("bans.json", JSON.stringify(transport.bans()));
   * ```
   *
   * @returns One entry per banned peer.
   */
  bans(): BanInfo[] {
    return this.#admission.bans.list().map((entry) => this.#banInfo(entry));
  }

  /**
   * Lowers a peer's score for a protocol violation; a peer whose penalties reach the
   * threshold (see `peerScore`) is banned for `autoBanMs`. The transport itself reports
   * malformed frames, failed decryption and broken limits; services report theirs (bad DHT
   * records, rejected gossip). Penalties decay with a half-life, so rare accidents never add up
   * to a ban.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({ identity: Identity.generate(), config: { quicPort: 0 } });
   * const peer = Identity.generate().peerId;
   * console.assert(transport.penalize(peer, "rejected-gossip") === 34);
   * ```
   *
   * @param peer The peer's id.
   * @param reason What it did.
   * @returns The peer's penalty points after this one (0 once it is banned).
   */
  penalize(peer: PeerId | string, reason: PenaltyReason): number {
    const id = toPeerId(peer);
    const { penalty, ban } = this.#scores.penalize(id.toString(), reason);
    if (!ban) return penalty;
    log.warn("Banning {peer} for {ms} ms: penalty {penalty} after {reason}", {
      peer: id.toString(),
      ms: this.#autoBanMs,
      penalty,
      reason,
    });
    this.#ban(id, this.#autoBanMs, `score: ${reason}`, true);
    return 0;
  }

  #ban(peer: PeerId, durationMs: number, reason: string, automatic: boolean): BanInfo {
    const key = peer.toString();
    const info = this.#banInfo(this.#admission.bans.ban(key, durationMs, reason));
    this.#peers.get(key)?.close(APP_ERROR_BANNED, `banned: ${info.reason}`).catch(() => {});
    this.dispatchEvent(
      new CustomEvent("peer:banned", {
        detail: { peerId: peer, reason: info.reason, expiresAt: info.expiresAt, automatic },
      }),
    );
    return info;
  }

  #banInfo(entry: { peerId: string; reason: string; expiresAt: number }): BanInfo {
    return {
      peerId: entry.peerId,
      reason: entry.reason,
      expiresAt: entry.expiresAt === Infinity
        ? null
        : Math.round(entry.expiresAt + this.#epochOffsetMs),
    };
  }

  /**
   * Removes a protection tag set with {@linkcode QuicTransport.protect}.
   *
   * @example
   * ```ts ignore
   * transport.unprotect(validator, "consensus");
   * ```
   *
   * @param peer The peer's id.
   * @param tag The tag.
   * @returns Whether the peer had the tag.
   */
  unprotect(peer: PeerId | string, tag: string): boolean {
    const had = this.#admission.pool.unprotect(toPeerId(peer).toString(), tag);
    // The peer may have been unused for long: it can idle now.
    if (had) this.#armIdleTimer();
    return had;
  }

  /**
   * Closes every connection and the endpoint, ends `messages()`, and fails pending
   * operations. Idempotent.
   *
   * @example
   * ```ts
   * import { Identity, QuicTransport } from "@cretoai/network";
   *
   * const transport = new QuicTransport({ identity: Identity.generate(), config: { quicPort: 0 } });
   * await transport.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@linkcode QuicTransport.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    this.#cancelIdleTimer?.();
    this.#cancelIdleTimer = undefined;
    this.#cancelWatchdog?.();
    this.#cancelWatchdog = undefined;
    this.#inbound.close();
    if (this.#binding !== undefined) await this.#binding.catch(() => {});
    await this.#endpoint?.close();
    this.#stopMetrics?.();
  }

  async #bind(): Promise<UdpAddress> {
    const c = this.config;
    const window = receiveWindowBytes(c.maxBufferedBytesPerPeer);
    this.#credentials = await NodeCredentials.create(this.#identity);
    const endpoint = await QuicEndpoint.bind({
      certificate: this.#credentials.certificate,
      clientCertificate: this.#credentials.clientCertificate,
      hostname: c.listenAddr,
      port: c.quicPort,
      idleTimeoutMs: c.idleTimeoutMs,
      keepAliveIntervalMs: Math.round(c.keepAliveIntervalSecs * 1000),
      connectionTimeoutMs: c.connectionTimeoutMs,
      // Twice the transport's own limit: one over the limit still completes TLS and hears
      // why it is refused (0x11); a flood beyond that is dropped before any TLS work.
      maxInboundPerIp: 2 * c.maxInboundPerIp,
      limitLoopback: c.limitLoopback,
      // Small starting windows: a peer before its identity handshake (whose streams nobody
      // reads) can make quiche hold 1 MiB, not 16; authenticated traffic grows them up to the
      // share of the per-peer budget that is quiche's.
      initialMaxData: Math.min(PRE_AUTH_CONNECTION_WINDOW_BYTES, window),
      initialMaxStreamData: Math.min(PRE_AUTH_STREAM_WINDOW_BYTES, window),
      maxConnectionWindow: window,
      maxStreamWindow: window,
      socket: this.#socket,
      // A source the handshake rates refused a moment ago was told why (0x16) and would be
      // refused again: its next attempts are refused before any TLS work, in a stateless
      // Initial packet (CONNECTION_REFUSED).
      admit: (from) => {
        if (!this.#handshakeRates.silenced(from.hostname)) return true;
        this.#handshakesRateLimited++;
        return `Too many new handshakes from ${from.hostname}: refused a moment ago, retry later`;
      },
      // With half the identity-handshake slots taken, every newcomer proves its address first.
      underLoad: () => this.#limits.pendingHandshakes >= this.#limits.limits.pendingHandshakes / 2,
    });
    if (this.#closing !== undefined) {
      await endpoint.close();
      throw closedError("bind");
    }
    this.#endpoint = endpoint;
    this.#acceptLoop(endpoint);
    this.#armWatchdog();
    if (c.keepAliveIntervalSecs > 0) {
      this.#keepAlive = setInterval(() => {
        for (const peer of this.#peers.values()) peer.ping().catch(() => {});
      }, c.keepAliveIntervalSecs * 1000);
    }
    log.info("Listening on {address} as {peer}", {
      address: formatAddress(endpoint.localAddr),
      peer: this.peerId.toString(),
    });
    return { ...endpoint.localAddr };
  }

  async #acceptLoop(endpoint: QuicEndpoint): Promise<void> {
    for (;;) {
      let conn: QuicConnection;
      try {
        conn = await endpoint.accept();
      } catch {
        return; // the endpoint closed
      }
      this.#accepted(conn);
    }
  }

  /**
   * The node-wide limits on an accepted connection (per address, rates per address and
   * prefix, handshake slots), then its handshake with a shorter deadline while it is silent.
   */
  #accepted(conn: QuicConnection): void {
    const ip = conn.remoteAddr.hostname;
    if (this.config.limitLoopback || !isLoopback(ip)) {
      const perIp = this.#limits.openInbound(ip);
      if (perIp !== undefined) return this.#refuse(conn, perIp);
      conn.closed.then(() => this.#limits.closeInbound(ip));
    }
    const rate = this.#handshakeRates.take(ip);
    if (rate !== undefined) {
      this.#handshakesRateLimited++;
      log.warn("Refusing connection from {address}: {reason}", {
        address: formatAddress(conn.remoteAddr),
        reason: rate.message,
      });
      conn.close({ code: APP_ERROR_HANDSHAKE_RATE, reason: rate.message.slice(0, 200) })
        .catch(() => {});
      return;
    }
    if (this.#limits.pendingHandshakes >= this.#limits.limits.pendingHandshakes) {
      this.#closeOldestSilent();
    }
    const handshake = this.#limits.beginHandshake();
    if (handshake !== undefined) return this.#refuse(conn, handshake);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.#pendingInbound.delete(conn);
      cancelSilentTimer();
      this.#limits.endHandshake();
    };
    this.#pendingInbound.set(conn, { release });
    const cancelSilentTimer = this.#clock.schedule(() => {
      if (conn.remoteStreamsOpened === 0) this.#closeSilent(conn);
    }, this.config.silentHandshakeTimeoutMs);
    this.#setUp(conn, "inbound", undefined).catch(() => {}).finally(release);
  }

  /** Frees the slot of the longest-waiting inbound connection that never opened a stream. */
  #closeOldestSilent(): void {
    for (const conn of this.#pendingInbound.keys()) {
      if (conn.remoteStreamsOpened === 0) return this.#closeSilent(conn);
    }
  }

  #closeSilent(conn: QuicConnection): void {
    this.#silentClosed++;
    this.#pendingInbound.get(conn)?.release();
    log.info("Closing silent connection from {address}", {
      address: formatAddress(conn.remoteAddr),
    });
    conn.close({ code: APP_ERROR_HANDSHAKE_TIMEOUT, reason: "silent after the QUIC handshake" })
      .catch(() => {});
  }

  /** Closes a connection that broke a node-wide limit before it became a peer. */
  #refuse(conn: QuicConnection, violation: LimitViolation): void {
    this.#host.metrics?.peersRefused.add(1, { reason: violation.kind });
    log.warn("Refusing connection from {address}: {reason}", {
      address: formatAddress(conn.remoteAddr),
      reason: violation.message,
      limit: violation.kind,
      appErrorCode: violation.appErrorCode,
    });
    conn.close({ code: violation.appErrorCode, reason: violation.message.slice(0, 200) })
      .catch(() => {});
  }

  async #dial(
    endpoint: QuicEndpoint,
    remote: UdpAddress,
    expected: PeerId | undefined,
    signal: AbortSignal | undefined,
    replace: boolean,
  ): Promise<PeerId> {
    // With a TLS session for the address, the connection is handed over in 0-RTT, so that a
    // resuming ClientHello travels with the TLS one (see dialSession).
    const conn = await endpoint.connect(remote, {
      timeoutMs: this.config.connectionTimeoutMs,
      signal,
      earlyData: true,
    });
    return await this.#setUp(conn, "outbound", expected, signal, replace, formatAddress(remote));
  }

  /**
   * Handshake, the dialer's open frame, duplicate and pool checks, ready frame; then the peer
   * is registered. `replace`: the dialer migrates the peer to this connection; `dialed`: the
   * address an outbound connection dialed, `HOST:PORT`.
   */
  async #setUp(
    conn: QuicConnection,
    direction: ConnectionDirection,
    expected: PeerId | undefined,
    signal?: AbortSignal,
    replace = false,
    dialed = "",
  ): Promise<PeerId> {
    let session: SecureSession | undefined;
    /** The dialer's open frame, and for whom: asked for once the listener's id is known. */
    let opening: { peer: string; opened: OpenSignal | undefined } | undefined;
    const metrics = this.#host.metrics;
    const startedAt = metrics && performance.now();
    /** Ends the open signal sent, once: the dial was admitted, refused or given up. */
    const endOpen = () => {
      if (opening?.opened !== undefined) this.#admission.openEnded(opening.peer);
      opening = undefined;
    };
    try {
      // The dialer's open frame: with a ticket for the listener's run, it rides in the
      // ClientHello as early data (decided before the handshake), else it follows it.
      const open = (peer: string, run: string) => {
        opening = {
          peer,
          opened: this.#admission.opening({ peer, address: dialed, migrate: replace, run }),
        };
        return opening.opened;
      };
      const setUp = async () => {
        const options = {
          credentials: this.#credentials!,
          certificateCache: this.#certificateCache,
          tickets: this.#tickets,
          certificateInHello: true,
          pqEncryption: this.config.pqEncryption,
          expectedPeerId: expected,
          earlyData: (listener: VerifiedPeer) => {
            if (listener.peerId.equals(this.peerId)) return undefined;
            const opened = open(listener.peerId.toString(), hashId(listener.certificateHash));
            return opened && encodeControl({ type: "open", ...opened });
          },
        };
        session = direction === "outbound"
          ? await dialSession(conn, options)
          : await acceptSession(conn, options);
        if (session.peerId.equals(this.peerId)) {
          throw new NetworkError("ERR_HANDSHAKE_FAILED", "The peer is this node itself");
        }
        if (session.resumed) this.#handshakesResumed++;
        const control = {
          reader: new FrameReader(session.control, session.cipher, 64, session.leftover),
          writer: new FrameWriter(session.control, session.cipher),
        };
        if (direction === "outbound") {
          const opened = (opening ?? { opened: open(session.peerId.toString(), session.peerRun) })
            .opened;
          // Already connected: this dial is redundant, and the listener never sees it.
          if (opened === undefined) {
            if (session.unsent !== undefined) await session.control.write(session.unsent);
            return { session, control, opened };
          }
          if (!session.resumed) {
            const frame = encodeControl({ type: "open", ...opened });
            await control.writer.write(frame, false, session.unsent);
          }
          const body = await control.reader.next();
          const ready = body === null ? undefined : decodeControl(body);
          if (ready?.type !== "ready") {
            throw new NetworkError("ERR_MALFORMED_FRAME", "Expected a ready frame from the peer");
          }
          // What the dialer admits: what it announced, with the listener's incarnation.
          return { session, control, opened: { ...opened, incarnation: ready.incarnation } };
        }
        const body = session.earlyData ?? await control.reader.next();
        const frame = body === null ? undefined : decodeControl(body);
        if (frame?.type !== "open") {
          throw new NetworkError("ERR_MALFORMED_FRAME", "Expected an open frame from the dialer");
        }
        const { type: _, ...opened } = frame;
        return { session, control, opened };
      };
      const { session: s, control, opened } = await withDeadline(
        setUp(),
        signal,
        this.config.handshakeTimeoutMs,
        `finish the handshake with ${formatAddress(conn.remoteAddr)}`,
        () => {},
        (onExpire, delayMs) => conn.deadline(onExpire, delayMs),
      ).catch((e) => {
        if (e instanceof NetworkError && e.code === "ERR_TIMEOUT") {
          throw new NetworkError(
            "ERR_HANDSHAKE_TIMEOUT",
            `No handshake with ${
              formatAddress(conn.remoteAddr)
            } within ${this.config.handshakeTimeoutMs} ms`,
          );
        }
        throw e;
      });
      if (opened === undefined) {
        conn.close({ code: APP_ERROR_DUPLICATE_CONNECTION, reason: "duplicate connection" })
          .catch(() => {});
        return s.peerId;
      }
      const peer = new PeerConnection(this.#host, s, direction, control);
      const admitted = this.#admit(peer, opened, s);
      if (admitted === undefined) return s.peerId;
      if (direction === "inbound") {
        const ready = encodeControl({ type: "ready", incarnation: this.#incarnation });
        await control.writer.write(ready, false, s.unsent).catch((e) => {
          this.#admission.closed(peer.key, peer);
          // A connection this one replaced that closed meanwhile (see `#onPeerClosed`) leaves
          // the peer gone; one still closing reports it when it is done.
          const previous = this.#peers.get(peer.key);
          if (previous?.closedError !== undefined) this.#onPeerClosed(previous, e);
          throw e;
        });
      }
      this.#register(peer, opened.replace, admitted.restart);
      metrics?.connectionSetupDuration.record(performance.now() - startedAt!, {
        direction,
        outcome: "ready",
      });
      return s.peerId;
    } catch (e) {
      metrics?.connectionSetupDuration.record(performance.now() - startedAt!, {
        direction,
        outcome: "failed",
      });
      // The dialer of a losing simultaneous connection is told so by the close code; it then
      // uses the connection the other dial set up. A resuming dialer may hear it before its
      // session completes: the listener decides on the ClientHello.
      const peer = session?.peerId.toString() ?? opening?.peer;
      endOpen();
      if (peer !== undefined && isDuplicateClose(e)) {
        const existing = await this.#whenConnected(peer);
        if (existing !== undefined) return existing;
      }
      const code = e instanceof NetworkError && e.code === "ERR_HANDSHAKE_TIMEOUT"
        ? APP_ERROR_HANDSHAKE_TIMEOUT
        : closeCodeOf(e);
      conn.close({ code, reason: (e as Error).message?.slice(0, 200) ?? "" }).catch(() => {});
      log.info("Connection with {address} failed: {error}", {
        address: formatAddress(conn.remoteAddr),
        error: String(e),
      });
      this.dispatchEvent(
        new CustomEvent("connection:failed", {
          detail: { address: conn.remoteAddr, direction, error: e as Error },
        }),
      );
      throw e;
    } finally {
      endOpen();
    }
  }

  /**
   * Applies the admission rules (duplicates, migrations, the pool) and closes what they say;
   * returns undefined when `peer` is closed instead of registered, else whether the peer
   * starts over on it (see `AdmissionDecision.restart`).
   */
  #admit(
    peer: PeerConnection,
    signal: OpenSignal,
    session: SecureSession,
  ): { restart: boolean } | undefined {
    const decision = this.#admission.admit({
      peer: peer.key,
      address: formatAddress(peer.address),
      direction: peer.direction,
      ...signal,
      link: session.link,
      run: session.peerRun,
    }, peer);
    if (!decision.admitted) {
      if (decision.reason === "pool-full") {
        peer.close(APP_ERROR_LIMIT_EXCEEDED, "connection pool full").catch(() => {});
        throw new NetworkError(
          "ERR_LIMIT_EXCEEDED",
          `Cannot add peer ${peer.key}: the pool holds maxConnections (${this.config.maxConnections}) protected peers`,
        );
      }
      if (decision.reason === "banned") {
        peer.close(APP_ERROR_BANNED, "banned").catch(() => {});
        throw banned(peer.key, this.#admission.bans.get(peer.key)?.reason ?? "");
      }
      if (decision.reason === "not-allowed") {
        peer.close(APP_ERROR_NOT_ALLOWED, "not allowed").catch(() => {});
        throw notAllowed(peer.key);
      }
      if (decision.reason === "stale-incarnation") {
        // Its dialer fails at once (not a duplicate: it has no other connection to wait for).
        peer.close(APP_ERROR_STALE_INCARNATION, "the peer's later process is connected")
          .catch(() => {});
        return undefined;
      }
      const why = decision.reason === "duplicate" ? "duplicate connection" : "duplicate migration";
      peer.close(APP_ERROR_DUPLICATE_CONNECTION, why).catch(() => {});
      return undefined;
    }
    if (decision.previous !== undefined && !decision.migrate) {
      decision.previous.close(APP_ERROR_DUPLICATE_CONNECTION, "duplicate connection")
        .catch(() => {});
    }
    for (const { peer: key, connection } of decision.evict) {
      this.#evicted++;
      log.info("Evicting peer {peer}: the pool is full", { peer: key });
      connection.close(APP_ERROR_EVICTED, "evicted: pool full").catch(() => {});
    }
    this.#armIdleTimer();
    return { restart: decision.restart };
  }

  /**
   * Samples every peer's QUIC counters each interval; a peer whose packets keep growing
   * without useful traffic (see `TrafficWatchdog`) is closed and penalized.
   */
  #armWatchdog(): void {
    if (this.#closing !== undefined) return;
    this.#cancelWatchdog = this.#clock.schedule(() => {
      for (const peer of this.#peers.values()) {
        const verdict = peer.watchdog.check(peer.trafficSample());
        if (!verdict.close) continue;
        this.#watchdogClosed++;
        log.warn("Closing connection to {peer}: {reason}", {
          peer: peer.key,
          reason: verdict.reason,
        });
        peer.close(APP_ERROR_TRAFFIC_WATCHDOG, verdict.reason.slice(0, 200)).catch(() => {});
        this.penalize(peer.peerId, "limit-exceeded");
      }
      this.#armWatchdog();
    }, WATCHDOG_INTERVAL_MS);
  }

  /**
   * Keeps one timer at the moment the next unprotected peer turns idle. Using a peer only
   * moves that moment later, so an early wake-up just re-arms.
   */
  #armIdleTimer(): void {
    if (this.#closing !== undefined) return;
    const at = this.#admission.nextIdleAt();
    if (at === undefined || (this.#cancelIdleTimer !== undefined && this.#idleTimerAt <= at)) {
      return;
    }
    this.#cancelIdleTimer?.();
    this.#idleTimerAt = at;
    this.#cancelIdleTimer = this.#clock.schedule(() => {
      this.#cancelIdleTimer = undefined;
      this.#idleTimerAt = Infinity;
      for (const { peer, connection } of this.#admission.collectIdle()) {
        this.#idleClosed++;
        log.info("Closing idle connection to {peer}", { peer });
        connection.close(APP_ERROR_IDLE_TIMEOUT, "idle timeout").catch(() => {});
      }
      this.#armIdleTimer();
    }, Math.max(0, at - this.#clock.now()));
  }

  #register(peer: PeerConnection, replace: boolean, restart: boolean): void {
    const replaced = this.#peers.get(peer.key);
    this.#peers.set(peer.key, peer);
    const retired = replace && replaced !== undefined ? peer.follow(replaced) : undefined;
    peer.start();
    // The handshake's round trip is the first latency sample: statistics exist before the
    // first keep-alive, without a ping and its pong in each direction on every connection.
    const handshakeRttMs = peer.conn.handshakeRttMs;
    if (handshakeRttMs !== undefined) peer.histogram.record(handshakeRttMs);
    if (replaced !== undefined && restart) {
      // The peer forgot the old connection (it restarted, or it lost it): services on this
      // side must start over with it too, so the replacement is a disconnect, then a connect.
      log.info("Peer {peer} started over on a new connection", { peer: peer.key });
      this.dispatchEvent(
        new CustomEvent("peer:disconnected", {
          detail: {
            peerId: replaced.peerId,
            address: replaced.address,
            direction: replaced.direction,
            error: new ConnectionClosedError(
              "replaced by the peer's new connection (it restarted or lost this one)",
            ),
          },
        }),
      );
    } else if (replaced !== undefined) {
      // The peer stays connected, on its new connection.
      if (retired === undefined) return;
      log.info("Peer {peer} moved from {from} to {to}", {
        peer: peer.key,
        from: formatAddress(replaced.address),
        to: formatAddress(peer.address),
      });
      this.dispatchEvent(
        new CustomEvent("peer:migrated", {
          detail: {
            peerId: peer.peerId,
            address: peer.address,
            previousAddress: replaced.address,
            direction: peer.direction,
            retired,
          },
        }),
      );
      return;
    }
    this.dispatchEvent(
      new CustomEvent("peer:connected", {
        detail: { peerId: peer.peerId, address: peer.address, direction: peer.direction },
      }),
    );
  }

  #onPeerClosed(peer: PeerConnection, error: Error): void {
    this.#admission.closed(peer.key, peer);
    if (this.#peers.get(peer.key) !== peer) return; // replaced by a newer connection
    // Admitted already, a newer connection replaces this one once its ready frame is written
    // (a restarted peer's, or a redial after a loss this side had not seen).
    if (this.#admission.connection(peer.key) !== undefined) return;
    this.#peers.delete(peer.key);
    log.info("Peer {peer} disconnected: {error}", { peer: peer.key, error: error.message });
    this.dispatchEvent(
      new CustomEvent("peer:disconnected", {
        detail: { peerId: peer.peerId, address: peer.address, direction: peer.direction, error },
      }),
    );
  }

  /** Waits for a connection to `key` that another dial or accept is setting up. */
  #whenConnected(key: string): Promise<PeerId | undefined> {
    const existing = this.#peers.get(key);
    if (existing !== undefined) return Promise.resolve(existing.peerId);
    return new Promise((resolve) => {
      const done = (id: PeerId | undefined) => {
        cancelTimer();
        this.removeEventListener("peer:connected", onConnected);
        resolve(id);
      };
      const onConnected = (e: TransportEventMap["peer:connected"]) => {
        if (e.detail.peerId.toString() === key) done(e.detail.peerId);
      };
      const cancelTimer = this.#clock.schedule(
        () => done(undefined),
        this.config.handshakeTimeoutMs,
      );
      this.addEventListener("peer:connected", onConnected);
    });
  }

  #peer(peer: PeerId | string): PeerConnection {
    const id = toPeerId(peer);
    const connection = this.#peers.get(id.toString());
    if (connection === undefined) {
      throw new NetworkError("ERR_UNKNOWN_PEER", `Peer ${id} is not connected`);
    }
    return connection;
  }

  #requireEndpoint(what: string): QuicEndpoint {
    if (this.#closing !== undefined) throw closedError(what);
    if (this.#endpoint === undefined) {
      throw new NetworkError(
        "ERR_ENDPOINT_CLOSED",
        `Cannot ${what}: the transport is not bound, call bindAndListen() first`,
      );
    }
    return this.#endpoint;
  }
}

function toPeerId(peer: PeerId | string): PeerId {
  return peer instanceof PeerId ? peer : PeerId.parse(peer);
}

function banned(peer: string, reason: string): NetworkError {
  return new NetworkError("ERR_PEER_BANNED", `Peer ${peer} is banned: ${reason}`);
}

function notAllowed(peer: string): NetworkError {
  return new NetworkError(
    "ERR_PEER_NOT_ALLOWED",
    `Peer ${peer} is refused by the allowlist or the connection gate`,
  );
}

function closedError(what: string): NetworkError {
  return new NetworkError("ERR_ENDPOINT_CLOSED", `Cannot ${what}: the transport is closed`);
}

function isDuplicateClose(e: unknown): boolean {
  return e instanceof NetworkError && "errorCode" in e &&
    (e as { errorCode?: number }).errorCode === APP_ERROR_DUPLICATE_CONNECTION;
}

function isOwnHost(remote: string, local: string): boolean {
  if (remote === local) return true;
  const loopback = remote === "127.0.0.1" || remote === "::1";
  return loopback && (local === "0.0.0.0" || local === "::" || local === "127.0.0.1");
}
