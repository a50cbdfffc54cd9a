/**
 * Kademlia DHT: 256-bit keys, k-bucket routing table, iterative lookups, signed peer records
 * and provider records, and the node that combines them over an abstract RPC.
 *
 * @module
 */

export type { Clock } from "../../clock.ts";
export { wallClock } from "../../clock.ts";
export * from "./key.ts";
export * from "./contact.ts";
export * from "./routing_table.ts";
export * from "./lookup.ts";
export * from "./record_error.ts";
export * from "./records.ts";
export * from "./record_store.ts";
export * from "./republish.ts";
export * from "./rpc.ts";
export * from "./dht_node.ts";
export * from "./wire_error.ts";
export * from "./identity_records.ts";
export * from "./quic_rpc.ts";
export * from "./dht_service.ts";
