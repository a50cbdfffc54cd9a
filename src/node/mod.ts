/**
 * The node: {@linkcode createNode} builds a started node (transport, services, connection
 * manager, peer store) from one configuration.
 *
 * @module
 */

export { createNode, NetworkNode, type NodeOptions, type NodePeerInfo } from "./node.ts";
export type {
  DialFailedDetail,
  NodeEventMap,
  NodePeerConnectedDetail,
  NodePeerDisconnectedDetail,
  NodePeerMigratedDetail,
  NodeServiceName,
  PeerOrigin,
  PeerSource,
  ServiceFailedDetail,
} from "./events.ts";
export { PeerStore, PeerStoreError, type PeerStoreOptions, type StoredPeer } from "./peer_store.ts";
export { type DialCandidate, DialPlanner, type DialPlannerOptions } from "./dial_planner.ts";
