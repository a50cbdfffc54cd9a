/**
 * The error a DHT node raises when it refuses a record.
 *
 * @module
 */

import { NetworkError } from "../../errors.ts";

/** Why a record was refused. */
export type DhtRecordErrorReason =
  /** The record carries no signature. */
  | "unsigned"
  /** The signature does not verify against the record's public key. */
  | "bad-signature"
  /** The public key does not hash to the claimed peer id, or the record is for another peer. */
  | "peer-id-mismatch"
  /** A record with the same or a higher sequence number is already held. */
  | "stale"
  /** The record's expiry time has passed. */
  | "expired"
  /** The record expires further in the future than the node accepts. */
  | "ttl-too-long"
  /** The encoded record, or one of its fields, is over a size limit. */
  | "too-large"
  /** The bytes are not a well-formed record. */
  | "malformed";

/**
 * A record was refused. `code` is `ERR_DHT`; `reason` says which rule it broke.
 *
 * @example Telling a stale record from a forged one
 * ```ts
 * import { DhtRecordError } from "@cretoai/network/dht";
 *
 * const err = new DhtRecordError("stale", "Refused peer record: sequence 3 is not above 5");
 * console.assert(err.code === "ERR_DHT" && err.reason === "stale");
 * ```
 */
export class DhtRecordError extends NetworkError {
  /** Which rule the record broke. */
  readonly reason: DhtRecordErrorReason;

  /**
   * Creates a record error.
   *
   * @param reason Which rule the record broke.
   * @param message What was wrong, and the value seen.
   */
  constructor(reason: DhtRecordErrorReason, message: string) {
    super("ERR_DHT", message);
    this.reason = reason;
  }
}
