/**
 * The error of the DHT's wire protocol: a request or reply that could not be decoded, or a
 * request the remote node refused.
 *
 * @module
 */

import { NetworkError } from "../../errors.ts";

/** Why a DHT message failed. */
export type DhtProtocolErrorReason =
  /** The bytes are not a well-formed message of their type. */
  | "malformed"
  /** The message, or a field of it, is over a size limit. */
  | "too-large"
  /** The message is of a protocol version this node does not speak. */
  | "unsupported-version"
  /** The message type is not one this node knows. */
  | "unknown-type"
  /** The remote node answered with an error: see `remoteReason`. */
  | "refused";

/**
 * A DHT request or reply was refused. `code` is `ERR_DHT`; `reason` says which rule the
 * message broke, and for `"refused"`, `remoteReason` says why the remote node refused it
 * (a record error reason such as `"bad-signature"`, or an error code such as
 * `"ERR_LIMIT_EXCEEDED"`).
 *
 * @example Telling a forged record from an overloaded node
 * ```ts
 * import { DhtProtocolError } from "@cretoai/network/dht";
 *
 * const err = new DhtProtocolError("refused", "Peer refused PUT_PEER_RECORD", "bad-signature");
 * console.assert(err.code === "ERR_DHT" && err.remoteReason === "bad-signature");
 * ```
 */
export class DhtProtocolError extends NetworkError {
  /** Which rule the message broke. */
  readonly reason: DhtProtocolErrorReason;
  /** For `"refused"`: the remote node's reason; otherwise `undefined`. */
  readonly remoteReason: string | undefined;

  /**
   * Creates a protocol error.
   *
   * @param reason Which rule the message broke.
   * @param message What was wrong, and the value seen.
   * @param remoteReason For `"refused"`: the remote node's reason.
   */
  constructor(reason: DhtProtocolErrorReason, message: string, remoteReason?: string) {
    super("ERR_DHT", message);
    this.reason = reason;
    this.remoteReason = remoteReason;
  }
}
