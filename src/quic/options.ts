/**
 * Options of a QUIC endpoint, their defaults and their validation.
 *
 * @module
 */
import { InvalidConfigError } from "../errors.ts";
import { MAX_TIMER_DELAY_MS } from "../_timer.ts";
import type { TlsCertificate } from "./certificate.ts";
import type { DatagramSocket } from "./udp_socket.ts";
import type { UdpAddress } from "./datagram_port.ts";

/** Congestion controllers quiche 0.18 offers. */
export type CongestionControl = "reno" | "cubic" | "bbr";

/** The ALPN every cretoai endpoint speaks. */
export const CRETOAI_ALPN = "cretoai/1";

/** Bidirectional streams a peer may have open at once unless `maxStreamsBidi` says otherwise. */
export const DEFAULT_MAX_STREAMS_BIDI = 1024;

/**
 * Options of {@linkcode QuicEndpoint.bind}.
 *
 * @example
 * ```ts
 * import type { QuicEndpointOptions } from "@cretoai/network/quic";
 *
 * const options: QuicEndpointOptions = { hostname: "127.0.0.1", port: 0, idleTimeoutMs: 10_000 };
 * ```
 */
export interface QuicEndpointOptions {
  /**
   * Address to bind the endpoint's one UDP socket to.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * Port to bind; 0 picks a free one.
   * @default {0}
   */
  port?: number;
  /**
   * Application protocols offered and accepted (ALPN).
   * @default {["cretoai/1"]}
   */
  alpn?: string[];
  /** TLS certificate; a fresh self-signed Ed25519 one is generated when absent. */
  certificate?: TlsCertificate;
  /**
   * The certificate to present when this endpoint dials (a TLS client certificate); the
   * listener's session tickets carry it, so a small one keeps resumed handshakes small.
   * @default {certificate}
   */
  clientCertificate?: TlsCertificate;
  /**
   * Congestion controller. Reno lost least and ran fastest on loopback here.
   * @default {"reno"}
   */
  congestionControl?: CongestionControl;
  /**
   * Largest UDP payload sent and received.
   * @default {1350}
   */
  maxUdpPayloadSize?: number;
  /**
   * Connection-level flow-control window, in bytes.
   * @default {16777216}
   */
  initialMaxData?: number;
  /**
   * Per-stream flow-control window, in bytes.
   * @default {4194304}
   */
  initialMaxStreamData?: number;
  /**
   * Largest the connection-level window grows to: quiche doubles a window, up to this, when
   * the application reads faster than the window refills (auto-tuning). With a small
   * `initialMaxData`, a connection whose streams are not read (a peer before its identity
   * handshake) holds little, while a busy one grows its window.
   * @default {the larger of 25165824 (24 MiB) and initialMaxData}
   */
  maxConnectionWindow?: number;
  /**
   * Largest a stream's window grows to, as `maxConnectionWindow`.
   * @default {the larger of 16777216 (16 MiB) and initialMaxStreamData}
   */
  maxStreamWindow?: number;
  /**
   * Bidirectional streams the peer may have open at once.
   * @default {1024}
   */
  maxStreamsBidi?: number;
  /**
   * Unidirectional streams the peer may have open at once.
   * @default {128}
   */
  maxStreamsUni?: number;
  /**
   * A connection with no traffic for this long closes. 0 disables the idle timeout.
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /**
   * Sends a QUIC PING after this long without sending, so that idle connections and NAT
   * mappings stay alive. 0 disables it.
   * @default {10000}
   */
  keepAliveIntervalMs?: number;
  /**
   * Default time a `connect` may take until the handshake completes; an inbound handshake
   * not done in this time is closed too.
   * @default {5000}
   */
  connectionTimeoutMs?: number;
  /**
   * `"retry"` validates the address of new inbound connections with a stateless Retry (one
   * extra round trip, no state for spoofed sources), except for addresses that completed a
   * handshake here in the last 10 minutes, so that their 0-RTT data is not thrown away
   * (quiche 0.18 cannot issue NEW_TOKEN tokens); `"none"` skips validation.
   * @default {"retry"}
   */
  addressValidation?: "retry" | "none";
  /**
   * Accept and send 0-RTT early data on resumed connections.
   * @default {true}
   */
  earlyData?: boolean;
  /**
   * Established inbound connections waiting for {@linkcode QuicEndpoint.accept}; more are
   * refused with CONNECTION_REFUSED.
   * @default {128}
   */
  acceptBacklog?: number;
  /**
   * Inbound connections (handshaking or open) from one IP address at once; more are dropped
   * before any TLS work. `Infinity` turns the limit off. Loopback sources are not counted
   * unless `limitLoopback` is set.
   * @default {64}
   */
  maxInboundPerIp?: number;
  /**
   * Whether `maxInboundPerIp` applies to loopback sources (127.0.0.0/8, ::1) too. They are
   * this machine: a local testnet of many nodes dials from 127.0.0.1.
   * @default {false}
   */
  limitLoopback?: boolean;
  /**
   * Receives kept outstanding on a {@linkcode DenoUdpSocket}. The default socket on 64-bit
   * Linux with `--allow-ffi`, {@linkcode LinuxHybridSocket}, keeps one and drains what queued
   * behind it with `recvmmsg` instead, so it ignores this.
   * @default {16}
   */
  receiveConcurrency?: number;
  /**
   * Send buffers in the socket's pool.
   * @default {1024}
   */
  sendBuffers?: number;
  /**
   * Session tickets remembered for 0-RTT, one per remote address.
   * @default {1024}
   */
  sessionCacheSize?: number;
  /** A socket to use instead of binding one (for another backend); `hostname`/`port` are ignored. */
  socket?: DatagramSocket;
  /**
   * Screens a new client before any TLS work, once its address is proven (a valid Retry
   * token, or a handshake completed from it lately while not `underLoad`; every client with
   * `addressValidation: "none"`): `false` drops its Initial without an answer; a string
   * refuses it with that reason, in a CONNECTION_CLOSE (CONNECTION_REFUSED) sent in an
   * Initial packet without any connection state (at most one a second per address and 200
   * a second in all; beyond, the Initial is dropped). Both count in `connectionsRefused`. A
   * transport refuses sources its handshake rates refused a moment ago this way. Clients
   * over `maxInboundPerIp` half-open connections are refused the same way.
   * @default {undefined} (every client)
   */
  admit?: (from: UdpAddress) => boolean | string;
  /**
   * Whether the node is busy with handshakes: while it is, every new client proves its
   * address with a Retry, also one that completed a handshake here lately (so a spoofed
   * Initial costs one Retry packet and no state, and rates count only proven addresses).
   * @default {undefined} (never)
   */
  underLoad?: () => boolean;
}

/** Endpoint options with every default applied. */
export type ResolvedEndpointOptions =
  & Required<
    Omit<
      QuicEndpointOptions,
      "certificate" | "clientCertificate" | "socket" | "admit" | "underLoad"
    >
  >
  & Pick<
    QuicEndpointOptions,
    "certificate" | "clientCertificate" | "socket" | "admit" | "underLoad"
  >;

/**
 * Applies defaults and checks every value.
 *
 * @throws {InvalidConfigError} naming the option, the rule and the value.
 */
export function resolveEndpointOptions(options: QuicEndpointOptions): ResolvedEndpointOptions {
  const {
    hostname = "0.0.0.0",
    port = 0,
    alpn = [CRETOAI_ALPN],
    certificate,
    clientCertificate,
    congestionControl = "reno",
    maxUdpPayloadSize = 1350,
    initialMaxData = 16 * 1024 * 1024,
    initialMaxStreamData = 4 * 1024 * 1024,
    maxConnectionWindow = Math.max(24 * 1024 * 1024, initialMaxData),
    maxStreamWindow = Math.max(16 * 1024 * 1024, initialMaxStreamData),
    maxStreamsBidi = DEFAULT_MAX_STREAMS_BIDI,
    maxStreamsUni = 128,
    idleTimeoutMs = 30_000,
    keepAliveIntervalMs = 10_000,
    connectionTimeoutMs = 5_000,
    addressValidation = "retry",
    earlyData = true,
    acceptBacklog = 128,
    maxInboundPerIp = 64,
    limitLoopback = false,
    receiveConcurrency = 16,
    sendBuffers = 1024,
    sessionCacheSize = 1024,
    socket,
    admit,
    underLoad,
  } = options;
  if (typeof hostname !== "string" || hostname === "") {
    throw new InvalidConfigError("hostname", "a non-empty IP address", hostname);
  }
  checkInteger("port", port, 0, 65535);
  if (!Array.isArray(alpn) || alpn.length === 0 || alpn.some((p) => !validAlpn(p))) {
    throw new InvalidConfigError("alpn", "a non-empty list of 1-255 byte protocol names", alpn);
  }
  if (!["reno", "cubic", "bbr"].includes(congestionControl)) {
    throw new InvalidConfigError(
      "congestionControl",
      '"reno", "cubic" or "bbr"',
      congestionControl,
    );
  }
  checkInteger("maxUdpPayloadSize", maxUdpPayloadSize, 1200, 1452);
  checkInteger("initialMaxData", initialMaxData, 1, 2 ** 40);
  checkInteger("initialMaxStreamData", initialMaxStreamData, 1, 2 ** 40);
  checkInteger("maxConnectionWindow", maxConnectionWindow, initialMaxData, 2 ** 40);
  checkInteger("maxStreamWindow", maxStreamWindow, initialMaxStreamData, 2 ** 40);
  checkInteger("maxStreamsBidi", maxStreamsBidi, 0, 2 ** 20);
  checkInteger("maxStreamsUni", maxStreamsUni, 0, 2 ** 20);
  checkInteger("idleTimeoutMs", idleTimeoutMs, 0, MAX_TIMER_DELAY_MS);
  checkInteger("keepAliveIntervalMs", keepAliveIntervalMs, 0, MAX_TIMER_DELAY_MS);
  checkInteger("connectionTimeoutMs", connectionTimeoutMs, 1, MAX_TIMER_DELAY_MS);
  if (addressValidation !== "retry" && addressValidation !== "none") {
    throw new InvalidConfigError("addressValidation", '"retry" or "none"', addressValidation);
  }
  if (typeof earlyData !== "boolean") {
    throw new InvalidConfigError("earlyData", "a boolean", earlyData);
  }
  checkInteger("acceptBacklog", acceptBacklog, 1, 2 ** 20);
  if (maxInboundPerIp !== Infinity) checkInteger("maxInboundPerIp", maxInboundPerIp, 1, 2 ** 20);
  if (typeof limitLoopback !== "boolean") {
    throw new InvalidConfigError("limitLoopback", "a boolean", limitLoopback);
  }
  checkInteger("receiveConcurrency", receiveConcurrency, 1, 1024);
  checkInteger("sendBuffers", sendBuffers, 16, 65536);
  checkInteger("sessionCacheSize", sessionCacheSize, 0, 2 ** 20);
  if (admit !== undefined && typeof admit !== "function") {
    throw new InvalidConfigError("admit", "a function", admit);
  }
  if (underLoad !== undefined && typeof underLoad !== "function") {
    throw new InvalidConfigError("underLoad", "a function", underLoad);
  }
  return {
    hostname,
    port,
    alpn,
    certificate,
    clientCertificate,
    congestionControl,
    maxUdpPayloadSize,
    initialMaxData,
    initialMaxStreamData,
    maxConnectionWindow,
    maxStreamWindow,
    maxStreamsBidi,
    maxStreamsUni,
    idleTimeoutMs,
    keepAliveIntervalMs,
    connectionTimeoutMs,
    addressValidation,
    earlyData,
    acceptBacklog,
    maxInboundPerIp,
    limitLoopback,
    receiveConcurrency,
    sendBuffers,
    sessionCacheSize,
    socket,
    admit,
    underLoad,
  };
}

/**
 * Checks that `value` is an integer in `[min, max]`.
 *
 * @throws {InvalidConfigError} naming the field, the rule and the value.
 */
export function checkInteger(field: string, value: unknown, min: number, max: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidConfigError(field, `an integer from ${min} to ${max}`, value);
  }
}

function validAlpn(protocol: unknown): boolean {
  if (typeof protocol !== "string") return false;
  const length = new TextEncoder().encode(protocol).byteLength;
  return length >= 1 && length <= 255;
}
