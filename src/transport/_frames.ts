/**
 * The transport's own frames: control frames on the connection's first stream (after the
 * handshake) and the header of a request stream. Same framing as messages (`length u32 |
 * body`, body sealed when pqEncryption is on); bodies start with a version byte.
 *
 * ```
 * control = version u8 (=1) | type u8 | fields
 *   ready  type 1  incarnation u64      listener -> dialer: the connection is accepted; the
 *                                       listener's incarnation
 *   open   type 5  flags u8             dialer -> listener, its first frame, with the
 *                  incarnation u64      dialer's incarnation. Flag bit 0: the connection
 *                  [lineage 8 bytes     replaces the one already open between the two (a
 *                   generation u32]     migration) of that lineage, and has that generation
 *                  [lastHeld 8 bytes]   (the replaced one's + 1). Flag bit 1 (only without
 *                  [dial u64]           bit 0): the lineage the dialer held last with the
 *                                       listener. Flag bit 2: the dialer's number for this
 *                                       dial (< 2^53) follows. Flag bit 3 (only with bit 2,
 *                                       without bit 0): no other dial of the dialer to the
 *                                       listener is in flight. Other bits must be 0
 *   drained type 6                      on a replaced connection: the sender has no message
 *                                       or request left on it; closed once both sent one
 *   ack    type 2  lane u8 | count u64  messages of that lane now held by the receiver (< 2^53)
 *   ping   type 3  id u32               answered at once with a pong
 *   pong   type 4  id u32
 *   other types are ignored (a newer peer)
 * request = version u8 (=1) | vec8 protocol id (UTF-8) | request bytes
 * response = version u8 (=1) | response bytes
 * lane header = version u8 (=1) | lane u8        the first frame of a lane stream: 0 consensus,
 *                                                1 vertex, 2 other; one stream per lane
 * lane frame = message body (codec.ts; starts with its version byte 1)
 *            | 0xAC u8 | n u8 (1-3) | n × (lane u8 | count u64) | message body
 * ```
 *
 * A lane frame may carry acknowledgements ahead of its message (tag 0xAC, which no message
 * version takes): the same cumulative counts as ack control frames, riding on a message the
 * receiver sends back anyway. quiche puts one STREAM frame in a packet, so an ack on the
 * control stream costs a packet, a seal and an open of its own; on the answer it costs none.
 *
 * A lane's stream is opened when its first message is sent, so an idle connection holds only
 * its control stream; the header names the lane, since the order the lanes open in (their
 * stream ids) depends on the traffic.
 *
 * @module
 */

import { toHex } from "../_bytes.ts";
import { describe, NetworkError } from "../errors.ts";

const VERSION = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A decoded control frame. */
export type ControlFrame =
  | { type: "ready"; incarnation: bigint }
  | {
    type: "open";
    replace: boolean;
    generation: number;
    incarnation: bigint;
    /** A migration's lineage: 16 lowercase hex digits (8 bytes), as {@linkcode hashId} makes. */
    lineage?: string;
    /** A first connection's last lineage held, same form. */
    lastHeld?: string;
    /** The dialer's number for this dial (absent from a peer of an earlier version). */
    dial?: number;
    /** A first connection: the dialer has no other dial to the listener in flight. */
    alone?: true;
  }
  | { type: "drained" }
  | { type: "ack"; lane: number; count: number }
  | { type: "ping"; id: number }
  | { type: "pong"; id: number };

const CODES = { ready: 1, ack: 2, ping: 3, pong: 4, open: 5, drained: 6 } as const;
/** Open frame flags. */
const OPEN_REPLACE = 1;
const OPEN_LAST_HELD = 2;
const OPEN_DIAL = 4;
const OPEN_ALONE = 8;
/** Bytes of a link id (a connection's, or a lineage's: its first connection's). */
const LINK_BYTES = 8;

/**
 * A short id from a hash: its first 8 bytes as 16 lowercase hex digits. A connection's link id
 * is that of its handshake transcript hash (the same on both ends, unique to the connection);
 * a peer's run id that of its certificate (made anew by each process).
 */
export function hashId(hash: Uint8Array): string {
  return toHex(hash.subarray(0, LINK_BYTES));
}

function writeLink(into: Uint8Array, at: number, link: string): void {
  if (!/^[0-9a-f]{16}$/.test(link)) {
    throw new RangeError(`A link id must be 16 lowercase hex digits: it is "${link}"`);
  }
  for (let i = 0; i < LINK_BYTES; i++) into[at + i] = parseInt(link.slice(2 * i, 2 * i + 2), 16);
}

/** First byte of a lane frame that carries acknowledgements before its message. */
const ACKS_TAG = 0xac;
/** Bytes of one acknowledgement in a lane frame: lane u8 | count u64. */
const LANE_ACK_BYTES = 9;
/** Lanes a connection has: consensus, vertex, other. */
const LANE_COUNT = 3;
/** A lane frame acknowledges each lane at most once. */
const MAX_LANE_ACKS = LANE_COUNT;
/** Most bytes acknowledgements add to a lane frame. */
export const MAX_LANE_ACKS_BYTES = 2 + MAX_LANE_ACKS * LANE_ACK_BYTES;

/** A cumulative acknowledgement: `count` messages of `lane` are held by the receiver. */
export interface LaneAck {
  lane: number;
  count: number;
}

function malformed(message: string): NetworkError {
  return new NetworkError("ERR_MALFORMED_FRAME", message);
}

/** Encodes a control frame body. */
export function encodeControl(frame: ControlFrame): Uint8Array {
  switch (frame.type) {
    case "drained":
      return new Uint8Array([VERSION, CODES[frame.type]]);
    case "ready": {
      const body = new Uint8Array(10);
      body[0] = VERSION;
      body[1] = CODES.ready;
      new DataView(body.buffer).setBigUint64(2, frame.incarnation);
      return body;
    }
    case "open": {
      const { replace, lineage, lastHeld, dial } = frame;
      const alone = !replace && frame.alone === true && dial !== undefined;
      const extra = replace ? LINK_BYTES + 4 : lastHeld === undefined ? 0 : LINK_BYTES;
      const body = new Uint8Array(11 + extra + (dial === undefined ? 0 : 8));
      const view = new DataView(body.buffer);
      body[0] = VERSION;
      body[1] = CODES.open;
      body[2] = (replace ? OPEN_REPLACE : lastHeld === undefined ? 0 : OPEN_LAST_HELD) |
        (dial === undefined ? 0 : OPEN_DIAL) | (alone ? OPEN_ALONE : 0);
      view.setBigUint64(3, frame.incarnation);
      if (replace) {
        writeLink(body, 11, lineage ?? "");
        view.setUint32(11 + LINK_BYTES, frame.generation);
      } else if (lastHeld !== undefined) {
        writeLink(body, 11, lastHeld);
      }
      if (dial !== undefined) view.setBigUint64(11 + extra, BigInt(dial));
      return body;
    }
    case "ack": {
      const body = new Uint8Array(2 + LANE_ACK_BYTES);
      body[0] = VERSION;
      body[1] = CODES.ack;
      writeLaneAck(body, 2, frame);
      return body;
    }
    case "ping":
    case "pong": {
      const body = new Uint8Array(6);
      body[0] = VERSION;
      body[1] = CODES[frame.type];
      new DataView(body.buffer).setUint32(2, frame.id);
      return body;
    }
  }
}

/**
 * Decodes a control frame body.
 *
 * @returns The frame, or `undefined` for a type this version does not know.
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` for another version or a wrong length.
 */
export function decodeControl(body: Uint8Array): ControlFrame | undefined {
  if (body.byteLength < 2 || body[0] !== VERSION) {
    throw malformed(`Control frame has version ${body[0]} or is too short (${body.byteLength} B)`);
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const expect = (length: number, name: string) => {
    if (body.byteLength !== length) {
      throw malformed(`A ${name} control frame must be ${length} bytes: it has ${body.byteLength}`);
    }
  };
  switch (body[1]) {
    case CODES.ready:
      expect(10, "ready");
      return { type: "ready", incarnation: view.getBigUint64(2) };
    case CODES.ack:
      expect(2 + LANE_ACK_BYTES, "ack");
      return { type: "ack", ...readLaneAck(view, 2, "An ack control frame") };
    case CODES.ping:
      expect(6, "ping");
      return { type: "ping", id: view.getUint32(2) };
    case CODES.pong:
      expect(6, "pong");
      return { type: "pong", id: view.getUint32(2) };
    case CODES.open: {
      const flags = body[2];
      const kind = flags & ~(OPEN_DIAL | OPEN_ALONE);
      const alone = (flags & OPEN_ALONE) !== 0;
      if (
        (kind !== 0 && kind !== OPEN_REPLACE && kind !== OPEN_LAST_HELD) ||
        (alone && ((flags & OPEN_DIAL) === 0 || kind === OPEN_REPLACE))
      ) {
        throw malformed(`An open control frame has unknown flags ${flags}`);
      }
      const extra = kind === OPEN_REPLACE ? LINK_BYTES + 4 : kind === 0 ? 0 : LINK_BYTES;
      const dialBytes = (flags & OPEN_DIAL) === 0 ? 0 : 8;
      expect(11 + extra + dialBytes, kind === OPEN_REPLACE ? "replacing open" : "open");
      const incarnation = view.getBigUint64(3);
      const dial = dialBytes === 0 ? undefined : view.getBigUint64(11 + extra);
      if (dial !== undefined && dial > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw malformed(`An open control frame's dial number ${dial} is not below 2^53`);
      }
      const numbered = {
        ...dial !== undefined && { dial: Number(dial) },
        ...alone && { alone },
      } as const;
      if (kind === OPEN_REPLACE) {
        return {
          type: "open",
          replace: true,
          generation: view.getUint32(11 + LINK_BYTES),
          incarnation,
          lineage: hashId(body.subarray(11)),
          ...numbered,
        };
      }
      const open = { type: "open", replace: false, generation: 0, incarnation } as const;
      return kind === 0
        ? { ...open, ...numbered }
        : { ...open, lastHeld: hashId(body.subarray(11, 11 + LINK_BYTES)), ...numbered };
    }
    case CODES.drained:
      expect(2, "drained");
      return { type: "drained" };
    default:
      return undefined;
  }
}

function writeLaneAck(into: Uint8Array, at: number, ack: LaneAck): void {
  into[at] = ack.lane;
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  view.setUint32(at + 1, Math.floor(ack.count / 2 ** 32));
  view.setUint32(at + 5, ack.count >>> 0);
}

function readLaneAck(view: DataView, at: number, what: string): LaneAck {
  const high = view.getUint32(at + 1);
  // A number holds 53 bits exactly; a larger count would be read as another one.
  if (high >= 2 ** 21) throw malformed(`${what}'s count is above 2^53 - 1 (high word ${high})`);
  return { lane: view.getUint8(at), count: high * 2 ** 32 + view.getUint32(at + 5) };
}

/** Encodes the header that starts the stream of lane `lane` (0 to 2). */
export function encodeLaneHeader(lane: number): Uint8Array {
  return new Uint8Array([VERSION, lane]);
}

/**
 * Decodes a lane stream's header.
 *
 * @returns The lane, 0 to 2.
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` for another version, a wrong length or a lane
 * that does not exist.
 */
export function decodeLaneHeader(body: Uint8Array): number {
  if (body.byteLength !== 2 || body[0] !== VERSION || body[1] >= LANE_COUNT) {
    throw malformed(
      `A lane stream must start with a 2-byte header (version ${VERSION}, lane below ` +
        `${LANE_COUNT}): got ${body.byteLength} bytes [${body.subarray(0, 4).join(", ")}]`,
    );
  }
  return body[1];
}

/**
 * The start of a lane frame that carries acknowledgements: the message body follows it.
 *
 * @param acks One to three acknowledgements, of different lanes.
 */
export function encodeLaneAcks(acks: readonly LaneAck[]): Uint8Array {
  const prefix = new Uint8Array(2 + acks.length * LANE_ACK_BYTES);
  prefix[0] = ACKS_TAG;
  prefix[1] = acks.length;
  acks.forEach((ack, i) => writeLaneAck(prefix, 2 + i * LANE_ACK_BYTES, ack));
  return prefix;
}

/**
 * Puts acknowledgements ahead of a message body in one lane frame.
 *
 * @param acks One to three acknowledgements, of different lanes.
 * @param message A message body (`encodeMessage`).
 */
export function encodeAckedMessage(acks: readonly LaneAck[], message: Uint8Array): Uint8Array {
  const prefix = encodeLaneAcks(acks);
  const body = new Uint8Array(prefix.byteLength + message.byteLength);
  body.set(prefix);
  body.set(message, prefix.byteLength);
  return body;
}

/**
 * Splits a lane frame into the acknowledgements it carries and its message body.
 *
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` for 0 or more than 3 acknowledgements, or a
 * count above 2^53 - 1; the message body is checked by `decodeMessage`.
 */
export function decodeLaneFrame(body: Uint8Array): { acks: LaneAck[]; message: Uint8Array } {
  if (body[0] !== ACKS_TAG) return { acks: [], message: body };
  const n = body.byteLength < 2 ? 0 : body[1];
  const start = 2 + n * LANE_ACK_BYTES;
  if (n < 1 || n > MAX_LANE_ACKS || body.byteLength < start) {
    throw malformed(
      `A lane frame of ${body.byteLength} bytes announces ${n} acknowledgements (1 to ` +
        `${MAX_LANE_ACKS} fit)`,
    );
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const acks: LaneAck[] = [];
  for (let i = 0; i < n; i++) {
    acks.push(readLaneAck(view, 2 + i * LANE_ACK_BYTES, "A lane frame's acknowledgement"));
  }
  return { acks, message: body.subarray(start) };
}

/** Checks a protocol id: 1 to 255 bytes of UTF-8. */
export function checkProtocolId(protocolId: string): Uint8Array {
  const bytes = typeof protocolId === "string" ? encoder.encode(protocolId) : undefined;
  if (bytes === undefined || bytes.byteLength < 1 || bytes.byteLength > 255) {
    throw new TypeError(
      `Invalid 'protocolId': must be a string of 1 to 255 UTF-8 bytes: current value is ${
        describe(protocolId)
      }`,
    );
  }
  return bytes;
}

/** Encodes the one frame a requester sends: protocol id first, then the request bytes. */
export function encodeRequest(protocolId: Uint8Array, request: Uint8Array): Uint8Array {
  const body = new Uint8Array(2 + protocolId.byteLength + request.byteLength);
  body[0] = VERSION;
  body[1] = protocolId.byteLength;
  body.set(protocolId, 2);
  body.set(request, 2 + protocolId.byteLength);
  return body;
}

/**
 * Decodes a request frame body.
 *
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` for another version, a bad length or bad UTF-8.
 */
export function decodeRequest(body: Uint8Array): { protocolId: string; request: Uint8Array } {
  if (body.byteLength < 3 || body[0] !== VERSION || body[1] === 0) {
    throw malformed(`Request frame is malformed (${body.byteLength} bytes, version ${body[0]})`);
  }
  const end = 2 + body[1];
  if (end > body.byteLength) {
    throw malformed(`Request frame's protocol id of ${body[1]} bytes runs past its end`);
  }
  let protocolId: string;
  try {
    protocolId = decoder.decode(body.subarray(2, end));
  } catch {
    throw malformed("Request frame's protocol id is not valid UTF-8");
  }
  return { protocolId, request: body.subarray(end) };
}

/** Encodes a response frame body. */
export function encodeResponse(response: Uint8Array): Uint8Array {
  const body = new Uint8Array(1 + response.byteLength);
  body[0] = VERSION;
  body.set(response, 1);
  return body;
}

/**
 * Decodes a response frame body.
 *
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` for an empty body or another version.
 */
export function decodeResponse(body: Uint8Array): Uint8Array {
  if (body.byteLength < 1 || body[0] !== VERSION) {
    throw malformed(`Response frame is malformed (${body.byteLength} bytes, version ${body[0]})`);
  }
  return body.subarray(1);
}
