/**
 * A QUIC connection on a {@linkcode QuicEndpoint}: streams, timers and close.
 *
 * @module
 */
import { ConnectionClosedError, NetworkError } from "../errors.ts";
import { timerDelayMs } from "../_timer.ts";
import type { QuicheConnection, QuicheHost, QuicheRecvInfo } from "./_quiche.ts";
import type { UdpAddress } from "./datagram_port.ts";
import { formatAddress } from "./address.ts";
import { QuicStream } from "./stream.ts";
import { describeTransportError, tlsAlertOf } from "./_error_codes.ts";
import { carriesShortHeaderPacket } from "./_packet.ts";
import type { DatagramSocket } from "./udp_socket.ts";

/** What a connection needs from its endpoint. @internal */
export interface ConnectionHost {
  readonly socket: DatagramSocket;
  readonly localHost: QuicheHost;
  readonly keepAliveIntervalMs: number;
  /** Runs `flush` of the connection after this turn's receives. */
  schedule(connection: QuicConnection): void;
  /** Runs `flush` of the connection in a microtask: for application calls. */
  scheduleSoon(connection: QuicConnection): void;
  /** An inbound connection is ready to be accepted. */
  announce(connection: QuicConnection): void;
  /** The connection is gone: forget its ids. */
  release(connection: QuicConnection): void;
  /** An inbound connection closed before its TLS handshake completed (reported once). */
  handshakeFailed(connection: QuicConnection): void;
}

/** Transport statistics of a connection, from quiche. */
export interface QuicConnectionStats {
  /** Smoothed round-trip time of the active path, in whole milliseconds (rounded down). */
  rttMs: number;
  /** Congestion window, in bytes. */
  congestionWindow: number;
  /** QUIC packets sent. */
  packetsSent: number;
  /** QUIC packets received. */
  packetsReceived: number;
  /** QUIC packets declared lost. */
  packetsLost: number;
  /** Bytes sent, including retransmissions and headers. */
  bytesSent: number;
  /** Bytes received. */
  bytesReceived: number;
  /** Bytes declared lost. */
  bytesLost: number;
}

/** Options of {@linkcode QuicConnection.close}. */
export interface CloseOptions {
  /**
   * Application error code sent in CONNECTION_CLOSE.
   * @default {0}
   */
  code?: number;
  /**
   * Reason phrase sent in CONNECTION_CLOSE.
   * @default {""}
   */
  reason?: string;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (e: Error) => void;
}

const EMPTY = new Uint8Array(0);
const MAX_READERS_CHECKED_ONE_BY_ONE = 64;
const SCAN_INTERVAL_MS = 5;
/** Longest a local close waits for quiche's draining period before giving up on it. */
const MAX_CLOSE_MS = 2000;
/** Datagrams one flush of a closing connection may send; its CONNECTION_CLOSE needs one. */
const MAX_CLOSING_DATAGRAMS = 8;
/** Times a closing connection sends its CONNECTION_CLOSE again for packets of the peer. */
const MAX_CLOSE_REPEATS = 6;

// Set in QuicConnection's static block: the endpoint reaches a connection's quiche state
// without it being part of the public class.
let nativeOf: (connection: QuicConnection) => QuicheConnection;

/**
 * A QUIC connection. Made by {@linkcode QuicEndpoint.connect} (outbound) or handed out by
 * {@linkcode QuicEndpoint.accept} (inbound).
 *
 * @example Opening a stream and closing with a code
 * ```ts
 * import { QuicEndpoint } from "@cretoai/network/quic";
 *
 * await using a = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * await using b = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * const accepted = b.accept();
 * const conn = await a.connect(b.localAddr);
 * const stream = await conn.openUni();
 * await stream.write(new Uint8Array([1, 2, 3]), true);
 * const peer = await accepted;
 * const incoming = await peer.acceptUni();
 * console.assert((await incoming.readAll()).length === 3);
 * await conn.close({ code: 7, reason: "done" });
 * const why = await peer.closed;
 * console.assert(why.errorCode === 7);
 * ```
 */
export class QuicConnection {
  /** Whether this side dialed or accepted. */
  readonly direction: "outbound" | "inbound";
  /** Our TLS certificate (DER) as the peer sees it. */
  readonly localCertificate: Uint8Array;
  /** Settles when the TLS handshake completes, or rejects when the connection fails first. */
  readonly established: Promise<void>;
  /**
   * Resolves, never rejects, once the connection is closed, with why it closed: at once when
   * the peer's CONNECTION_CLOSE arrives, after the draining period for a local close.
   */
  readonly closed: Promise<ConnectionClosedError>;
  // Resolves when the endpoint has forgotten the connection: it answers nothing after that.
  readonly #releasedPromise: Promise<void>;
  #resolveReleased!: () => void;
  #native: QuicheConnection;
  /** @internal */
  readonly isServer: boolean;
  /** @internal */
  readonly scratch: Uint8Array;
  /** The IP an inbound connection was first seen from, for per-IP counting. @internal */
  readonly inboundFrom: string;
  /** Routing keys of this connection's ids at the endpoint. @internal */
  readonly routingKeys: number[] = [];
  #host: ConnectionHost;
  #remote: UdpAddress;
  #recvInfo: QuicheRecvInfo;
  #streams = new Map<number, QuicStream>();
  #readers = new Set<QuicStream>();
  #writers = new Set<QuicStream>();
  #remoteStreamsOpened = 0;
  #acceptedBidi: QuicStream[] = [];
  #acceptedUni: QuicStream[] = [];
  #bidiAcceptors: Waiter<QuicStream>[] = [];
  #uniAcceptors: Waiter<QuicStream>[] = [];
  #bidiOpeners: Waiter<QuicStream>[] = [];
  #uniOpeners: Waiter<QuicStream>[] = [];
  #nextBidi: number;
  #nextUni: number;
  // Peer-opened ids seen so far, per type: all below `next` plus the set above it.
  #remoteNext: [number, number];
  #remoteAbove: [Set<number>, Set<number>] = [new Set(), new Set()];
  #established = false;
  #announced = false;
  #failureReported = false;
  #resolveEstablished!: () => void;
  #rejectEstablished!: (e: Error) => void;
  #resolveClosed!: (e: ConnectionClosedError) => void;
  #closedError: Error | undefined;
  #localClose: { code: number; reason: string } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #lastSendAt = performance.now();
  #firstSendAt: number | undefined;
  #handshakeRttMs: number | undefined;
  #flushing = false;
  // Outbound: a packet arrived after the handshake completed (see close()).
  #confirmed = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  // The datagram that carried our CONNECTION_CLOSE, and the peer's packets since.
  #closeDatagram: Uint8Array | undefined;
  #packetsAfterClose = 0;
  #released = false;
  #delivered = false;
  #drainDeferred = false;
  // As if scanned at creation: a new connection's first streams are found by their ids (see
  // #serviceStreams), and an early full scan would only cost its tens of microseconds in the
  // handshake's critical path; one due is made SCAN_INTERVAL_MS after creation.
  #lastScanAt = performance.now();
  #scanPending = false;
  /** Deadlines on this connection's timer (see {@linkcode QuicConnection.deadline}); a few. */
  #deadlines: { at: number; onExpire: () => void }[] = [];
  #onTimer = () => this.#timerFired();

  static {
    nativeOf = (connection) => connection.#native;
  }

  /**
   * Connections are made by {@linkcode QuicEndpoint}. @internal
   *
   * @param host The endpoint.
   * @param quiche The quiche connection.
   * @param remote The peer's address.
   * @param direction Whether we dialed.
   * @param localCertificate Our certificate, DER.
   * @param scratch The endpoint's read buffer.
   */
  constructor(
    host: ConnectionHost,
    quiche: QuicheConnection,
    remote: UdpAddress,
    direction: "outbound" | "inbound",
    localCertificate: Uint8Array,
    scratch: Uint8Array,
  ) {
    this.#host = host;
    this.#native = quiche;
    this.#remote = { hostname: remote.hostname, port: remote.port };
    this.inboundFrom = remote.hostname;
    this.#recvInfo = { from: { host: remote.hostname, port: remote.port }, to: host.localHost };
    this.direction = direction;
    this.isServer = direction === "inbound";
    this.localCertificate = localCertificate;
    this.scratch = scratch;
    this.#nextBidi = this.isServer ? 1 : 0;
    this.#nextUni = this.isServer ? 3 : 2;
    this.#remoteNext = this.isServer ? [0, 2] : [1, 3];
    this.established = new Promise((resolve, reject) => {
      this.#resolveEstablished = resolve;
      this.#rejectEstablished = reject;
    });
    this.established.catch(() => {}); // observed through `closed` too; never unhandled
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#releasedPromise = new Promise((resolve) => this.#resolveReleased = resolve);
  }

  /** The peer's address (the latest one it sent from). */
  get remoteAddr(): UdpAddress {
    return this.#remote;
  }

  /** Whether the TLS handshake has completed. */
  get isEstablished(): boolean {
    return this.#established;
  }

  /**
   * Milliseconds from this side's first handshake datagram to the handshake's completion here,
   * by `performance.now()`: one round trip, plus the peer's handshake processing and any
   * retransmission. `undefined` before the handshake completed. Unlike the path's `rttMs`
   * (whole milliseconds from quiche) it resolves loopback and LAN round trips.
   *
   * @example
   * ```ts
   * import { QuicEndpoint } from "@cretoai/network/quic";
   *
   * await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
   * await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
   * const accepted = server.accept();
   * const conn = await client.connect(server.localAddr);
   * console.assert(conn.handshakeRttMs! > 0);
   * await (await accepted).close();
   * ```
   */
  get handshakeRttMs(): number | undefined {
    return this.#handshakeRttMs;
  }

  /** Whether this connection resumed an earlier TLS session. */
  get isResumed(): boolean {
    return this.#native.isResumed();
  }

  /** Whether the connection is still in 0-RTT (early data may be sent or was received). */
  get isInEarlyData(): boolean {
    return this.#native.isInEarlyData();
  }

  /** The negotiated application protocol. */
  get alpn(): string {
    return new TextDecoder().decode(this.#native.applicationProto());
  }

  /** The error operations fail with once the connection is closed, else undefined. */
  get closedError(): Error | undefined {
    return this.#closedError;
  }

  /**
   * The peer's TLS certificate chain (DER, leaf first), once the handshake completed.
   * TLS accepts any certificate; the peer's identity is checked by the handshake on top,
   * which signs the hashes of both certificates.
   *
   * @returns The chain, or an empty list before the handshake completed.
   */
  peerCertificates(): Uint8Array[] {
    return this.#native.peerCertChain() ?? [];
  }

  /**
   * Opens a bidirectional stream, waiting while the peer's stream limit is used up.
   *
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  openBidi(): Promise<QuicStream> {
    return this.#open(this.#bidiOpeners, false);
  }

  /**
   * Opens a unidirectional stream, waiting while the peer's stream limit is used up.
   *
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  openUni(): Promise<QuicStream> {
    return this.#open(this.#uniOpeners, true);
  }

  /**
   * Waits for the next bidirectional stream the peer opens.
   *
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  acceptBidi(): Promise<QuicStream> {
    return this.#accept(this.#acceptedBidi, this.#bidiAcceptors);
  }

  /**
   * Waits for the next unidirectional stream the peer opens.
   *
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  acceptUni(): Promise<QuicStream> {
    return this.#accept(this.#acceptedUni, this.#uniAcceptors);
  }

  /**
   * Closes the connection with CONNECTION_CLOSE (an application close with `code` and
   * `reason`); pending operations fail. Resolves once the close has been sent and quiche's
   * draining period is over (three probe timeouts), or after 2 s at most.
   *
   * @param options Code and reason.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const { code = 0, reason = "" } = options;
    if (this.#closedError === undefined && this.#localClose === undefined) {
      this.#localClose = { code, reason };
      if (this.isServer ? !this.#closeWaitsForHandshake() : this.#confirmed) {
        this.#sendClose();
      } else if (!this.isServer) {
        // A client that has not heard from the server since its handshake completed may not
        // have its handshake confirmed yet, and quiche 0.18 then never sends the
        // CONNECTION_CLOSE (seen on resumed connections closed at once). A PING makes the
        // server answer; the close goes out with the next 1-RTT packet received.
        this.#native.sendAckEliciting();
        this.#host.scheduleSoon(this);
      }
      // Bounds the wait for quiche's draining period whatever happens.
      this.#closeTimer = setTimeout(() => this.#finalize(), MAX_CLOSE_MS);
    }
    // Not `closed`: that settles as the peer's CONNECTION_CLOSE arrives, which can come before
    // ours went out (a client's close waits for its handshake's confirmation), and the
    // connection then still answers the peer's packets until its closing period ends.
    return this.#releasedPromise;
  }

  /**
   * A server in 0-RTT (a resumed dialer's early data was accepted) has not completed its
   * handshake. quiche 0.18 sends an application close only in a 1-RTT packet and, from the
   * moment it is handed one, ignores every packet it receives: when the server's first flight
   * fills the congestion window (two certificates of several KiB do), the acknowledgements
   * that would make room are dropped, the loss probes go out as Handshake packets (which
   * cannot carry an application close), and the dialer never hears why it was refused. The
   * dialer's Finished is on its way: the close goes out with it (see flush).
   */
  #closeWaitsForHandshake(): boolean {
    return !this.#native.isEstablished() && this.#native.isInEarlyData();
  }

  #sendClose(): void {
    const { code, reason } = this.#localClose!;
    try {
      this.#native.close(true, code, new TextEncoder().encode(reason));
    } catch {
      // Already closing: quiche keeps the first close.
    }
    this.#host.scheduleSoon(this);
  }

  /**
   * Streams the peer has opened so far: a listener tells a dialer that went silent after the
   * QUIC handshake from one that started the protocol above it.
   */
  get remoteStreamsOpened(): number {
    return this.#remoteStreamsOpened;
  }

  /**
   * Calls `onExpire` once `delayMs` have passed, unless cancelled or the connection is gone
   * first. The deadline rides on the connection's own timer, which quiche's timeouts keep armed
   * anyway: a deadline of a connection's set-up costs no timer of its own (each one took 10-15
   * µs of a reconnect). @internal
   *
   * @returns A function that cancels the deadline (nothing once it ran).
   */
  deadline(onExpire: () => void, delayMs: number): () => void {
    const entry = { at: performance.now() + delayMs, onExpire };
    this.#deadlines.push(entry);
    // During a flush, or before the first one (a new inbound connection), the flush arms it.
    if (!this.#released && !this.#flushing) {
      if (this.#timer !== undefined) this.#armTimer();
      else this.#host.schedule(this);
    }
    return () => {
      const at = this.#deadlines.indexOf(entry);
      if (at >= 0) this.#deadlines.splice(at, 1);
    };
  }

  /** Transport statistics from quiche. */
  stats(): QuicConnectionStats {
    const s = this.#native.stats();
    const path = this.#native.pathStats()[0];
    return {
      rttMs: path?.rtt ?? 0, // the binding reports whole milliseconds (Duration::as_millis)
      congestionWindow: path?.cwnd ?? 0,
      packetsSent: s.sent,
      packetsReceived: s.recv,
      packetsLost: s.lost,
      bytesSent: s.sentBytes,
      bytesReceived: s.recvBytes,
      bytesLost: s.lostBytes,
    };
  }

  /** Feeds one datagram to quiche. @internal */
  receive(data: Uint8Array, from: UdpAddress): void {
    if (this.#closeDatagram !== undefined) return this.#repeatClose();
    let info = this.#recvInfo;
    const moved = info.from.port !== from.port || info.from.host !== from.hostname;
    // Anyone can send a datagram with our connection id from anywhere: a new source address
    // counts only once quiche authenticated a packet in it (its received-packet count rises;
    // undecryptable and replayed packets are dropped without counting).
    let receivedBefore = 0;
    if (moved) {
      info = { from: { host: from.hostname, port: from.port }, to: info.to };
      receivedBefore = this.#native.stats().recv;
    }
    try {
      this.#native.recv(data, info);
    } catch {
      // quiche drops what it cannot use (bad packets, "Done"); a fatal error closes the
      // connection, which the next flush sees.
    }
    if (moved && this.#native.stats().recv > receivedBefore) {
      this.#recvInfo = info;
      this.#remote = { hostname: from.hostname, port: from.port };
    }
    // The server confirms the handshake with HANDSHAKE_DONE, a 1-RTT frame: a Handshake packet
    // after completion (an ACK, a retransmission) does not, and quiche would not close then.
    if (this.#established && !this.#confirmed && carriesShortHeaderPacket(data)) {
      this.#confirmed = true;
      if (this.#localClose !== undefined) this.#sendClose();
    }
    this.#host.schedule(this);
  }

  /**
   * Runs the application side (handshake state, stream reads, writes and opens), then sends
   * everything quiche has to send and re-arms the timer. Returns false when the socket ran
   * out of send buffers. @internal
   */
  flush(): boolean {
    const native = this.#native;
    this.#flushing = true;
    if (this.#closedError === undefined) {
      if (!this.#established && native.isEstablished()) {
        this.#onEstablished();
        if (this.isServer && this.#localClose !== undefined) this.#sendClose();
      }
      if (this.isServer && !this.#announced && (this.#established || native.isInEarlyData())) {
        this.#announced = true;
        this.#host.announce(this);
      }
      if (this.#established || native.isInEarlyData()) this.#serviceStreams();
    }
    this.#flushing = false;
    if (this.#delivered && !this.#drainDeferred) {
      // The application just got data: let it answer within this turn so that quiche's ACK
      // rides on the answer instead of leaving in a packet of its own first.
      this.#delivered = false;
      this.#drainDeferred = true;
      this.#host.schedule(this);
      return true;
    }
    this.#delivered = false;
    this.#drainDeferred = false;
    const drained = this.#drain();
    if (
      this.isServer && !this.#established && !this.#failureReported &&
      (native.isClosed() || native.localError() !== null || native.peerError() !== null)
    ) {
      this.#failureReported = true;
      this.#host.handshakeFailed(this);
    }
    if (native.isClosed()) {
      this.#finalize();
    } else {
      // The peer closed: tell the application now, not after the draining period.
      if (native.isDraining() && native.peerError() !== null) this.#settle();
      this.#armTimer();
    }
    return drained;
  }

  /** Drops the connection at once, without CONNECTION_CLOSE. @internal */
  abort(error: Error): void {
    if (this.#released) return;
    try {
      this.#native.close(false, 0, EMPTY);
    } catch {
      // already closing
    }
    this.#finalize(error);
  }

  /** A stream waits for data, which arrives with packets: receiving flushes. @internal */
  wantsRead(stream: QuicStream): void {
    this.#readers.add(stream);
  }

  /**
   * A stream has bytes quiche did not take yet; flow-control credit and congestion window
   * open with packets from the peer, and receiving flushes. @internal
   */
  wantsWrite(stream: QuicStream): void {
    this.#writers.add(stream);
  }

  /** Both directions of a stream are done: forget it. @internal */
  finished(stream: QuicStream): void {
    this.#streams.delete(stream.id);
    this.#readers.delete(stream);
    this.#writers.delete(stream);
  }

  /** A stream freed flow-control credit; no hurry. @internal */
  scheduleAfterTurn(): void {
    if (!this.#flushing) this.#host.schedule(this);
  }

  /** A stream needs its packets sent before anything else happens. @internal */
  flushNow(): void {
    if (!this.#flushing && !this.flush()) this.#host.schedule(this);
  }

  /** A stream changed state that quiche must act on. @internal */
  schedule(): void {
    // During a flush, the drain that follows sends whatever the streams just produced.
    if (!this.#flushing) this.#host.scheduleSoon(this);
  }

  #onEstablished(): void {
    this.#established = true;
    this.#handshakeRttMs = performance.now() - (this.#firstSendAt ?? performance.now());
    // A dialer's application writes first once it hears of this (the transport's ClientHello):
    // let that ride with the TLS Finished instead of following in a datagram of its own.
    if (!this.isServer) this.#delivered = true;
    this.#resolveEstablished();
  }

  #serviceStreams(): void {
    const native = this.#native;
    if (native.isReadable()) {
      // quiche's readable() iterator costs tens of microseconds per call through the
      // binding, so waiting readers are checked one by one while they are few, and new peer
      // streams are looked for at the ids the peer opens next. A full scan, at most every
      // SCAN_INTERVAL_MS, finds streams that arrive out of order.
      if (this.#readers.size <= MAX_READERS_CHECKED_ONE_BY_ONE) {
        for (const stream of this.#readers) {
          if (native.streamReadable(stream.id) && stream.onReadable()) {
            this.#readers.delete(stream);
            this.#delivered = true;
          }
        }
        for (let type = 0; type < 2; type++) {
          while (native.streamReadable(this.#remoteNext[type])) {
            this.#newRemoteStream(this.#remoteNext[type]);
          }
        }
        if (native.isReadable()) this.#scanWhenDue();
      } else {
        this.#scanReadable();
      }
    }
    if (this.#writers.size > 0) {
      for (const stream of this.#writers) {
        if (stream.onWritable()) this.#writers.delete(stream);
      }
    }
    this.#serveOpeners(this.#bidiOpeners, false);
    this.#serveOpeners(this.#uniOpeners, true);
  }

  #scanWhenDue(): void {
    if (performance.now() - this.#lastScanAt >= SCAN_INTERVAL_MS) this.#scanReadable();
    else this.#scanPending = true;
  }

  #scanReadable(): void {
    this.#lastScanAt = performance.now();
    this.#scanPending = false;
    for (const id of this.#native.readable()) {
      const stream = this.#streams.get(id) ?? this.#newRemoteStream(id);
      if (stream !== undefined && this.#readers.has(stream) && stream.onReadable()) {
        this.#readers.delete(stream);
        this.#delivered = true;
      }
    }
  }

  #newRemoteStream(id: number): QuicStream | undefined {
    const localParity = this.isServer ? 1 : 0;
    if ((id & 1) === localParity) return undefined; // a local stream we already forgot
    const type = (id & 2) >> 1;
    const above = this.#remoteAbove[type];
    if (id < this.#remoteNext[type] || above.has(id)) return undefined; // already handed out
    above.add(id);
    while (above.delete(this.#remoteNext[type])) this.#remoteNext[type] += 4;
    const stream = new QuicStream(this, this.#native, id, this.#native.isInEarlyData());
    this.#streams.set(id, stream);
    this.#remoteStreamsOpened++;
    this.#delivered = true;
    const uni = type === 1;
    const acceptors = uni ? this.#uniAcceptors : this.#bidiAcceptors;
    const acceptor = acceptors.shift();
    if (acceptor !== undefined) acceptor.resolve(stream);
    else (uni ? this.#acceptedUni : this.#acceptedBidi).push(stream);
    return stream;
  }

  #accept(backlog: QuicStream[], acceptors: Waiter<QuicStream>[]): Promise<QuicStream> {
    const ready = backlog.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    // No flush needed: new streams arrive with packets, and receiving flushes.
    return new Promise((resolve, reject) => acceptors.push({ resolve, reject }));
  }

  #open(openers: Waiter<QuicStream>[], uni: boolean): Promise<QuicStream> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    if (openers.length === 0 && this.#canOpen(uni)) return Promise.resolve(this.#create(uni));
    // Stream credit arrives with packets, and receiving flushes.
    return new Promise((resolve, reject) => openers.push({ resolve, reject }));
  }

  #canOpen(uni: boolean): boolean {
    const native = this.#native;
    if (!this.#established && !native.isInEarlyData()) return false;
    return (uni ? native.peerStreamsLeftUni() : native.peerStreamsLeftBidi()) > 0;
  }

  #serveOpeners(openers: Waiter<QuicStream>[], uni: boolean): void {
    while (openers.length > 0 && this.#canOpen(uni)) openers.shift()!.resolve(this.#create(uni));
  }

  #create(uni: boolean): QuicStream {
    const id = uni ? this.#nextUni : this.#nextBidi;
    if (uni) this.#nextUni += 4;
    else this.#nextBidi += 4;
    // A zero-length send makes quiche create the stream and count it against the peer's
    // limit, so the next peerStreamsLeft*() is right.
    this.#native.streamSend(id, EMPTY, false);
    const stream = new QuicStream(this, this.#native, id, false);
    this.#streams.set(id, stream);
    return stream;
  }

  #drain(): boolean {
    const native = this.#native;
    const socket = this.#host.socket;
    let sent = false;
    // Once closing, quiche sends its CONNECTION_CLOSE and then nothing. quiche 0.18 can
    // instead make small Handshake packets without end, none with the close (a client closed
    // after its handshake completed and before it was confirmed): this loop would never
    // return. Bounded, it leaves the rest to the next flush; once the server's HANDSHAKE_DONE
    // arrives the close goes out, and the close timer ends the connection if it never does.
    let closingLeft = native.localError() === null ? Infinity : MAX_CLOSING_DATAGRAMS;
    for (;;) {
      if (closingLeft-- === 0) break;
      const buffer = socket.nextSendBuffer();
      if (buffer === null) {
        if (sent) this.#sentNow();
        return false;
      }
      let result;
      try {
        result = native.send(buffer);
      } catch {
        result = null; // "Done"
      }
      if (result === null) break;
      // quiche 0.18 sends its CONNECTION_CLOSE once, and then ignores what it receives. A
      // copy answers the peer's packets when that one datagram was lost (see #repeatClose).
      if (closingLeft !== Infinity && this.#closeDatagram === undefined && native.isDraining()) {
        this.#closeDatagram = buffer.slice(0, result[0]);
      }
      const to = result[1].to;
      const remote = this.#remote;
      socket.send(
        result[0],
        to.port === remote.port && to.host === remote.hostname
          ? remote
          : { hostname: to.host, port: to.port },
      );
      sent = true;
    }
    if (sent) this.#sentNow();
    return true;
  }

  #sentNow(): void {
    this.#lastSendAt = performance.now();
    this.#firstSendAt ??= this.#lastSendAt;
  }

  /**
   * A packet of the peer arrived after our CONNECTION_CLOSE: the peer did not hear it. RFC
   * 9000 section 10.2.1: a closing endpoint answers with the close again (the same packet may
   * be sent), at a rate that falls as packets keep coming: here for the 1st, 2nd, 4th, 8th,
   * ... packet, at most MAX_CLOSE_REPEATS times, and only to the address the peer proved
   * (a forged packet cannot aim it elsewhere). The draining period bounds it in time.
   */
  #repeatClose(): void {
    const count = ++this.#packetsAfterClose;
    if ((count & (count - 1)) !== 0 || Math.log2(count) >= MAX_CLOSE_REPEATS) return;
    this.#host.socket.sendCopy(this.#closeDatagram!, this.#remote).catch(() => {});
  }

  #armTimer(): void {
    const now = performance.now();
    const timeout = this.#native.timeout();
    let at = timeout === null ? Infinity : now + timeout;
    const keepAlive = this.#host.keepAliveIntervalMs;
    if (keepAlive > 0 && this.#established) at = Math.min(at, this.#lastSendAt + keepAlive);
    if (this.#scanPending) at = Math.min(at, this.#lastScanAt + SCAN_INTERVAL_MS);
    for (const deadline of this.#deadlines) at = Math.min(at, deadline.at);
    if (at === Infinity) {
      this.#clearTimer();
      return;
    }
    // Only re-arm when the deadline moved earlier: a timer that fires early is harmless,
    // quiche's onTimeout checks the time itself. So is a clamped one: with our idle timeout 0,
    // quiche's deadline follows the peer's max_idle_timeout, up to 2^62 ms.
    if (this.#timer !== undefined && this.#timerAt <= at + 0.5) return;
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, timerDelayMs(at - now));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #timerFired(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#deadlines.length > 0) {
      // Timers may fire a little early (see #armTimer): one due within half a millisecond runs.
      const now = performance.now() + 0.5;
      const due = this.#deadlines.filter((deadline) => deadline.at <= now);
      this.#deadlines = this.#deadlines.filter((deadline) => deadline.at > now);
      for (const { onExpire } of due) onExpire();
      if (this.#released) return;
    }
    const keepAlive = this.#host.keepAliveIntervalMs;
    if (
      keepAlive > 0 && this.#established && !this.#native.isDraining() &&
      performance.now() >= this.#lastSendAt + keepAlive - 1
    ) {
      this.#native.sendAckEliciting();
    }
    this.#native.onTimeout();
    this.#host.schedule(this);
  }

  /** The connection is gone for good: stop its timers and let the endpoint forget it. */
  #finalize(error?: Error): void {
    if (this.#released) return;
    this.#released = true;
    this.#clearTimer();
    this.#deadlines = [];
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    this.#settle(error);
    this.#host.release(this);
    this.#resolveReleased();
  }

  /**
   * The application's view ends: pending operations fail and `closed` resolves. When the
   * peer closed, this happens as its CONNECTION_CLOSE arrives; the connection stays routed,
   * absorbing late packets, until quiche's draining period is over.
   */
  #settle(error?: Error): void {
    if (this.#closedError !== undefined) return;
    const closed = error instanceof ConnectionClosedError ? error : this.#closeReason();
    const failure = error ?? closed;
    this.#closedError = failure;
    if (!this.#established) this.#rejectEstablished(failure);
    for (const stream of this.#streams.values()) stream.fail(failure);
    this.#streams.clear();
    this.#readers.clear();
    this.#writers.clear();
    for (
      const waiters of [
        this.#bidiAcceptors,
        this.#uniAcceptors,
        this.#bidiOpeners,
        this.#uniOpeners,
      ]
    ) {
      for (const w of waiters.splice(0)) w.reject(failure);
    }
    this.#resolveClosed(closed);
  }

  #closeReason(): ConnectionClosedError {
    const native = this.#native;
    const where = formatAddress(this.#remote);
    const peer = native.peerError();
    if (peer !== null) {
      let what = `closed by peer ${where}`;
      if (!peer.isApp && peer.errorCode !== 0) {
        // The handshake's Finished leaves before the server checked our certificate: a refusal
        // of it arrives as this close, after connect() resolved.
        what = tlsAlertOf(peer.errorCode) === undefined
          ? `${what}: ${describeTransportError(peer.errorCode)}`
          : `peer ${where} refused the TLS handshake with ${
            describeTransportError(peer.errorCode)
          }`;
      }
      return new ConnectionClosedError(what, {
        isApp: peer.isApp,
        errorCode: peer.errorCode,
        reason: new TextDecoder().decode(peer.reason),
      });
    }
    if (this.#localClose !== undefined) {
      return new ConnectionClosedError(`closed locally, peer ${where}`, {
        isApp: true,
        errorCode: this.#localClose.code,
        reason: this.#localClose.reason,
      });
    }
    const local = native.localError();
    if (local !== null) {
      const what = local.isApp ? "" : `: ${describeTransportError(local.errorCode)}`;
      return new ConnectionClosedError(
        `closed by this endpoint after an error${what}, peer ${where}`,
        {
          isApp: local.isApp,
          errorCode: local.errorCode,
          reason: new TextDecoder().decode(local.reason),
        },
      );
    }
    if (native.isTimedOut()) {
      return new ConnectionClosedError(`idle timeout, no packets from peer ${where}`);
    }
    return new ConnectionClosedError(`peer ${where}`);
  }
}

/** The quiche state of a connection, for its endpoint. @internal */
export function quicheOf(connection: QuicConnection): QuicheConnection {
  return nativeOf(connection);
}

/** Error for operations attempted on a closed endpoint. @internal */
export function endpointClosed(what: string): NetworkError {
  return new NetworkError("ERR_ENDPOINT_CLOSED", `Cannot ${what}: the endpoint is closed`);
}
