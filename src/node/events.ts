/**
 * The events of a {@linkcode NetworkNode} and the words they use: how a peer was found and
 * which service failed.
 *
 * @module
 */

import type { PeerPath } from "../nat/relay_service.ts";
import type {
  PeerBannedDetail,
  PeerConnectedDetail,
  PeerDisconnectedDetail,
  PeerMigratedDetail,
} from "../transport/events.ts";
import type { PeerId } from "../identity/peer_id.ts";

/**
 * How the node learned of a peer:
 * - `"bootstrap"`: dialed from the config's `bootstrapPeers`;
 * - `"dht"`: found in the DHT (its routing table or a lookup);
 * - `"mdns"`: announced on the local link;
 * - `"peer-store"`: remembered from an earlier run (the data directory's peer store);
 * - `"inbound"`: it dialed this node;
 * - `"application"`: the application dialed it with `connectPeer`.
 */
export type PeerSource = "bootstrap" | "dht" | "mdns" | "peer-store" | "inbound" | "application";

/** What the node adds to the transport's view of a peer. */
export interface PeerOrigin {
  /** How the node learned of the peer. */
  foundBy: PeerSource;
  /** Whether the connection runs directly or through a TURN relay. */
  path: PeerPath;
}

/** Detail of the node's `peer:connected`: the transport's, plus origin and path. */
export interface NodePeerConnectedDetail extends PeerConnectedDetail, PeerOrigin {}

/** Detail of the node's `peer:disconnected`: the transport's, plus origin and path. */
export interface NodePeerDisconnectedDetail extends PeerDisconnectedDetail, PeerOrigin {}

/** Detail of the node's `peer:migrated`: the transport's, plus the new path. */
export interface NodePeerMigratedDetail extends PeerMigratedDetail {
  /** The path of the new connection. */
  path: PeerPath;
}

/** The services a node runs, by the name of the node's field. */
export type NodeServiceName = "dht" | "mdns" | "nat" | "relay" | "peerStore";

/** Detail of `service:failed`. */
export interface ServiceFailedDetail {
  /** The service. */
  service: NodeServiceName;
  /** Why it failed. */
  error: Error;
  /**
   * Whether the service runs on anyway (for example the DHT when no bootstrap peer answered
   * yet: it serves requests and joins once a peer connects). When `false` the node's field of
   * the service is `undefined`.
   */
  running: boolean;
}

/** Detail of `dial:failed`: one dial of the connection manager that failed. */
export interface DialFailedDetail {
  /** The address dialed. */
  address: string;
  /** The peer expected there, when known. */
  peerId: PeerId | undefined;
  /** How the node learned of the peer. */
  foundBy: PeerSource;
  /** Why. */
  error: Error;
  /**
   * When the manager tries this peer again, in milliseconds; `undefined` when it gave the
   * peer up after too many failures in a row (until the DHT, mDNS or a connection brings
   * it back).
   */
  retryInMs: number | undefined;
}

/** The events of a {@linkcode NetworkNode}, by name. */
export interface NodeEventMap {
  /** A peer finished the handshake; with how it was found and its path. */
  "peer:connected": CustomEvent<NodePeerConnectedDetail>;
  /** A peer's connection closed. */
  "peer:disconnected": CustomEvent<NodePeerDisconnectedDetail>;
  /** A peer moved to a new connection (for example from a relay to a direct path). */
  "peer:migrated": CustomEvent<NodePeerMigratedDetail>;
  /**
   * A peer was banned, by `ban()` or by its peer score; the ban is written to the peer store.
   */
  "peer:banned": CustomEvent<PeerBannedDetail>;
  /** A service could not start or stopped working; the node runs on. */
  "service:failed": CustomEvent<ServiceFailedDetail>;
  /** A dial of the connection manager failed; it tries again after `retryInMs`. */
  "dial:failed": CustomEvent<DialFailedDetail>;
}
