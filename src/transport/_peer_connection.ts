/**
 * One authenticated connection to a peer, after the handshake: the control stream (acks,
 * pings), three outgoing message lanes (one ordered QUIC stream per traffic class, so a
 * consensus message never waits behind a large vertex, opened by its first message so that an
 * idle peer costs one stream), the peer's lanes, and request streams. The transport owns the
 * map from peer id to these.
 *
 * Migration: a connection replaced by a new one to the same peer is retired. It keeps working
 * until its own messages are acknowledged and its own requests answered, then says `drained`;
 * once both sides did, it closes with `APP_ERROR_MIGRATED`. The new connection's lanes wait,
 * lane by lane, for the old one's, so each traffic class arrives in order across the move.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { setImmediate } from "node:timers";
import { ConnectionClosedError, NetworkError, StreamResetError } from "../errors.ts";
import type { FrameCipher } from "../handshake/frame_cipher.ts";
import type { PeerId } from "../identity/peer_id.ts";
import type { QuicConnection } from "../quic/connection.ts";
import type { UdpAddress } from "../quic/datagram_port.ts";
import type { QuicStream } from "../quic/stream.ts";
import type { BandwidthLimiter, TrafficClass } from "../pool/bandwidth_limiter.ts";
import {
  APP_ERROR_MESSAGE_TOO_LARGE,
  limitError,
  type LimitViolation,
  type ResourceLimits,
} from "../pool/limits.ts";
import { RateMeter } from "../pool/rate_meter.ts";
import {
  decodeMessage,
  encodeMessage,
  encodeMessageParts,
  MESSAGE_HEADER_BYTES,
  type NetworkMessage,
} from "./codec.ts";
import {
  type ControlFrame,
  decodeControl,
  decodeLaneFrame,
  decodeLaneHeader,
  decodeRequest,
  decodeResponse,
  encodeControl,
  encodeLaneAcks,
  encodeLaneHeader,
  encodeRequest,
  encodeResponse,
  type LaneAck,
  MAX_LANE_ACKS_BYTES,
} from "./_frames.ts";
import { FrameReader, FrameWriter, SEAL_OVERHEAD } from "./_framed_stream.ts";
import { CHUNK_BYTES, returnChunks, takeChunk } from "./_chunk_pool.ts";
import { ByteBudget, frameBudgetBytes } from "./_byte_budget.ts";
import { DeadlineSweep } from "./_deadline_sweep.ts";
import { systemClock } from "../clock.ts";
import { scheduleTimeout } from "../_timer.ts";
import type { InboundQueue } from "./_inbound_queue.ts";
import type { SecureSession } from "./_secure_session.ts";
import {
  APP_ERROR_DECRYPT,
  APP_ERROR_MIGRATED,
  APP_ERROR_MIGRATION_TIMEOUT,
  APP_ERROR_PROTOCOL,
} from "./close_codes.ts";
import type { ConnectionDirection } from "./events.ts";
import {
  type InboundMessage,
  type PeerStats,
  type RequestHandler,
  STREAM_CANCELLED,
  STREAM_HANDLER_FAILED,
  STREAM_UNKNOWN_PROTOCOL,
} from "./peer_api.ts";
import { LatencyHistogram } from "./latency_histogram.ts";
import type { NetworkMetrics } from "../metrics/_network_metrics.ts";
import type { PenaltyReason } from "./peer_score.ts";
import { type TrafficSample, TrafficWatchdog } from "./traffic_watchdog.ts";

const log = getLogger(["cretoai", "transport"]);

/** Lanes by traffic class; a lane stream's header (`_frames.ts`) names its index here. */
const LANES: readonly TrafficClass[] = ["consensus", "vertex", "other"];
/** Traffic counters a successor connection adds up with its predecessor's. */
const COUNTED = ["messagesSent", "messagesReceived", "bytesSent", "bytesReceived"] as const;
/** Per-connection gauges that count while a predecessor drains. */
const IN_FLIGHT = ["bufferedBytes", "heldBytes", "openStreams"] as const;
/** Control writes in flight before the control reader waits for them to drain. */
const MAX_CONTROL_BACKLOG = 64;
/**
 * Room above `maxBufferedBytesPerPeer` for what frames add to a payload (length, message
 * header, protocol id, seal), so that one largest message or request always fits.
 */
export const FRAME_SLACK_BYTES = 1024;

/** A message in the `messages()` queue; `release` uncounts it from its peer's buffered bytes. */
export interface QueuedMessage {
  /** The message as `messages()` yields it. */
  item: InboundMessage;
  /** Called once, when the application takes the message. */
  release: () => void;
}

/** What a peer connection needs from its transport. */
export interface PeerHost {
  /** The OpenTelemetry instruments, when a meter provider is installed. */
  readonly metrics: NetworkMetrics | undefined;
  readonly maxMessageBytes: number;
  readonly requestTimeoutMs: number;
  readonly inbound: InboundQueue<QueuedMessage>;
  readonly limiter: BandwidthLimiter | undefined;
  /** Checks and counts the per-peer limits; the counts themselves are the connection's. */
  readonly limits: ResourceLimits;
  /** Node-wide meters, fed alongside the connection's own. */
  readonly sendMeter: RateMeter;
  readonly receiveMeter: RateMeter;
  handler(protocolId: string): RequestHandler | undefined;
  touch(peer: PeerConnection): void;
  /** Reports a protocol violation of the peer to its score. */
  penalize(peer: PeerConnection, reason: PenaltyReason): void;
  closed(peer: PeerConnection, error: Error): void;
}

interface PendingSend {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface Lane {
  /** The lane's stream, once its first message opened it. */
  writer: FrameWriter | undefined;
  /** Settles when the lane's sends queued so far are written: each send waits for the last. */
  tail: Promise<void>;
  written: number;
  acked: number;
  pending: PendingSend[];
}

/** The connection to one authenticated peer. @internal */
export class PeerConnection {
  readonly peerId: PeerId;
  readonly key: string;
  readonly conn: QuicConnection;
  readonly direction: ConnectionDirection;
  readonly connectedAt = Date.now();
  readonly histogram = new LatencyHistogram();
  /** Judges the connection's QUIC counters against its useful traffic. */
  readonly watchdog = new TrafficWatchdog();
  /** Bytes of application data received: frames of every stream. */
  #usefulBytes = 0;
  readonly #host: PeerHost;
  readonly #cipher: FrameCipher | undefined;
  readonly #controlReader: FrameReader;
  readonly #controlWriter: FrameWriter;
  #controlBacklog = 0;
  #lanes: Lane[] = LANES.map(() => ({
    writer: undefined,
    tail: Promise.resolve(),
    written: 0,
    acked: 0,
    pending: [],
  }));
  /** Per lane: whether the peer opened its stream (a second one is a protocol violation). */
  #peerLaneOpened = LANES.map(() => false);
  #pings = new Map<
    number,
    { start: number; resolve: (ms: number) => void; reject: (e: Error) => void }
  >();
  #pingId = 0;
  #failure: Error | undefined;
  #closedError: Error | undefined;
  #stats = { messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0, lastSeen: 0 };
  #sendMeter = new RateMeter();
  #receiveMeter = new RateMeter();
  // Per connection, not per peer id: a replaced connection's leftovers must not count against
  // the new one.
  #buffered = 0;
  #budget: ByteBudget;
  #openStreams = 0;
  /** The reading and the answering of each request stream, `requestTimeoutMs` each. */
  #requestDeadlines: DeadlineSweep;
  /** Sends not yet written, by lane (counted before they are queued, so a drain sees them). */
  #unwritten = LANES.map(() => 0);
  #laneIdleWaiters: (() => void)[][] = LANES.map(() => []);
  /** Per lane: whether the peer's messages were read here but are not all queued yet. */
  #inboundHeld = LANES.map(() => false);
  #inboundIdleWaiters: (() => void)[][] = LANES.map(() => []);
  /** Per lane: the peer's messages queued here, and how many of them the peer was told of. */
  #received = LANES.map(() => 0);
  #acknowledged = LANES.map(() => 0);
  /** Per lane: whether an ack control frame is being written (one at a time). */
  #ackWriting = LANES.map(() => false);
  /**
   * Whether the application answers the peer's messages in the turn they arrive (a send to the
   * peer in a turn that received from it): acknowledgements then wait for the answer to ride
   * on, else they go at once. Learned from the last turn that received.
   */
  #answers = false;
  /** Whether a message of the peer arrived in this event-loop turn. */
  #receivedInTurn = false;
  #turnEndScheduled = false;
  #requestsInFlight = 0;
  #retiring = false;
  #drainedSent = false;
  #peerDrained = false;
  /** The connection this one replaced, while it drains; its counters count as this one's. */
  #predecessor: PeerConnection | undefined;

  constructor(
    host: PeerHost,
    session: SecureSession,
    direction: ConnectionDirection,
    control: { reader: FrameReader; writer: FrameWriter },
  ) {
    this.#host = host;
    this.peerId = session.peerId;
    this.key = session.peerId.toString();
    this.conn = session.conn;
    this.direction = direction;
    this.#cipher = session.cipher;
    this.#controlReader = control.reader;
    this.#controlWriter = control.writer;
    this.#stats.lastSeen = this.connectedAt;
    this.#requestDeadlines = new DeadlineSweep(systemClock, host.requestTimeoutMs);
    const { bufferedBytesPerPeer, streamsPerPeer } = host.limits.limits;
    this.#budget = new ByteBudget(
      frameBudgetBytes(bufferedBytesPerPeer, host.maxMessageBytes, streamsPerPeer) +
        FRAME_SLACK_BYTES,
    );
  }

  /** Starts the readers; called once the transport registered the peer. */
  start(): void {
    this.conn.closed.then((closed) => this.#onClosed(closed));
    this.#readControl().catch((e) => this.fail(e));
    this.#acceptLanes().catch((e) => this.fail(e));
    this.#serveRequests().catch((e) => this.fail(e));
  }

  /** The peer's address on this connection. */
  get address(): UdpAddress {
    return this.conn.remoteAddr;
  }

  /** The error operations fail with once closed. */
  get closedError(): Error | undefined {
    return this.#closedError;
  }

  /** The connection's counters for the watchdog. */
  trafficSample(): TrafficSample {
    const quic = this.conn.stats();
    return {
      bytesReceived: quic.bytesReceived,
      usefulBytesReceived: this.#usefulBytes,
      bytesSent: quic.bytesSent,
      packetsSent: quic.packetsSent,
      packetsLost: quic.packetsLost,
    };
  }

  /** Counters and latency. */
  stats(): PeerStats {
    const h = this.histogram;
    const own: PeerStats = {
      avgLatencyMs: h.mean,
      p50LatencyMs: h.percentile(50),
      p99LatencyMs: h.percentile(99),
      ...this.#stats,
      sendBytesPerSecond: this.#sendMeter.bytesPerSecond(),
      receiveBytesPerSecond: this.#receiveMeter.bytesPerSecond(),
      bufferedBytes: this.#buffered,
      heldBytes: this.#budget.used,
      openStreams: this.#openStreams,
      connectedAt: this.connectedAt,
    };
    const old = this.#predecessor?.stats();
    if (old === undefined) return own;
    // Latency and connectedAt are the new path's; traffic counts the whole peer.
    for (const key of IN_FLIGHT) own[key] += old[key];
    for (const key of COUNTED) own[key] += old[key];
    own.lastSeen = Math.max(own.lastSeen, old.lastSeen);
    return own;
  }

  /**
   * Makes this connection the successor of `predecessor`, which the transport just replaced
   * with it: each lane starts once the predecessor's lane is idle, so messages of one traffic
   * class stay in order, and the predecessor is retired.
   *
   * @returns Settles once the predecessor closed: whether it drained cleanly.
   */
  follow(predecessor: PeerConnection): Promise<boolean> {
    this.#predecessor = predecessor;
    for (const [i, lane] of this.#lanes.entries()) {
      lane.tail = lane.tail.then(() => predecessor.#laneIdle(i));
    }
    predecessor.conn.closed.then(() => {
      if (this.#predecessor !== predecessor) return;
      const old = predecessor.stats();
      this.#predecessor = undefined;
      for (const key of COUNTED) this.#stats[key] += old[key];
    });
    return predecessor.#retire();
  }

  /** Sends a message and resolves once the peer acknowledged it. */
  send(message: NetworkMessage, signal?: AbortSignal): Promise<void> {
    // Copied now: the caller may change its bytes once send() returned. A large payload is
    // copied into reused chunks, which go back once its frame was written (see `run` below).
    const { type, data } = (message ?? {}) as { type?: unknown; data?: unknown };
    const large = (type === "vertex" || type === "consensus") && data instanceof Uint8Array &&
      data.byteLength > CHUNK_BYTES;
    const body = large ? undefined : encodeMessage(message);
    const payloadBytes = body === undefined
      ? (data as Uint8Array).byteLength
      : body.byteLength - MESSAGE_HEADER_BYTES;
    const max = this.#host.maxMessageBytes;
    if (payloadBytes > max) {
      return Promise.reject(
        new NetworkError(
          "ERR_MESSAGE_TOO_LARGE",
          `Cannot send a ${message.type} message of ${payloadBytes} bytes: maxMessageBytes is ${max}`,
        ),
      );
    }
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    if (signal?.aborted) return Promise.reject(aborted(signal));
    const parts = body === undefined ? encodeMessageParts(message, takeChunk) : [body];
    const bodyBytes = payloadBytes + MESSAGE_HEADER_BYTES;
    const laneIndex = message.type === "consensus" ? 0 : message.type === "vertex" ? 1 : 2;
    if (this.#receivedInTurn) this.#answers = true;
    const sendStartedAt = this.#host.metrics && performance.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) {
          this.#stats.messagesSent++;
          if (sendStartedAt !== undefined) {
            this.#host.metrics?.messageAcknowledged(
              message.type,
              performance.now() - sendStartedAt,
            );
          }
          resolve();
        } else {
          reject(error);
        }
      };
      const onAbort = () => finish(aborted(signal!));
      signal?.addEventListener("abort", onAbort, { once: true });
      const lane = this.#lanes[laneIndex];
      const job = async () => {
        const wire = bodyBytes + 4 + (this.#cipher === undefined ? 0 : SEAL_OVERHEAD);
        const { limiter, metrics } = this.#host;
        // What acquire() grants at once, tryAcquire() grants too, without a waiter and a
        // promise: only a real wait takes acquire().
        if (limiter !== undefined && !settled && !limiter.tryAcquire(this.key, wire)) {
          if (metrics === undefined) {
            await limiter.acquire(this.key, wire, LANES[laneIndex], signal);
          } else {
            const attributes = { "traffic.class": LANES[laneIndex] };
            const waitedFrom = performance.now();
            metrics.limiterWaits.add(1, attributes);
            await limiter.acquire(this.key, wire, LANES[laneIndex], signal);
            metrics.limiterWaitDuration.record(performance.now() - waitedFrom, attributes);
          }
        }
        // An aborted send that was not written yet is dropped without taking a sequence number.
        if (settled) return;
        const writer = lane.writer ?? await this.#openLane(laneIndex);
        if (settled) return;
        const seq = ++lane.written;
        lane.pending.push({ seq, resolve: () => finish(), reject: finish });
        this.#stats.bytesSent += wire;
        this.#host.metrics?.messageSent(message.type, wire);
        this.#sendMeter.record(wire);
        this.#host.sendMeter.record(wire);
        this.#host.touch(this);
        const acks = this.#takeAcks();
        await writer.write(acks.length === 0 ? parts : [encodeLaneAcks(acks), ...parts]);
      };
      this.#unwritten[laneIndex]++;
      const run = lane.tail.then(job);
      lane.tail = run.catch(() => {});
      run.catch((e) => finish(this.#closedError ?? e)).finally(() => {
        // The job is over: its frame was written, failed or never started.
        if (large) returnChunks(parts);
        this.#unwritten[laneIndex]--;
        this.#laneChanged(laneIndex);
      });
    });
  }

  /** Measures one round trip on the control stream. */
  ping(timeoutMs = this.#host.requestTimeoutMs): Promise<number> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    const id = this.#pingId = (this.#pingId + 1) >>> 0;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings.delete(id);
        reject(
          new NetworkError("ERR_TIMEOUT", `Ping to ${this.key} got no answer in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.#pings.set(id, {
        start: performance.now(),
        resolve: (ms) => {
          clearTimeout(timer);
          resolve(ms);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#writeControl({ type: "ping", id }).catch((e) => {
        clearTimeout(timer);
        this.#pings.delete(id);
        reject(this.#closedError ?? e);
      });
    });
  }

  /** Sends a request on a new stream and returns the response. */
  async request(
    protocolId: string,
    protocolBytes: Uint8Array,
    payload: Uint8Array,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    if (this.#closedError !== undefined) throw this.#closedError;
    const max = this.#host.maxMessageBytes;
    if (payload.byteLength > max) {
      throw new NetworkError(
        "ERR_MESSAGE_TOO_LARGE",
        `Cannot send a request of ${payload.byteLength} bytes: maxMessageBytes is ${max}`,
      );
    }
    this.#requestsInFlight++;
    try {
      const stream = await this.conn.openBidi();
      this.#host.touch(this);
      const cipher = this.#cipher?.forStream(stream.id);
      const exchange = async () => {
        const requestBody = encodeRequest(protocolBytes, payload);
        await new FrameWriter(stream, cipher).write(requestBody, true);
        this.#host.metrics?.requestSent("request", protocolId, this.#wireBytes(requestBody));
        const reader = new FrameReader(stream, cipher, max + 1);
        let body: Uint8Array | null;
        try {
          body = await reader.next();
        } catch (e) {
          if (e instanceof StreamResetError && e.errorCode === STREAM_UNKNOWN_PROTOCOL) {
            throw new NetworkError(
              "ERR_UNKNOWN_PROTOCOL",
              `Peer ${this.key} has no handler for protocol ${JSON.stringify(protocolId)}`,
            );
          }
          throw e;
        }
        if (body === null || await reader.next() !== null) {
          throw new NetworkError(
            "ERR_MALFORMED_FRAME",
            `Peer ${this.key} did not answer ${JSON.stringify(protocolId)} with exactly one frame`,
          );
        }
        this.#usefulBytes += body.byteLength + 4;
        this.#host.metrics?.requestReceived("response", protocolId, this.#wireBytes(body));
        return decodeResponse(body);
      };
      return await withDeadline(exchange(), signal, timeoutMs, `request ${protocolId}`, () => {
        stream.reset(STREAM_CANCELLED);
        stream.stopSending(STREAM_CANCELLED);
      });
    } finally {
      this.#requestsInFlight--;
      this.#checkDrained();
    }
  }

  /**
   * Closes the connection because of a local error (a bad frame, a failed decryption), with
   * the application code that tells the peer why.
   */
  fail(error: unknown): void {
    if (this.#closedError !== undefined) return;
    const e = error instanceof Error ? error : new Error(String(error));
    if (e instanceof ConnectionClosedError) return; // the close path reports it
    const held = (e.cause as { bufferedBytes?: number } | undefined)?.bufferedBytes;
    if (e instanceof NetworkError && e.code === "ERR_LIMIT_EXCEEDED" && held !== undefined) {
      const violation = this.#host.limits.check("bufferedBytesPerPeer", held, this.key);
      if (violation !== undefined) return this.exceeded(violation);
    }
    if (e instanceof NetworkError && e.code === "ERR_MESSAGE_TOO_LARGE") {
      // The frame decoder refused an announced frame above the reader's bound, which is
      // messageBytes plus headers: always a messageBytes violation, counted as one.
      const announced = (e.cause as { announcedBytes?: number } | undefined)?.announcedBytes;
      const limit = this.#host.limits.limits.messageBytes;
      const violation = this.#host.limits.check("messageBytes", announced ?? limit + 1, this.key);
      if (violation !== undefined) return this.exceeded(violation);
    }
    this.#failure ??= e;
    const code = e instanceof NetworkError && e.code === "ERR_DECRYPT"
      ? APP_ERROR_DECRYPT
      : e instanceof NetworkError && e.code === "ERR_MESSAGE_TOO_LARGE"
      ? APP_ERROR_MESSAGE_TOO_LARGE
      : APP_ERROR_PROTOCOL;
    log.warn("Closing connection to {peer}: {error}", { peer: this.key, error: e.message });
    this.close(code, e.message.slice(0, 200)).catch(() => {});
    if (code === APP_ERROR_DECRYPT) this.#host.penalize(this, "decrypt-failure");
    else if (e instanceof NetworkError && e.code === "ERR_MALFORMED_FRAME") {
      this.#host.penalize(this, "malformed-frame");
    }
  }

  /**
   * Closes the connection because the peer broke a resource limit, with the limit's code; the
   * disconnect event carries `limitError(violation)`.
   */
  exceeded(violation: LimitViolation): void {
    if (this.#closedError !== undefined) return;
    this.#failure ??= limitError(violation);
    log.warn("Closing connection to {peer}: {reason}", {
      peer: this.key,
      reason: violation.message,
      limit: violation.kind,
      appErrorCode: violation.appErrorCode,
    });
    this.close(violation.appErrorCode, violation.message.slice(0, 200)).catch(() => {});
    this.#host.penalize(this, "limit-exceeded");
  }

  /**
   * Closes the connection with a code, for disconnects, eviction and duplicates. The peer is
   * gone for the transport at once; the promise waits for QUIC's draining period.
   */
  close(code: number, reason: string): Promise<void> {
    this.#predecessor?.close(code, reason).catch(() => {});
    const closing = this.conn.close({ code, reason });
    this.#onClosed(
      new ConnectionClosedError(`closed locally, peer ${this.key}`, {
        isApp: true,
        errorCode: code,
        reason,
      }),
    );
    return closing;
  }

  #onClosed(closed: Error): void {
    if (this.#closedError !== undefined) return;
    const error = this.#failure ?? closed;
    this.#closedError = closed;
    for (const lane of this.#lanes) {
      for (const p of lane.pending.splice(0)) p.reject(closed);
    }
    for (const waiters of this.#laneIdleWaiters) for (const w of waiters.splice(0)) w();
    for (const waiters of this.#inboundIdleWaiters) for (const w of waiters.splice(0)) w();
    for (const ping of this.#pings.values()) ping.reject(closed);
    this.#pings.clear();
    this.#budget.close();
    this.#host.limiter?.removePeer(this.key);
    this.#host.closed(this, error);
  }

  /**
   * Opens lane `i`'s stream and queues its header; called by the lane's first send, which the
   * lane's tail makes the only one running.
   */
  async #openLane(i: number): Promise<FrameWriter> {
    const stream = await this.conn.openUni();
    const writer = new FrameWriter(stream, this.#cipher?.forStream(stream.id));
    // The first message's write follows in order and fails too if this one does.
    writer.write(encodeLaneHeader(i)).catch(() => {});
    this.#lanes[i].writer = writer;
    return writer;
  }

  #writeControl(frame: ControlFrame): Promise<void> {
    this.#controlBacklog++;
    return this.#controlWriter.write(encodeControl(frame)).finally(() => this.#controlBacklog--);
  }

  /** Notes a message of the peer queued here, to acknowledge. */
  #noteReceived(lane: number): void {
    this.#received[lane]++;
    this.#receivedInTurn = true;
    if (this.#turnEndScheduled) return;
    this.#turnEndScheduled = true;
    setImmediate(this.#turnEnded);
  }

  /**
   * Acknowledges the peer's messages queued so far: at once, or, when the application answers
   * the peer in the turn its messages arrive, on that answer (see `#turnEnded`).
   */
  #acknowledge(): void {
    if (!this.#answers) this.#writeAcks();
  }

  // After the turn: acknowledgements no answer took go as control frames, and the next turn
  // does not wait for an answer.
  #turnEnded = (): void => {
    this.#turnEndScheduled = false;
    this.#receivedInTurn = false;
    if (!this.#received.some((count, lane) => count !== this.#acknowledged[lane])) return;
    this.#answers = false;
    this.#writeAcks();
  };

  /** The acknowledgements owed to the peer, now counted as sent: for an outgoing message. */
  #takeAcks(): LaneAck[] {
    const acks: LaneAck[] = [];
    for (let lane = 0; lane < LANES.length; lane++) {
      const count = this.#received[lane];
      if (count === this.#acknowledged[lane]) continue;
      this.#acknowledged[lane] = count;
      acks.push({ lane, count });
    }
    return acks;
  }

  // One ack control frame in flight per lane, carrying the latest count: a peer that does not
  // read its control stream cannot make this side queue one write per message.
  #writeAcks(): void {
    if (this.#closedError !== undefined) return;
    for (let lane = 0; lane < LANES.length; lane++) {
      const count = this.#received[lane];
      if (this.#ackWriting[lane] || count === this.#acknowledged[lane]) continue;
      this.#acknowledged[lane] = count;
      this.#ackWriting[lane] = true;
      this.#writeControl({ type: "ack", lane, count }).then(() => {
        this.#ackWriting[lane] = false;
        if (this.#received[lane] !== this.#acknowledged[lane]) this.#writeAcks();
      }, () => {});
    }
  }

  async #readControl(): Promise<void> {
    let last: Promise<void> = Promise.resolve();
    for (;;) {
      if (this.#controlBacklog > MAX_CONTROL_BACKLOG) await last;
      const body = await this.#controlReader.next();
      if (body === null) throw protocol("The peer finished its control stream");
      this.#usefulBytes += body.byteLength + 4;
      this.#seen(0);
      const frame = decodeControl(body);
      if (frame === undefined) continue;
      switch (frame.type) {
        case "ack":
          this.#onAck(frame.lane, frame.count);
          break;
        case "ping":
          last = this.#writeControl({ type: "pong", id: frame.id });
          last.catch(() => {});
          break;
        case "pong": {
          const ping = this.#pings.get(frame.id);
          if (ping === undefined) break;
          this.#pings.delete(frame.id);
          const ms = performance.now() - ping.start;
          this.histogram.record(ms);
          this.#host.metrics?.pingRtt.record(ms);
          ping.resolve(ms);
          break;
        }
        case "drained":
          this.#peerDrained = true;
          this.#closeIfDrained();
          break;
        case "ready":
        case "open":
          throw protocol(`The peer sent a ${frame.type} frame on an open connection`);
      }
    }
  }

  /**
   * Takes a cumulative acknowledgement. One that is not above the last is stale, not wrong:
   * acknowledgements ride on the control stream and on messages, which arrive in any order.
   */
  #onAck(laneIndex: number, count: number): void {
    const lane = this.#lanes[laneIndex];
    if (lane === undefined || count > lane.written) {
      throw protocol(
        `The peer acknowledged ${count} messages on lane ${laneIndex}, but ${
          lane?.written ?? 0
        } were sent`,
      );
    }
    if (count <= lane.acked) return;
    lane.acked = count;
    while (lane.pending.length > 0 && lane.pending[0].seq <= count) lane.pending.shift()!.resolve();
    this.#laneChanged(laneIndex);
  }

  /** Resolves once lane `i` has no unwritten or unacknowledged message, or on close. */
  #laneIdle(i: number): Promise<void> {
    if (this.#closedError !== undefined || this.#isLaneIdle(i)) return Promise.resolve();
    return new Promise((resolve) => this.#laneIdleWaiters[i].push(resolve));
  }

  /**
   * Resolves once lane `i` holds none of the peer's messages between reading and queueing,
   * or on close (after which the lane queues nothing more).
   */
  #inboundLaneIdle(i: number): Promise<void> {
    if (this.#closedError !== undefined || !this.#inboundHeld[i]) return Promise.resolve();
    return new Promise((resolve) => this.#inboundIdleWaiters[i].push(resolve));
  }

  #setInboundHeld(i: number, held: boolean): void {
    this.#inboundHeld[i] = held;
    if (!held) { for (const w of this.#inboundIdleWaiters[i].splice(0)) w(); }
  }

  #isLaneIdle(i: number): boolean {
    return this.#unwritten[i] === 0 && (this.#lanes[i]?.pending.length ?? 0) === 0;
  }

  #laneChanged(i: number): void {
    if (!this.#isLaneIdle(i)) return;
    for (const w of this.#laneIdleWaiters[i].splice(0)) w();
    this.#checkDrained();
  }

  /**
   * Retires a replaced connection: no new work comes to it; once its own work is done it says
   * `drained`, and it closes when the peer said so too, or after `requestTimeoutMs` (failing
   * whatever is still pending: nothing is dropped silently).
   */
  #retire(): Promise<boolean> {
    const retired = this.conn.closed.then(() =>
      this.#drainedSent && (this.#closedError as { errorCode?: number }).errorCode ===
        APP_ERROR_MIGRATED
    );
    if (this.#retiring || this.#closedError !== undefined) return retired;
    this.#retiring = true;
    const timeoutMs = this.#host.requestTimeoutMs;
    const timer = setTimeout(() => {
      log.warn("The replaced connection to {peer} did not drain in {ms} ms", {
        peer: this.key,
        ms: timeoutMs,
      });
      this.close(
        APP_ERROR_MIGRATION_TIMEOUT,
        `the replaced connection did not drain in ${timeoutMs} ms`,
      ).catch(() => {});
    }, timeoutMs);
    this.conn.closed.finally(() => clearTimeout(timer));
    this.#checkDrained();
    return retired;
  }

  #checkDrained(): void {
    if (!this.#retiring || this.#drainedSent || this.#closedError !== undefined) return;
    if (this.#requestsInFlight > 0 || !LANES.every((_, i) => this.#isLaneIdle(i))) return;
    this.#drainedSent = true;
    this.#writeControl({ type: "drained" }).then(
      () => this.#closeIfDrained(),
      (e) => this.fail(e),
    );
  }

  #closeIfDrained(): void {
    if (!this.#drainedSent || !this.#peerDrained || this.#closedError !== undefined) return;
    this.close(APP_ERROR_MIGRATED, "moved to a new connection").catch(() => {});
  }

  async #acceptLanes(): Promise<void> {
    for (let i = 0; i < LANES.length; i++) {
      const stream = await this.conn.acceptUni();
      this.#readLane(stream).catch((e) => this.fail(e));
    }
    // Lanes are all the peer may open; a further unidirectional stream is a violation.
    const extra = await this.conn.acceptUni();
    throw protocol(`The peer opened a fourth unidirectional stream (${extra.id})`);
  }

  async #readLane(stream: QuicStream): Promise<void> {
    const overhead = this.#cipher === undefined ? 0 : SEAL_OVERHEAD;
    const reader = new FrameReader(
      stream,
      this.#cipher?.forStream(stream.id),
      this.#host.maxMessageBytes + MESSAGE_HEADER_BYTES + MAX_LANE_ACKS_BYTES,
      undefined,
      { budget: this.#budget, mode: "fail" },
    );
    const header = await reader.next();
    if (header === null) throw protocol(`The peer finished lane stream ${stream.id} unnamed`);
    const lane = decodeLaneHeader(header);
    if (this.#peerLaneOpened[lane]) {
      throw protocol(`The peer opened a second stream (${stream.id}) for lane ${LANES[lane]}`);
    }
    this.#peerLaneOpened[lane] = true;
    const queue = this.#host.inbound;
    // After a migration, the peer's messages on the old connection come first.
    const predecessor = this.#predecessor;
    if (predecessor !== undefined) await predecessor.#inboundLaneIdle(lane);
    for (;;) {
      const body = await reader.next();
      if (body === null) return this.#setInboundHeld(lane, false);
      // A closed connection queues nothing more: its successor's messages come after.
      if (this.#closedError !== undefined) return;
      this.#setInboundHeld(lane, true);
      const frame = decodeLaneFrame(body);
      for (const ack of frame.acks) this.#onAck(ack.lane, ack.count);
      const message = decodeMessage(frame.message);
      this.#seen(body.byteLength + 4 + overhead);
      this.#stats.messagesReceived++;
      this.#host.metrics?.messageReceived(message.type, body.byteLength + 4 + overhead);
      // The payload, as maxMessageBytes counts it, so one largest message always fits.
      const size = frame.message.byteLength - MESSAGE_HEADER_BYTES;
      const violation = this.#host.limits.check(
        "bufferedBytesPerPeer",
        this.#buffered + size,
        this.key,
      );
      if (violation !== undefined) return this.exceeded(violation);
      this.#buffered += size;
      this.#budget.charge(size);
      let released = false;
      const queued: QueuedMessage = {
        item: { from: this.peerId, message },
        release: () => {
          if (released) return;
          released = true;
          this.#buffered -= size;
          this.#budget.release(size);
        },
      };
      const queuedBytes = frame.message.byteLength;
      if (!queue.tryPush(queued, queuedBytes)) {
        // Acknowledge what the queue holds before stopping to read: those sends are done.
        this.#acknowledge();
        try {
          await queue.push(queued, queuedBytes, () => this.#closedError ?? closedTransport());
        } catch (e) {
          queued.release();
          throw e;
        }
      }
      this.#noteReceived(lane);
      if (!reader.hasBuffered) {
        this.#acknowledge();
        this.#setInboundHeld(lane, false);
      }
    }
  }

  async #serveRequests(): Promise<void> {
    for (;;) {
      const stream = await this.conn.acceptBidi();
      const violation = this.#host.limits.check(
        "streamsPerPeer",
        this.#openStreams + 1,
        this.key,
      );
      if (violation !== undefined) return this.exceeded(violation);
      this.#openStreams++;
      this.#host.touch(this);
      this.#serveRequest(stream);
    }
  }

  /**
   * Serves one request stream: its frame draws on the peer's budget while it is read and
   * until the response is written, and reading and writing each have `requestTimeoutMs`
   * (a stalled requester is reset, not waited for). A peer may hold hundreds of these open,
   * so each keeps little JavaScript alive: one closure its deadline calls, no timer or promise
   * race of its own (README, "What the figures say"). Never rejects: a malformed request
   * fails the connection.
   */
  async #serveRequest(stream: QuicStream): Promise<void> {
    const cipher = this.#cipher?.forStream(stream.id);
    const reader = new FrameReader(stream, cipher, this.#host.maxMessageBytes + 257, undefined, {
      budget: this.#budget,
      mode: "wait",
    });
    const deadlines = this.#requestDeadlines;
    let expired = false;
    const expire = () => {
      expired = true;
      // The stream's slot is free now, as its pending read may wait for the budget a while.
      this.#openStreams--;
      // Closed first: the chunk its pending read holds is freed when the read fails.
      reader.close();
      stream.reset(STREAM_CANCELLED);
      stream.stopSending(STREAM_CANCELLED);
    };
    try {
      deadlines.arm(expire);
      let body: Uint8Array | null;
      try {
        body = await reader.next();
        if (body !== null && await reader.next() !== null) body = null;
      } catch (e) {
        // A requester that stalls only loses its request; malformed ones close the connection.
        if (expired) return;
        throw e;
      } finally {
        deadlines.disarm(expire);
      }
      if (expired) return;
      if (body === null) {
        throw protocol(`Request stream ${stream.id} did not carry exactly one frame`);
      }
      this.#usefulBytes += body.byteLength + 4;
      this.#budget.charge(body.byteLength);
      try {
        await this.#answer(stream, cipher, body, expire);
      } finally {
        this.#budget.release(body.byteLength);
      }
    } catch (e) {
      reader.close();
      this.fail(e);
    } finally {
      if (!expired) this.#openStreams--;
    }
  }

  async #answer(
    stream: QuicStream,
    cipher: FrameCipher | undefined,
    body: Uint8Array,
    expire: () => void,
  ): Promise<void> {
    this.#seen(0);
    const { protocolId, request } = decodeRequest(body);
    const handler = this.#host.handler(protocolId);
    if (handler === undefined) {
      stream.reset(STREAM_UNKNOWN_PROTOCOL);
      return;
    }
    this.#host.metrics?.requestReceived("request", protocolId, this.#wireBytes(body));
    let response: Uint8Array;
    try {
      response = await handler(request, { peerId: this.peerId, protocolId });
      if (!(response instanceof Uint8Array)) {
        throw new TypeError(`The handler of ${protocolId} returned no Uint8Array`);
      }
    } catch (e) {
      log.warn("Handler of {protocol} failed for {peer}: {error}", {
        protocol: protocolId,
        peer: this.key,
        error: String(e),
      });
      stream.reset(STREAM_HANDLER_FAILED);
      return;
    }
    if (response.byteLength > this.#host.maxMessageBytes) {
      stream.reset(APP_ERROR_MESSAGE_TOO_LARGE);
      return;
    }
    const responseBody = encodeResponse(response);
    const deadlines = this.#requestDeadlines;
    deadlines.arm(expire);
    try {
      await new FrameWriter(stream, cipher).write(responseBody, true);
    } catch {
      // A requester that stopped reading, or one reset at its deadline, only loses its answer.
    } finally {
      deadlines.disarm(expire);
    }
    this.#host.metrics?.requestSent("response", protocolId, this.#wireBytes(responseBody));
  }

  /** A frame's bytes on the stream: length prefix and seal included. */
  #wireBytes(body: Uint8Array): number {
    return body.byteLength + 4 + (this.#cipher === undefined ? 0 : SEAL_OVERHEAD);
  }

  #seen(bytes: number): void {
    this.#stats.lastSeen = Date.now();
    if (bytes === 0) return;
    this.#usefulBytes += bytes;
    this.#stats.bytesReceived += bytes;
    this.#receiveMeter.record(bytes);
    this.#host.receiveMeter.record(bytes);
    this.#host.touch(this);
  }
}

function protocol(message: string): NetworkError {
  return new NetworkError("ERR_MALFORMED_FRAME", message);
}

function aborted(signal: AbortSignal): NetworkError {
  return new NetworkError("ERR_ABORTED", "The operation was aborted", { cause: signal.reason });
}

function closedTransport(): NetworkError {
  return new NetworkError("ERR_ENDPOINT_CLOSED", "The transport closed");
}

/** Arms a timer: `callback` after `delayMs`; returns a function that cancels it. */
export type ArmTimer = (callback: () => void, delayMs: number) => () => void;

/**
 * Races `work` against an abort signal and a timeout; `cancel` cleans up on either. The
 * timeout is a timer of its own unless `arm` puts it elsewhere (a connection's deadline).
 */
export function withDeadline<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  timeoutMs: number,
  what: string,
  cancel: () => void,
  arm: ArmTimer = scheduleTimeout,
): Promise<T> {
  work.catch(() => {});
  if (signal?.aborted) {
    cancel();
    return Promise.reject(aborted(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      cancelTimer();
      cancel();
      reject(aborted(signal!));
    };
    const cancelTimer = arm(() => {
      signal?.removeEventListener("abort", onAbort);
      cancel();
      reject(new NetworkError("ERR_TIMEOUT", `Cannot ${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      cancelTimer();
      signal?.removeEventListener("abort", onAbort);
    });
  });
}
