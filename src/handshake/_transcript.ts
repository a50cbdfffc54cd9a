/**
 * Transcript hash, signature inputs and the key schedule of the handshake. Kept apart from the
 * state machine so that the known-answer tests can reach them, and so that docs/handshake.md has
 * one place to match.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { ByteWriter } from "../_bytes.ts";

const encoder = new TextEncoder();

/** Label and version at the start of the transcript: a transcript of another protocol differs. */
export const TRANSCRIPT_LABEL = encoder.encode("cretoai-network/handshake/v1\0");
/** Distinct per role, so that one side's signature is never valid as the other side's. */
export const LISTENER_SIGNATURE_LABEL = encoder.encode(
  "cretoai-network/handshake/v1 listener signature\0",
);
export const DIALER_SIGNATURE_LABEL = encoder.encode(
  "cretoai-network/handshake/v1 dialer signature\0",
);
export const KEY_INFO_DIALER_TO_LISTENER = encoder.encode(
  "cretoai-network/handshake/v1 key dialer->listener",
);
export const KEY_INFO_LISTENER_TO_DIALER = encoder.encode(
  "cretoai-network/handshake/v1 key listener->dialer",
);

export interface TranscriptInput {
  version: number;
  mode: number;
  alpn: string;
  /** SHA-256 of the dialer's TLS certificate as seen on this connection. */
  dialerCertHash: Uint8Array;
  /** SHA-256 of the listener's TLS certificate as seen on this connection. */
  listenerCertHash: Uint8Array;
  clientHello: Uint8Array;
  /** The ServerHello up to, not including, its signature. */
  serverHelloSignedPart: Uint8Array;
}

/** SHA-256 over the length-delimited transcript fields (layout in docs/handshake.md). */
export function transcriptHash(t: TranscriptInput): Uint8Array {
  return sha256(
    new ByteWriter()
      .bytes(TRANSCRIPT_LABEL)
      .u8(t.version)
      .u8(t.mode)
      .vec16(encoder.encode(t.alpn))
      .bytes(t.dialerCertHash)
      .bytes(t.listenerCertHash)
      .vec32(t.clientHello)
      .vec32(t.serverHelloSignedPart)
      .finish(),
  );
}

/** What a side signs: its role label followed by the transcript hash. */
export function signedMessage(label: Uint8Array, transcript: Uint8Array): Uint8Array {
  return new ByteWriter().bytes(label).bytes(transcript).finish();
}

/** Session keys by direction. */
export interface DirectionalKeys {
  dialerToListener: Uint8Array;
  listenerToDialer: Uint8Array;
}

/** HKDF-SHA-256 over the ML-KEM shared secret, salted with the transcript hash. */
export function deriveSessionKeys(
  sharedSecret: Uint8Array,
  transcript: Uint8Array,
): DirectionalKeys {
  return {
    dialerToListener: hkdf(sha256, sharedSecret, transcript, KEY_INFO_DIALER_TO_LISTENER, 32),
    listenerToDialer: hkdf(sha256, sharedSecret, transcript, KEY_INFO_LISTENER_TO_DIALER, 32),
  };
}
