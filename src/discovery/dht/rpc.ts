/**
 * The requests DHT nodes send each other, as an interface: the QUIC wiring implements
 * {@linkcode DhtRpc} on the client side and calls {@linkcode DhtRpcHandler} on the server
 * side; the simulator implements both in memory.
 *
 * @module
 */

import type { DhtContact } from "./contact.ts";
import type { DhtKey } from "./key.ts";
import type { ProviderRecord } from "./records.ts";

/** The answer to GET_PEER_RECORD. */
export interface GetPeerRecordReply {
  /** The encoded signed peer record, if the node holds one for the peer. */
  readonly record?: Uint8Array;
  /** The node's closest contacts to the peer's key. */
  readonly closer: readonly DhtContact[];
}

/** The answer to GET_PROVIDERS. */
export interface FindProvidersReply {
  /** Provider records the node holds for the key. */
  readonly providers: readonly ProviderRecord[];
  /** The node's closest contacts to the key. */
  readonly closer: readonly DhtContact[];
}

/**
 * Sends DHT requests to other nodes. Every method rejects if the request fails; timeouts are
 * applied by the caller, so an implementation may leave a request to a vanished node pending.
 * Contacts in answers must have their `key` derived locally with `peerIdToKey`.
 *
 * @example An RPC that reaches nobody
 * ```ts
 * import { type DhtRpc, makeContact } from "@cretoai/network/dht";
 * import { NetworkError } from "@cretoai/network";
 *
 * const down = () => Promise.reject(new NetworkError("ERR_DHT", "offline"));
 * const rpc: DhtRpc = {
 *   ping: down, findNode: down, getPeerRecord: down,
 *   putPeerRecord: down, findProviders: down, addProvider: down,
 * };
 * await rpc.ping(makeContact("anyone")).catch((e) => console.assert(e.code === "ERR_DHT"));
 * ```
 */
export interface DhtRpc {
  /** PING: resolves if `to` answered. */
  ping(to: DhtContact): Promise<void>;
  /** FIND_NODE: `to`'s closest contacts to `target`. */
  findNode(to: DhtContact, target: DhtKey): Promise<readonly DhtContact[]>;
  /** GET_PEER_RECORD (FIND_VALUE for peer records). */
  getPeerRecord(to: DhtContact, peerId: string): Promise<GetPeerRecordReply>;
  /** PUT_PEER_RECORD: asks `to` to store an encoded signed peer record. */
  putPeerRecord(to: DhtContact, record: Uint8Array): Promise<void>;
  /** GET_PROVIDERS (FIND_VALUE for provider records). */
  findProviders(to: DhtContact, key: DhtKey): Promise<FindProvidersReply>;
  /** ADD_PROVIDER: asks `to` to store a provider record naming the sender. */
  addProvider(to: DhtContact, record: ProviderRecord): Promise<void>;
}

/**
 * Serves DHT requests from other nodes; `from` is the sender as authenticated by the
 * transport. A method that throws makes the request fail at the sender.
 *
 * @example Routing one decoded request to a handler
 * ```ts
 * import type { DhtContact, DhtRpcHandler } from "@cretoai/network/dht";
 *
 * export function servePing(handler: DhtRpcHandler, from: DhtContact): void {
 *   handler.handlePing(from);
 * }
 * ```
 */
export interface DhtRpcHandler {
  /** Answers PING. */
  handlePing(from: DhtContact): void;
  /** Answers FIND_NODE. */
  handleFindNode(from: DhtContact, target: DhtKey): DhtContact[];
  /** Answers GET_PEER_RECORD. */
  handleGetPeerRecord(from: DhtContact, peerId: string): GetPeerRecordReply;
  /** Stores a peer record, or throws why not. */
  handlePutPeerRecord(from: DhtContact, record: Uint8Array): Promise<void>;
  /** Answers GET_PROVIDERS. */
  handleFindProviders(from: DhtContact, key: DhtKey): FindProvidersReply;
  /** Stores a provider record, or throws why not. */
  handleAddProvider(from: DhtContact, record: ProviderRecord): void;
}
