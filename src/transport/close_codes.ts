/**
 * The transport's application close codes (QUIC CONNECTION_CLOSE), 0x20-0x2f; 0x10-0x1f
 * belong to the pool's limits.
 *
 * @module
 */

/** Close code: a peer broke the transport's protocol. */
export const APP_ERROR_PROTOCOL = 0x20;
/** Close code: the identity handshake failed. */
export const APP_ERROR_HANDSHAKE_FAILED = 0x21;
/** Close code: the identity handshake did not finish in `handshakeTimeoutMs`. */
export const APP_ERROR_HANDSHAKE_TIMEOUT = 0x22;
/** Close code: a sealed frame failed authentication. */
export const APP_ERROR_DECRYPT = 0x23;
/** Close code: the dialer expected another peer id. */
export const APP_ERROR_PEER_ID_MISMATCH = 0x24;
/** Close code: the peer moved to a new connection and this one has drained (not an error). */
export const APP_ERROR_MIGRATED = 0x25;
/** Close code: a connection replaced by a migration did not drain within `requestTimeoutMs`. */
export const APP_ERROR_MIGRATION_TIMEOUT = 0x26;
/**
 * Close code: the connection comes from (or was accepted by) an earlier process of a peer
 * whose later process is connected: the peer restarted.
 */
export const APP_ERROR_STALE_INCARNATION = 0x27;
