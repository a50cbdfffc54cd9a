/**
 * The transport: `QuicTransport` (authenticated, post-quantum sealed messages, requests and
 * peer events over QUIC), its configuration, the message codec and the latency histogram.
 *
 * @module
 */

export {
  type BanInfo,
  type BroadcastResult,
  type ConnectionGate,
  type ConnectPeerOptions,
  type GateCandidate,
  type MigratePeerOptions,
  type PeerInfo,
  type PeerResolver,
  QuicTransport,
  type QuicTransportOptions,
  type RequestOptions,
  type SendOptions,
  type TransportStats,
} from "./transport.ts";
export {
  type NetworkConfig,
  type ResolvedNetworkConfig,
  resolveNetworkConfig,
  type TurnServerConfig,
} from "./config.ts";
export {
  decodeMessage,
  encodeFrame,
  encodeMessage,
  FrameDecoder,
  MESSAGE_HEADER_BYTES,
  MESSAGE_VERSION,
  type NetworkMessage,
  type NetworkMessageType,
} from "./codec.ts";
export {
  type ConnectionDirection,
  type ConnectionFailedDetail,
  type PeerBannedDetail,
  type PeerConnectedDetail,
  type PeerDisconnectedDetail,
  type PeerMigratedDetail,
  type TransportEventMap,
  TypedEventTarget,
} from "./events.ts";
export { LatencyHistogram } from "./latency_histogram.ts";
export { type BanEntry, BanList, type BanListOptions } from "./ban_list.ts";
export {
  type TrafficSample,
  TrafficWatchdog,
  type TrafficWatchdogOptions,
  type WatchdogVerdict,
} from "./traffic_watchdog.ts";
export {
  PeerScore,
  type PeerScoreOptions,
  type PenaltyReason,
  type PenaltyResult,
} from "./peer_score.ts";
export {
  type AdmissionCandidate,
  type AdmissionDecision,
  AdmissionPolicy,
  type AdmissionPolicyOptions,
  type AdmissionRefusal,
  type OpeningDial,
  type OpenSignal,
  type PeerConnectionRef,
} from "./admission_policy.ts";
export {
  type InboundMessage,
  type PeerStats,
  type RequestContext,
  type RequestHandler,
  STREAM_CANCELLED,
  STREAM_HANDLER_FAILED,
  STREAM_UNKNOWN_PROTOCOL,
} from "./peer_api.ts";
export {
  APP_ERROR_DECRYPT,
  APP_ERROR_HANDSHAKE_FAILED,
  APP_ERROR_HANDSHAKE_TIMEOUT,
  APP_ERROR_MIGRATED,
  APP_ERROR_MIGRATION_TIMEOUT,
  APP_ERROR_PEER_ID_MISMATCH,
  APP_ERROR_PROTOCOL,
  APP_ERROR_STALE_INCARNATION,
} from "./close_codes.ts";
