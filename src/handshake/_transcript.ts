/**
 * Transcript hash and key schedule of the handshake. Kept apart from the state machine so that
 * the known-answer tests can reach them, and so that docs/handshake.md has one place to match.
 *
 * @module
 */

import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { ByteWriter } from "../_bytes.ts";
import { sha256 } from "../_sha256.ts";

const encoder = new TextEncoder();

/** Label and version at the start of the transcript: a transcript of another protocol differs. */
export const TRANSCRIPT_LABEL = encoder.encode("cretoai-network/handshake/v2\0");
export const KEY_INFO_DIALER_TO_LISTENER = encoder.encode(
  "cretoai-network/handshake/v2 key dialer->listener",
);
export const KEY_INFO_LISTENER_TO_DIALER = encoder.encode(
  "cretoai-network/handshake/v2 key listener->dialer",
);
/** Distinct per role, so that one side's confirmation is never valid as the other side's. */
export const KEY_INFO_LISTENER_FINISHED = encoder.encode(
  "cretoai-network/handshake/v2 finished listener",
);
export const KEY_INFO_DIALER_FINISHED = encoder.encode(
  "cretoai-network/handshake/v2 finished dialer",
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
  /** The ServerHello up to, not including, its confirmation. */
  serverHelloConfirmedPart: Uint8Array;
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
      .vec32(t.serverHelloConfirmedPart)
      .finish(),
  );
}

/** What the key schedule gives both sides. */
export interface Schedule {
  dialerToListener: Uint8Array;
  listenerToDialer: Uint8Array;
  /** The listener's key confirmation: HMAC of the transcript under its finished key. */
  listenerConfirmation: Uint8Array;
  /** The dialer's key confirmation. */
  dialerConfirmation: Uint8Array;
}

/**
 * HKDF-SHA-256 over both ML-KEM shared secrets (to the listener's binding key first), salted
 * with the transcript hash; the confirmations are HMAC-SHA-256 of the transcript hash.
 */
export function keySchedule(
  toListener: Uint8Array,
  toDialer: Uint8Array,
  transcript: Uint8Array,
): Schedule {
  const ikm = new ByteWriter().bytes(toListener).bytes(toDialer).finish();
  // @noble/hashes, not node:crypto: on inputs this small its HMAC takes about half the time
  // of Deno's createHmac (whose per-call overhead dominates).
  const prk = extract(nobleSha256, ikm, transcript);
  ikm.fill(0);
  const key = (info: Uint8Array) => expand(nobleSha256, prk, info, 32);
  const listenerFinished = key(KEY_INFO_LISTENER_FINISHED);
  const dialerFinished = key(KEY_INFO_DIALER_FINISHED);
  const schedule = {
    dialerToListener: key(KEY_INFO_DIALER_TO_LISTENER),
    listenerToDialer: key(KEY_INFO_LISTENER_TO_DIALER),
    listenerConfirmation: hmac(nobleSha256, listenerFinished, transcript),
    dialerConfirmation: hmac(nobleSha256, dialerFinished, transcript),
  };
  prk.fill(0);
  listenerFinished.fill(0);
  dialerFinished.fill(0);
  return schedule;
}

/** Compares two byte strings in time that depends on their length only. */
export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
