/**
 * Pure logic of the connection pool, the bandwidth limiter and the resource limits: no
 * sockets and no clock of their own. The transport drives them from its send path and its
 * connection lifecycle.
 *
 * @module
 */

export type { AcquireOptions, TokenBucketOptions } from "./token_bucket.ts";
export { TokenBucket } from "./token_bucket.ts";
export type { RateMeterOptions } from "./rate_meter.ts";
export { RateMeter } from "./rate_meter.ts";
export type { BandwidthLimiterOptions, BandwidthUsage, TrafficClass } from "./bandwidth_limiter.ts";
export { BandwidthLimiter } from "./bandwidth_limiter.ts";
export type { AdmitDecision, PoolPolicyOptions } from "./pool_policy.ts";
export { PoolPolicy } from "./pool_policy.ts";
export { SingleFlight } from "./single_flight.ts";
export { keepOutbound } from "./tie_break.ts";
export {
  HandshakeRateLimiter,
  type HandshakeRateLimiterOptions,
  type HandshakeRateRefusal,
} from "./handshake_rate.ts";
export type { LimitKind, LimitViolation, ResourceLimitsOptions } from "./limits.ts";
export {
  APP_ERROR_BANNED,
  APP_ERROR_BUFFER_FULL,
  APP_ERROR_DUPLICATE_CONNECTION,
  APP_ERROR_EVICTED,
  APP_ERROR_HANDSHAKE_RATE,
  APP_ERROR_IDLE_TIMEOUT,
  APP_ERROR_LIMIT_EXCEEDED,
  APP_ERROR_MESSAGE_TOO_LARGE,
  APP_ERROR_NOT_ALLOWED,
  APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP,
  APP_ERROR_TOO_MANY_PENDING_HANDSHAKES,
  APP_ERROR_TOO_MANY_STREAMS,
  APP_ERROR_TRAFFIC_WATCHDOG,
  limitError,
  ResourceLimits,
} from "./limits.ts";
