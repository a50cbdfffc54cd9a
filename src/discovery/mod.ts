/**
 * Peer discovery services: mDNS on the local link, alone (`MdnsDiscovery`) or bound to a
 * transport that dials what it finds (`MdnsService`).
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
