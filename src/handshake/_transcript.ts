/**
 * Transcript hash and key schedule of the handshake. Kept apart from the state machine so that
 * the known-answer tests can reach them, and so that docs/handshake.md has one place to match.
 *
 * @module
 */

import { hkdfExpand, hkdfExtract, type HmacKey, hmacKey, hmacSha256 } from "../_hmac_sha256.ts";
import { ByteWriter } from "../_bytes.ts";
import { defaultAead, TAG_BYTES } from "./_aead.ts";
import { sha256 } from "../_sha256.ts";
import type { TicketSecret } from "./session_tickets.ts";

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
  const alpn = encoder.encode(t.alpn);
  return sha256(
    new ByteWriter(
      TRANSCRIPT_LABEL.byteLength + 78 + alpn.byteLength + t.clientHello.byteLength +
        t.serverHelloConfirmedPart.byteLength,
    )
      .bytes(TRANSCRIPT_LABEL)
      .u8(t.version)
      .u8(t.mode)
      .vec16(alpn)
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
  /** The resumption tickets this session leaves. */
  tickets: { dialer: TicketSecret; listener: TicketSecret };
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
  const ikm = new ByteWriter(toListener.byteLength + toDialer.byteLength).bytes(toListener)
    .bytes(toDialer).finish();
  // Neither node:crypto nor @noble/hashes: on inputs this small their per-call costs dominate
  // (src/_hmac_sha256.ts).
  const prk = hkdfExtract(transcript, ikm);
  ikm.fill(0);
  const prkKey = hmacKey(prk);
  const key = (info: Uint8Array) => hkdfExpand(prkKey, info, 32);
  const listenerFinished = key(KEY_INFO_LISTENER_FINISHED);
  const dialerFinished = key(KEY_INFO_DIALER_FINISHED);
  const schedule = {
    dialerToListener: key(KEY_INFO_DIALER_TO_LISTENER),
    listenerToDialer: key(KEY_INFO_LISTENER_TO_DIALER),
    listenerConfirmation: hmacSha256(listenerFinished, transcript),
    dialerConfirmation: hmacSha256(dialerFinished, transcript),
    tickets: sessionTickets(prkKey),
  };
  prk.fill(0);
  forget(prkKey);
  listenerFinished.fill(0);
  dialerFinished.fill(0);
  return schedule;
}

/** Labels of the resumption schedule: nothing of it can equal a value of the full one. */
export const RESUMPTION_LABEL = encoder.encode("cretoai-network/resumption/v3\0");
const RESUMPTION_INFO_BINDER = encoder.encode("cretoai-network/resumption/v3 binder");
const RESUMPTION_INFO_EARLY = encoder.encode("cretoai-network/resumption/v3 early data");
const RESUMPTION_INFO = {
  dialerToListener: encoder.encode("cretoai-network/resumption/v3 key dialer->listener"),
  listenerToDialer: encoder.encode("cretoai-network/resumption/v3 key listener->dialer"),
  listenerFinished: encoder.encode("cretoai-network/resumption/v3 finished listener"),
};
const TICKET_INFO = {
  dialerId: encoder.encode("cretoai-network/ticket/v3 id dialer->listener"),
  dialerSecret: encoder.encode("cretoai-network/ticket/v3 secret dialer->listener"),
  listenerId: encoder.encode("cretoai-network/ticket/v3 id listener->dialer"),
  listenerSecret: encoder.encode("cretoai-network/ticket/v3 secret listener->dialer"),
};

/** What a resumption's transcript covers besides the ClientHello: the same as a full one's. */
export type ResumptionInput = Omit<TranscriptInput, "clientHello" | "serverHelloConfirmedPart"> & {
  /** The ClientHello up to its binder. */
  clientHelloBoundPart: Uint8Array;
};

/** SHA-256 over the resumption's fields up to the binder (layout in docs/handshake.md). */
export function resumptionTranscriptHash(t: ResumptionInput): Uint8Array {
  const alpn = encoder.encode(t.alpn);
  return sha256(
    new ByteWriter(
      RESUMPTION_LABEL.byteLength + 74 + alpn.byteLength + t.clientHelloBoundPart.byteLength,
    )
      .bytes(RESUMPTION_LABEL)
      .u8(t.version)
      .u8(t.mode)
      .vec16(alpn)
      .bytes(t.dialerCertHash)
      .bytes(t.listenerCertHash)
      .vec32(t.clientHelloBoundPart)
      .finish(),
  );
}

/** The binder of a resuming ClientHello: proof that the dialer holds the ticket's secret. */
export function resumptionBinder(
  ticketSecret: Uint8Array,
  boundTranscript: Uint8Array,
): Uint8Array {
  const prk = hkdfExtract(boundTranscript, ticketSecret);
  const binderKey = hkdfExpand(prk, RESUMPTION_INFO_BINDER, 32);
  const binder = hmacSha256(binderKey, boundTranscript);
  prk.fill(0);
  binderKey.fill(0);
  return binder;
}

/**
 * The key of a resuming ClientHello's early data: from the ticket's secret (used once) and the
 * dialer's nonce, since the transcript the binder covers includes the sealed bytes.
 */
function earlyDataKey(ticketSecret: Uint8Array, nonce: Uint8Array): Uint8Array {
  const prk = hkdfExtract(nonce, ticketSecret);
  const key = hkdfExpand(prk, RESUMPTION_INFO_EARLY, 32);
  prk.fill(0);
  return key;
}

const EARLY_NONCE = new Uint8Array(12);

/** Seals early data with ChaCha20-Poly1305: ciphertext, then the 16-byte tag. */
export function sealEarlyData(
  ticketSecret: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const key = earlyDataKey(ticketSecret, nonce);
  const frame = defaultAead().start(key, EARLY_NONCE, true);
  key.fill(0);
  const sealed = new Uint8Array(plaintext.byteLength + TAG_BYTES);
  frame.update(plaintext, sealed);
  frame.seal(sealed.subarray(plaintext.byteLength));
  return sealed;
}

/** Opens early data; `undefined` when its tag does not check out. */
export function openEarlyData(
  ticketSecret: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
): Uint8Array | undefined {
  if (sealed.byteLength < TAG_BYTES) return undefined;
  const key = earlyDataKey(ticketSecret, nonce);
  const frame = defaultAead().start(key, EARLY_NONCE, false);
  key.fill(0);
  const length = sealed.byteLength - TAG_BYTES;
  const plaintext = new Uint8Array(length);
  frame.update(sealed.subarray(0, length), plaintext);
  return frame.open(sealed.subarray(length)) ? plaintext : undefined;
}

/**
 * The transcript hash of a resumed session: the bound transcript, the binder (so the session
 * covers the whole ClientHello) and the ResumedServerHello's confirmed part.
 */
export function resumedSessionHash(
  boundTranscript: Uint8Array,
  binder: Uint8Array,
  serverHelloConfirmedPart: Uint8Array,
): Uint8Array {
  return sha256(
    new ByteWriter().bytes(boundTranscript).bytes(binder).vec32(serverHelloConfirmedPart)
      .finish(),
  );
}

/** The resumed session's keys and the listener's confirmation, from the ticket's secret. */
export function resumedSchedule(
  ticketSecret: Uint8Array,
  sessionHash: Uint8Array,
): Omit<Schedule, "dialerConfirmation"> {
  const prk = hkdfExtract(sessionHash, ticketSecret);
  const prkKey = hmacKey(prk);
  const key = (info: Uint8Array) => hkdfExpand(prkKey, info, 32);
  const listenerFinished = key(RESUMPTION_INFO.listenerFinished);
  const schedule = {
    dialerToListener: key(RESUMPTION_INFO.dialerToListener),
    listenerToDialer: key(RESUMPTION_INFO.listenerToDialer),
    listenerConfirmation: hmacSha256(listenerFinished, sessionHash),
    tickets: sessionTickets(prkKey),
  };
  prk.fill(0);
  forget(prkKey);
  listenerFinished.fill(0);
  return schedule;
}

/**
 * The two tickets a session leaves, one per direction of the next dial: `dialer` for this
 * connection's dialer dialing the listener again, `listener` for the other way round.
 */
export function sessionTickets(prk: HmacKey): { dialer: TicketSecret; listener: TicketSecret } {
  const key = (info: Uint8Array, n: number) => hkdfExpand(prk, info, n);
  return {
    dialer: { id: key(TICKET_INFO.dialerId, 16), secret: key(TICKET_INFO.dialerSecret, 32) },
    listener: { id: key(TICKET_INFO.listenerId, 16), secret: key(TICKET_INFO.listenerSecret, 32) },
  };
}

/** Zeroes a prepared key's states (derived from a secret). */
function forget(key: HmacKey): void {
  key.states.fill(0);
}

/** Compares two byte strings in time that depends on their length only. */
export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
