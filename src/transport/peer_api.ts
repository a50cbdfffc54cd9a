/**
 * What the transport hands out about its peers: the messages `messages()` yields, a peer's
 * statistics, request handlers and the stream error codes of requests.
 *
 * @module
 */

import type { PeerId } from "../identity/peer_id.ts";
import type { NetworkMessage } from "./codec.ts";

/** Stream error code: the responder has no handler for the protocol id. */
export const STREAM_UNKNOWN_PROTOCOL = 0x30;
/** Stream error code: the responder's handler failed. */
export const STREAM_HANDLER_FAILED = 0x31;
/** Stream error code: the requester gave up (abort or timeout). */
export const STREAM_CANCELLED = 0x32;

/** A message taken from a peer, as `messages()` yields it. */
export interface InboundMessage {
  /** The peer that sent it. */
  from: PeerId;
  /** The message. */
  message: NetworkMessage;
}

/** Traffic counters and latency of one peer connection. */
export interface PeerStats {
  /**
   * Mean round-trip time, in milliseconds, of the connection's QUIC handshake (the first
   * sample) and of the pings since (keep-alives and `ping()`).
   */
  avgLatencyMs: number;
  /** Median round-trip time (handshake and pings), in milliseconds. */
  p50LatencyMs: number;
  /** 99th percentile round-trip time (handshake and pings), in milliseconds. */
  p99LatencyMs: number;
  /** Messages the peer acknowledged (sends that resolved). */
  messagesSent: number;
  /** Messages received from the peer. */
  messagesReceived: number;
  /** Message bytes written to the peer, frame headers and seal included. */
  bytesSent: number;
  /** Message bytes read from the peer, frame headers and seal included. */
  bytesReceived: number;
  /** Send rate to the peer over the last second, in bytes per second (as `bytesSent`). */
  sendBytesPerSecond: number;
  /** Receive rate from the peer over the last second, in bytes per second. */
  receiveBytesPerSecond: number;
  /** Bytes of the peer's messages in the `messages()` queue, not yet taken. */
  bufferedBytes: number;
  /**
   * Bytes held for the peer against its budget (`maxBufferedBytesPerPeer` plus 1 KiB of frame
   * headers): queued messages, frames being received on its lanes and request streams
   * (reserved at their announced size), and requests being served.
   */
  heldBytes: number;
  /** Request streams the peer holds open on this node. */
  openStreams: number;
  /** When the connection became ready, in milliseconds since the epoch. */
  connectedAt: number;
  /** When the last frame arrived from the peer, in milliseconds since the epoch. */
  lastSeen: number;
}

/** Called by a request handler's caller: the request and who sent it. */
export interface RequestContext {
  /** The requesting peer. */
  peerId: PeerId;
  /** The protocol id the request named. */
  protocolId: string;
}

/** Answers requests of one protocol. Throwing resets the stream; the requester gets an error. */
export type RequestHandler = (
  request: Uint8Array,
  context: RequestContext,
) => Uint8Array | Promise<Uint8Array>;
