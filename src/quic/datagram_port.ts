/**
 * The view of a node's UDP socket that services outside QUIC use: STUN, TURN and hole-punch
 * packets travel on the same socket as QUIC, so the NAT mapping they find or open is the one
 * QUIC uses. The endpoint hands every datagram that is not QUIC to the registered handlers.
 *
 * @module
 */

/** A UDP address: an IPv4 or IPv6 literal and a port. */
export interface UdpAddress {
  /** IP address literal, for example `"127.0.0.1"` or `"::1"`. */
  hostname: string;
  /** UDP port, 0-65535. */
  port: number;
}

/**
 * Handles a datagram that was not QUIC. Returns `true` when it consumed the datagram, so that
 * later handlers do not see it.
 */
export type RawDatagramHandler = (data: Uint8Array, from: UdpAddress) => boolean;

/**
 * Sends and receives non-QUIC datagrams on a node's socket.
 *
 * @example Answering every raw datagram with its length
 * ```ts ignore
 * import type { RawDatagramPort } from "@cretoai/network";
 *
 * function echoLengths(port: RawDatagramPort): () => void {
 *   return port.addRawHandler((data, from) => {
 *     port.sendRaw(new Uint8Array([data.byteLength]), from).catch(() => {});
 *     return true;
 *   });
 * }
 * ```
 */
export interface RawDatagramPort {
  /** The socket's bound address. */
  readonly localAddr: UdpAddress;
  /**
   * Sends one datagram. Resolves once the socket took it; rejects if the socket is closed.
   * The buffer may be reused once the promise settles.
   */
  sendRaw(data: Uint8Array, to: UdpAddress): Promise<void>;
  /**
   * Registers a handler for datagrams that are not QUIC. The data is only valid during the
   * call (copy it to keep it). Returns a function that removes the handler.
   */
  addRawHandler(handler: RawDatagramHandler): () => void;
}
