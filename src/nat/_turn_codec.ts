/**
 * TURN (RFC 8656) message building on npm `stun`, ChannelData framing, and the long-term
 * credential key and MESSAGE-INTEGRITY check. Pure: no sockets, no clock. Decoding of TURN
 * attributes is shared with STUN in `_stun_codec.ts`. Private to `src/nat/`.
 *
 * @module
 */

import { stun } from "./_stun_package.ts";
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { UdpAddress } from "../quic/datagram_port.ts";
import { HEADER_SIZE, rawAttributes } from "./_stun_codec.ts";

/** TURN methods (RFC 8656 section 17). */
export const TurnMethod = Object.freeze({
  allocate: 0x0003,
  refresh: 0x0004,
  send: 0x0006,
  data: 0x0007,
  createPermission: 0x0008,
  channelBind: 0x0009,
});

/** Success response type of a request type. */
export const successOf = (request: number): number => request | 0x0100;
/** Error response type of a request type. */
export const errorOf = (request: number): number => request | 0x0110;
/** Send indication message type. */
export const SEND_INDICATION = 0x0016;
/** Data indication message type. */
export const DATA_INDICATION = 0x0017;

/** Lowest and highest channel number a client may bind (RFC 8656 section 12). */
export const CHANNEL_MIN = 0x4000;
/** Highest channel number. */
export const CHANNEL_MAX = 0x4fff;
/** Size of the ChannelData header: channel number and length. */
export const CHANNEL_HEADER = 4;

const ATTR_CHANNEL_NUMBER = 0x000c;
const ATTR_LIFETIME = 0x000d;
const ATTR_XOR_PEER_ADDRESS = 0x0012;
const ATTR_DATA = 0x0013;
const ATTR_USERNAME = 0x0006;
const ATTR_MESSAGE_INTEGRITY = 0x0008;
const ATTR_REALM = 0x0014;
const ATTR_NONCE = 0x0015;
const ATTR_REQUESTED_TRANSPORT = 0x0019;
const UDP_TRANSPORT = 17 << 24;

/** The long-term credential of a request: USERNAME, REALM, NONCE and the HMAC key. */
export interface TurnAuth {
  username: string;
  realm: string;
  nonce: Uint8Array;
  /** MD5(username ":" realm ":" password), see {@link longTermKey}. */
  key: Uint8Array;
}

/** Attributes of a TURN request; each is added only when given. */
export interface TurnRequestFields {
  /** REQUESTED-TRANSPORT UDP (Allocate). */
  udp?: boolean;
  /** LIFETIME in seconds (Allocate, Refresh; 0 deletes the allocation). */
  lifetime?: number;
  /** XOR-PEER-ADDRESS, one per entry (CreatePermission may carry several). */
  peers?: readonly UdpAddress[];
  /** CHANNEL-NUMBER (ChannelBind). */
  channel?: number;
}

/** The RFC 8489 long-term credential key: MD5 of `username:realm:password`. */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash("md5").update(`${username}:${realm}:${password}`).digest());
}

/**
 * Encodes a TURN request with the given attributes, then (when `auth` is given) USERNAME,
 * REALM, NONCE and MESSAGE-INTEGRITY, then FINGERPRINT.
 */
export function encodeTurnRequest(
  method: number,
  transactionId: Uint8Array,
  fields: TurnRequestFields,
  auth?: TurnAuth,
): Uint8Array {
  const message = stun.createMessage(method, Buffer.from(transactionId));
  if (fields.udp) message.addAttribute(ATTR_REQUESTED_TRANSPORT, UDP_TRANSPORT);
  if (fields.lifetime !== undefined) message.addAttribute(ATTR_LIFETIME, fields.lifetime);
  for (const peer of fields.peers ?? []) {
    message.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.hostname, peer.port);
  }
  if (fields.channel !== undefined) {
    message.addAttribute(ATTR_CHANNEL_NUMBER, (fields.channel << 16) >>> 0);
  }
  if (auth !== undefined) {
    message.addAttribute(ATTR_USERNAME, Buffer.from(auth.username));
    message.addAttribute(ATTR_REALM, Buffer.from(auth.realm));
    message.addAttribute(ATTR_NONCE, Buffer.from(auth.nonce));
    message.addMessageIntegrity(Buffer.from(auth.key));
  }
  message.addFingerprint();
  return toBytes(stun.encode(message));
}

/** Encodes a Send indication carrying `data` to `peer` (no integrity: indications have none). */
export function encodeSendIndication(peer: UdpAddress, data: Uint8Array): Uint8Array {
  const message = stun.createMessage(SEND_INDICATION);
  message.addAttribute(ATTR_XOR_PEER_ADDRESS, peer.hostname, peer.port);
  message.addAttribute(ATTR_DATA, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  message.addFingerprint();
  return toBytes(stun.encode(message));
}

/**
 * Whether a datagram is shaped like ChannelData: a channel number 0x4000-0x4FFF and a length
 * that fits the datagram (over UDP the padding is optional, so longer is allowed).
 */
export function isChannelData(data: Uint8Array): boolean {
  return data.byteLength >= CHANNEL_HEADER && (data[0] & 0xf0) === 0x40 &&
    ((data[2] << 8) | data[3]) + CHANNEL_HEADER <= data.byteLength;
}

/** The channel number of a datagram for which {@link isChannelData} holds. */
export function channelOf(data: Uint8Array): number {
  return (data[0] << 8) | data[1];
}

/** The application data of a datagram for which {@link isChannelData} holds (a view). */
export function channelPayload(data: Uint8Array): Uint8Array {
  return data.subarray(CHANNEL_HEADER, CHANNEL_HEADER + ((data[2] << 8) | data[3]));
}

/** Writes a ChannelData header for `length` bytes of data into `out[0..4]`. */
export function writeChannelHeader(out: Uint8Array, channel: number, length: number): void {
  out[0] = channel >> 8;
  out[1] = channel & 0xff;
  out[2] = length >> 8;
  out[3] = length & 0xff;
}

/** A ChannelData message with a copy of `data`. */
export function encodeChannelData(channel: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHANNEL_HEADER + data.byteLength);
  writeChannelHeader(out, channel, data.byteLength);
  out.set(data, CHANNEL_HEADER);
  return out;
}

/**
 * Whether the message's MESSAGE-INTEGRITY is valid for `key` (RFC 8489 section 14.5): the
 * HMAC-SHA1 covers the message up to the attribute, with the length field counting up to and
 * including it. `false` when the attribute is missing.
 */
export function integrityMatches(data: Uint8Array, key: Uint8Array): boolean {
  const attr = rawAttributes(data)?.find((a) => a.type === ATTR_MESSAGE_INTEGRITY);
  if (attr === undefined || attr.length !== 20) return false;
  const covered = data.slice(0, attr.start);
  new DataView(covered.buffer).setUint16(2, attr.start + 24 - HEADER_SIZE);
  const mac = createHmac("sha1", key).update(covered).digest();
  return timingSafeEqual(mac, data.subarray(attr.offset, attr.offset + 20));
}

function toBytes(encoded: Uint8Array): Uint8Array {
  return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
}
