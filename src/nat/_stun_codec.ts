/**
 * STUN message encoding and decoding for the Binding method (RFC 8489, RFC 5780 attributes)
 * and decoding of the TURN attributes (RFC 8656), on top of npm `stun`. Private to `src/nat/`.
 *
 * npm `stun` decodes ERROR-CODE as `class * (number + 100)` (401 reads as 404), and re-encodes
 * a decoded message before checking FINGERPRINT, which is lossy; so ERROR-CODE and FINGERPRINT
 * are read from the raw bytes here.
 *
 * @module
 */

import { stun } from "./_stun_package.ts";
import { Buffer } from "node:buffer";
import type { UdpAddress } from "../quic/datagram_port.ts";
import { toHex } from "../_bytes.ts";

/** The magic cookie every RFC 5389/8489 message carries in bytes 4..8. */
export const MAGIC_COOKIE = 0x2112a442;
/** Binding request message type. */
export const BINDING_REQUEST = 0x0001;
/** Binding success response message type. */
export const BINDING_SUCCESS = 0x0101;
/** Binding error response message type. */
export const BINDING_ERROR = 0x0111;

/** Size of the STUN header: type, length, magic cookie, transaction id. */
export const HEADER_SIZE = 20;
const ATTR_MAPPED_ADDRESS = 0x0001;
const ATTR_CHANGE_REQUEST = 0x0003;
const ATTR_ERROR_CODE = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_LIFETIME = 0x000d;
const ATTR_XOR_PEER_ADDRESS = 0x0012;
const ATTR_DATA = 0x0013;
const ATTR_REALM = 0x0014;
const ATTR_NONCE = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS = 0x0016;
const ATTR_FINGERPRINT = 0x8028;
const ATTR_RESPONSE_ORIGIN = 0x802b;
const ATTR_OTHER_ADDRESS = 0x802c;
const FINGERPRINT_XOR = 0x5354554e;
const CHANGE_IP_FLAG = 0x04;
const CHANGE_PORT_FLAG = 0x02;

/** A decoded STUN or TURN message, reduced to what the clients use. */
export interface DecodedStunMessage {
  /** Message type, for example {@link BINDING_SUCCESS}. */
  type: number;
  /** The 12-byte transaction id as lowercase hex. */
  transactionId: string;
  /** XOR-MAPPED-ADDRESS, when present. */
  xorMappedAddress?: UdpAddress;
  /** MAPPED-ADDRESS (RFC 3489 servers send only this), when present. */
  mappedAddress?: UdpAddress;
  /** RFC 5780 RESPONSE-ORIGIN, when present. */
  responseOrigin?: UdpAddress;
  /** RFC 5780 OTHER-ADDRESS, when present. */
  otherAddress?: UdpAddress;
  /** ERROR-CODE read from the raw bytes, when present. */
  error?: { code: number; reason: string };
  /** TURN XOR-RELAYED-ADDRESS, when present. */
  relayedAddress?: UdpAddress;
  /** TURN XOR-PEER-ADDRESS (the first one), when present. */
  peerAddress?: UdpAddress;
  /** TURN LIFETIME in seconds, when present. */
  lifetime?: number;
  /** REALM, when present. */
  realm?: string;
  /** NONCE as sent (echoed byte for byte), when present. */
  nonce?: Uint8Array;
  /** TURN DATA, a view into the datagram, when present. */
  data?: Uint8Array;
}

/**
 * Whether a datagram has the shape of an RFC 5389/8489 STUN message: first two bits zero,
 * the magic cookie, and a length field that matches the datagram.
 */
export function looksLikeStun(data: Uint8Array): boolean {
  if (data.byteLength < HEADER_SIZE || (data[0] & 0xc0) !== 0) return false;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint32(4) !== MAGIC_COOKIE) return false;
  const length = view.getUint16(2);
  return length % 4 === 0 && length + HEADER_SIZE === data.byteLength;
}

/** Lowercase hex of a transaction id, the key transactions are matched by. */
export function transactionKey(id: Uint8Array): string {
  return toHex(id);
}

/**
 * Encodes a Binding request with FINGERPRINT, and CHANGE-REQUEST when a change is asked for.
 */
export function encodeBindingRequest(
  transactionId: Uint8Array,
  change: { ip: boolean; port: boolean },
): Uint8Array {
  const message = stun.createMessage(BINDING_REQUEST, Buffer.from(transactionId));
  if (change.ip || change.port) {
    message.addAttribute(
      ATTR_CHANGE_REQUEST,
      (change.ip ? CHANGE_IP_FLAG : 0) | (change.port ? CHANGE_PORT_FLAG : 0),
    );
  }
  message.addFingerprint();
  const encoded: Uint8Array = stun.encode(message);
  return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
}

/**
 * Decodes a STUN message; `undefined` when it is not one, is malformed, or carries a wrong
 * FINGERPRINT (a datagram that only looks like STUN by chance).
 */
export function decodeStunMessage(data: Uint8Array): DecodedStunMessage | undefined {
  if (!looksLikeStun(data)) return undefined;
  const raw = rawAttributes(data);
  if (raw === undefined) return undefined;
  const fingerprint = raw.find((a) => a.type === ATTR_FINGERPRINT);
  if (fingerprint !== undefined && !fingerprintMatches(data, fingerprint)) return undefined;
  // deno-lint-ignore no-explicit-any -- npm `stun` ships no types; the shape is checked below.
  let decoded: any;
  try {
    decoded = stun.decode(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  } catch {
    return undefined;
  }
  const out: DecodedStunMessage = {
    type: view(data).getUint16(0),
    transactionId: transactionKey(data.subarray(8, 20)),
  };
  const address = (type: number): UdpAddress | undefined => {
    const value = decoded.getAttribute(type)?.value;
    if (typeof value?.address !== "string" || typeof value?.port !== "number") return undefined;
    return { hostname: value.address, port: value.port };
  };
  out.xorMappedAddress = address(ATTR_XOR_MAPPED_ADDRESS);
  out.mappedAddress = address(ATTR_MAPPED_ADDRESS);
  out.responseOrigin = address(ATTR_RESPONSE_ORIGIN);
  out.otherAddress = address(ATTR_OTHER_ADDRESS);
  out.relayedAddress = address(ATTR_XOR_RELAYED_ADDRESS);
  out.peerAddress = address(ATTR_XOR_PEER_ADDRESS);
  const value = (type: number): Uint8Array | undefined => {
    const a = raw.find((r) => r.type === type);
    return a === undefined ? undefined : data.subarray(a.offset, a.offset + a.length);
  };
  const lifetime = value(ATTR_LIFETIME);
  if (lifetime?.byteLength === 4) out.lifetime = view(lifetime).getUint32(0);
  const realm = value(ATTR_REALM);
  if (realm !== undefined) out.realm = new TextDecoder().decode(realm);
  out.nonce = value(ATTR_NONCE);
  out.data = value(ATTR_DATA);
  const error = raw.find((a) => a.type === ATTR_ERROR_CODE);
  if (error !== undefined && error.length >= 4) {
    const v = data.subarray(error.offset, error.offset + error.length);
    out.error = {
      code: (v[2] & 0x07) * 100 + v[3],
      reason: new TextDecoder().decode(v.subarray(4)),
    };
  }
  return out;
}

/** One attribute's place in a message. */
export interface RawAttribute {
  type: number;
  offset: number;
  length: number;
  /** Offset of the attribute header, for FINGERPRINT's CRC range. */
  start: number;
}

function view(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/** Walks the TLV attributes; `undefined` when one runs past the end. */
export function rawAttributes(data: Uint8Array): RawAttribute[] | undefined {
  const v = view(data);
  const out: RawAttribute[] = [];
  let at = HEADER_SIZE;
  // Bounded by the datagram: every step advances at least 4 bytes.
  while (at + 4 <= data.byteLength) {
    const type = v.getUint16(at);
    const length = v.getUint16(at + 2);
    if (at + 4 + length > data.byteLength) return undefined;
    out.push({ type, offset: at + 4, length, start: at });
    at += 4 + Math.ceil(length / 4) * 4;
  }
  return at === data.byteLength ? out : undefined;
}

function fingerprintMatches(data: Uint8Array, attr: RawAttribute): boolean {
  if (attr.length !== 4) return false;
  // The CRC covers the message up to FINGERPRINT, with the length field as sent (it already
  // counts FINGERPRINT because FINGERPRINT is last).
  const expected = (crc32(data.subarray(0, attr.start)) ^ FINGERPRINT_XOR) >>> 0;
  return view(data).getUint32(attr.offset) === expected;
}

let crcTable: Uint32Array | undefined;

function crc32(data: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of data) crc = crcTable[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
