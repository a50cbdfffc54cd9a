/**
 * Peer discovery services: mDNS on the local link, alone (`MdnsDiscovery`) or bound to a
 * transport that dials what it finds (`MdnsService`); the Kademlia DHT across networks
 * (`DhtService`: find a peer's signed record by id, announce and find content providers,
 * connect to a peer by id).
 *
 * @module
 */

export {
  MDNS_SERVICE_TYPE,
  MdnsDiscovery,
  type MdnsDiscoveryEvent,
  type MdnsDiscoveryEventMap,
  type MdnsDiscoveryOptions,
  type MdnsPeer,
  type MdnsPeerAddress,
  type MdnsStats,
} from "./mdns.ts";
export {
  type MdnsDialFailedDetail,
  type MdnsExpiredDetail,
  MdnsService,
  type MdnsServiceEventMap,
  type MdnsServiceOptions,
  type MdnsServiceStats,
} from "./mdns_service.ts";
export {
  type DhtJoinedDetail,
  DhtService,
  type DhtServiceEventMap,
  type DhtServiceOptions,
} from "./dht/dht_service.ts";
export type { DhtContact } from "./dht/contact.ts";
export { DHT_PROTOCOL_ID, type DhtWireLimits } from "./dht/quic_rpc.ts";
export { DhtProtocolError, type DhtProtocolErrorReason } from "./dht/wire_error.ts";
export {
  identityPeerIdBinding,
  identityRecordSigner,
  identityRecordVerifier,
} from "./dht/identity_records.ts";
export { DhtRecordError, type DhtRecordErrorReason } from "./dht/record_error.ts";
export * from "./dht/records.ts";
export * from "./dht/key.ts";
