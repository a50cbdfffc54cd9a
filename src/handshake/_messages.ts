/**
 * Binary codec of the four handshake messages. Layouts are in docs/handshake.md; every length
 * is checked against the exact size the version and mode require, so that a parsed message has
 * no slack for an attacker to fill.
 *
 * @module
 */

import { ByteReader, ByteWriter } from "../_bytes.ts";
import type { HybridSignature } from "../identity/identity.ts";
import { NetworkError } from "../errors.ts";

/** Protocol version spoken by this code. */
export const HANDSHAKE_VERSION = 1;

/** Largest handshake message accepted; the biggest real one (ServerHello) is about 6.5 KB. */
export const MAX_HANDSHAKE_MESSAGE = 16384;

export const NONCE_LENGTH = 32;
export const ML_KEM768_PUBLIC_KEY_LENGTH = 1184;
export const ML_KEM768_CIPHERTEXT_LENGTH = 1088;
const MAX_ALERT_REASON = 512;

export const MessageType = {
  ClientHello: 1,
  ServerHello: 2,
  ClientFinish: 3,
  Alert: 4,
} as const;

const TYPE_NAMES: Record<number, string> = {
  1: "ClientHello",
  2: "ServerHello",
  3: "ClientFinish",
  4: "Alert",
};

/** Mode byte: 0 = authenticate only, 1 = authenticate and agree ML-KEM session keys. */
export const Mode = { AuthOnly: 0, PqEncryption: 1 } as const;

export interface Hello {
  version: number;
  mode: number;
  /** Encoded `PublicIdentity`. */
  identity: Uint8Array;
  nonce: Uint8Array;
  /** ClientHello: ML-KEM public key; ServerHello: ML-KEM ciphertext. Empty without PQ mode. */
  kem: Uint8Array;
}

export interface ServerHello extends Hello {
  /** The message bytes the transcript covers: everything before the signature. */
  signedPart: Uint8Array;
  signature: HybridSignature;
}

export interface Alert {
  reason: string;
}

/** Encodes the fields common to ClientHello and ServerHello. */
function writeHello(type: number, hello: Hello): ByteWriter {
  return new ByteWriter()
    .u8(type)
    .u8(hello.version)
    .u8(hello.mode)
    .vec16(hello.identity)
    .bytes(hello.nonce)
    .vec16(hello.kem);
}

export function encodeClientHello(hello: Hello): Uint8Array {
  return writeHello(MessageType.ClientHello, hello).finish();
}

/** Encodes the part of a ServerHello that the transcript covers (no signature yet). */
export function encodeServerHelloSignedPart(hello: Hello): Uint8Array {
  return writeHello(MessageType.ServerHello, hello).finish();
}

export function encodeServerHello(signedPart: Uint8Array, sig: HybridSignature): Uint8Array {
  return new ByteWriter().bytes(signedPart).vec16(sig.ed25519).vec16(sig.mlDsa65).finish();
}

export function encodeClientFinish(sig: HybridSignature): Uint8Array {
  return new ByteWriter().u8(MessageType.ClientFinish).vec16(sig.ed25519).vec16(sig.mlDsa65)
    .finish();
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

function readHello(r: ByteReader, kemField: string, kemLength: number): Hello {
  const version = r.u8("version");
  if (version !== HANDSHAKE_VERSION) {
    r.fail(`unsupported version ${version}, this side speaks version ${HANDSHAKE_VERSION}`);
  }
  const mode = r.u8("mode");
  if (mode !== Mode.AuthOnly && mode !== Mode.PqEncryption) r.fail(`unknown mode ${mode}`);
  const identity = r.vec16("identity");
  const nonce = r.bytes(NONCE_LENGTH, "nonce");
  const kem = r.vec16(kemField);
  const expected = mode === Mode.PqEncryption ? kemLength : 0;
  if (kem.byteLength !== expected) {
    r.fail(
      `'${kemField}' must be ${expected} bytes in mode ${mode}: current size is ${kem.byteLength} bytes`,
    );
  }
  return { version, mode, identity, nonce, kem };
}

function readSignature(r: ByteReader): HybridSignature {
  const ed25519 = r.vec16("Ed25519 signature");
  const mlDsa65 = r.vec16("ML-DSA-65 signature");
  return { ed25519, mlDsa65 };
}

export function decodeClientHello(msg: Uint8Array): Hello {
  const r = reader(msg, MessageType.ClientHello);
  const hello = readHello(r, "ML-KEM public key", ML_KEM768_PUBLIC_KEY_LENGTH);
  r.end();
  return hello;
}

export function decodeServerHello(msg: Uint8Array): ServerHello {
  const r = reader(msg, MessageType.ServerHello);
  const hello = readHello(r, "ML-KEM ciphertext", ML_KEM768_CIPHERTEXT_LENGTH);
  const signedPart = msg.slice(0, r.offset);
  const signature = readSignature(r);
  r.end();
  return { ...hello, signedPart, signature };
}

export function decodeClientFinish(msg: Uint8Array): HybridSignature {
  const r = reader(msg, MessageType.ClientFinish);
  const sig = readSignature(r);
  r.end();
  return sig;
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
