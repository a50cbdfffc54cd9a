/**
 * Resource limits the transport enforces per source address, per peer and per message, with
 * the QUIC application error codes it closes offending connections with.
 *
 * Codes 0x10-0x1f are reserved for the pool and the limits; a connection closed for a limit
 * carries the code of that limit, so the remote side's logs say which one it broke.
 *
 * @module
 */

import { describe, NetworkError } from "../errors.ts";
import { requireLimit } from "../_validate.ts";

/** Close code for a limit enforced outside {@linkcode ResourceLimits}, such as a codec's. */
export const APP_ERROR_LIMIT_EXCEEDED = 0x10;
/** Close code: too many inbound connections from the peer's IP address. */
export const APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP = 0x11;
/** Close code: too many handshakes in progress on this node. */
export const APP_ERROR_TOO_MANY_PENDING_HANDSHAKES = 0x12;
/** Close code: the source address or its prefix starts new handshakes too fast. */
export const APP_ERROR_HANDSHAKE_RATE = 0x16;
/** Close code: the traffic watchdog saw the peer's packets grow without useful traffic. */
export const APP_ERROR_TRAFFIC_WATCHDOG = 0x17;
/** Close code: the peer opened more concurrent streams than allowed. */
export const APP_ERROR_TOO_MANY_STREAMS = 0x13;
/** Close code: the peer sent a message larger than allowed. */
export const APP_ERROR_MESSAGE_TOO_LARGE = 0x14;
/** Close code: more bytes are buffered for the peer than allowed. */
export const APP_ERROR_BUFFER_FULL = 0x15;
/** Close code: the connection was unused for the pool's idle timeout. */
export const APP_ERROR_IDLE_TIMEOUT = 0x18;
/** Close code: the pool was full and this connection was the least recently used. */
export const APP_ERROR_EVICTED = 0x19;
/** Close code: the losing connection of a simultaneous dial (see `keepOutbound`). */
export const APP_ERROR_DUPLICATE_CONNECTION = 0x1a;
/** Close code: the peer is not on the allowlist, or the connection gate refused it. */
export const APP_ERROR_NOT_ALLOWED = 0x1b;
/** Close code: the peer is banned (by the application, or for protocol violations). */
export const APP_ERROR_BANNED = 0x1c;

/** The limits {@linkcode ResourceLimits} checks. */
export type LimitKind =
  | "inboundPerIp"
  | "pendingHandshakes"
  | "streamsPerPeer"
  | "messageBytes"
  | "bufferedBytesPerPeer";

const APP_ERROR: Readonly<Record<LimitKind, number>> = {
  inboundPerIp: APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP,
  pendingHandshakes: APP_ERROR_TOO_MANY_PENDING_HANDSHAKES,
  streamsPerPeer: APP_ERROR_TOO_MANY_STREAMS,
  messageBytes: APP_ERROR_MESSAGE_TOO_LARGE,
  bufferedBytesPerPeer: APP_ERROR_BUFFER_FULL,
};

/** Options of {@linkcode ResourceLimits}: the most allowed of each; `Infinity` disables one. */
export interface ResourceLimitsOptions {
  /**
   * Inbound connections open at once from one IP address; a few per host allows NAT'd
   * neighbours while one host cannot fill the pool.
   *
   * @default {8}
   */
  inboundPerIp?: number;
  /**
   * Handshakes in progress at once, node-wide; each costs a post-quantum key exchange, so this
   * bounds the CPU an unauthenticated flood can take.
   *
   * @default {64}
   */
  pendingHandshakes?: number;
  /**
   * Concurrent streams one peer may hold open.
   *
   * @default {256}
   */
  streamsPerPeer?: number;
  /**
   * Size of one message in bytes.
   *
   * @default {4194304} 4 MiB.
   */
  messageBytes?: number;
  /**
   * Bytes buffered for one peer (received but not yet consumed, or queued to send).
   *
   * @default {16777216} 16 MiB.
   */
  bufferedBytesPerPeer?: number;
}

/** A broken limit: which one, its value, and the value the operation would have reached. */
export interface LimitViolation {
  /** Which limit. */
  kind: LimitKind;
  /** The limit's value. */
  limit: number;
  /** The value the operation would have reached, above `limit`. */
  value: number;
  /** The IP address or peer id the limit applies to; absent for node-wide limits. */
  subject?: string;
  /** The QUIC application error code to close the connection with. */
  appErrorCode: number;
  /** A message for logs and for the close frame's reason. */
  message: string;
}

/**
 * Turns a violation into the error to reject the offending operation with:
 * `ERR_MESSAGE_TOO_LARGE` for `messageBytes`, else `ERR_LIMIT_EXCEEDED`.
 *
 * @example
 * ```ts
 * import { limitError, ResourceLimits } from "@cretoai/network/pool";
 *
 * const limits = new ResourceLimits({ messageBytes: 1024 });
 * const violation = limits.checkMessage(2048);
 * if (violation) console.assert(limitError(violation).code === "ERR_MESSAGE_TOO_LARGE");
 * ```
 *
 * @param violation A violation from {@linkcode ResourceLimits}.
 * @returns The error, its message the violation's.
 */
export function limitError(violation: LimitViolation): NetworkError {
  return new NetworkError(
    violation.kind === "messageBytes" ? "ERR_MESSAGE_TOO_LARGE" : "ERR_LIMIT_EXCEEDED",
    violation.message,
  );
}

/**
 * Counts the resources peers hold and says when an operation would break a limit.
 *
 * Every `open`/`begin`/`add` method checks first and counts only when the limit holds; on a
 * violation nothing is counted and the violation is returned, for the transport to refuse
 * the operation or close the connection with `violation.appErrorCode`. Each violation is
 * counted by kind, see {@linkcode ResourceLimits.violations}.
 *
 * @example Accepting a connection
 * ```ts
 * import { ResourceLimits } from "@cretoai/network/pool";
 *
 * const limits = new ResourceLimits({ inboundPerIp: 1 });
 * console.assert(limits.openInbound("192.0.2.7") === undefined);
 * const violation = limits.openInbound("192.0.2.7");
 * console.assert(violation?.kind === "inboundPerIp" && violation.appErrorCode === 0x11);
 * limits.closeInbound("192.0.2.7");
 * ```
 */
export class ResourceLimits {
  /** The limits in force. */
  readonly limits: Readonly<Record<LimitKind, number>>;
  #inbound = new Map<string, number>();
  #handshakes = 0;
  #streams = new Map<string, number>();
  #buffered = new Map<string, number>();
  #violations: Record<LimitKind, number> = {
    inboundPerIp: 0,
    pendingHandshakes: 0,
    streamsPerPeer: 0,
    messageBytes: 0,
    bufferedBytesPerPeer: 0,
  };

  /**
   * Creates counters at zero.
   *
   * @param options The limits.
   * @throws {InvalidConfigError} If a limit is not an integer of at least 1 or `Infinity`.
   */
  constructor(options: ResourceLimitsOptions = {}) {
    const {
      inboundPerIp = 8,
      pendingHandshakes = 64,
      streamsPerPeer = 256,
      messageBytes = 4 * 1024 * 1024,
      bufferedBytesPerPeer = 16 * 1024 * 1024,
    } = options;
    const limits = {
      inboundPerIp,
      pendingHandshakes,
      streamsPerPeer,
      messageBytes,
      bufferedBytesPerPeer,
    };
    for (const [field, value] of Object.entries(limits)) requireLimit(field, value);
    this.limits = Object.freeze(limits);
  }

  /**
   * Checks a value against a limit; counts and returns the violation if it is above.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits({ streamsPerPeer: 2 });
   * console.assert(limits.check("streamsPerPeer", 2) === undefined);
   * console.assert(limits.check("streamsPerPeer", 3)?.limit === 2);
   * ```
   *
   * @param kind Which limit.
   * @param value The value the operation would reach.
   * @param subject The IP address or peer id, for the message.
   * @returns The violation, or `undefined` if `value` is within the limit.
   */
  check(kind: LimitKind, value: number, subject?: string): LimitViolation | undefined {
    const limit = this.limits[kind];
    if (value <= limit) return undefined;
    this.#violations[kind]++;
    const of = subject === undefined ? "" : ` for ${describe(subject)}`;
    return {
      kind,
      limit,
      value,
      ...(subject === undefined ? {} : { subject }),
      appErrorCode: APP_ERROR[kind],
      message: `Limit exceeded: '${kind}' allows at most ${limit}${of}: value would be ${value}`,
    };
  }

  /**
   * Counts an inbound connection from `ip` unless the address already has the most allowed.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits();
   * console.assert(limits.openInbound("192.0.2.7") === undefined);
   * console.assert(limits.inboundFrom("192.0.2.7") === 1);
   * ```
   *
   * @param ip The source IP address.
   * @returns The violation, or `undefined` if counted.
   */
  openInbound(ip: string): LimitViolation | undefined {
    return this.#add(this.#inbound, "inboundPerIp", ip, 1);
  }

  /**
   * Uncounts an inbound connection from `ip` when it closes.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits();
   * limits.openInbound("192.0.2.7");
   * limits.closeInbound("192.0.2.7");
   * console.assert(limits.inboundFrom("192.0.2.7") === 0);
   * ```
   *
   * @param ip The source IP address.
   */
  closeInbound(ip: string): void {
    subtract(this.#inbound, ip, 1);
  }

  /**
   * Inbound connections counted for `ip`.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * console.assert(new ResourceLimits().inboundFrom("192.0.2.7") === 0);
   * ```
   *
   * @param ip The source IP address.
   * @returns The count.
   */
  inboundFrom(ip: string): number {
    return this.#inbound.get(ip) ?? 0;
  }

  /**
   * Counts a handshake that starts, unless the most allowed are in progress.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits({ pendingHandshakes: 1 });
   * limits.beginHandshake();
   * console.assert(limits.beginHandshake()?.kind === "pendingHandshakes");
   * limits.endHandshake();
   * ```
   *
   * @returns The violation, or `undefined` if counted.
   */
  beginHandshake(): LimitViolation | undefined {
    const violation = this.check("pendingHandshakes", this.#handshakes + 1);
    if (violation === undefined) this.#handshakes++;
    return violation;
  }

  /**
   * Uncounts a handshake that finished, failed or timed out.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits();
   * limits.beginHandshake();
   * limits.endHandshake();
   * console.assert(limits.pendingHandshakes === 0);
   * ```
   */
  endHandshake(): void {
    this.#handshakes = Math.max(0, this.#handshakes - 1);
  }

  /**
   * Handshakes in progress.
   *
   * @returns The count.
   */
  get pendingHandshakes(): number {
    return this.#handshakes;
  }

  /**
   * Counts a stream the peer opened, unless it already holds the most allowed.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits({ streamsPerPeer: 1 });
   * limits.openStream("peer-a");
   * console.assert(limits.openStream("peer-a")?.appErrorCode === 0x13);
   * ```
   *
   * @param peer The peer's id.
   * @returns The violation, or `undefined` if counted.
   */
  openStream(peer: string): LimitViolation | undefined {
    return this.#add(this.#streams, "streamsPerPeer", peer, 1);
  }

  /**
   * Uncounts a stream that closed.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits();
   * limits.openStream("peer-a");
   * limits.closeStream("peer-a");
   * console.assert(limits.streamsOf("peer-a") === 0);
   * ```
   *
   * @param peer The peer's id.
   */
  closeStream(peer: string): void {
    subtract(this.#streams, peer, 1);
  }

  /**
   * Streams counted for a peer.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * console.assert(new ResourceLimits().streamsOf("peer-a") === 0);
   * ```
   *
   * @param peer The peer's id.
   * @returns The count.
   */
  streamsOf(peer: string): number {
    return this.#streams.get(peer) ?? 0;
  }

  /**
   * Checks the size of one message, announced or received.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits({ messageBytes: 1024 });
   * console.assert(limits.checkMessage(1024) === undefined);
   * console.assert(limits.checkMessage(1025, "peer-a")?.subject === "peer-a");
   * ```
   *
   * @param bytes The message size.
   * @param peer The sending peer's id, for the message.
   * @returns The violation, or `undefined` if within the limit.
   */
  checkMessage(bytes: number, peer?: string): LimitViolation | undefined {
    return this.check("messageBytes", bytes, peer);
  }

  /**
   * Counts bytes buffered for a peer, unless they would take it over the limit.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits({ bufferedBytesPerPeer: 100 });
   * console.assert(limits.addBuffered("peer-a", 100) === undefined);
   * console.assert(limits.addBuffered("peer-a", 1)?.value === 101);
   * limits.releaseBuffered("peer-a", 100);
   * ```
   *
   * @param peer The peer's id.
   * @param bytes Bytes now buffered.
   * @returns The violation, or `undefined` if counted.
   */
  addBuffered(peer: string, bytes: number): LimitViolation | undefined {
    return this.#add(this.#buffered, "bufferedBytesPerPeer", peer, bytes);
  }

  /**
   * Uncounts bytes no longer buffered for a peer.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits();
   * limits.addBuffered("peer-a", 10);
   * limits.releaseBuffered("peer-a", 10);
   * console.assert(limits.bufferedFor("peer-a") === 0);
   * ```
   *
   * @param peer The peer's id.
   * @param bytes Bytes consumed or sent.
   */
  releaseBuffered(peer: string, bytes: number): void {
    subtract(this.#buffered, peer, bytes);
  }

  /**
   * Bytes counted as buffered for a peer.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * console.assert(new ResourceLimits().bufferedFor("peer-a") === 0);
   * ```
   *
   * @param peer The peer's id.
   * @returns The byte count.
   */
  bufferedFor(peer: string): number {
    return this.#buffered.get(peer) ?? 0;
  }

  /**
   * Drops a peer's stream and buffer counters when its connection closes.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits();
   * limits.openStream("peer-a");
   * limits.removePeer("peer-a");
   * console.assert(limits.streamsOf("peer-a") === 0);
   * ```
   *
   * @param peer The peer's id.
   */
  removePeer(peer: string): void {
    this.#streams.delete(peer);
    this.#buffered.delete(peer);
  }

  /**
   * How many violations of each limit were reported since creation, for statistics.
   *
   * @example
   * ```ts
   * import { ResourceLimits } from "@cretoai/network/pool";
   *
   * const limits = new ResourceLimits({ messageBytes: 1 });
   * limits.checkMessage(2);
   * console.assert(limits.violations().messageBytes === 1);
   * ```
   *
   * @returns A copy of the counters.
   */
  violations(): Record<LimitKind, number> {
    return { ...this.#violations };
  }

  #add(
    counts: Map<string, number>,
    kind: LimitKind,
    key: string,
    amount: number,
  ): LimitViolation | undefined {
    const value = (counts.get(key) ?? 0) + amount;
    const violation = this.check(kind, value, key);
    if (violation === undefined) counts.set(key, value);
    return violation;
  }
}

// Entries at zero are deleted, so counters do not grow with every address ever seen.
function subtract(counts: Map<string, number>, key: string, amount: number): void {
  const value = (counts.get(key) ?? 0) - amount;
  if (value > 0) counts.set(key, value);
  else counts.delete(key);
}
