/**
 * Peer discovery services: mDNS on the local link.
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
