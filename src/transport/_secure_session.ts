/**
 * Runs the identity handshake on a fresh QUIC connection's first bidirectional stream and
 * returns what the transport needs afterwards: the peer's id, the stream (kept as the control
 * stream) and the frame cipher.
 *
 * @module
 */

import { NetworkError } from "../errors.ts";
import {
  HandshakeDialer,
  HandshakeError,
  HandshakeListener,
  hashCertificate,
} from "../handshake/handshake.ts";
import { FrameCipher } from "../handshake/frame_cipher.ts";
import { encodeRecord, RecordDecoder } from "../handshake/record.ts";
import type { Identity } from "../identity/identity.ts";
import type { PeerId } from "../identity/peer_id.ts";
import type { QuicConnection } from "../quic/connection.ts";
import type { QuicStream } from "../quic/stream.ts";
import { concatBytes } from "../_bytes.ts";

/** Application close codes of the transport (0x20-0x2f; 0x10-0x1f belong to the pool). */
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
}

/** Options of both sides. */
export interface SessionOptions {
  identity: Identity;
  pqEncryption: boolean;
  expectedPeerId?: PeerId;
}

/** The dialer side: opens the stream and sends the ClientHello. */
export async function dialSession(
  conn: QuicConnection,
  options: SessionOptions,
): Promise<SecureSession> {
  const stream = await conn.openBidi();
  const hs = new HandshakeDialer({ ...certHashes(conn), ...common(conn, options) });
  const decoder = new RecordDecoder();
  const pending: Uint8Array[] = [];
  try {
    await stream.write(encodeRecord(hs.start()));
    const { send, done } = hs.receive(await nextRecord(stream, decoder, pending));
    await stream.write(encodeRecord(send!));
    return await finish(conn, stream, done!.peerId, done!.keys, decoder, pending);
  } catch (e) {
    throw await alerted(stream, e);
  }
}

/** The listener side: waits for the dialer's stream and answers it. */
export async function acceptSession(
  conn: QuicConnection,
  options: SessionOptions,
): Promise<SecureSession> {
  const stream = await conn.acceptBidi();
  if (stream.id !== 0) {
    throw new NetworkError(
      "ERR_HANDSHAKE_FAILED",
      `The dialer's first stream must be stream 0 for the handshake: it opened ${stream.id}`,
    );
  }
  const hs = new HandshakeListener({ ...certHashes(conn), ...common(conn, options) });
  const decoder = new RecordDecoder();
  const pending: Uint8Array[] = [];
  try {
    const clientHello = await nextRecord(stream, decoder, pending);
    await cryptoTurn();
    const hello = hs.receive(clientHello);
    await stream.write(encodeRecord(hello.send!));
    const finish_ = await nextRecord(stream, decoder, pending);
    await cryptoTurn();
    const { done } = hs.receive(finish_);
    return await finish(conn, stream, done!.peerId, done!.keys, decoder, pending);
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

function common(conn: QuicConnection, options: SessionOptions) {
  return {
    identity: options.identity,
    alpn: conn.alpn,
    pqEncryption: options.pqEncryption,
    expectedPeerId: options.expectedPeerId,
  };
}

function certHashes(conn: QuicConnection) {
  const peerCert = conn.peerCertificates()[0];
  if (peerCert === undefined) {
    throw new NetworkError(
      "ERR_HANDSHAKE_FAILED",
      "The peer presented no TLS certificate: the handshake needs both to bind the connection",
    );
  }
  return {
    localCertHash: hashCertificate(conn.localCertificate),
    peerCertHash: hashCertificate(peerCert),
  };
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

async function finish(
  conn: QuicConnection,
  stream: QuicStream,
  peerId: PeerId,
  keys: { send: Uint8Array; recv: Uint8Array } | undefined,
  decoder: RecordDecoder,
  pending: Uint8Array[],
): Promise<SecureSession> {
  const cipher = keys === undefined ? undefined : await FrameCipher.create(keys);
  // The dialer's first control frame can arrive in the same read as its Finish. Frames use
  // the records' u32 length prefix, so what the record decoder split off is given back whole.
  const leftover = concatBytes([...pending.map((p) => encodeRecord(p)), decoder.takeRemaining()]);
  return { conn, peerId, control: stream, cipher, leftover };
}

/** Sends the handshake's alert, if it has one, so the peer fails with the reason. */
async function alerted(stream: QuicStream, error: unknown): Promise<unknown> {
  if (error instanceof HandshakeError && error.alert !== undefined) {
    await stream.write(encodeRecord(error.alert)).catch(() => {});
  }
  return error;
}

/**
 * Turns for the listener's handshake crypto (a signature, then a verification and a
 * decapsulation: milliseconds each in JavaScript), one per event-loop turn: a batch of
 * datagrams that completes many ClientHellos at once would otherwise run all their signatures
 * back to back, and every connected peer's messages would wait for the lot.
 */
const turnWaiters: (() => void)[] = [];

function cryptoTurn(): Promise<void> {
  return new Promise((resolve) => {
    turnWaiters.push(resolve);
    if (turnWaiters.length === 1) setTimeout(nextTurn, 0);
  });
}

function nextTurn(): void {
  turnWaiters.shift()?.();
  if (turnWaiters.length > 0) setTimeout(nextTurn, 0);
}
