/**
 * Runs the identity handshake on a fresh QUIC connection's first bidirectional stream and
 * returns what the transport needs afterwards: the peer's id, the stream (kept as the control
 * stream) and the frame cipher.
 *
 * @module
 */

import { ConnectionClosedError, NetworkError } from "../errors.ts";
import {
  HandshakeDialer,
  HandshakeError,
  HandshakeListener,
  type HandshakeResult,
} from "../handshake/handshake.ts";
import {
  certificateReference,
  type NodeCredentials,
  type PeerCertificateCache,
  type VerifiedPeer,
} from "../handshake/node_credentials.ts";
import type { SessionTicketStore } from "../handshake/session_tickets.ts";
import { FrameCipher } from "../handshake/frame_cipher.ts";
import { encodeRecord, RecordDecoder } from "../handshake/record.ts";
import { MessageType } from "../handshake/_messages.ts";
import type { PeerId } from "../identity/peer_id.ts";
import { formatAddress } from "../quic/address.ts";
import type { QuicConnection } from "../quic/connection.ts";
import type { QuicStream } from "../quic/stream.ts";
import {
  APP_ERROR_DECRYPT,
  APP_ERROR_HANDSHAKE_FAILED,
  APP_ERROR_HANDSHAKE_TIMEOUT,
  APP_ERROR_PEER_ID_MISMATCH,
  APP_ERROR_PROTOCOL,
} from "./close_codes.ts";
import { concatBytes, equalBytes } from "../_bytes.ts";
import { hashId } from "./_frames.ts";

/** The outcome of a handshake on one connection. */
export interface SecureSession {
  /** The connection. */
  conn: QuicConnection;
  /** The authenticated peer. */
  peerId: PeerId;
  /** The handshake stream, reused for control frames. */
  control: QuicStream;
  /** Cipher for stream 0, parent of every other stream's; absent when pqEncryption is off. */
  cipher: FrameCipher | undefined;
  /** Bytes read after the last handshake record. */
  leftover: Uint8Array;
  /** The connection's link id, the same on both ends (from the transcript hash). */
  link: string;
  /** The peer's run id, from its certificate: another process of the peer has another. */
  peerRun: string;
  /** Resumed from a ticket: the dialer's early data (its open frame) came with its hello. */
  resumed: boolean;
  /** The listener's side of a resumed session: the early data the dialer sealed. */
  earlyData?: Uint8Array;
  /**
   * The handshake's last record, encoded and not yet written (the dialer's ClientFinish, the
   * listener's ResumedServerHello): the caller writes it ahead of its first control frame, so
   * that both leave in one packet.
   */
  unsent?: Uint8Array;
}

/** Options of both sides. */
export interface SessionOptions {
  credentials: NodeCredentials;
  certificateCache: PeerCertificateCache;
  pqEncryption: boolean;
  tickets?: SessionTicketStore;
  expectedPeerId?: PeerId;
  /** The dialer's TLS certificate names its certificate, which its ClientHello carries. */
  certificateInHello?: boolean;
  /** The dialer's early data for a resumed session (see `HandshakeDialer.start`). */
  earlyData?: (listener: VerifiedPeer) => Uint8Array | undefined;
}

/** The dialer side: opens the stream and sends the ClientHello. */
export async function dialSession(
  conn: QuicConnection,
  options: SessionOptions,
): Promise<SecureSession> {
  const dialer = (peerCertificate?: Uint8Array) =>
    new HandshakeDialer({
      ...common(conn, options, peerCertificate),
      expectedPeerId: options.expectedPeerId,
      certificateInHello: options.certificateInHello,
    });
  // In 0-RTT the listener's certificate is the one of the cached TLS session, which a listener
  // restarted at the same address no longer has. A ClientHello that offers a ticket goes out
  // at once: only the run the ticket names can resume it, and another answers HelloRetry
  // (below). Any other ClientHello waits for TLS to say which certificate the listener has.
  const early = conn.isInEarlyData ? conn.peerCertificates()[0] : undefined;
  /** The listener the early data was made for (its `open` frame names that peer). */
  let addressed: PeerId | undefined;
  let offered = false;
  const earlyData = options.earlyData && ((listener: VerifiedPeer) => {
    addressed = listener.peerId;
    const data = options.earlyData!(listener);
    offered = data !== undefined;
    return data;
  });
  let hs = dialer(early);
  /** A dialer for the certificate TLS has verified, when it is not the cached session's. */
  const restart = async (): Promise<boolean> => {
    await conn.established;
    const now = conn.peerCertificates()[0];
    if (now !== undefined && equalBytes(now, early!)) return false;
    hs = dialer(now);
    const peer = now && await options.certificateCache.verify(now);
    if (addressed !== undefined && peer !== undefined && !peer.peerId.equals(addressed)) {
      throw new NetworkError(
        "ERR_HANDSHAKE_FAILED",
        `Another node (${peer.peerId}) than the one of the resumed TLS session (${addressed}) ` +
          `answers at ${formatAddress(conn.remoteAddr)}: dial it again`,
      );
    }
    return true;
  };
  // The listener's certificate is checked before any stream exists: a refusal here reaches
  // the listener as the connection's close code and reason, not as an alert.
  let clientHello = await hs.start(earlyData);
  if (early !== undefined && !offered && await restart()) clientHello = await hs.start(earlyData);
  const stream = await conn.openBidi();
  const decoder = new RecordDecoder();
  const pending: Uint8Array[] = [];
  try {
    await stream.write(encodeRecord(clientHello));
    if (early !== undefined && offered) {
      const answer = await nextRecord(stream, decoder, pending);
      if (answer[0] === MessageType.HelloRetry && await restart()) {
        // Another run of the listener: it asks for the full ClientHello, made for the
        // certificate TLS has now verified (the early data is dropped, as on any HelloRetry).
        await stream.write(encodeRecord(await hs.start()));
      } else {
        pending.unshift(answer);
      }
    }
    // ServerHello (then the ClientFinish goes out), ResumedServerHello (nothing to send: the
    // binder proved the dialer) or HelloRetry (the ClientHello again, with the certificate).
    return await finish(conn, stream, hs, decoder, pending);
  } catch (e) {
    throw await alerted(stream, e);
  }
}

/** The listener side: waits for the dialer's stream and answers it. */
export async function acceptSession(
  conn: QuicConnection,
  options: SessionOptions,
): Promise<SecureSession> {
  // A certificate without a valid identity binding can never pass: refuse it before waiting
  // for the dialer's first stream (a relay terminating TLS may have nothing to forward). One
  // that names the dialer's certificate by hash is checked with that certificate, which the
  // ClientHello carries.
  const settings = common(conn, options);
  if (certificateReference(settings.peerCertificate) === undefined) {
    await options.certificateCache.verify(settings.peerCertificate);
  }
  const stream = await conn.acceptBidi();
  if (stream.id !== 0) {
    throw new NetworkError(
      "ERR_HANDSHAKE_FAILED",
      `The dialer's first stream must be stream 0 for the handshake: it opened ${stream.id}`,
    );
  }
  const hs = new HandshakeListener(settings);
  const decoder = new RecordDecoder();
  const pending: Uint8Array[] = [];
  try {
    return await finish(conn, stream, hs, decoder, pending);
  } catch (e) {
    throw await alerted(stream, e);
  }
}

/** Maps a handshake failure to the close code that tells the peer why. */
export function closeCodeOf(error: unknown): number {
  if (!(error instanceof NetworkError)) return APP_ERROR_HANDSHAKE_FAILED;
  switch (error.code) {
    case "ERR_PEER_ID_MISMATCH":
      return APP_ERROR_PEER_ID_MISMATCH;
    case "ERR_HANDSHAKE_TIMEOUT":
      return APP_ERROR_HANDSHAKE_TIMEOUT;
    case "ERR_DECRYPT":
      return APP_ERROR_DECRYPT;
    case "ERR_MALFORMED_FRAME":
    case "ERR_MESSAGE_TOO_LARGE":
      return APP_ERROR_PROTOCOL;
    default:
      return APP_ERROR_HANDSHAKE_FAILED;
  }
}

/** The handshake's settings; `peerCertificate` when the caller read it from `conn` already. */
function common(
  conn: QuicConnection,
  options: SessionOptions,
  peerCertificate: Uint8Array | undefined = conn.peerCertificates()[0],
) {
  if (peerCertificate === undefined) {
    throw new NetworkError(
      "ERR_HANDSHAKE_FAILED",
      "The peer presented no TLS certificate: the handshake needs its identity binding",
    );
  }
  return {
    credentials: options.credentials,
    certificateCache: options.certificateCache,
    alpn: conn.alpn,
    peerCertificate,
    pqEncryption: options.pqEncryption,
    tickets: options.tickets,
  };
}

/**
 * Feeds the peer's messages to the state machine and sends its answers until it is done (the
 * last answer is returned unsent); the state machines bound the exchange (at most one
 * HelloRetry).
 */
async function converse(
  hs: HandshakeDialer | HandshakeListener,
  stream: QuicStream,
  decoder: RecordDecoder,
  pending: Uint8Array[],
): Promise<{ done: HandshakeResult; unsent: Uint8Array | undefined }> {
  for (;;) {
    const { send, done } = await hs.receive(await nextRecord(stream, decoder, pending));
    const record = send === undefined ? undefined : encodeRecord(send);
    if (done !== undefined) return { done, unsent: record };
    if (record !== undefined) await stream.write(record);
  }
}

async function nextRecord(
  stream: QuicStream,
  decoder: RecordDecoder,
  pending: Uint8Array[],
): Promise<Uint8Array> {
  while (pending.length === 0) {
    const chunk = await stream.read();
    if (chunk === null) {
      decoder.end();
      throw new NetworkError(
        "ERR_HANDSHAKE_FAILED",
        "The peer finished the handshake stream before the handshake completed",
      );
    }
    pending.push(...decoder.push(chunk));
  }
  return pending.shift()!;
}

/** Runs the exchange to its end and makes the session of its result. */
async function finish(
  conn: QuicConnection,
  stream: QuicStream,
  hs: HandshakeDialer | HandshakeListener,
  decoder: RecordDecoder,
  pending: Uint8Array[],
): Promise<SecureSession> {
  const { done, unsent } = await converse(hs, stream, decoder, pending);
  const { peerId, keys, transcriptHash, peerCertificateHash, resumed, earlyData } = done;
  const cipher = keys === undefined ? undefined : await FrameCipher.create(keys);
  // The dialer's first control frame can arrive in the same read as its Finish. Frames use
  // the records' u32 length prefix, so what the record decoder split off is given back whole.
  const leftover = concatBytes([...pending.map((p) => encodeRecord(p)), decoder.takeRemaining()]);
  return {
    conn,
    peerId,
    control: stream,
    cipher,
    leftover,
    link: hashId(transcriptHash),
    peerRun: hashId(peerCertificateHash),
    resumed,
    earlyData,
    unsent,
  };
}

/**
 * Sends the handshake's alert, if it has one, so the peer fails with the reason. A peer that
 * refused the handshake closes the connection right after its alert, and the close can
 * overtake the alert: the close's code and reason then tell the same story.
 */
async function alerted(stream: QuicStream, error: unknown): Promise<unknown> {
  if (error instanceof HandshakeError && error.alert !== undefined) {
    await stream.write(encodeRecord(error.alert)).catch(() => {});
  }
  if (error instanceof ConnectionClosedError && error.isApp) {
    const code = error.errorCode === APP_ERROR_PEER_ID_MISMATCH
      ? "ERR_PEER_ID_MISMATCH"
      : error.errorCode === APP_ERROR_HANDSHAKE_FAILED
      ? "ERR_HANDSHAKE_FAILED"
      : undefined;
    if (code !== undefined) {
      return new NetworkError(code, `The peer refused the handshake: ${error.reason}`, {
        cause: error,
      });
    }
  }
  return error;
}
