/**
 * The transport's configuration: the design's `NetworkConfig` fields with their defaults, and
 * the checks that make a bad value fail at construction instead of on first use.
 *
 * @module
 */

import { InvalidConfigError } from "../errors.ts";
import { MAX_TIMER_DELAY_MS } from "../_timer.ts";
import { parseAddress } from "../quic/address.ts";

/** A TURN server the NAT traversal service may relay through. */
export interface TurnServerConfig {
  /** The server's `HOST:PORT`. */
  address: string;
  /** Long-term credential user name. */
  username: string;
  /** Long-term credential password. */
  password: string;
}

/**
 * Configuration of a {@linkcode QuicTransport}. Every field is optional; the defaults are the
 * design's.
 *
 * @example
 * ```ts
 * import type { NetworkConfig } from "@cretoai/network";
 *
 * const config: NetworkConfig = { listenAddr: "127.0.0.1", quicPort: 0, maxConnections: 50 };
 * ```
 */
export interface NetworkConfig {
  /**
   * IP address to listen on.
   * @default {"0.0.0.0"}
   */
  listenAddr?: string;
  /**
   * UDP port for QUIC; 0 picks a free one.
   * @default {9001}
   */
  quicPort?: number;
  /**
   * `HOST:PORT` addresses of peers to join at start (dialed by the application or a service).
   * @default {[]}
   */
  bootstrapPeers?: string[];
  /**
   * Most peer connections kept; when full, the least recently used unprotected peer is closed.
   * @default {100}
   */
  maxConnections?: number;
  /**
   * Time a dial may take until the QUIC (TLS) handshake completes, in milliseconds; an
   * inbound QUIC handshake gets as long (on lossy paths give both sides the same value).
   * @default {5000}
   */
  connectionTimeoutMs?: number;
  /**
   * Interval of the keep-alive pings that also measure latency, in seconds; 0 disables them.
   * They also keep NAT mappings alive: a node behind a NAT is reachable by the peers it dialed
   * only while its mappings last, and Linux's conntrack (like many home routers) forgets a
   * UDP flow after 30 s without packets. Keep it below the shortest mapping timeout on the way.
   * @default {15}
   */
  keepAliveIntervalSecs?: number;
  /**
   * Node-wide send rate for messages, in bits per second; `Infinity` for no limit.
   * @default {100000000}
   */
  maxBandwidthBps?: number;
  /**
   * Send rate to any one peer, in bits per second; `Infinity` for no per-peer limit. Applies
   * below `maxBandwidthBps`, so one peer cannot take the whole node's rate.
   * @default {Infinity}
   */
  maxPeerBandwidthBps?: number;
  /**
   * Inbound connections open at once from one IP address (counted from QUIC accept to close);
   * one more is closed with `APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP` (0x11). `Infinity`
   * disables. Loopback sources are not counted unless `limitLoopback` is set.
   * @default {8}
   */
  maxInboundPerIp?: number;
  /**
   * New inbound handshakes per second one IP address may start in the long run (a token
   * bucket of `inboundHandshakeBurstPerIp`); one more is closed with
   * `APP_ERROR_HANDSHAKE_RATE` (0x16) before any identity-handshake work.
   * @default {2}
   */
  inboundHandshakeRatePerIp?: number;
  /**
   * New inbound handshakes one IP address may start at once after a quiet spell.
   * @default {8}
   */
  inboundHandshakeBurstPerIp?: number;
  /**
   * New inbound handshakes per second the addresses of one IPv4 /24 or IPv6 /64 may start
   * together, so that a host with many addresses counts as one.
   * @default {8}
   */
  inboundHandshakeRatePerPrefix?: number;
  /**
   * New inbound handshakes the addresses of one prefix may start at once.
   * @default {32}
   */
  inboundHandshakeBurstPerPrefix?: number;
  /**
   * Whether `maxInboundPerIp` and the handshake rates apply to loopback sources (127.0.0.0/8,
   * ::1). Off, a local testnet of many nodes on one machine bootstraps from one node; set it
   * when untrusted traffic reaches the node through a local proxy.
   * @default {false}
   */
  limitLoopback?: boolean;
  /**
   * Time an inbound connection may stay silent after the QUIC handshake (no stream opened
   * for the identity handshake), in milliseconds; it is then closed with
   * `APP_ERROR_HANDSHAKE_TIMEOUT`. When every handshake slot is taken, the oldest silent
   * connection gives its slot to a newcomer.
   * @default {2000}
   */
  silentHandshakeTimeoutMs?: number;
  /**
   * Inbound identity handshakes in progress at once, node-wide; one more connection is closed
   * with `APP_ERROR_TOO_MANY_PENDING_HANDSHAKES` (0x12). Each handshake costs a post-quantum
   * key exchange, so this bounds what an unauthenticated flood can take. Our own dials are not
   * counted. `Infinity` disables.
   * @default {64}
   */
  maxPendingHandshakes?: number;
  /**
   * Request streams one peer may hold open at once on this node (from the stream's arrival to
   * the response; the control stream and the three message lanes are not counted); one more
   * closes the connection with `APP_ERROR_TOO_MANY_STREAMS` (0x13). `Infinity` disables
   * (QUIC then allows 1024). Each stream the peer may open counts 16 KiB of state against
   * `maxBufferedBytesPerPeer`.
   * @default {256}
   */
  maxStreamsPerPeer?: number;
  /**
   * Bytes of one peer's messages held in the `messages()` queue, not yet taken by the
   * application; a message taking the peer above it closes the connection with
   * `APP_ERROR_BUFFER_FULL` (0x15). At least `maxMessageBytes`, or `Infinity` to disable.
   * The same budget bounds everything else the peer makes this node hold: quiche's receive
   * window (an eighth of it, 1 to 24 MiB), 16 KiB of state per request stream it may open
   * (`maxStreamsPerPeer`), and in the rest its partial frames and the requests being served;
   * when the rest would not hold one `maxMessageBytes` message, frames get the whole budget.
   * @default {the larger of 16777216 (16 MiB) and maxMessageBytes}
   */
  maxBufferedBytesPerPeer?: number;
  /**
   * Whether the NAT traversal service should run (read by that service, not by the transport).
   * @default {true}
   */
  enableNatTraversal?: boolean;
  /**
   * STUN servers (`HOST:PORT`) for the NAT traversal service.
   * @default {[]}
   */
  stunServers?: string[];
  /**
   * TURN servers for the NAT traversal service.
   * @default {[]}
   */
  turnServers?: TurnServerConfig[];
  /**
   * Whether the mDNS discovery service should run (read by that service).
   * @default {true}
   */
  enableMdns?: boolean;
  /**
   * Whether the DHT service should run (read by that service).
   * @default {true}
   */
  enableDht?: boolean;
  /**
   * Largest message (and request or response) payload, in bytes; larger sends fail with
   * `ERR_MESSAGE_TOO_LARGE`, a peer announcing a larger frame is disconnected.
   * @default {16777216}
   */
  maxMessageBytes?: number;
  /**
   * Time the identity handshake may take once QUIC is up, in milliseconds; a peer that does
   * not finish in time is dropped with `ERR_HANDSHAKE_TIMEOUT`.
   * @default {10000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Seal application data with the handshake's ML-KEM-768 session keys (ChaCha20-Poly1305)
   * inside TLS. Both peers must agree; when off, the handshake still authenticates both sides.
   * @default {true}
   */
  pqEncryption?: boolean;
  /**
   * Messages received but not yet taken from `messages()`. When full, the transport stops
   * reading from peers, so QUIC flow control holds their sends back.
   * @default {1024}
   */
  inboundQueueLength?: number;
  /**
   * Bytes of received messages not yet taken from `messages()`; a message larger than this
   * is still accepted into an empty queue.
   * @default {67108864}
   */
  inboundQueueBytes?: number;
  /**
   * A connection that carries no message and no request for this long is closed with
   * `APP_ERROR_IDLE_TIMEOUT` (0x18), unless the peer is protected (keep-alive pings do not
   * count as use); QUIC also closes a connection with no packets at all for this long. In
   * milliseconds; must exceed the keep-alive interval; 0 disables both.
   * @default {90000}
   */
  idleTimeoutMs?: number;
  /**
   * Default time a `request()` may take, in milliseconds.
   * @default {10000}
   */
  requestTimeoutMs?: number;
}

/** A configuration with every default applied. */
export type ResolvedNetworkConfig = Readonly<Required<NetworkConfig>>;

/**
 * Applies the defaults and checks every value.
 *
 * @example
 * ```ts
 * import { resolveNetworkConfig } from "@cretoai/network";
 *
 * const config = resolveNetworkConfig({ quicPort: 0 });
 * console.assert(config.maxConnections === 100 && config.pqEncryption);
 * ```
 *
 * @param config The options given.
 * @returns The full configuration.
 * @throws {InvalidConfigError} naming the field, the rule and the value seen.
 */
export function resolveNetworkConfig(config: NetworkConfig = {}): ResolvedNetworkConfig {
  if (typeof config !== "object" || config === null) {
    throw new InvalidConfigError("config", "an object", config);
  }
  const {
    listenAddr = "0.0.0.0",
    quicPort = 9001,
    bootstrapPeers = [],
    maxConnections = 100,
    connectionTimeoutMs = 5000,
    keepAliveIntervalSecs = 15,
    maxBandwidthBps = 100_000_000,
    maxPeerBandwidthBps = Infinity,
    maxInboundPerIp = 8,
    inboundHandshakeRatePerIp = 2,
    inboundHandshakeBurstPerIp = 8,
    inboundHandshakeRatePerPrefix = 8,
    inboundHandshakeBurstPerPrefix = 32,
    limitLoopback = false,
    silentHandshakeTimeoutMs = 2000,
    maxPendingHandshakes = 64,
    maxStreamsPerPeer = 256,
    enableNatTraversal = true,
    stunServers = [],
    turnServers = [],
    enableMdns = true,
    enableDht = true,
    maxMessageBytes = 16 * 1024 * 1024,
    maxBufferedBytesPerPeer = Math.max(16 * 1024 * 1024, maxMessageBytes),
    handshakeTimeoutMs = 10_000,
    pqEncryption = true,
    inboundQueueLength = 1024,
    inboundQueueBytes = 64 * 1024 * 1024,
    idleTimeoutMs = 90_000,
    requestTimeoutMs = 10_000,
  } = config;
  if (typeof listenAddr !== "string") {
    throw new InvalidConfigError("listenAddr", "an IP address string", listenAddr);
  }
  try {
    parseAddress(listenAddr.includes(":") ? `[${listenAddr}]:1` : `${listenAddr}:1`);
  } catch {
    throw new InvalidConfigError("listenAddr", 'an IP address or "localhost"', listenAddr);
  }
  integer("quicPort", quicPort, 0, 65535);
  addresses("bootstrapPeers", bootstrapPeers);
  integer("maxConnections", maxConnections, 1, 1_000_000);
  integer("connectionTimeoutMs", connectionTimeoutMs, 1, MAX_TIMER_DELAY_MS);
  if (
    typeof keepAliveIntervalSecs !== "number" || !Number.isFinite(keepAliveIntervalSecs) ||
    keepAliveIntervalSecs < 0 || keepAliveIntervalSecs * 1000 > MAX_TIMER_DELAY_MS
  ) {
    throw new InvalidConfigError(
      "keepAliveIntervalSecs",
      "a number of seconds from 0 (off) to 2147483",
      keepAliveIntervalSecs,
    );
  }
  if (typeof maxBandwidthBps !== "number" || !(maxBandwidthBps >= 8)) {
    throw new InvalidConfigError(
      "maxBandwidthBps",
      "a number of bits per second of at least 8, or Infinity",
      maxBandwidthBps,
    );
  }
  if (typeof maxPeerBandwidthBps !== "number" || !(maxPeerBandwidthBps >= 8)) {
    throw new InvalidConfigError(
      "maxPeerBandwidthBps",
      "a number of bits per second of at least 8, or Infinity",
      maxPeerBandwidthBps,
    );
  }
  limit("maxInboundPerIp", maxInboundPerIp, 1);
  for (
    const [field, value] of [
      ["inboundHandshakeRatePerIp", inboundHandshakeRatePerIp],
      ["inboundHandshakeRatePerPrefix", inboundHandshakeRatePerPrefix],
    ] as const
  ) {
    if (!(typeof value === "number" && value > 0)) {
      throw new InvalidConfigError(field, "a number of handshakes per second above 0", value);
    }
  }
  integer("inboundHandshakeBurstPerIp", inboundHandshakeBurstPerIp, 1, 1_000_000);
  integer("inboundHandshakeBurstPerPrefix", inboundHandshakeBurstPerPrefix, 1, 1_000_000);
  boolean("limitLoopback", limitLoopback);
  integer("silentHandshakeTimeoutMs", silentHandshakeTimeoutMs, 1, MAX_TIMER_DELAY_MS);
  limit("maxPendingHandshakes", maxPendingHandshakes, 1);
  limit("maxStreamsPerPeer", maxStreamsPerPeer, 1);
  boolean("enableNatTraversal", enableNatTraversal);
  addresses("stunServers", stunServers);
  if (!Array.isArray(turnServers)) {
    throw new InvalidConfigError("turnServers", "an array", turnServers);
  }
  turnServers.forEach((server, i) => {
    const field = `turnServers[${i}]`;
    if (
      typeof server !== "object" || server === null || typeof server.username !== "string" ||
      typeof server.password !== "string"
    ) {
      throw new InvalidConfigError(field, "{ address, username, password } strings", server);
    }
    address(`${field}.address`, server.address);
  });
  boolean("enableMdns", enableMdns);
  boolean("enableDht", enableDht);
  integer("maxMessageBytes", maxMessageBytes, 1, 1024 * 1024 * 1024);
  // A single message of the largest size must fit, or every such message would close the peer.
  limit("maxBufferedBytesPerPeer", maxBufferedBytesPerPeer, maxMessageBytes);
  integer("handshakeTimeoutMs", handshakeTimeoutMs, 1, MAX_TIMER_DELAY_MS);
  boolean("pqEncryption", pqEncryption);
  integer("inboundQueueLength", inboundQueueLength, 1, 1_000_000);
  integer("inboundQueueBytes", inboundQueueBytes, 1, Number.MAX_SAFE_INTEGER);
  integer("idleTimeoutMs", idleTimeoutMs, 0, MAX_TIMER_DELAY_MS);
  if (
    idleTimeoutMs > 0 && keepAliveIntervalSecs > 0 && idleTimeoutMs <= keepAliveIntervalSecs * 1000
  ) {
    throw new InvalidConfigError(
      "idleTimeoutMs",
      `greater than keepAliveIntervalSecs * 1000 (${keepAliveIntervalSecs * 1000} ms), or 0`,
      idleTimeoutMs,
    );
  }
  integer("requestTimeoutMs", requestTimeoutMs, 1, MAX_TIMER_DELAY_MS);
  return Object.freeze({
    listenAddr,
    quicPort,
    bootstrapPeers: [...bootstrapPeers],
    maxConnections,
    connectionTimeoutMs,
    keepAliveIntervalSecs,
    maxBandwidthBps,
    maxPeerBandwidthBps,
    maxInboundPerIp,
    inboundHandshakeRatePerIp,
    inboundHandshakeBurstPerIp,
    inboundHandshakeRatePerPrefix,
    inboundHandshakeBurstPerPrefix,
    limitLoopback,
    silentHandshakeTimeoutMs,
    maxPendingHandshakes,
    maxStreamsPerPeer,
    enableNatTraversal,
    stunServers: [...stunServers],
    turnServers: turnServers.map((s) => ({ ...s })),
    enableMdns,
    enableDht,
    maxMessageBytes,
    maxBufferedBytesPerPeer,
    handshakeTimeoutMs,
    pqEncryption,
    inboundQueueLength,
    inboundQueueBytes,
    idleTimeoutMs,
    requestTimeoutMs,
  });
}

function integer(field: string, value: unknown, min: number, max: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidConfigError(field, `an integer from ${min} to ${max}`, value);
  }
}

function limit(field: string, value: unknown, min: number): void {
  if (!(value === Infinity || (Number.isSafeInteger(value) && (value as number) >= min))) {
    throw new InvalidConfigError(field, `an integer of at least ${min}, or Infinity`, value);
  }
}

function boolean(field: string, value: unknown): void {
  if (typeof value !== "boolean") throw new InvalidConfigError(field, "a boolean", value);
}

function addresses(field: string, value: unknown): void {
  if (!Array.isArray(value)) throw new InvalidConfigError(field, "an array of HOST:PORT", value);
  value.forEach((entry, i) => address(`${field}[${i}]`, entry));
}

function address(field: string, value: unknown): void {
  try {
    parseAddress(value as string);
  } catch {
    throw new InvalidConfigError(field, "a HOST:PORT address", value);
  }
}
