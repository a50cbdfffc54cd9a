/**
 * The post-quantum handshake run on the first stream of every connection, the record framing
 * that carries it, and the AEAD that seals application frames with its session keys.
 *
 * @module
 */

export {
  HandshakeDialer,
  type HandshakeDialerOptions,
  HandshakeError,
  HandshakeListener,
  type HandshakeListenerOptions,
  type HandshakeOptions,
  type HandshakeResult,
  type HandshakeStep,
  hashCertificate,
  type SessionKeys,
} from "./handshake.ts";
export {
  IDENTITY_BINDING_OID,
  NodeCredentials,
  type NodeCredentialsOptions,
  PeerCertificateCache,
  type PeerCertificateCacheOptions,
  type VerifiedPeer,
} from "./node_credentials.ts";
export {
  type AcceptedTicket,
  SessionTicketStore,
  type SessionTicketStoreOptions,
  type TicketSecret,
} from "./session_tickets.ts";
export { encodeRecord, MAX_HANDSHAKE_RECORD, RecordDecoder, type RecordOptions } from "./record.ts";
export { FrameCipher, type FrameOpener, type FrameSealer } from "./frame_cipher.ts";
