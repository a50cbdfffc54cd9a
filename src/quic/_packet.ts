// Reading just enough of a datagram's first bytes to route it: QUIC or not, and which
// connection. Version-independent (RFC 8999), so it never throws on what it cannot parse.

/** Length of every connection id this endpoint issues. */
export const CID_LENGTH = 20;

/** Bytes of a connection id used as the routing key; ids are random, so these are too. */
const KEY_BYTES = 6;

/**
 * QUIC packets have the fixed bit (0x40) set or are long headers (0x80). Datagrams whose first
 * byte is below 0x40 are something else: STUN (0x00-0x03), hole punches, ...
 */
export function isQuic(data: Uint8Array): boolean {
  return data.byteLength > 0 && data[0] >= 0x40;
}

/** Whether a QUIC datagram starts with a long header. */
export function isLongHeader(data: Uint8Array): boolean {
  return (data[0] & 0x80) !== 0;
}

/** The routing key of a connection id. */
export function cidKey(cid: Uint8Array, offset = 0): number {
  return ((cid[offset] << 16) | (cid[offset + 1] << 8) | cid[offset + 2]) * 0x1000000 +
    ((cid[offset + 3] << 16) | (cid[offset + 4] << 8) | cid[offset + 5]);
}

/**
 * The routing key of a datagram's destination connection id, or -1 when the datagram is too
 * short or its id is shorter than a key.
 */
export function destinationKey(data: Uint8Array): number {
  if (isLongHeader(data)) {
    // flags(1) version(4) dcid_len(1) dcid
    if (data.byteLength < 6 + KEY_BYTES || data[5] < KEY_BYTES) return -1;
    return cidKey(data, 6);
  }
  if (data.byteLength < 1 + CID_LENGTH) return -1;
  return cidKey(data, 1);
}

/** The fields of a long header that version negotiation and retry need. */
export interface LongHeader {
  version: number;
  dcid: Uint8Array;
  scid: Uint8Array;
}

/** Parses a long header's invariant fields, or returns undefined when it is malformed. */
export function parseLongHeader(data: Uint8Array): LongHeader | undefined {
  if (data.byteLength < 7) return undefined;
  const version = ((data[1] << 24) | (data[2] << 16) | (data[3] << 8) | data[4]) >>> 0;
  const dcidLength = data[5];
  if (dcidLength > 255 || data.byteLength < 7 + dcidLength) return undefined;
  const scidLength = data[6 + dcidLength];
  const scidStart = 7 + dcidLength;
  if (data.byteLength < scidStart + scidLength) return undefined;
  return {
    version,
    dcid: data.subarray(6, 6 + dcidLength),
    scid: data.subarray(scidStart, scidStart + scidLength),
  };
}

/** Reads a QUIC variable-length integer at `at` (RFC 9000 16): its value and where it ends. */
function varint(data: Uint8Array, at: number): { value: number; end: number } | undefined {
  if (at >= data.byteLength) return undefined;
  const length = 1 << (data[at] >> 6);
  if (at + length > data.byteLength) return undefined;
  let value = data[at] & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + data[at + i];
  return { value, end: at + length };
}

/** QUIC v1 long header packet types (RFC 9000 17.2), from bits 0x30 of the first byte. */
const INITIAL = 0;
const RETRY = 3;

/**
 * Whether a QUIC v1 datagram carries a short header (1-RTT) packet: first, or after coalesced
 * long header packets (RFC 9000 12.2), each skipped by its Length field. A malformed or cut
 * long header ends the walk with false.
 */
export function carriesShortHeaderPacket(data: Uint8Array): boolean {
  let at = 0;
  while (at < data.byteLength) {
    const first = data[at];
    if ((first & 0x80) === 0) return true;
    const type = (first >> 4) & 0x03;
    if (type === RETRY) return false; // no Length field; nothing is coalesced after it
    // flags(1) version(4) dcid_len(1) dcid scid_len(1) scid
    let p = at + 5;
    if (p >= data.byteLength) return false;
    p += 1 + data[p];
    if (p >= data.byteLength) return false;
    p += 1 + data[p];
    if (type === INITIAL) {
      const token = varint(data, p);
      if (token === undefined) return false;
      p = token.end + token.value;
    }
    const length = varint(data, p);
    if (length === undefined) return false;
    at = length.end + length.value;
  }
  return false;
}
