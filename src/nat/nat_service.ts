/**
 * `NatService`: NAT traversal for a {@linkcode QuicTransport}, built on its public API only.
 * It discovers the node's NAT through STUN on the node's own QUIC socket, answers the
 * rendezvous protocol (`/cretoai/rendezvous/1`) as introducer and as target, and connects to
 * peers behind NATs by coordinated UDP hole punching through a peer both sides are connected
 * to, with an optional fallback (a TURN relay service) where punching cannot work. A peer the
 * fallback connected is tried again directly from time to time; when punching works, its
 * connection moves to the direct path (`QuicTransport.migratePeer`) with no message lost.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { networkMetrics } from "../metrics/_network_metrics.ts";
import { type Clock, systemClock } from "../clock.ts";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import { PeerId } from "../identity/peer_id.ts";
import { formatAddress, parseAddress } from "../quic/address.ts";
import type { RawDatagramPort, UdpAddress } from "../quic/datagram_port.ts";
import type { QuicTransport } from "../transport/transport.ts";
import type { PeerConnectedDetail, PeerMigratedDetail } from "../transport/events.ts";
import { TypedEventTarget } from "../transport/events.ts";
import type { RequestContext } from "../transport/mod.ts";
import { requireInteger, requirePositiveFinite } from "../_validate.ts";
import { observedHosts, sameAddress, withBasis } from "./_address.ts";
import { PeerRateLimiter } from "../_peer_rate_limiter.ts";
import { decodePunch, PunchSession, SESSION_ID_BYTES, sessionKey } from "./_punch_session.ts";
import {
  decodeRendezvous,
  encodeRendezvous,
  MAX_ADDRESSES,
  MAX_WAIT_MS,
  type RendezvousMessage,
  sessionBytes,
} from "./_rendezvous.ts";
import { planHolePunch } from "./hole_punch.ts";
import type { PeerPath } from "./relay_service.ts";
import type { NatType } from "./nat_classifier.ts";
import { discoverNat, type NatDiscoveryResult } from "./nat_discovery.ts";
import { StunClient, type StunRetransmitOptions } from "./stun_client.ts";

/** The protocol id of the rendezvous protocol, registered with `transport.handle`. */
export const RENDEZVOUS_PROTOCOL = "/cretoai/rendezvous/1";

/** A connection {@linkcode NatService} set up or found. */
export interface NatConnection {
  /** The peer. */
  peerId: PeerId;
  /** The address the connection runs to (the punched address, or the relay's). */
  address: UdpAddress;
  /**
   * Direct (hole punched) or through a relay (the fallback). For a peer that was already
   * connected: `relay` if this service's fallback connected it, else `direct`.
   */
  path: PeerPath;
  /** The rendezvous peer that introduced the two sides, when there was one. */
  via?: PeerId;
  /** Which side dialed the QUIC connection. */
  direction: "inbound" | "outbound";
  /** Milliseconds from the call (or, on the target's side, from the sync) to the connection. */
  elapsedMs: number;
}

/** What a failed traversal tried, for the error and for a fallback. */
export interface NatTraversalAttempt {
  /** The peer to reach. */
  peerId: string;
  /** The rendezvous peers asked, in order. */
  via: string[];
  /** The step that failed last. */
  stage: "rendezvous" | "plan" | "punch" | "dial";
  /** This node's NAT type (from the last discovery; `Unknown` without one). */
  selfNatType: NatType;
  /** The peer's NAT type, once a rendezvous told it. */
  peerNatType?: NatType;
  /** Addresses punch packets went to. */
  targets: UdpAddress[];
  /** The address the peer's packets came from, when any came. */
  heardFrom?: UdpAddress;
  /** Punch packets sent. */
  punchesSent: number;
  /** Packets of the peer received (punches and acknowledgements). */
  received: number;
  /** One line per thing tried or concluded. */
  reasons: string[];
  /** Milliseconds from the call to the failure. */
  elapsedMs: number;
}

/**
 * A peer could not be reached through its NAT (`ERR_NAT_TRAVERSAL_FAILED`): the error says
 * what was tried.
 *
 * @example
 * ```ts
 * import { NatTraversalError } from "@cretoai/network";
 *
 * const e = new NatTraversalError({
 *   peerId: "p", via: ["r"], stage: "plan", selfNatType: "Symmetric", peerNatType: "Symmetric",
 *   targets: [], punchesSent: 0, received: 0, reasons: ["both sides are symmetric"], elapsedMs: 3,
 * });
 * console.assert(e.code === "ERR_NAT_TRAVERSAL_FAILED" && e.attempt.stage === "plan");
 * ```
 */
export class NatTraversalError extends NetworkError {
  /** What was tried. */
  readonly attempt: NatTraversalAttempt;
  /** Why the fallback failed too, when one was configured and ran. */
  readonly fallbackError: unknown;

  /**
   * Creates the error.
   *
   * @param attempt What was tried.
   * @param options `cause`: the underlying error; `fallbackError`: the fallback's failure.
   */
  constructor(
    attempt: NatTraversalAttempt,
    options: { cause?: unknown; fallbackError?: unknown } = {},
  ) {
    super(
      "ERR_NAT_TRAVERSAL_FAILED",
      `Cannot reach peer ${attempt.peerId} through its NAT (failed at ${attempt.stage} after ` +
        `${Math.round(attempt.elapsedMs)} ms; ${attempt.punchesSent} punches to ` +
        `${attempt.targets.map(formatAddress).join(", ") || "no address"}, ` +
        `${attempt.received} heard back): ${attempt.reasons.join("; ")}` +
        (options.fallbackError === undefined
          ? ""
          : `; fallback failed: ${String(options.fallbackError)}`),
      { cause: options.cause },
    );
    this.attempt = attempt;
    this.fallbackError = options.fallbackError;
  }
}

/** What {@linkcode NatFallback} receives besides the peer id. */
export interface NatFallbackInfo {
  /** The rendezvous peer to signal through (the first one given to `connect`). */
  via?: PeerId;
  /** Abandons the fallback: the caller's signal, or the service closing. */
  signal?: AbortSignal;
  /** Why hole punching failed, and what it tried. */
  error: NatTraversalError;
}

/**
 * Called when hole punching failed, to reach the peer another way; resolves with the peer's
 * id once the transport is connected to it. `RelayService.fallback` (TURN) has this shape.
 * Connections it makes are reported with `path: "relay"`.
 */
export type NatFallback = (peerId: PeerId, info: NatFallbackInfo) => Promise<PeerId>;

/** Options of {@linkcode NatService}. */
export interface NatServiceOptions {
  /**
   * STUN servers (`HOST:PORT` or address objects), in order of preference: a server that does
   * not answer is skipped for the next one.
   *
   * @default {transport.config.stunServers}
   */
  stunServers?: readonly (string | UdpAddress)[];
  /**
   * STUN retransmission values (RFC 8489 RTO, Rc, Rm).
   *
   * @default {{ rto: 100, rc: 5, rm: 8 }}
   */
  stunRetransmit?: StunRetransmitOptions;
  /**
   * Whether discovery also runs the RFC 5780 filtering tests (two more transactions that a
   * filtering NAT lets time out).
   *
   * @default {true}
   */
  filtering?: boolean;
  /**
   * Upper bound on one NAT discovery, in milliseconds.
   *
   * @default {15000}
   */
  discoveryTimeoutMs?: number;
  /**
   * Whether this node introduces peers that ask it to (the rendezvous role). As the target of
   * an introduction it always takes part.
   *
   * @default {true}
   */
  rendezvous?: boolean;
  /**
   * Milliseconds between punch rounds.
   *
   * @default {50}
   */
  punchIntervalMs?: number;
  /**
   * How long to punch before giving up, in milliseconds.
   *
   * @default {3000}
   */
  punchDurationMs?: number;
  /**
   * As introducer: how far ahead, beyond the round trips to both peers, the common start is
   * set, in milliseconds, so that both sides hear of it before it comes.
   *
   * @default {100}
   */
  punchLeadMs?: number;
  /**
   * Default upper bound on {@linkcode NatService.connect}, in milliseconds.
   *
   * @default {10000}
   */
  connectionTimeoutMs?: number;
  /**
   * Tried when hole punching fails; its result is reported with its path (`"relay"`).
   *
   * @default {undefined}
   */
  fallback?: NatFallback;
  /**
   * Milliseconds between tries to move a peer the fallback connected to a direct path (see
   * {@linkcode NatService.upgrade}); 0 turns the tries off.
   *
   * @default {30000}
   */
  directRetryMs?: number;
  /**
   * Clock and timers of the punch schedule.
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/** Options of {@linkcode NatService.connect}. */
export interface NatConnectOptions {
  /**
   * The rendezvous peer(s), connected to both sides; tried in order while they refuse (for
   * example because they do not know the target).
   */
  via: PeerId | string | readonly (PeerId | string)[];
  /**
   * Upper bound on the whole traversal (rendezvous, punching, QUIC and identity handshake),
   * in milliseconds; the fallback runs on its own time.
   *
   * @default {the service's connectionTimeoutMs}
   */
  timeoutMs?: number;
  /** Aborts the traversal. */
  signal?: AbortSignal;
}

/** The events of a {@linkcode NatService}, by name. */
export interface NatServiceEventMap {
  /** A NAT discovery finished: type, mapping, filtering, public address. */
  "nat:discovered": CustomEvent<NatDiscoveryResult>;
  /**
   * The service connected a peer: as dialer of {@linkcode NatService.connect}, or as target
   * of an introduction when the punched peer's connection arrived.
   */
  "nat:connected": CustomEvent<NatConnection>;
  /**
   * A peer's connection moved to a punched direct path (`path` `"direct"`): as dialer of
   * {@linkcode NatService.upgrade}, or as target of the introduction.
   */
  "nat:migrated": CustomEvent<NatConnection>;
  /**
   * The service's own periodic try (`directRetryMs`) to move a relayed peer to a direct path
   * failed; the peer stays on its relayed connection.
   */
  "nat:upgrade-failed": CustomEvent<NatUpgradeFailure>;
}

/**
 * A periodic direct try that failed, as reported by the `nat:upgrade-failed` event of
 * {@linkcode NatService}.
 *
 * @example
 * ```ts ignore
 * natService.addEventListener("nat:upgrade-failed", (event) => {
 *   const { peerId, error, retryInMs } = event.detail;
 *   console.log(`${peerId} stays relayed (${error.message}); next try in ${retryInMs} ms`);
 * });
 * ```
 */
export interface NatUpgradeFailure {
  /** The peer, still on its relayed connection. */
  peerId: PeerId;
  /** Why the try failed (a {@linkcode NatTraversalError} when punching did not get through). */
  error: Error;
  /** When the next try comes, in milliseconds; undefined when none is scheduled. */
  retryInMs: number | undefined;
}

/** Options of {@linkcode NatService.upgrade}. */
export interface NatUpgradeOptions {
  /**
   * The rendezvous peer(s), connected to both sides.
   *
   * @default {the rendezvous peer the fallback's connection was signalled through}
   */
  via?: PeerId | string | readonly (PeerId | string)[];
  /**
   * Upper bound on the traversal, in milliseconds.
   *
   * @default {the service's connectionTimeoutMs}
   */
  timeoutMs?: number;
  /** Aborts the attempt; the peer stays on its relayed connection. */
  signal?: AbortSignal;
}

const log = getLogger(["cretoai", "nat"]);

/** At most this many punch sessions run at once; further introductions are refused. */
const MAX_SESSIONS = 16;
/**
 * Introductions a peer may ask for (connect or sync requests): sustained per second, and at
 * once. Each sync makes this node punch, so a connected peer must not have it send at will;
 * a legitimate dialer retrying one peer 20 times in a few seconds (the NAT lab) stays within.
 * The burst matches MAX_SESSIONS.
 */
const RENDEZVOUS_PER_SECOND = 4;
const RENDEZVOUS_BURST = MAX_SESSIONS;
/** Peers whose request rate is tracked; beyond it the oldest entries are forgotten. */
const RATE_TRACKED_PEERS = 256;
/**
 * Most distinct hosts one session punches: the requester's observation of the dialer and one
 * other (its STUN view). More would let a request fan punches out over many hosts.
 */
const MAX_PUNCH_HOSTS = 2;
/** Most dialers watched for at once as target of introductions; further syncs are refused. */
const MAX_WATCHERS = 64;

/**
 * NAT traversal for a transport: STUN discovery on the node's socket, the rendezvous
 * protocol, coordinated hole punching, and a fallback hook.
 *
 * The transport must be bound (`bindAndListen`) before {@linkcode NatService.discover} or
 * {@linkcode NatService.connect}; {@linkcode NatService.start} registers the rendezvous handler.
 * A node behind a NAT stays reachable by its rendezvous node only while its NAT keeps the
 * mapping: leave the transport's keep-alives on (`keepAliveIntervalSecs`, 15 s by default)
 * and below the NAT's UDP timeout (30 s for Linux's conntrack).
 *
 * @example Three nodes: B reaches C through R (on loopback, so no NAT is in the way)
 * ```ts
 * import { Identity, NatService, QuicTransport } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
 * await using r = new QuicTransport({ identity: Identity.generate(), config });
 * await using b = new QuicTransport({ identity: Identity.generate(), config });
 * await using c = new QuicTransport({ identity: Identity.generate(), config });
 * await using natR = new NatService(r);
 * await using natB = new NatService(b);
 * await using natC = new NatService(c);
 * await Promise.all([natR.start(), natB.start(), natC.start()]);
 * const { port } = await r.bindAndListen();
 * await b.bindAndListen();
 * await c.bindAndListen();
 * const rendezvous = await b.connectPeer(`127.0.0.1:${port}`);
 * await c.connectPeer(`127.0.0.1:${port}`);
 * const conn = await natB.connect(c.peerId, { via: rendezvous, timeoutMs: 5000 });
 * console.assert(conn.path === "direct" && conn.peerId.equals(c.peerId));
 * ```
 */
export class NatService extends TypedEventTarget<NatServiceEventMap> implements AsyncDisposable {
  /** The transport the service runs on. */
  readonly transport: QuicTransport;
  readonly #stunServers: UdpAddress[];
  readonly #stunRetransmit: StunRetransmitOptions;
  readonly #filtering: boolean;
  readonly #discoveryTimeoutMs: number;
  readonly #rendezvous: boolean;
  readonly #punchIntervalMs: number;
  readonly #punchDurationMs: number;
  readonly #punchLeadMs: number;
  readonly #connectionTimeoutMs: number;
  readonly #fallback: NatFallback | undefined;
  readonly #clock: Clock;
  readonly #sessions = new Map<string, PunchSession>();
  readonly #requests: PeerRateLimiter;
  /**
   * As target of introductions, by dialer: the remover of the watch for its connection. A new
   * introduction of the same dialer replaces the old watch, so one connection is one event.
   */
  readonly #watchers = new Map<string, () => void>();
  readonly #closer = new AbortController();
  #removeHandler: () => void = () => {};
  #started = false;
  #port: RawDatagramPort | undefined;
  #removeRawHandler: () => void = () => {};
  #stun: StunClient | undefined;
  #discovering: Promise<NatDiscoveryResult> | undefined;
  #nat: NatDiscoveryResult | undefined;
  readonly #directRetryMs: number;
  /**
   * Peers the fallback connected, so that a later `connect` reports their path right: the
   * rendezvous peer to try a direct path through, and the canceller of the next try.
   */
  readonly #relayed = new Map<string, { via: PeerId | undefined; cancel: () => void }>();
  readonly #upgrades = new Map<string, Promise<NatConnection>>();
  readonly #onDisconnected = (e: CustomEvent<{ peerId: PeerId }>) => {
    this.#forgetRelayed(e.detail.peerId.toString());
  };

  /**
   * Creates the service; nothing is registered on the transport until
   * {@linkcode NatService.start}.
   *
   * @example
   * ```ts
   * import { Identity, NatService, QuicTransport } from "@cretoai/network";
   *
   * const identity = Identity.generate();
   * await using transport = new QuicTransport({ identity, config: { quicPort: 0 } });
   * await using nat = new NatService(transport, { stunServers: ["192.0.2.1:3478"] });
   * console.assert(nat.nat === undefined);
   * ```
   *
   * @param transport The node's transport (bound later is fine).
   * @param options Servers, timing, fallback; see {@linkcode NatServiceOptions}.
   * @throws {InvalidConfigError} If an option breaks its rule.
   * @throws {InvalidAddressError} If a STUN server is not `IP:PORT`.
   */
  constructor(transport: QuicTransport, options: NatServiceOptions = {}) {
    super();
    const {
      stunServers = transport.config.stunServers,
      stunRetransmit = {},
      filtering = true,
      discoveryTimeoutMs = 15_000,
      rendezvous = true,
      punchIntervalMs = 50,
      punchDurationMs = 3000,
      punchLeadMs = 100,
      connectionTimeoutMs = 10_000,
      fallback,
      directRetryMs = 30_000,
      clock = systemClock,
    } = options;
    requirePositiveFinite("discoveryTimeoutMs", discoveryTimeoutMs);
    requirePositiveFinite("punchIntervalMs", punchIntervalMs);
    requirePositiveFinite("punchDurationMs", punchDurationMs);
    requireInteger("punchLeadMs", punchLeadMs, 0, 60_000);
    requirePositiveFinite("connectionTimeoutMs", connectionTimeoutMs);
    requireInteger("directRetryMs", directRetryMs, 0, 24 * 3_600_000);
    if (fallback !== undefined && typeof fallback !== "function") {
      throw new InvalidConfigError("fallback", "a function", fallback);
    }
    this.transport = transport;
    this.#stunServers = stunServers.map((s) => typeof s === "string" ? parseAddress(s) : s);
    this.#stunRetransmit = stunRetransmit;
    this.#filtering = filtering;
    this.#discoveryTimeoutMs = discoveryTimeoutMs;
    this.#rendezvous = rendezvous;
    this.#punchIntervalMs = punchIntervalMs;
    this.#punchDurationMs = punchDurationMs;
    this.#punchLeadMs = punchLeadMs;
    this.#connectionTimeoutMs = connectionTimeoutMs;
    this.#fallback = fallback;
    this.#directRetryMs = directRetryMs;
    this.#clock = clock;
    this.#requests = new PeerRateLimiter(
      RENDEZVOUS_PER_SECOND,
      RENDEZVOUS_BURST,
      RATE_TRACKED_PEERS,
      clock,
    );
  }

  /**
   * Starts the service: registers the rendezvous protocol on the transport (this node
   * introduces peers and takes part when introduced) and watches for relayed peers leaving.
   * It discovers the NAT only when asked ({@linkcode NatService.discover}). Calling it again
   * does nothing.
   *
   * @example
   * ```ts ignore
   * await nat.start();
   * ```
   *
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` after close.
   */
  start(): Promise<void> {
    this.#requireOpen();
    if (this.#started) return Promise.resolve();
    this.#started = true;
    this.transport.addEventListener("peer:disconnected", this.#onDisconnected);
    this.#removeHandler = this.transport.handle(
      RENDEZVOUS_PROTOCOL,
      (request, context) => this.#onRequest(request, context),
    );
    return Promise.resolve();
  }

  /** The result of the last NAT discovery, `undefined` before one finished. */
  get nat(): NatDiscoveryResult | undefined {
    return this.#nat;
  }

  /**
   * Discovers the NAT in front of the node's socket with the configured STUN servers (the
   * first that answers runs the RFC 5780 tests), stores the result and dispatches `nat`.
   * Concurrent calls share one discovery.
   *
   * @example
   * ```ts ignore
   * const nat = await natService.discover();
   * console.log(nat.type, nat.mapping, nat.filtering, nat.publicAddress);
   * ```
   *
   * @param options Abort signal.
   * @returns The classification and the public address.
   * @throws {InvalidConfigError} If no STUN server is configured.
   * @throws {NetworkError} `ERR_NAT_TRAVERSAL_FAILED` when no server answered;
   * `ERR_TIMEOUT` after `discoveryTimeoutMs`; `ERR_ABORTED`; `ERR_ENDPOINT_CLOSED` when the
   * transport is not bound or the service is closed.
   */
  discover(options: { signal?: AbortSignal } = {}): Promise<NatDiscoveryResult> {
    if (this.#stunServers.length === 0) {
      return Promise.reject(new InvalidConfigError("stunServers", "a non-empty list", []));
    }
    this.#discovering ??= this.#discover(options.signal).finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  /**
   * Connects to a peer behind a NAT: asks a rendezvous peer to introduce the two sides, punches
   * from the node's socket on the agreed schedule, and dials the address the peer was heard
   * from (`path: "direct"`). A peer already connected is returned at once. When punching
   * fails and a fallback is configured, the fallback's connection is returned.
   *
   * @example
   * ```ts ignore
   * const { path, address } = await natService.connect(peerId, { via: rendezvousId });
   * ```
   *
   * @param peer The peer to reach.
   * @param options Rendezvous peer(s), timeout, abort signal.
   * @returns The connection, its address and path.
   * @throws {NatTraversalError} `ERR_NAT_TRAVERSAL_FAILED`, saying what was tried, when the peer
   * could not be reached within the timeout (and the fallback failed or there was none).
   * @throws {NetworkError} `ERR_ABORTED` when the signal fired; `ERR_ENDPOINT_CLOSED` when the
   * transport is not bound or the service is closed.
   * @throws {InvalidConfigError} For a bad `via` or `timeoutMs`.
   */
  async connect(peer: PeerId | string, options: NatConnectOptions): Promise<NatConnection> {
    const target = peer instanceof PeerId ? peer : PeerId.parse(peer);
    const { via, timeoutMs = this.#connectionTimeoutMs, signal } = options ?? {};
    const vias = viaList(via);
    requirePositiveFinite("timeoutMs", timeoutMs);
    this.#requireOpen();
    const started = this.#clock.now();
    const existing = this.transport.peers().find((p) => p.peerId.equals(target));
    if (existing !== undefined) {
      return {
        peerId: target,
        address: parseAddress(existing.addresses[0]),
        path: this.#relayed.has(target.toString()) ? "relay" : "direct",
        direction: existing.direction,
        elapsedMs: 0,
      };
    }
    try {
      const connection = await this.#traverseWithin(target, vias, timeoutMs, signal, false);
      this.#emitConnected(connection);
      return connection;
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      if (this.#closer.signal.aborted) throw closedError();
      if (!(e instanceof NatTraversalError) || this.#fallback === undefined) throw e;
      const fallbackSignal = AbortSignal.any([this.#closer.signal, ...(signal ? [signal] : [])]);
      let address: UdpAddress | undefined;
      try {
        await this.#fallback(target, { via: vias[0], signal: fallbackSignal, error: e });
        const info = this.transport.peers().find((p) => p.peerId.equals(target));
        if (info === undefined) {
          throw new Error("the fallback resolved, but the peer is not connected");
        }
        address = parseAddress(info.addresses[0]);
      } catch (fallbackError) {
        throw new NatTraversalError(e.attempt, { cause: e.cause, fallbackError });
      }
      const connection: NatConnection = {
        peerId: target,
        address,
        path: "relay",
        direction: "outbound",
        elapsedMs: this.#clock.now() - started,
      };
      this.#trackRelayed(target, vias[0]);
      this.#emitConnected(connection);
      return connection;
    }
  }

  /**
   * Tries to move a peer the fallback connected (through a relay) to a direct path: punches
   * as {@linkcode NatService.connect} does and, when the peer is heard, moves the connection
   * with `QuicTransport.migratePeer`, so messages under way are neither lost nor reordered.
   * The service also does this by itself every `directRetryMs`. A peer that is already
   * direct is returned at once. When the network changed (for example the NAT type),
   * {@linkcode NatService.discover} first gives punching fresh addresses.
   *
   * @example
   * ```ts ignore
   * const { path } = await natService.upgrade(peerId); // "direct"
   * ```
   *
   * @param peer A connected peer.
   * @param options Rendezvous peer(s), timeout, abort signal.
   * @returns The connection on its direct path.
   * @throws {NatTraversalError} `ERR_NAT_TRAVERSAL_FAILED` when punching failed; the peer stays
   * on its relayed connection.
   * @throws {NetworkError} `ERR_UNKNOWN_PEER` when not connected; `ERR_ABORTED`;
   * `ERR_ENDPOINT_CLOSED` when the service is closed.
   * @throws {InvalidConfigError} For a bad `via` or `timeoutMs`, or no rendezvous peer known.
   */
  upgrade(peer: PeerId | string, options: NatUpgradeOptions = {}): Promise<NatConnection> {
    const target = peer instanceof PeerId ? peer : PeerId.parse(peer);
    const key = target.toString();
    const running = this.#upgrades.get(key);
    if (running !== undefined) return running;
    const upgrade = this.#upgrade(target, options).finally(() => this.#upgrades.delete(key));
    this.#upgrades.set(key, upgrade);
    return upgrade;
  }

  async #upgrade(target: PeerId, options: NatUpgradeOptions): Promise<NatConnection> {
    this.#requireOpen();
    const key = target.toString();
    const existing = this.transport.peers().find((p) => p.peerId.equals(target));
    if (existing === undefined) {
      throw new NetworkError("ERR_UNKNOWN_PEER", `Cannot upgrade ${key}: it is not connected`);
    }
    const relayed = this.#relayed.get(key);
    if (relayed === undefined) {
      return {
        peerId: target,
        address: parseAddress(existing.addresses[0]),
        path: "direct",
        direction: existing.direction,
        elapsedMs: 0,
      };
    }
    const { via = relayed.via, timeoutMs = this.#connectionTimeoutMs, signal } = options;
    const vias = viaList(via);
    requirePositiveFinite("timeoutMs", timeoutMs);
    try {
      const connection = await this.#traverseWithin(target, vias, timeoutMs, signal, true);
      this.#forgetRelayed(key);
      this.dispatchEvent(new CustomEvent("nat:migrated", { detail: connection }));
      return connection;
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      if (this.#closer.signal.aborted) throw closedError();
      throw e;
    }
  }

  /** Remembers a peer the fallback connected and schedules its next direct try. */
  #trackRelayed(peer: PeerId, via: PeerId | undefined): void {
    const key = peer.toString();
    this.#relayed.get(key)?.cancel();
    const entry = { via, cancel: () => {} };
    this.#relayed.set(key, entry);
    if (this.#directRetryMs === 0 || via === undefined) return;
    entry.cancel = this.#clock.schedule(() => {
      if (this.#relayed.get(key) !== entry) return;
      this.upgrade(peer).catch((e) => {
        log.debug("No direct path to {peer} yet: {error}", { peer: key, error: String(e) });
        const again = this.#relayed.get(key) === entry && !this.#closer.signal.aborted;
        if (again) this.#trackRelayed(peer, via);
        this.dispatchEvent(
          new CustomEvent("nat:upgrade-failed", {
            detail: {
              peerId: peer,
              error: e instanceof Error ? e : new Error(String(e)),
              retryInMs: again ? this.#directRetryMs : undefined,
            },
          }),
        );
      });
    }, this.#directRetryMs);
  }

  #forgetRelayed(key: string): void {
    this.#relayed.get(key)?.cancel();
    this.#relayed.delete(key);
  }

  /**
   * Stops punching, removes the rendezvous handler and the STUN client, and fails running
   * connects with `ERR_ENDPOINT_CLOSED`. The transport stays open. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closer.signal.aborted) return Promise.resolve();
    this.#closer.abort();
    for (const key of [...this.#relayed.keys()]) this.#forgetRelayed(key);
    this.#removeHandler();
    this.#removeRawHandler();
    this.transport.removeEventListener("peer:disconnected", this.#onDisconnected);
    this.#stun?.close();
    for (const s of [...this.#sessions.values()]) s.stop();
    for (const unwatch of [...this.#watchers.values()]) unwatch();
    this.#sessions.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode NatService.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #discover(signal: AbortSignal | undefined): Promise<NatDiscoveryResult> {
    this.#requireOpen();
    this.#ensurePort();
    this.#stun ??= new StunClient(this.#port!, { ...this.#stunRetransmit, clock: this.#clock });
    const timeout = new AbortController();
    const cancel = this.#clock.schedule(
      () =>
        timeout.abort(
          new DOMException(
            `NAT discovery took over ${this.#discoveryTimeoutMs} ms`,
            "TimeoutError",
          ),
        ),
      this.#discoveryTimeoutMs,
    );
    try {
      const result = await discoverNat(this.#stun, {
        servers: this.#stunServers,
        retransmit: this.#stunRetransmit,
        filtering: this.#filtering,
        signal: AbortSignal.any([
          timeout.signal,
          this.#closer.signal,
          ...(signal ? [signal] : []),
        ]),
      });
      this.#nat = result;
      networkMetrics()?.setNatType(result.type);
      this.dispatchEvent(new CustomEvent("nat:discovered", { detail: result }));
      return result;
    } finally {
      cancel();
    }
  }

  /** A traversal bounded by `timeoutMs`, the caller's signal and the service closing. */
  async #traverseWithin(
    target: PeerId,
    vias: readonly PeerId[],
    timeoutMs: number,
    signal: AbortSignal | undefined,
    migrate: boolean,
  ): Promise<NatConnection> {
    const started = this.#clock.now();
    const deadline = new AbortController();
    const cancelTimer = this.#clock.schedule(() => deadline.abort(), timeoutMs);
    const signals = [deadline.signal, this.#closer.signal, ...(signal ? [signal] : [])];
    try {
      return await this.#traverse(
        target,
        vias,
        started,
        started + timeoutMs,
        AbortSignal.any(signals),
        migrate,
      );
    } finally {
      cancelTimer();
    }
  }

  /** Rendezvous, punching and the dial; `migrate`: the dial moves an existing connection. */
  async #traverse(
    target: PeerId,
    vias: readonly PeerId[],
    started: number,
    deadlineAt: number,
    signal: AbortSignal,
    migrate: boolean,
  ): Promise<NatConnection> {
    this.#ensurePort();
    const selfNatType = this.#nat?.type ?? "Unknown";
    const attempt: NatTraversalAttempt = {
      peerId: target.toString(),
      via: [],
      stage: "rendezvous",
      selfNatType,
      targets: [],
      punchesSent: 0,
      received: 0,
      reasons: [],
      elapsedMs: 0,
    };
    const fail = (cause?: unknown): never => {
      if (signal.aborted && !attempt.reasons.some((r) => r.startsWith("timed out"))) {
        attempt.reasons.push(`timed out after ${Math.round(deadlineAt - started)} ms`);
      }
      attempt.elapsedMs = this.#clock.now() - started;
      throw new NatTraversalError(attempt, { cause });
    };
    const own = this.#ownAddresses();
    let cause: unknown;
    for (const via of vias) {
      if (signal.aborted) break;
      attempt.via.push(via.toString());
      let answer: RendezvousMessage;
      const sentAt = this.#clock.now();
      try {
        const bytes = await this.transport.request(
          via,
          RENDEZVOUS_PROTOCOL,
          encodeRendezvous({
            t: "connect",
            target: target.toString(),
            addresses: own,
            nat: selfNatType,
            waitMs: Math.min(MAX_WAIT_MS, Math.max(0, Math.ceil(deadlineAt - sentAt))),
          }),
          { signal, timeoutMs: Math.max(1, Math.ceil(deadlineAt - this.#clock.now())) },
        );
        answer = decodeRendezvous(bytes);
      } catch (e) {
        cause = e;
        attempt.reasons.push(`rendezvous ${via} failed: ${(e as Error).message}`);
        continue;
      }
      const receivedAt = this.#clock.now();
      if (answer.t !== "connected") {
        attempt.reasons.push(
          `rendezvous ${via} refused: ${answer.t === "refused" ? answer.reason : answer.t}`,
        );
        continue;
      }
      const timing = { sentAt, receivedAt, started, deadlineAt };
      return await this.#punchAndDial(target, via, answer, timing, attempt, signal, migrate)
        .then((connection) => {
          networkMetrics()?.holePunchAttempts.add(1, { outcome: "success" });
          return connection;
        }, (e) => {
          networkMetrics()?.holePunchAttempts.add(1, { outcome: "failure" });
          throw e;
        })
        .catch((e) => {
          attempt.reasons.push((e as Error).message);
          return fail(e);
        });
    }
    return fail(cause);
  }

  async #punchAndDial(
    target: PeerId,
    via: PeerId,
    answer: Extract<RendezvousMessage, { t: "connected" }>,
    timing: { sentAt: number; receivedAt: number; started: number; deadlineAt: number },
    attempt: NatTraversalAttempt,
    signal: AbortSignal,
    migrate: boolean,
  ): Promise<NatConnection> {
    const { sentAt, receivedAt, started, deadlineAt } = timing;
    attempt.peerNatType = answer.nat;
    // The introducer's answer took half the round trip not spent inside the introducer.
    const oneWay = Math.max(0, (receivedAt - sentAt - answer.handledMs) / 2);
    const startAt = Math.max(receivedAt, receivedAt + answer.startIn - oneWay);
    const left = deadlineAt - startAt;
    const targets = withBasis(
      answer.addresses,
      observedHosts(this.transport, via),
      MAX_PUNCH_HOSTS,
    );
    if (targets.length === 0 || left <= 0) {
      attempt.stage = "plan";
      throw new Error(
        targets.length === 0 ? "the peer has no address to punch" : "no time left to punch",
      );
    }
    const plan = planHolePunch({
      startAt,
      peer: { addresses: targets, natType: answer.nat },
      selfNatType: attempt.selfNatType,
      interval: this.#punchIntervalMs,
      duration: Math.min(this.#punchDurationMs, left),
    });
    attempt.targets = plan.targets;
    attempt.reasons.push(...plan.reasons);
    if (!plan.feasible) {
      attempt.stage = "plan";
      throw new Error("punching cannot work for this NAT pair");
    }
    attempt.stage = "punch";
    const session = this.#startSession(plan, sessionBytes(answer.session));
    const onAbort = () => session.stop();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const heard = await session.punched;
      if (heard === undefined) {
        throw new Error(
          signal.aborted ? "timed out while punching" : "the peer was never heard from",
        );
      }
      attempt.heardFrom = heard;
      attempt.stage = "dial";
      // Punching goes on while QUIC dials: under loss, it keeps both mappings fresh.
      const dial = migrate
        ? this.transport.migratePeer(target, heard, { signal })
        : this.transport.connectPeer(heard, { expectedPeerId: target, signal });
      await dial.catch((e) => {
        throw new Error(`dialing ${formatAddress(heard)} failed: ${(e as Error).message}`, {
          cause: e,
        });
      });
      return {
        peerId: target,
        address: heard,
        path: "direct",
        via,
        direction: "outbound",
        elapsedMs: this.#clock.now() - started,
      };
    } finally {
      signal.removeEventListener("abort", onAbort);
      session.stop();
      attempt.punchesSent = session.counters.punchesSent;
      attempt.received = session.counters.received;
    }
  }

  #onRequest(request: Uint8Array, context: RequestContext): Promise<Uint8Array> {
    let message: RendezvousMessage;
    try {
      message = decodeRendezvous(request);
    } catch (e) {
      return Promise.resolve(refuse((e as Error).message));
    }
    if (
      (message.t === "connect" || message.t === "sync") &&
      !this.#requests.take(context.peerId.toString())
    ) {
      return Promise.resolve(
        refuse(`more than ${RENDEZVOUS_PER_SECOND} introductions a second from ${context.peerId}`),
      );
    }
    if (message.t === "connect") return this.#introduce(message, context.peerId);
    if (message.t === "sync") return Promise.resolve(this.#onSync(message, context.peerId));
    return Promise.resolve(refuse(`unexpected message ${message.t}`));
  }

  /** The introducer's side: tells the target, then the dialer. */
  async #introduce(
    message: Extract<RendezvousMessage, { t: "connect" }>,
    from: PeerId,
  ): Promise<Uint8Array> {
    const handledFrom = this.#clock.now();
    if (!this.#rendezvous) return refuse("this node does not introduce peers");
    let target: PeerId;
    try {
      target = PeerId.parse(message.target);
    } catch (e) {
      return refuse((e as Error).message);
    }
    const peers = this.transport.peers();
    const dialer = peers.find((p) => p.peerId.equals(from));
    const callee = peers.find((p) => p.peerId.equals(target));
    if (callee === undefined) return refuse(`not connected to ${target}`);
    if (dialer === undefined) return refuse(`not connected to ${from}`);
    const session = sessionKey(crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES)));
    const waitMs = message.waitMs === undefined
      ? undefined
      : Math.max(0, message.waitMs - (this.#clock.now() - handledFrom));
    // Both must hear of the start before it comes: the lead covers both round trips.
    const lead = this.#punchLeadMs + dialer.stats.p50LatencyMs + callee.stats.p50LatencyMs;
    const sentAt = this.#clock.now();
    let answer: RendezvousMessage;
    try {
      answer = decodeRendezvous(
        await this.transport.request(
          target,
          RENDEZVOUS_PROTOCOL,
          encodeRendezvous({
            t: "sync",
            session,
            peer: from.toString(),
            addresses: candidates(parseAddress(dialer.addresses[0]), message.addresses),
            nat: message.nat,
            startIn: lead,
            waitMs,
          }),
          { signal: this.#closer.signal },
        ),
      );
    } catch (e) {
      return refuse(`${target} did not answer: ${(e as Error).message}`);
    }
    if (answer.t === "refused") return refuse(`${target} refused: ${answer.reason}`);
    if (answer.t !== "synced") return refuse(`${target} answered ${answer.t}`);
    const now = this.#clock.now();
    const targetStarts = sentAt + (now - sentAt) / 2 + lead;
    return encodeRendezvous({
      t: "connected",
      session,
      addresses: candidates(parseAddress(callee.addresses[0]), answer.addresses),
      nat: answer.nat,
      startIn: Math.round(targetStarts - now),
      handledMs: now - handledFrom,
    });
  }

  /** The target's side: agree, and punch towards the dialer from `startIn` on. */
  #onSync(message: Extract<RendezvousMessage, { t: "sync" }>, introducer: PeerId): Uint8Array {
    const received = this.#clock.now();
    if (this.#closer.signal.aborted) return refuse("closing");
    if (this.#sessions.size >= MAX_SESSIONS) {
      return refuse(`already punching ${MAX_SESSIONS} sessions`);
    }
    let dialer: PeerId;
    try {
      dialer = PeerId.parse(message.peer);
      this.#ensurePort();
    } catch (e) {
      return refuse((e as Error).message);
    }
    // Punched only where the introducer's word has a basis: see withBasis.
    const targets = withBasis(
      message.addresses,
      observedHosts(this.transport, introducer),
      MAX_PUNCH_HOSTS,
    );
    if (this.#sessions.has(message.session) || targets.length === 0) {
      return refuse("duplicate session or no address to punch");
    }
    const key = dialer.toString();
    if (this.#watchers.size >= MAX_WATCHERS && !this.#watchers.has(key)) {
      return refuse(`already watching for ${MAX_WATCHERS} dialers`);
    }
    const selfNatType = this.#nat?.type ?? "Unknown";
    const plan = planHolePunch({
      startAt: received + Math.max(0, message.startIn),
      peer: { addresses: targets, natType: message.nat },
      selfNatType,
      interval: this.#punchIntervalMs,
      duration: this.#punchDurationMs,
    });
    const synced = encodeRendezvous({
      t: "synced",
      addresses: this.#ownAddresses(),
      nat: selfNatType,
    });
    // The dialer sees the same infeasible plan and gives up (or falls back) on its own.
    if (!plan.feasible) return synced;
    const session = this.#startSession(plan, sessionBytes(message.session));
    // The dialer's QUIC handshake may finish after the last punch (under loss): its
    // connection is watched for until the dial could have timed out.
    this.#watchers.get(key)?.();
    const unwatch = () => {
      cancelWatch();
      session.stop();
      this.transport.removeEventListener("peer:connected", onConnected);
      this.transport.removeEventListener("peer:migrated", onConnected);
      if (this.#watchers.get(key) === unwatch) this.#watchers.delete(key);
    };
    // A dialer that was connected already (through a relay) moves its connection here.
    const onConnected = (e: CustomEvent<PeerConnectedDetail | PeerMigratedDetail>) => {
      if (!e.detail.peerId.equals(dialer)) return;
      // Punched only when it comes from the dialer's own address (one it was introduced with,
      // or where its punches came from); from elsewhere it is the dialer's fallback (a relay)
      // after punching failed, and not this service's to report.
      const from = e.detail.address;
      const heard = session.heardFrom;
      const punched = plan.targets.some((t) => sameAddress(t, from)) ||
        (heard !== undefined && sameAddress(heard, from));
      unwatch();
      if (!punched) return;
      const connection: NatConnection = {
        peerId: dialer,
        address: e.detail.address,
        path: "direct",
        via: introducer,
        direction: e.detail.direction,
        elapsedMs: this.#clock.now() - received,
      };
      if (e.type === "peer:connected") return this.#emitConnected(connection);
      this.#forgetRelayed(key);
      this.dispatchEvent(new CustomEvent("nat:migrated", { detail: connection }));
    };
    // As long as the dialer goes on trying; an older dialer that does not say: the punching
    // plus this side's own connect timeout.
    const cancelWatch = this.#clock.schedule(
      unwatch,
      message.waitMs ?? plan.until - received + this.#connectionTimeoutMs,
    );
    this.transport.addEventListener("peer:connected", onConnected);
    this.transport.addEventListener("peer:migrated", onConnected);
    this.#watchers.set(key, unwatch);
    return synced;
  }

  #startSession(
    plan: ReturnType<typeof planHolePunch>,
    id: Uint8Array,
  ): PunchSession {
    const key = sessionKey(id);
    const session = new PunchSession(this.#port!, this.#clock, plan, id);
    this.#sessions.set(key, session);
    session.done.then(() => {
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
    });
    return session;
  }

  /** Registers the punch packet handler on the node's socket, once it is bound. */
  #ensurePort(): void {
    if (this.#port !== undefined) return;
    const port = this.transport.datagramPort;
    this.#port = port;
    this.#removeRawHandler = port.addRawHandler((data, from) => {
      const packet = decodePunch(data);
      if (packet === undefined) return false;
      this.#sessions.get(sessionKey(packet.session))?.receive(packet.kind, from);
      return true;
    });
  }

  /** This node's own view of its public addresses: what STUN saw. */
  #ownAddresses(): UdpAddress[] {
    const mapped = this.#nat?.observations.mapping.map((m) => m.mapped) ?? [];
    return candidates(undefined, mapped);
  }

  #emitConnected(connection: NatConnection): void {
    this.dispatchEvent(new CustomEvent("nat:connected", { detail: connection }));
  }

  #requireOpen(): void {
    if (this.#closer.signal.aborted) throw closedError();
  }
}

/** The rendezvous peers of a `via` option; at least one. */
function viaList(via: NatConnectOptions["via"] | undefined): PeerId[] {
  const vias = (typeof via === "string" || via instanceof PeerId ? [via] : [...(via ?? [])])
    .map((v) => v instanceof PeerId ? v : PeerId.parse(v));
  if (vias.length === 0) throw new InvalidConfigError("via", "at least one peer id", via);
  return vias;
}

/** Deduplicated addresses, `first` (the introducer's observation) ahead of `rest`. */
function candidates(first: UdpAddress | undefined, rest: readonly UdpAddress[]): UdpAddress[] {
  const out: UdpAddress[] = [];
  for (const a of first === undefined ? rest : [first, ...rest]) {
    if (out.length < MAX_ADDRESSES && !out.some((o) => sameAddress(o, a))) {
      out.push({ hostname: a.hostname, port: a.port });
    }
  }
  return out;
}

function refuse(reason: string): Uint8Array {
  return encodeRendezvous({ t: "refused", reason: reason.slice(0, 500) });
}

function abortError(signal: AbortSignal): NetworkError {
  return new NetworkError("ERR_ABORTED", `NAT traversal aborted: ${String(signal.reason)}`, {
    cause: signal.reason,
  });
}

function closedError(): NetworkError {
  return new NetworkError("ERR_ENDPOINT_CLOSED", "The NAT service is closed");
}
