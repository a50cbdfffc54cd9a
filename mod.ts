/**
 * cretoai-network: peer-to-peer QUIC networking for Deno, the network layer of a DAG/BFT
 * consensus system. Nodes find each other (mDNS, Kademlia), get through NATs (STUN, hole
 * punching, TURN), and talk over authenticated, post-quantum protected QUIC connections.
 *
 * This module exports what an application uses: {@linkcode createNode} and the node, the
 * transport, identities, the configuration, the errors, the services and the message types.
 * Building blocks for specialists are sub-path exports: `@cretoai/network/node` (the
 * connection manager's `DialPlanner`), `/transport` (codec, close codes), `/quic` (the QUIC
 * endpoint and UDP sockets), `/handshake`, `/identity`, `/pool` (limits, token buckets),
 * `/nat` (STUN, TURN, NAT classification, hole punching), `/discovery` (mDNS) and `/dht`
 * (Kademlia key math, routing table, records).
 *
 * @example Two nodes; the second joins through the first and sends it a message
 * ```ts
 * import { createNode } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
 * await using first = await createNode({ config });
 * await using second = await createNode({
 *   config: { ...config, bootstrapPeers: [`127.0.0.1:${first.localAddr.port}`] },
 * });
 * await second.send(first.peerId, { type: "consensus", data: new Uint8Array([1]) });
 * for await (const { from, message } of first.messages()) {
 *   console.assert(from.equals(second.peerId) && message.type === "consensus");
 *   break;
 * }
 * ```
 *
 * @module
 */
export * from "./src/errors.ts";
export {
  createNode,
  type DialFailedDetail,
  NetworkNode,
  type NodeEventMap,
  type NodeOptions,
  type NodePeerConnectedDetail,
  type NodePeerDisconnectedDetail,
  type NodePeerInfo,
  type NodePeerMigratedDetail,
  type NodeServiceName,
  type PeerOrigin,
  type PeerSource,
  PeerStore,
  PeerStoreError,
  type PeerStoreOptions,
  type ServiceFailedDetail,
  type StoredPeer,
} from "./src/node/mod.ts";
export {
  type BanInfo,
  type BroadcastResult,
  type ConnectionDirection,
  type ConnectionFailedDetail,
  type ConnectionGate,
  type ConnectPeerOptions,
  type GateCandidate,
  type InboundMessage,
  type MigratePeerOptions,
  type NetworkConfig,
  type NetworkMessage,
  type NetworkMessageType,
  type PeerBannedDetail,
  type PeerConnectedDetail,
  type PeerDisconnectedDetail,
  type PeerInfo,
  type PeerMigratedDetail,
  type PeerResolver,
  type PeerScoreOptions,
  type PeerStats,
  type PenaltyReason,
  QuicTransport,
  type QuicTransportOptions,
  type RequestContext,
  type RequestHandler,
  type RequestOptions,
  type ResolvedNetworkConfig,
  resolveNetworkConfig,
  type SendOptions,
  type TransportEventMap,
  type TransportStats,
  type TurnServerConfig,
  TypedEventTarget,
} from "./src/transport/mod.ts";
export {
  type HybridSignature,
  Identity,
  type IdentitySeeds,
  PeerId,
  PublicIdentity,
  type PublicKeys,
  type SaveIdentityOptions,
} from "./src/identity/mod.ts";
export { type Clock, systemClock, wallClock } from "./src/clock.ts";
export {
  type DatagramReceiver,
  type DatagramSocket,
  DenoUdpSocket,
  type DenoUdpSocketOptions,
  formatAddress,
  parseAddress,
  type RawDatagramHandler,
  type RawDatagramPort,
  type UdpAddress,
} from "./src/quic/mod.ts";
export {
  type FilteringSample,
  type MappingSample,
  type NatBehavior,
  type NatClassification,
  type NatConnection,
  type NatConnectOptions,
  type NatDiscoveryResult,
  type NatFallback,
  type NatFallbackInfo,
  type NatObservations,
  NatService,
  type NatServiceEventMap,
  type NatServiceOptions,
  type NatTraversalAttempt,
  NatTraversalError,
  type NatType,
  type NatUpgradeFailure,
  type NatUpgradeOptions,
  parseTurnUrl,
  type PeerPath,
  type RelayConnectedDetail,
  type RelayConnectOptions,
  type RelayFallbackInfo,
  RelayService,
  type RelayServiceEventMap,
  type RelayServiceOptions,
  RelaySocket,
  type RelaySocketStats,
  type StunRetransmitOptions,
  type TurnClient,
  type TurnDataHandler,
  TurnError,
  type TurnErrorCode,
} from "./src/nat/mod.ts";
export {
  contentKey,
  type DhtContact,
  type DhtJoinedDetail,
  type DhtKey,
  DhtService,
  type DhtServiceEventMap,
  type DhtServiceOptions,
  type DhtWireLimits,
  type MdnsDialFailedDetail,
  type MdnsDiscoveryOptions,
  type MdnsExpiredDetail,
  type MdnsPeer,
  type MdnsPeerAddress,
  MdnsService,
  type MdnsServiceEventMap,
  type MdnsServiceOptions,
  type MdnsServiceStats,
  type MdnsStats,
  type PeerRecord,
  type ProviderRecord,
  type RecordLimits,
  type SignedPeerRecord,
} from "./src/discovery/mod.ts";
export type { LimitKind } from "./src/pool/mod.ts";
export {
  CatchUpService,
  type CatchUpServiceOptions,
  type CatchUpStore,
  type GossipEventMap,
  type GossipMessage,
  type GossipPenalizedDetail,
  type GossipPenaltyReason,
  type GossipPriority,
  type GossipPublishOptions,
  type GossipRejectedDetail,
  type GossipRouterOptions,
  type GossipRouterStats,
  GossipService,
  type GossipServiceOptions,
  type GossipServicePenaltyReason,
  type GossipSubscribeOptions,
  GossipSubscription,
  type GossipValidator,
  type ValidationResult,
} from "./src/gossip/mod.ts";
