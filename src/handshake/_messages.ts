/**
 * Binary codec of the five handshake messages. Layouts are in docs/handshake.md; every length
 * is checked against the exact size the version and mode require, so that a parsed message has
 * no slack for an attacker to fill.
 *
 * @module
 */

import { ByteReader, ByteWriter } from "../_bytes.ts";
import { NetworkError } from "../errors.ts";

/** Protocol version spoken by this code. */
export const HANDSHAKE_VERSION = 4;

/**
 * Largest handshake message accepted; the biggest real one is a resuming ClientHello with the
 * dialer's certificate, about 8.4 KB.
 */
export const MAX_HANDSHAKE_MESSAGE = 16384;
/** Largest certificate a ClientHello carries. */
export const MAX_CERTIFICATE = 12288;

export const NONCE_LENGTH = 32;
export const ML_KEM768_CIPHERTEXT_LENGTH = 1088;
/** Length of a key confirmation (HMAC-SHA-256), and of a resumption binder. */
export const CONFIRMATION_LENGTH = 32;
/** Length of a resumption ticket's id. */
export const TICKET_ID_LENGTH = 16;
/** Most bytes of sealed early data a resuming ClientHello carries (payload and 16-byte tag). */
export const MAX_EARLY_DATA = 272;
const MAX_ALERT_REASON = 512;

export const MessageType = {
  ClientHello: 1,
  ServerHello: 2,
  ClientFinish: 3,
  Alert: 4,
  ResumedServerHello: 5,
  HelloRetry: 6,
} as const;

const TYPE_NAMES: Record<number, string> = {
  1: "ClientHello",
  2: "ServerHello",
  3: "ClientFinish",
  4: "Alert",
  5: "ResumedServerHello",
  6: "HelloRetry",
};

/** Mode byte: 0 = authenticate only, 1 = authenticate and seal frames with ML-KEM keys. */
export const Mode = { AuthOnly: 0, PqEncryption: 1 } as const;

/** ClientHello, and the part of a ServerHello before its confirmation. */
export interface Hello {
  version: number;
  mode: number;
  nonce: Uint8Array;
  /** ML-KEM-768 ciphertext to the peer's binding key. */
  cipherText: Uint8Array;
}

/**
 * A ClientHello: a {@linkcode Hello}, and when the dialer resumes, the ticket it names, its
 * sealed early data and the binder that proves it holds the ticket's secret.
 */
export interface ClientHello extends Hello {
  /**
   * The dialer's certificate (the identity binding), when TLS received only its client
   * certificate, which names it by hash; at most {@linkcode MAX_CERTIFICATE}.
   */
  certificate?: Uint8Array;
  resumption?: {
    ticketId: Uint8Array;
    earlyData: Uint8Array;
    binder: Uint8Array;
  };
}

export interface ServerHello extends Hello {
  /** The message bytes the transcript covers: everything before the confirmation. */
  confirmedPart: Uint8Array;
  /** The listener's key confirmation. */
  confirmation: Uint8Array;
}

export interface Alert {
  reason: string;
}

const EMPTY = new Uint8Array(0);

function writeHello(type: number, hello: Hello, extra = 0): ByteWriter {
  return new ByteWriter(37 + hello.cipherText.byteLength + extra)
    .u8(type)
    .u8(hello.version)
    .u8(hello.mode)
    .bytes(hello.nonce)
    .vec16(hello.cipherText);
}

/** A ClientHello up to, not including, its binder (all of it when it does not resume). */
export function encodeClientHelloBoundPart(
  hello: Omit<ClientHello, "resumption"> & {
    resumption?: { ticketId: Uint8Array; earlyData: Uint8Array };
  },
): Uint8Array {
  const certificate = hello.certificate ?? EMPTY;
  const resumption = hello.resumption;
  const size = 3 + certificate.byteLength +
    (resumption === undefined ? 0 : 18 + resumption.ticketId.byteLength +
      resumption.earlyData.byteLength);
  const w = writeHello(MessageType.ClientHello, hello, size).vec16(certificate);
  if (resumption === undefined) return w.u8(0).finish();
  return w.u8(TICKET_ID_LENGTH).bytes(resumption.ticketId).vec16(resumption.earlyData).finish();
}

export function encodeClientHello(hello: ClientHello): Uint8Array {
  const bound = encodeClientHelloBoundPart(hello);
  if (hello.resumption === undefined) return bound;
  return new ByteWriter(bound.byteLength + hello.resumption.binder.byteLength).bytes(bound)
    .bytes(hello.resumption.binder).finish();
}

/** The part of a ResumedServerHello its confirmation covers. */
export function encodeResumedServerHelloConfirmedPart(version: number, mode: number): Uint8Array {
  return new ByteWriter().u8(MessageType.ResumedServerHello).u8(version).u8(mode).finish();
}

/** Encodes the part of a ServerHello that the transcript covers (no confirmation yet). */
export function encodeServerHelloConfirmedPart(hello: Hello): Uint8Array {
  return writeHello(MessageType.ServerHello, hello).finish();
}

export function encodeServerHello(confirmedPart: Uint8Array, confirmation: Uint8Array): Uint8Array {
  return new ByteWriter(confirmedPart.byteLength + confirmation.byteLength).bytes(confirmedPart)
    .bytes(confirmation).finish();
}

export function encodeClientFinish(confirmation: Uint8Array): Uint8Array {
  return new ByteWriter().u8(MessageType.ClientFinish).bytes(confirmation).finish();
}

export function encodeAlert(reason: string): Uint8Array {
  let bytes = new TextEncoder().encode(reason);
  if (bytes.byteLength > MAX_ALERT_REASON) bytes = bytes.subarray(0, MAX_ALERT_REASON);
  return new ByteWriter().u8(MessageType.Alert).vec16(bytes).finish();
}

/** The name of a message type byte, for error messages. */
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `unknown type ${type}`;
}

/**
 * Checks the size of a received message and returns its type byte.
 *
 * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` when the message is empty or too large.
 */
export function peekType(msg: Uint8Array): number {
  if (!(msg instanceof Uint8Array) || msg.byteLength === 0) {
    throw new NetworkError("ERR_HANDSHAKE_FAILED", "Malformed handshake message: it is empty");
  }
  if (msg.byteLength > MAX_HANDSHAKE_MESSAGE) {
    throw new NetworkError(
      "ERR_HANDSHAKE_FAILED",
      `Malformed handshake message: ${msg.byteLength} bytes exceeds the maximum of ${MAX_HANDSHAKE_MESSAGE}`,
    );
  }
  return msg[0];
}

function reader(msg: Uint8Array, type: number): ByteReader {
  const r = new ByteReader(msg, typeName(type), (m) => new NetworkError("ERR_HANDSHAKE_FAILED", m));
  const seen = r.u8("type");
  if (seen !== type) r.fail(`expected a ${typeName(type)}, got ${typeName(seen)}`);
  return r;
}

/** `mayOmitCipherText`: a resuming ClientHello may leave the ciphertext out (checked later). */
function readHello(r: ByteReader, mayOmitCipherText = false): Hello {
  const version = r.u8("version");
  if (version !== HANDSHAKE_VERSION) {
    r.fail(`unsupported version ${version}, this side speaks version ${HANDSHAKE_VERSION}`);
  }
  const mode = r.u8("mode");
  if (mode !== Mode.AuthOnly && mode !== Mode.PqEncryption) r.fail(`unknown mode ${mode}`);
  const nonce = r.bytes(NONCE_LENGTH, "nonce");
  const cipherText = r.vec16("ML-KEM ciphertext");
  const omitted = mayOmitCipherText && cipherText.byteLength === 0;
  if (!omitted && cipherText.byteLength !== ML_KEM768_CIPHERTEXT_LENGTH) {
    r.fail(
      `'ML-KEM ciphertext' must be ${ML_KEM768_CIPHERTEXT_LENGTH} bytes: current size is ${cipherText.byteLength} bytes`,
    );
  }
  return { version, mode, nonce, cipherText };
}

/** A decoded ClientHello, with the bytes its binder covers when it resumes. */
export interface DecodedClientHello extends ClientHello {
  /** The message up to its binder: what a resumption's transcript covers. */
  boundPart: Uint8Array;
}

export function decodeClientHello(msg: Uint8Array): DecodedClientHello {
  const r = reader(msg, MessageType.ClientHello);
  const hello: ClientHello = readHello(r, true);
  const certificate = r.vec16("certificate", MAX_CERTIFICATE);
  if (certificate.byteLength > 0) hello.certificate = certificate;
  const ticketLength = r.u8("ticket id length");
  if (ticketLength === 0) {
    if (hello.cipherText.byteLength === 0) {
      r.fail("a ClientHello without an ML-KEM ciphertext must offer a ticket");
    }
    r.end();
    return { ...hello, boundPart: msg };
  }
  if (ticketLength !== TICKET_ID_LENGTH) {
    r.fail(`'ticket id length' must be 0 or ${TICKET_ID_LENGTH}: current value is ${ticketLength}`);
  }
  const ticketId = r.bytes(TICKET_ID_LENGTH, "ticket id");
  const earlyData = r.vec16("early data", MAX_EARLY_DATA);
  if (earlyData.byteLength < 16) {
    r.fail(
      `'early data' must hold at least its 16-byte tag: current size is ${earlyData.byteLength} bytes`,
    );
  }
  const boundPart = msg.subarray(0, r.offset);
  const binder = r.bytes(CONFIRMATION_LENGTH, "binder");
  r.end();
  return { ...hello, resumption: { ticketId, earlyData, binder }, boundPart };
}

/**
 * A HelloRetry: the listener cannot resume a ClientHello that left out what the full handshake
 * needs (it no longer holds the certificate left out, or not the ticket, and the ML-KEM
 * ciphertext is left out), and asks for a ClientHello that carries both.
 */
export function encodeHelloRetry(): Uint8Array {
  return Uint8Array.of(MessageType.HelloRetry, HANDSHAKE_VERSION);
}

export function decodeHelloRetry(msg: Uint8Array): void {
  const r = reader(msg, MessageType.HelloRetry);
  const version = r.u8("version");
  if (version !== HANDSHAKE_VERSION) {
    r.fail(`unsupported version ${version}, this side speaks version ${HANDSHAKE_VERSION}`);
  }
  r.end();
}

/** A ResumedServerHello: version, mode and the listener's confirmation. */
export interface ResumedServerHello {
  version: number;
  mode: number;
  confirmedPart: Uint8Array;
  confirmation: Uint8Array;
}

export function decodeResumedServerHello(msg: Uint8Array): ResumedServerHello {
  const r = reader(msg, MessageType.ResumedServerHello);
  const version = r.u8("version");
  if (version !== HANDSHAKE_VERSION) {
    r.fail(`unsupported version ${version}, this side speaks version ${HANDSHAKE_VERSION}`);
  }
  const mode = r.u8("mode");
  if (mode !== Mode.AuthOnly && mode !== Mode.PqEncryption) r.fail(`unknown mode ${mode}`);
  const confirmedPart = msg.slice(0, r.offset);
  const confirmation = r.bytes(CONFIRMATION_LENGTH, "confirmation");
  r.end();
  return { version, mode, confirmedPart, confirmation };
}

export function decodeServerHello(msg: Uint8Array): ServerHello {
  const r = reader(msg, MessageType.ServerHello);
  const hello = readHello(r);
  const confirmedPart = msg.slice(0, r.offset);
  const confirmation = r.bytes(CONFIRMATION_LENGTH, "confirmation");
  r.end();
  return { ...hello, confirmedPart, confirmation };
}

export function decodeClientFinish(msg: Uint8Array): Uint8Array {
  const r = reader(msg, MessageType.ClientFinish);
  const confirmation = r.bytes(CONFIRMATION_LENGTH, "confirmation");
  r.end();
  return confirmation;
}

export function decodeAlert(msg: Uint8Array): Alert {
  const r = reader(msg, MessageType.Alert);
  const raw = r.vec16("reason");
  r.end();
  const reason = new TextDecoder("utf-8", { fatal: false }).decode(
    raw.subarray(0, MAX_ALERT_REASON),
  );
  return { reason };
}
