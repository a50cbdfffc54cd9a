/**
 * The transport's events and a small typed `EventTarget` to carry them.
 *
 * @module
 */

import type { UdpAddress } from "../quic/datagram_port.ts";
import type { PeerId } from "../identity/peer_id.ts";
import type { NetworkError } from "../errors.ts";

/** Which side opened a connection. */
export type ConnectionDirection = "inbound" | "outbound";

/** Detail of `peer:connected`. */
export interface PeerConnectedDetail {
  /** The authenticated peer. */
  peerId: PeerId;
  /** The peer's address as seen on this connection. */
  address: UdpAddress;
  /** Whether this node dialed. */
  direction: ConnectionDirection;
}

/**
 * Detail of `peer:disconnected`. Also reported, followed at once by `peer:connected`, when a
 * peer starts over on a new connection that replaces the one it had (it restarted, or it lost
 * the old one before this node noticed): what went over the old connection is forgotten on the
 * peer's side.
 */
export interface PeerDisconnectedDetail {
  /** The peer. */
  peerId: PeerId;
  /** The peer's last address on the connection. */
  address: UdpAddress;
  /** Whether this node had dialed. */
  direction: ConnectionDirection;
  /**
   * Why: the connection's close (a `ConnectionClosedError` with the code), or the error that
   * made this node close it (`ERR_DECRYPT`, `ERR_MALFORMED_FRAME`, ...).
   */
  error: Error;
}

/** Detail of `peer:migrated`. */
export interface PeerMigratedDetail {
  /** The peer. */
  peerId: PeerId;
  /** The peer's address on the new connection. */
  address: UdpAddress;
  /** The peer's address on the connection it left, which closes once drained. */
  previousAddress: UdpAddress;
  /** Whether this node dialed the new connection. */
  direction: ConnectionDirection;
  /**
   * Settles once the old connection closed: `true` when both sides drained it (every message
   * and request on it completed), `false` when it closed otherwise (what was still pending on
   * it failed with the close error, as any send on a closed connection does).
   */
  retired: Promise<boolean>;
}

/** Detail of `connection:failed`: a connection that never became a peer. */
export interface ConnectionFailedDetail {
  /** The remote address. */
  address: UdpAddress;
  /** Whether this node dialed. */
  direction: ConnectionDirection;
  /** What failed: the handshake, its timeout, a refused duplicate, a full pool, ... */
  error: NetworkError | Error;
}

/** Detail of `peer:banned`. */
export interface PeerBannedDetail {
  /** The banned peer. */
  peerId: PeerId;
  /** Why. */
  reason: string;
  /** When the ban ends, in milliseconds since the epoch; `null` for never. */
  expiresAt: number | null;
  /** `true` when the peer's score for protocol violations caused it, not a call to `ban`. */
  automatic: boolean;
}

/** The events of a `QuicTransport`, by name. */
export interface TransportEventMap {
  /** A peer finished the handshake and is ready for messages. */
  "peer:connected": CustomEvent<PeerConnectedDetail>;
  /** A peer's connection closed. */
  "peer:disconnected": CustomEvent<PeerDisconnectedDetail>;
  /** A connected peer moved to a new connection (see `QuicTransport.migratePeer`). */
  "peer:migrated": CustomEvent<PeerMigratedDetail>;
  /** An inbound or outbound connection failed before it became a peer. */
  "connection:failed": CustomEvent<ConnectionFailedDetail>;
  /** A peer was banned; its connection, if any, is closed with `APP_ERROR_BANNED`. */
  "peer:banned": CustomEvent<PeerBannedDetail>;
}

/**
 * An `EventTarget` whose `addEventListener`/`removeEventListener` know the event types.
 *
 * @example
 * ```ts
 * import { TypedEventTarget } from "@cretoai/network";
 *
 * interface Events {
 *   tick: CustomEvent<number>;
 * }
 * const target = new TypedEventTarget<Events>();
 * let seen = 0;
 * target.addEventListener("tick", (e) => seen = e.detail);
 * target.dispatchEvent(new CustomEvent("tick", { detail: 3 }));
 * console.assert(seen === 3);
 * ```
 */
export class TypedEventTarget<M extends { [K in keyof M]: Event }> extends EventTarget {
  /**
   * Adds a listener for an event type.
   *
   * @param type The event name.
   * @param listener Called with the event.
   * @param options Standard listener options.
   */
  override addEventListener<K extends keyof M & string>(
    type: K,
    listener: ((event: M[K]) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Adds a listener for any event type, as `EventTarget` does.
   *
   * @param type The event name.
   * @param listener Called with the event.
   * @param options Standard listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    // deno-lint-ignore no-explicit-any
    listener: any,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /**
   * Removes a listener added with {@linkcode TypedEventTarget.addEventListener}.
   *
   * @param type The event name.
   * @param listener The listener.
   * @param options Standard listener options.
   */
  override removeEventListener<K extends keyof M & string>(
    type: K,
    listener: ((event: M[K]) => void) | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes a listener of any event type, as `EventTarget` does.
   *
   * @param type The event name.
   * @param listener The listener.
   * @param options Standard listener options.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    // deno-lint-ignore no-explicit-any
    listener: any,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }
}
