/**
 * NAT traversal services: a STUN Binding client on the node's socket, RFC 5780 NAT behaviour
 * discovery, the pure classification and hole-punch scheduling logic behind them, and a TURN
 * client with a socket decorator that runs QUIC through the relay, and `NatService`, which
 * puts discovery, rendezvous and hole punching to work for a transport.
 *
 * @module
 */

export {
  RFC8489_RETRANSMIT,
  type StunBindingOptions,
  type StunBindingResult,
  StunClient,
  type StunClientOptions,
  StunErrorResponse,
  type StunRetransmitOptions,
  type StunRetransmitSchedule,
  stunRetransmitSchedule,
} from "./stun_client.ts";
export {
  classifyFiltering,
  classifyMapping,
  classifyNat,
  type FilteringSample,
  type MappingSample,
  type NatBehavior,
  type NatClassification,
  type NatObservations,
  type NatType,
} from "./nat_classifier.ts";
export { discoverNat, type NatDiscoveryOptions, type NatDiscoveryResult } from "./nat_discovery.ts";
export {
  type HolePunchOptions,
  type HolePunchPlan,
  planHolePunch,
  predictPorts,
  type PunchPeer,
  type PunchSend,
} from "./hole_punch.ts";
export {
  TurnClient,
  type TurnClientOptions,
  type TurnDataHandler,
  TurnError,
  type TurnErrorCode,
} from "./turn_client.ts";
export { RelaySocket, type RelaySocketStats } from "./relay_socket.ts";
export {
  type PeerPath,
  RELAY_PROTOCOL,
  type RelayConnectedDetail,
  type RelayConnectOptions,
  type RelayFallbackInfo,
  RelayService,
  type RelayServiceEventMap,
  type RelayServiceOptions,
} from "./relay_service.ts";
export { parseTurnUrl } from "./turn_url.ts";
export {
  type NatConnection,
  type NatConnectOptions,
  type NatFallback,
  type NatFallbackInfo,
  NatService,
  type NatServiceEventMap,
  type NatServiceOptions,
  type NatTraversalAttempt,
  NatTraversalError,
  type NatUpgradeFailure,
  type NatUpgradeOptions,
  RENDEZVOUS_PROTOCOL,
} from "./nat_service.ts";
