/**
 * A QUIC endpoint driven directly on quiche: one UDP socket that both dials and accepts, and
 * carries non-QUIC datagrams (STUN, TURN, hole punches) for the services that need them.
 *
 * @module
 */
import { clearImmediate, setImmediate } from "node:timers";
import { getLogger } from "@logtape/logtape";
import { ConnectionClosedError, NetworkError } from "../errors.ts";
import { MAX_TIMER_DELAY_MS } from "../_timer.ts";
import { loadQuiche, PacketType, type QuicheConfig, type QuicheHost } from "./_quiche.ts";
import {
  CID_LENGTH,
  cidKey,
  destinationKey,
  isLongHeader,
  isQuic,
  type LongHeader,
  parseLongHeader,
} from "./_packet.ts";
import { checkAddress, formatAddress, parseAddress } from "./address.ts";
import { generateCertificate, type TlsCertificate } from "./certificate.ts";
import { endpointClosed, QuicConnection, quicheOf } from "./connection.ts";
import type { RawDatagramHandler, RawDatagramPort, UdpAddress } from "./datagram_port.ts";
import {
  checkInteger,
  type QuicEndpointOptions,
  type ResolvedEndpointOptions,
  resolveEndpointOptions,
} from "./options.ts";
import { RetryTokens } from "./retry_token.ts";
import { SessionCache } from "./session_cache.ts";
import type { DatagramSocket } from "./udp_socket.ts";
import { bindDefaultSocket } from "./linux_hybrid_socket.ts";
import { isLoopback } from "../_address_prefix.ts";
import { describeTransportError, transportErrorKey } from "./_error_codes.ts";
import { networkMetrics } from "../metrics/_network_metrics.ts";
import { PeerRateLimiter } from "../_peer_rate_limiter.ts";
import { TokenBucket } from "../pool/token_bucket.ts";
import { systemClock } from "../clock.ts";
import { writeInitialClose } from "./_initial_close.ts";

const log = getLogger(["cretoai", "quic"]);

// Ed25519 first: the generated certificates use it; the rest lets other certificates work.
const SIGALGS = "ed25519:ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:rsa_pkcs1_sha256";
const MIN_INITIAL_SIZE = 1200;
const CONNECTION_REFUSED = 0x2;
const QUIC_V1 = 1;
// How long an address that completed a handshake skips the Retry (see #acceptNew).
const VALIDATED_ADDRESS_MS = 10 * 60_000;
// Stateless refusals (an Initial close costs ~90 µs of key derivation and AES here): one a
// second per address (burst 2), 200 a second in all; beyond, refused Initials are dropped.
const REFUSALS_PER_SECOND_PER_IP = 1;
const REFUSAL_BURST_PER_IP = 2;
const REFUSALS_PER_SECOND = 200;
const REFUSAL_SOURCES = 4096;

/** Options of {@linkcode QuicEndpoint.connect}. */
export interface ConnectOptions {
  /**
   * Time the handshake may take, in milliseconds.
   * @default {the endpoint's `connectionTimeoutMs`}
   */
  timeoutMs?: number;
  /** Abandons the attempt. */
  signal?: AbortSignal;
  /**
   * TLS server name (SNI). Peers are identified by the handshake above TLS, not by name.
   * @default {"cretoai"}
   */
  serverName?: string;
  /**
   * Resolve as soon as 0-RTT is possible (a session for this peer is cached), so that the
   * first stream's data goes out as early data. Early data can be replayed by an attacker:
   * send only what is safe to receive twice. Without a cached session this waits for the
   * handshake as usual.
   * @default {false}
   */
  earlyData?: boolean;
}

/** Counters of an endpoint. */
export interface QuicEndpointStats {
  /** Datagrams received on the socket. */
  datagramsReceived: number;
  /** Datagrams nobody could use: malformed, unknown connection, no raw handler took them. */
  datagramsDropped: number;
  /** Retry packets sent to validate new clients' addresses. */
  retriesSent: number;
  /** Initials whose retry token was forged, expired or for another address. */
  invalidTokens: number;
  /** Version negotiation packets sent for unsupported QUIC versions. */
  versionNegotiationsSent: number;
  /** Inbound connections accepted by quiche. */
  connectionsAccepted: number;
  /** Inbound connections refused: the accept backlog was full, `maxInboundPerIp`, `admit`. */
  connectionsRefused: number;
  /**
   * Inbound connections whose TLS handshake failed (quiche closed them, the client went
   * silent, or the client closed first). Connections dropped by {@linkcode QuicEndpoint.close}
   * do not count.
   */
  handshakesFailed: number;
  /**
   * {@linkcode QuicEndpointStats.handshakesFailed} by cause: quiche's local error code
   * (`tls_alert_116` for a client without a certificate, `tls_alert_40`, `protocol_violation`,
   * `0x2a` for a code without a name), `idle_timeout`, or `peer_closed`.
   */
  handshakeFailures: Record<string, number>;
  /** Datagrams the operating system refused to send. */
  sendErrors: number;
  /** Connections open now. */
  openConnections: number;
}

/**
 * A QUIC endpoint: binds one UDP socket, dials and accepts connections on it.
 *
 * @example Echo over a bidirectional stream
 * ```ts
 * import { QuicEndpoint } from "@cretoai/network/quic";
 *
 * await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * (async () => {
 *   const conn = await server.accept();
 *   const stream = await conn.acceptBidi();
 *   await stream.write(await stream.readAll(), true);
 * })();
 * const conn = await client.connect(server.localAddr);
 * const stream = await conn.openBidi();
 * await stream.write(new Uint8Array([1, 2, 3]), true);
 * console.assert((await stream.readAll()).length === 3);
 * ```
 */
export class QuicEndpoint implements RawDatagramPort, AsyncDisposable {
  /** The certificate this endpoint presents in TLS. */
  readonly certificate: TlsCertificate;
  /** The certificate this endpoint presents when it dials (`clientCertificate`). */
  readonly clientCertificate: TlsCertificate;
  /** @internal */
  readonly socket: DatagramSocket;
  /** @internal */
  readonly localHost: QuicheHost;
  /** @internal */
  readonly keepAliveIntervalMs: number;
  #options: ResolvedEndpointOptions;
  #clientConfig: QuicheConfig;
  #serverConfig: QuicheConfig;
  #tokens = new RetryTokens();
  #sessions: SessionCache;
  #routes = new Map<number, QuicConnection>();
  #inboundPerIp = new Map<string, number>();
  #connections = new Set<QuicConnection>();
  #sessionKeys = new WeakMap<QuicConnection, string>();
  /** The latest outbound connection to each address, until it is released. */
  #latestTo = new Map<string, QuicConnection>();
  // Addresses that completed a handshake here, oldest first, with when that stops counting.
  #validated = new Map<string, number>();
  #dirty = new Set<QuicConnection>();
  #blocked = new Set<QuicConnection>();
  // Datagrams are flushed on setImmediate (or at the end of the socket's receive batch, see
  // below), after the whole batch of receives of this turn (one ACK per batch); application
  // calls on a microtask, so a reply leaves in this turn.
  #flushHandle: ReturnType<typeof setImmediate> | undefined;
  #microtaskQueued = false;
  // With a socket that reports where its receive batches end (#batchEnds), the flush after
  // receives runs at the batch's end instead: no setImmediate while #inBatch.
  #batchEnds = false;
  #inBatch = false;
  #acceptQueue: QuicConnection[] = [];
  #acceptors: { resolve: (c: QuicConnection) => void; reject: (e: Error) => void }[] = [];
  #rawHandlers: RawDatagramHandler[] = [];
  #scratch = new Uint8Array(65536);
  #closing: Promise<void> | undefined;
  #stats = {
    datagramsReceived: 0,
    datagramsDropped: 0,
    retriesSent: 0,
    invalidTokens: 0,
    versionNegotiationsSent: 0,
    connectionsAccepted: 0,
    connectionsRefused: 0,
    handshakesFailed: 0,
  };
  #handshakeFailures = new Map<string, number>();
  #refusalsPerIp = new PeerRateLimiter(
    REFUSALS_PER_SECOND_PER_IP,
    REFUSAL_BURST_PER_IP,
    REFUSAL_SOURCES,
    systemClock,
  );
  #refusals = new TokenBucket({ rate: REFUSALS_PER_SECOND, burst: REFUSALS_PER_SECOND });

  private constructor(
    options: ResolvedEndpointOptions,
    certificate: TlsCertificate,
    socket: DatagramSocket,
  ) {
    this.#options = options;
    this.certificate = certificate;
    this.socket = socket;
    this.localHost = { host: socket.localAddr.hostname, port: socket.localAddr.port };
    this.keepAliveIntervalMs = options.keepAliveIntervalMs;
    this.#sessions = new SessionCache(options.sessionCacheSize);
    this.clientCertificate = options.clientCertificate ?? certificate;
    this.#clientConfig = buildConfig(options, this.clientCertificate);
    this.#serverConfig = buildConfig(options, certificate);
    socket.start((data, from) => {
      this.#inBatch = this.#batchEnds;
      this.#onDatagram(data, from);
    }, () => {
      // The socket's batch of receives is over: flush now, not one event-loop hop later.
      this.#batchEnds = true;
      this.#inBatch = false;
      if (this.#dirty.size > 0) this.#flush();
    });
  }

  /**
   * Binds an endpoint's UDP socket and starts receiving.
   *
   * @example
   * ```ts
   * import { QuicEndpoint } from "@cretoai/network/quic";
   *
   * await using endpoint = await QuicEndpoint.bind({ hostname: "127.0.0.1", port: 0 });
   * console.assert(endpoint.localAddr.port > 0);
   * ```
   *
   * @param options Address, TLS, flow control and timer settings.
   * @returns The endpoint.
   * @throws {InvalidConfigError} for an invalid option.
   * @throws {NetworkError} `ERR_INVALID_ADDRESS` when the address cannot be bound,
   *   `ERR_UNSUPPORTED_PLATFORM` where quiche has no published addon (only Linux x86_64 at
   *   @matrixai/quic 2.0.9), `ERR_PERMISSION_DENIED` without `--allow-ffi` for the addon.
   */
  static async bind(options: QuicEndpointOptions = {}): Promise<QuicEndpoint> {
    const resolved = resolveEndpointOptions(options);
    // Before any socket is bound: fails on a platform without the addon or without --allow-ffi.
    loadQuiche();
    const certificate = resolved.certificate ?? await generateCertificate();
    const socket = resolved.socket ?? bindDefaultSocket({
      hostname: resolved.hostname,
      port: resolved.port,
      receiveConcurrency: resolved.receiveConcurrency,
      sendBuffers: resolved.sendBuffers,
      sendBufferSize: Math.max(1500, resolved.maxUdpPayloadSize),
    });
    return new QuicEndpoint(resolved, certificate, socket);
  }

  /** The socket's bound address. */
  get localAddr(): UdpAddress {
    return this.socket.localAddr;
  }

  /** Counters since the endpoint started. */
  stats(): QuicEndpointStats {
    return {
      ...this.#stats,
      handshakeFailures: Object.fromEntries(this.#handshakeFailures),
      sendErrors: this.socket.sendErrors,
      openConnections: this.#connections.size,
    };
  }

  /**
   * Dials a peer. Resolves once the TLS handshake completed (or, with `earlyData` and a
   * cached session, at once: the timeout and the signal then still close the connection while
   * its handshake is not done, and `established` rejects).
   *
   * @param address `HOST:PORT` or an address object.
   * @param options Timeout, abort signal, early data.
   * @returns The connection.
   * @throws {InvalidAddressError} for an invalid address.
   * @throws {NetworkError} `ERR_CONNECT_TIMEOUT` when the handshake does not finish in time,
   *   `ERR_ABORTED` when the signal aborts, `ERR_ENDPOINT_CLOSED` after {@linkcode close}.
   * @throws {ConnectionClosedError} when the peer or TLS refuses the connection.
   */
  async connect(
    address: string | UdpAddress,
    options: ConnectOptions = {},
  ): Promise<QuicConnection> {
    if (this.#closing !== undefined) throw endpointClosed("connect");
    const remote = typeof address === "string" ? parseAddress(address) : checkAddress(address);
    const {
      timeoutMs = this.#options.connectionTimeoutMs,
      signal,
      serverName = "cretoai",
      earlyData = false,
    } = options;
    checkInteger("timeoutMs", timeoutMs, 1, MAX_TIMER_DELAY_MS);
    const where = formatAddress(remote);
    if (signal?.aborted) throw aborted(where, signal.reason);

    const scid = this.#newConnectionId();
    const quiche = loadQuiche().Connection.connect(
      serverName,
      scid,
      this.localHost,
      { host: remote.hostname, port: remote.port },
      this.#clientConfig,
    );
    this.#keepSession(where);
    const session = this.#options.earlyData ? this.#sessions.get(where) : undefined;
    if (session !== undefined) {
      try {
        quiche.setSession(session);
      } catch {
        // A session quiche cannot use only costs the resumption.
      }
    }
    const conn = new QuicConnection(
      this,
      quiche,
      remote,
      "outbound",
      this.clientCertificate.der,
      this.#scratch,
    );
    this.#sessionKeys.set(conn, where);
    this.#latestTo.set(where, conn);
    this.#addRoute(conn, scid);
    this.#connections.add(conn);
    conn.flush();

    // Also when the connection is handed over in 0-RTT: a handshake that never completes
    // closes the connection after `timeoutMs`, not only after the idle timeout.
    const cancel = conn.deadline(() => {
      conn.abort(
        new NetworkError(
          "ERR_CONNECT_TIMEOUT",
          `Cannot connect to ${where}: no handshake within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const onAbort = () => conn.abort(aborted(where, signal?.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
    const settled = conn.established.finally(() => {
      cancel();
      signal?.removeEventListener("abort", onAbort);
    });
    if (earlyData && conn.isInEarlyData) {
      settled.catch(() => {}); // the connection's own promises report the failure
      return conn;
    }
    await settled;
    return conn;
  }

  /**
   * Waits for the next inbound connection (established, or in 0-RTT).
   *
   * @returns The connection.
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` once the endpoint closes.
   */
  accept(): Promise<QuicConnection> {
    while (this.#acceptQueue.length > 0) {
      const conn = this.#acceptQueue.shift()!;
      if (conn.closedError === undefined) return Promise.resolve(conn);
    }
    if (this.#closing !== undefined) return Promise.reject(endpointClosed("accept"));
    return new Promise((resolve, reject) => this.#acceptors.push({ resolve, reject }));
  }

  /** The connections open now. */
  connections(): QuicConnection[] {
    return [...this.#connections];
  }

  /**
   * Sends a non-QUIC datagram from the endpoint's socket.
   *
   * @param data The datagram; its first byte must be below 0x40 so the receiver's endpoint
   *   does not take it for QUIC.
   * @param to The destination.
   */
  sendRaw(data: Uint8Array, to: UdpAddress): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(endpointClosed("send"));
    return this.socket.sendCopy(data, to);
  }

  /**
   * Registers a handler for datagrams that are not QUIC.
   *
   * @param handler Returns true when it consumed the datagram.
   * @returns A function that removes the handler.
   */
  addRawHandler(handler: RawDatagramHandler): () => void {
    this.#rawHandlers.push(handler);
    return () => {
      const at = this.#rawHandlers.indexOf(handler);
      if (at >= 0) this.#rawHandlers.splice(at, 1);
    };
  }

  /**
   * Closes every connection (CONNECTION_CLOSE with code 0), then the socket, and clears
   * every timer. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    for (const waiter of this.#acceptors.splice(0)) waiter.reject(endpointClosed("accept"));
    const bye = new TextEncoder().encode("endpoint closing");
    for (const conn of this.#connections) {
      try {
        quicheOf(conn).close(true, 0, bye);
      } catch {
        // already closing
      }
      conn.flush(); // sends the CONNECTION_CLOSE now: the socket goes away next
    }
    const reason = new ConnectionClosedError("the local endpoint closed", {
      isApp: true,
      errorCode: 0,
      reason: "endpoint closing",
    });
    for (const conn of [...this.#connections]) conn.abort(reason);
    if (this.#flushHandle !== undefined) clearImmediate(this.#flushHandle);
    this.#flushHandle = undefined;
    this.#dirty.clear();
    this.#blocked.clear();
    await this.socket.close();
  }

  /** @internal */
  schedule(connection: QuicConnection): void {
    this.#dirty.add(connection);
    if (!this.#inBatch) this.#flushHandle ??= setImmediate(this.#flushImmediate);
  }

  /** @internal */
  scheduleSoon(connection: QuicConnection): void {
    this.#dirty.add(connection);
    if (!this.#microtaskQueued) {
      this.#microtaskQueued = true;
      queueMicrotask(this.#flushMicrotask);
    }
  }

  /** @internal */
  announce(connection: QuicConnection): void {
    if (connection.isEstablished) this.#rememberValidated(connection.remoteAddr);
    const acceptor = this.#acceptors.shift();
    if (acceptor !== undefined) {
      acceptor.resolve(connection);
    } else if (this.#acceptQueue.length < this.#options.acceptBacklog) {
      this.#acceptQueue.push(connection);
    } else {
      this.#stats.connectionsRefused++;
      try {
        quicheOf(connection).close(
          false,
          CONNECTION_REFUSED,
          new TextEncoder().encode("backlog full"),
        );
      } catch {
        // already closing
      }
    }
  }

  /** @internal */
  release(connection: QuicConnection): void {
    if (connection.isServer) {
      const ip = connection.inboundFrom;
      const count = (this.#inboundPerIp.get(ip) ?? 1) - 1;
      if (count > 0) this.#inboundPerIp.set(ip, count);
      else this.#inboundPerIp.delete(ip);
    }
    for (const key of connection.routingKeys) {
      if (this.#routes.get(key) === connection) this.#routes.delete(key);
    }
    this.#connections.delete(connection);
    this.#dirty.delete(connection);
    this.#blocked.delete(connection);
    if (connection.isServer && connection.isEstablished) {
      this.#rememberValidated(connection.remoteAddr);
    }
    const sessionKey = this.#sessionKeys.get(connection);
    if (sessionKey !== undefined && this.#latestTo.get(sessionKey) === connection) {
      this.#keepSession(sessionKey);
      this.#latestTo.delete(sessionKey);
    }
  }

  /**
   * Caches the TLS session of the latest connection to `where`, closing or not: a reconnect
   * right after a close (whose connection is released only after quiche's draining period)
   * resumes the session its peer issued last, not one of an earlier connection, which a
   * listener restarted at that address since would not know.
   */
  #keepSession(where: string): void {
    const latest = this.#latestTo.get(where);
    if (latest === undefined || !latest.isEstablished) return;
    const session = quicheOf(latest).session();
    if (session !== null) this.#sessions.set(where, session);
  }

  /** @internal */
  handshakeFailed(connection: QuicConnection): void {
    const native = quicheOf(connection);
    const local = native.localError();
    let key: string;
    let why: string;
    if (local !== null && !local.isApp) {
      key = transportErrorKey(local.errorCode);
      why = `quiche refused it with ${describeTransportError(local.errorCode)}`;
    } else if (native.isTimedOut()) {
      key = "idle_timeout";
      why = "the client went silent";
    } else {
      key = "peer_closed";
      why = "the client closed it";
    }
    this.#stats.handshakesFailed++;
    networkMetrics()?.handshakesFailed.add(1, { error: key });
    this.#handshakeFailures.set(key, (this.#handshakeFailures.get(key) ?? 0) + 1);
    log.debug("Inbound QUIC handshake from {address} failed: {why}", {
      address: formatAddress(connection.remoteAddr),
      why,
      key,
    });
  }

  #flushImmediate = (): void => {
    this.#flushHandle = undefined;
    this.#flush();
  };

  #flushMicrotask = (): void => {
    this.#microtaskQueued = false;
    this.#flush();
  };

  #flush(): void {
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const conn of dirty) {
      if (!conn.flush()) this.#blocked.add(conn);
    }
    if (this.#blocked.size > 0 && this.socket.onWritable === undefined) {
      this.socket.onWritable = () => {
        for (const conn of this.#blocked) this.schedule(conn);
        this.#blocked.clear();
      };
    }
  }

  #onDatagram(data: Uint8Array, from: UdpAddress): void {
    this.#stats.datagramsReceived++;
    if (!isQuic(data)) {
      for (const handler of this.#rawHandlers) {
        if (handler(data, from)) return;
      }
      this.#stats.datagramsDropped++;
      return;
    }
    const key = destinationKey(data);
    const conn = key < 0 ? undefined : this.#routes.get(key);
    if (conn !== undefined) conn.receive(data, from);
    else if (!isLongHeader(data) || !this.#acceptNew(data, from)) this.#stats.datagramsDropped++;
  }

  /** Handles a long-header packet for no known connection. Returns false to drop it. */
  #acceptNew(data: Uint8Array, from: UdpAddress): boolean {
    if (this.#closing !== undefined) return false;
    const long = parseLongHeader(data);
    // Only a datagram padded to the minimum Initial size may trigger a response (RFC 9000
    // section 14.1): anything smaller could be used to amplify traffic at a spoofed source.
    if (long === undefined || data.byteLength < MIN_INITIAL_SIZE) return false;
    if (!loadQuiche().versionIsSupported(long.version)) {
      const out = this.socket.nextSendBuffer();
      if (out === null) return false;
      const length = loadQuiche().negotiateVersion(long.scid, long.dcid, out);
      this.socket.send(length, from);
      this.#stats.versionNegotiationsSent++;
      return true;
    }
    let header;
    try {
      header = loadQuiche().Header.fromSlice(data, CID_LENGTH);
    } catch {
      return false;
    }
    if (header.ty !== PacketType.Initial) return false;

    let scid: Uint8Array;
    let odcid: Uint8Array | null = null;
    if (this.#options.addressValidation === "retry") {
      const token = header.token;
      if (token === undefined || token.byteLength === 0) {
        // A Retry discards the 0-RTT packets of the client's first flight, so a resumed
        // connection's early data would only arrive after the handshake. quiche 0.18 cannot
        // send NEW_TOKEN tokens (RFC 9000 section 8.1.3), so an address that completed a
        // handshake lately counts as validated instead.
        if (!this.#validatedLately(from) || this.#options.underLoad?.()) {
          return this.#sendRetry(header, from);
        }
        scid = this.#newConnectionId();
      } else {
        odcid = this.#tokens.validate(token, from, Date.now()) ?? null;
        if (odcid === null) {
          this.#stats.invalidTokens++;
          return false;
        }
        if (header.dcid.byteLength !== CID_LENGTH || this.#routes.has(cidKey(header.dcid))) {
          return false;
        }
        scid = header.dcid.slice();
      }
    } else {
      scid = this.#newConnectionId();
    }
    // Refused before any TLS work, which is what a flood of handshakes from one source costs:
    // too many connections from the address, or the screen says no.
    const fromIp = this.#inboundPerIp.get(from.hostname) ?? 0;
    const counted = this.#options.limitLoopback || !isLoopback(from.hostname);
    const verdict = counted && fromIp >= this.#options.maxInboundPerIp
      ? `Too many connections from ${from.hostname}: at most ${this.#options.maxInboundPerIp}`
      : this.#options.admit?.(from) ?? true;
    if (verdict !== true) {
      this.#stats.connectionsRefused++;
      if (typeof verdict === "string") this.#refuseStatelessly(long, from, scid, verdict);
      return true;
    }
    this.#inboundPerIp.set(from.hostname, fromIp + 1);

    const quiche = loadQuiche().Connection.accept(
      scid,
      odcid,
      this.localHost,
      { host: from.hostname, port: from.port },
      this.#serverConfig,
    );
    const conn = new QuicConnection(
      this,
      quiche,
      from,
      "inbound",
      this.certificate.der,
      this.#scratch,
    );
    this.#addRoute(conn, scid);
    // Without a retry, the client keeps using its own first id until it hears from us.
    if (odcid === null && header.dcid.byteLength >= 6) this.#addRoute(conn, header.dcid);
    this.#connections.add(conn);
    this.#stats.connectionsAccepted++;
    // An inbound handshake gets as long as a dial does. quiche 0.18 buffers a peer's CRYPTO
    // data without a bound while the handshake lasts (CVE-2024-1765), and a peer that keeps
    // sending is never idle.
    const cancel = conn.deadline(() => {
      conn.close({ code: CONNECTION_REFUSED, reason: "handshake timeout" }).catch(() => {});
    }, this.#options.connectionTimeoutMs);
    conn.established.then(cancel, () => {});
    conn.receive(data, from);
    return true;
  }

  /**
   * Tells a client refused at its Initial why, with CONNECTION_REFUSED and `reason` in an
   * Initial packet, keeping no state (its address is proven: a Retry token or a handshake
   * lately). Rate-limited per address and in all; beyond, the Initial is dropped unanswered.
   */
  #refuseStatelessly(
    client: LongHeader,
    from: UdpAddress,
    serverScid: Uint8Array,
    reason: string,
  ): void {
    // The Initial keys' salt is version 1's: a client of another version could not read it.
    if (client.version !== QUIC_V1) return;
    if (!this.#refusalsPerIp.take(from.hostname) || !this.#refusals.tryTake(1)) return;
    const out = this.socket.nextSendBuffer();
    if (out === null) return;
    const length = writeInitialClose({
      version: client.version,
      clientDcid: client.dcid,
      clientScid: client.scid,
      serverScid,
      errorCode: CONNECTION_REFUSED,
      reason,
    }, out);
    this.socket.send(length, from);
  }

  #rememberValidated(address: UdpAddress): void {
    if (this.#options.sessionCacheSize === 0) return;
    const key = formatAddress(address);
    this.#validated.delete(key);
    this.#validated.set(key, Date.now() + VALIDATED_ADDRESS_MS);
    if (this.#validated.size > this.#options.sessionCacheSize) {
      this.#validated.delete(this.#validated.keys().next().value!);
    }
  }

  #validatedLately(address: UdpAddress): boolean {
    const key = formatAddress(address);
    const until = this.#validated.get(key);
    if (until === undefined) return false;
    if (until >= Date.now()) return true;
    this.#validated.delete(key);
    return false;
  }

  #sendRetry(header: { scid: Uint8Array; dcid: Uint8Array; version: number }, from: UdpAddress) {
    const out = this.socket.nextSendBuffer();
    if (out === null) return false;
    const token = this.#tokens.mint(from, header.dcid, Date.now());
    const newScid = this.#newConnectionId();
    const length = loadQuiche().retry(
      header.scid,
      header.dcid,
      newScid,
      token,
      header.version,
      out,
    );
    this.socket.send(length, from);
    this.#stats.retriesSent++;
    return true;
  }

  #newConnectionId(): Uint8Array {
    // Ids are routed by their first six bytes: draw again on the rare collision.
    for (;;) {
      const cid = crypto.getRandomValues(new Uint8Array(CID_LENGTH));
      if (!this.#routes.has(cidKey(cid))) return cid;
    }
  }

  #addRoute(conn: QuicConnection, cid: Uint8Array): void {
    const key = cidKey(cid);
    // A route is never taken from a live connection: an id a client chose (the Initial's
    // destination id) may share its first six bytes with one we route already.
    if (this.#routes.has(key)) return;
    conn.routingKeys.push(key);
    this.#routes.set(key, conn);
  }
}

function buildConfig(options: ResolvedEndpointOptions, certificate: TlsCertificate): QuicheConfig {
  // verifyPeer with allow-fail: both sides present and receive certificates (the handshake
  // above TLS binds them to peer identities), and TLS accepts the self-signed ones.
  const config = loadQuiche().Config.withBoringSslCtx(
    true,
    true,
    null,
    [certificate.keyPem],
    [certificate.certPem],
    SIGALGS,
  );
  config.setApplicationProtos(options.alpn);
  config.setMaxIdleTimeout(options.idleTimeoutMs);
  config.setMaxRecvUdpPayloadSize(options.maxUdpPayloadSize);
  config.setMaxSendUdpPayloadSize(options.maxUdpPayloadSize);
  config.setInitialMaxData(options.initialMaxData);
  config.setInitialMaxStreamDataBidiLocal(options.initialMaxStreamData);
  config.setInitialMaxStreamDataBidiRemote(options.initialMaxStreamData);
  config.setInitialMaxStreamDataUni(options.initialMaxStreamData);
  config.setMaxConnectionWindow(options.maxConnectionWindow);
  config.setMaxStreamWindow(options.maxStreamWindow);
  config.setInitialMaxStreamsBidi(options.maxStreamsBidi);
  config.setInitialMaxStreamsUni(options.maxStreamsUni);
  config.setCcAlgorithmName(options.congestionControl);
  config.setDisableActiveMigration(false);
  config.grease(false);
  if (options.earlyData) config.enableEarlyData();
  return config;
}

function aborted(where: string, reason: unknown): NetworkError {
  return new NetworkError("ERR_ABORTED", `Connecting to ${where} was aborted`, { cause: reason });
}
