/**
 * A contact: what one DHT node knows about another in order to reach it.
 *
 * @module
 */

import { type DhtKey, peerIdToKey } from "./key.ts";
import { NetworkError } from "../../errors.ts";

/**
 * A peer in the DHT: its id, its key, and the addresses it can be dialled at.
 *
 * The key is always derived locally with {@linkcode peerIdToKey}; code that decodes contacts
 * from the wire must never take a key from the sender, or a node could place itself anywhere
 * in the key space.
 */
export interface DhtContact {
  /** The peer id's string form. */
  readonly id: string;
  /** `peerIdToKey(id)`. */
  readonly key: DhtKey;
  /** Transport addresses, for example `"192.0.2.7:4433"`; may be empty. */
  readonly addresses: readonly string[];
}

/**
 * Builds a contact from a peer id and its addresses, deriving the key.
 *
 * @example
 * ```ts
 * import { makeContact } from "@cretoai/network/dht";
 *
 * const contact = makeContact("12D3KooWpeer", ["192.0.2.7:4433"]);
 * console.assert(contact.key.length === 32);
 * ```
 *
 * @param id The peer id's string form.
 * @param addresses Addresses the peer can be dialled at.
 * @returns A frozen contact.
 * @throws {NetworkError} `ERR_DHT` if `id` is empty.
 */
export function makeContact(id: string, addresses: readonly string[] = []): DhtContact {
  if (typeof id !== "string" || id.length === 0) {
    throw new NetworkError("ERR_DHT", `Invalid contact: 'id' must be a non-empty string`);
  }
  return Object.freeze({ id, key: peerIdToKey(id), addresses: Object.freeze([...addresses]) });
}
