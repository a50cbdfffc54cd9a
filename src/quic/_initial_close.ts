/**
 * A CONNECTION_CLOSE in a server Initial packet (RFC 9000 17.2.2, packet protection of RFC
 * 9001 5), made without a connection: a listener that refuses a client at its first Initial,
 * before any TLS work, still tells it why. Initial keys come from the client's destination
 * connection id, which the client's Initial carries, so this costs a few HMACs and two AES
 * blocks and keeps no state.
 *
 * @module
 */
import { createCipheriv } from "node:crypto";
import { hkdfExpand, hkdfExtract } from "../_hmac_sha256.ts";

// RFC 9001 5.2: the QUIC v1 initial salt.
const INITIAL_SALT = Uint8Array.of(
  0x38,
  0x76,
  0x2c,
  0xf7,
  0xf5,
  0x59,
  0x34,
  0xb3,
  0x4d,
  0x17,
  0x9a,
  0xe6,
  0xa4,
  0xc8,
  0x0c,
  0xad,
  0xcc,
  0xbb,
  0x7f,
  0x0a,
);
const CONNECTION_CLOSE_TRANSPORT = 0x1c;
const PACKET_NUMBER_LENGTH = 2;
const TAG_LENGTH = 16;
/** A reason phrase is cut to this many bytes: the packet stays far below the client's Initial. */
const MAX_REASON_BYTES = 200;

/** What the refused client's Initial said about it, and why it is refused. */
export interface InitialCloseOptions {
  /** QUIC version of the client's Initial. */
  version: number;
  /** The destination connection id of the client's Initial (its keys derive from it). */
  clientDcid: Uint8Array;
  /** The source connection id of the client's Initial (the packet's destination). */
  clientScid: Uint8Array;
  /** The source connection id to put in the packet. */
  serverScid: Uint8Array;
  /** A QUIC transport error code (an application code cannot go in an Initial packet). */
  errorCode: number;
  /** The reason phrase. */
  reason: string;
}

/**
 * Writes the Initial packet with a CONNECTION_CLOSE (type 0x1c) into `out`.
 *
 * @returns Its length in bytes.
 */
export function writeInitialClose(options: InitialCloseOptions, out: Uint8Array): number {
  const { version, clientDcid, clientScid, serverScid, errorCode, reason } = options;
  const { key, iv, hp } = serverInitialKeys(clientDcid);
  const phrase = new TextEncoder().encode(reason).subarray(0, MAX_REASON_BYTES);
  const payload = [
    ...varint(CONNECTION_CLOSE_TRANSPORT),
    ...varint(errorCode),
    0, // frame type: none
    ...varint(phrase.byteLength),
    ...phrase,
  ];
  const header = [
    0xc0 | (PACKET_NUMBER_LENGTH - 1), // long header, fixed bit, Initial, packet number length
    version >>> 24,
    (version >>> 16) & 0xff,
    (version >>> 8) & 0xff,
    version & 0xff,
    clientScid.byteLength,
    ...clientScid,
    serverScid.byteLength,
    ...serverScid,
    0, // token length
    ...varint2(PACKET_NUMBER_LENGTH + payload.length + TAG_LENGTH),
  ];
  const pnOffset = header.length;
  header.push(0, 0); // packet number 0
  const aad = Uint8Array.from(header);
  // The nonce is the IV XORed with the packet number, 0 here.
  const cipher = createCipheriv("aes-128-gcm", key, iv);
  cipher.setAAD(aad);
  const sealed = [cipher.update(Uint8Array.from(payload)), cipher.final(), cipher.getAuthTag()];
  const length = aad.byteLength + payload.length + TAG_LENGTH;
  if (length > out.byteLength) throw new RangeError(`An Initial close needs ${length} bytes`);
  out.set(aad, 0);
  let at = aad.byteLength;
  for (const part of sealed) {
    out.set(part, at);
    at += part.byteLength;
  }
  // Header protection (RFC 9001 5.4): a mask from a sample of the ciphertext.
  const sample = out.subarray(pnOffset + 4, pnOffset + 4 + 16);
  const mask = createCipheriv("aes-128-ecb", hp, null).update(sample);
  out[0] ^= mask[0] & 0x0f;
  for (let i = 0; i < PACKET_NUMBER_LENGTH; i++) out[pnOffset + i] ^= mask[1 + i];
  return length;
}

function serverInitialKeys(clientDcid: Uint8Array) {
  const secret = expandLabel(hkdfExtract(INITIAL_SALT, clientDcid), "server in", 32);
  return {
    key: expandLabel(secret, "quic key", 16),
    iv: expandLabel(secret, "quic iv", 12),
    hp: expandLabel(secret, "quic hp", 16),
  };
}

/** HKDF-Expand-Label of TLS 1.3 (RFC 8446 7.1) with an empty context. */
function expandLabel(secret: Uint8Array, label: string, length: number): Uint8Array {
  const full = new TextEncoder().encode(`tls13 ${label}`);
  const info = Uint8Array.from([length >> 8, length & 0xff, full.byteLength, ...full, 0]);
  return hkdfExpand(secret, info, length);
}

function varint(value: number): number[] {
  if (value < 0x40) return [value];
  if (value < 0x4000) return varint2(value);
  return [0x80 | (value >>> 24), (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

function varint2(value: number): number[] {
  return [0x40 | (value >> 8), value & 0xff];
}
