/**
 * The frames gossip peers exchange and their wire format. A frame travels as the `data` of a
 * transport message (`consensus` or `vertex`, by the topic's priority) and starts with a
 * 3-byte marker, so a node tells gossip frames from its other messages.
 *
 * ```
 * frame       = "G" "S" | version u8 (=1) | kind u8 | body
 * message     kind 1   topic | hops u8 | data (the rest of the frame)
 * ihave       kind 2   topic | count u16 | count ids
 * iwant       kind 3   count u16 | count ids
 * idontwant   kind 4   count u16 | count ids
 * graft       kind 5   topic
 * prune       kind 6   topic
 * subscribe   kind 7   topic
 * unsubscribe kind 8   topic
 * choke       kind 9   topic   (send me ihave, not full messages, on this mesh link)
 * unchoke     kind 10  topic   (full messages again)
 * topic       = length u16 | UTF-8, 1-256 bytes
 * id          = 32 bytes (SHA-256, see gossipMessageId)
 * ```
 *
 * @module
 */

import { ByteReader, ByteWriter, utf8Length } from "../_bytes.ts";
import { describe, NetworkError } from "../errors.ts";
import { MESSAGE_ID_BYTES } from "./message_id.ts";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";

/** Version byte of the gossip frame format. */
export const GOSSIP_VERSION = 1;

/** Longest topic name, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 256;

/** Most ids one ihave, iwant or idontwant frame may carry. */
export const MAX_FRAME_IDS = 5000;

const MAGIC = [0x47, 0x53] as const; // "GS"
const HEADER_BYTES = 4;
const KIND_CODES = {
  message: 1,
  ihave: 2,
  iwant: 3,
  idontwant: 4,
  graft: 5,
  prune: 6,
  subscribe: 7,
  unsubscribe: 8,
  choke: 9,
  unchoke: 10,
} as const;
const KINDS = Object.fromEntries(
  Object.entries(KIND_CODES).map(([kind, code]) => [code, kind]),
) as Record<number, GossipFrame["kind"]>;

/**
 * A frame of the gossip protocol; message ids are 64 hex digits.
 *
 * @example
 * ```ts
 * import type { GossipFrame } from "@cretoai/network/gossip";
 *
 * const graft: GossipFrame = { kind: "graft", topic: "vertices" };
 * const message: GossipFrame = {
 *   kind: "message",
 *   topic: "vertices",
 *   data: new Uint8Array([1]),
 *   hops: 1,
 * };
 * ```
 */
export type GossipFrame =
  | {
    /** A published message, forwarded in full. */
    kind: "message";
    /** Its topic. */
    topic: string;
    /** Its bytes; the id is their hash (see `gossipMessageId`). */
    data: Uint8Array;
    /** Links travelled so far, counting this one: 1 from the publisher. */
    hops: number;
  }
  | {
    /** Announces ids of recent messages (to peers outside the mesh). */
    kind: "ihave";
    /** The topic of the messages. */
    topic: string;
    /** Their ids. */
    ids: string[];
  }
  | {
    /** Asks for messages announced with ihave. */
    kind: "iwant" | "idontwant";
    /** Ids wanted (iwant), or already held and not to be sent (idontwant). */
    ids: string[];
  }
  | {
    /** Mesh and subscription control for one topic. */
    kind: "graft" | "prune" | "subscribe" | "unsubscribe" | "choke" | "unchoke";
    /** The topic. */
    topic: string;
  };

function malformed(message: string): NetworkError {
  return new NetworkError("ERR_MALFORMED_FRAME", message);
}

/**
 * Tells whether bytes start with the gossip frame marker (and so belong to a gossip service).
 *
 * @example
 * ```ts
 * import { encodeGossipFrame, isGossipFrame } from "@cretoai/network/gossip";
 *
 * console.assert(isGossipFrame(encodeGossipFrame({ kind: "prune", topic: "t" })));
 * console.assert(!isGossipFrame(new Uint8Array([1, 2, 3, 4])));
 * ```
 *
 * @param bytes Data of a transport message.
 * @returns Whether the first three bytes are the marker and version 1.
 */
export function isGossipFrame(bytes: Uint8Array): boolean {
  return bytes.byteLength >= HEADER_BYTES && bytes[0] === MAGIC[0] && bytes[1] === MAGIC[1] &&
    bytes[2] === GOSSIP_VERSION;
}

/**
 * Checks a topic name: a string of 1 to {@linkcode MAX_TOPIC_BYTES} UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { checkTopic } from "@cretoai/network/gossip";
 *
 * checkTopic("vertices");
 * try {
 *   checkTopic("");
 * } catch (e) {
 *   console.assert(e instanceof TypeError);
 * }
 * ```
 *
 * @param topic The value to check.
 * @throws {TypeError} naming the value, when it is not such a string.
 */
export function checkTopic(topic: unknown): asserts topic is string {
  const size = typeof topic === "string" ? utf8Length(topic) : -1;
  if (size < 1 || size > MAX_TOPIC_BYTES) {
    throw new TypeError(
      `Invalid topic: must be a string of 1 to ${MAX_TOPIC_BYTES} UTF-8 bytes: current value ` +
        `is ${describe(topic)}`,
    );
  }
}

/**
 * Bytes {@linkcode encodeGossipFrame} makes of a frame, without making them.
 *
 * @example
 * ```ts
 * import { encodeGossipFrame, type GossipFrame, gossipFrameBytes } from "@cretoai/network/gossip";
 *
 * const frame: GossipFrame = { kind: "iwant", ids: ["ab".repeat(32)] };
 * console.assert(gossipFrameBytes(frame) === encodeGossipFrame(frame).byteLength);
 * ```
 *
 * @param frame A valid frame.
 * @returns Its encoded size.
 */
export function gossipFrameBytes(frame: GossipFrame): number {
  const topic = "topic" in frame ? 2 + utf8Bytes(frame.topic) : 0;
  switch (frame.kind) {
    case "message":
      return HEADER_BYTES + topic + 1 + frame.data.byteLength;
    case "ihave":
    case "iwant":
    case "idontwant":
      return HEADER_BYTES + topic + 2 + MESSAGE_ID_BYTES * frame.ids.length;
    default:
      return HEADER_BYTES + topic;
  }
}

/**
 * Encodes a gossip frame.
 *
 * @example
 * ```ts
 * import { decodeGossipFrame, encodeGossipFrame } from "@cretoai/network/gossip";
 *
 * const bytes = encodeGossipFrame({ kind: "graft", topic: "t" });
 * console.assert(bytes.join() === "71,83,1,5,0,1,116");
 * console.assert(decodeGossipFrame(bytes).kind === "graft");
 * ```
 *
 * @param frame The frame.
 * @returns Its bytes.
 * @throws {TypeError} for a bad topic, a hop count outside 0-255, an id that is not 64 hex
 * digits, or more than {@linkcode MAX_FRAME_IDS} ids.
 */
export function encodeGossipFrame(frame: GossipFrame): Uint8Array {
  const code = KIND_CODES[frame?.kind];
  if (code === undefined) {
    throw new TypeError(
      `Cannot encode a gossip frame as 'kind' must be one of ${
        Object.keys(KIND_CODES).join(", ")
      }: current value is ${describe((frame as { kind?: unknown } | null)?.kind)}`,
    );
  }
  const w = new ByteWriter().u8(MAGIC[0]).u8(MAGIC[1]).u8(GOSSIP_VERSION).u8(code);
  if ("topic" in frame) {
    checkTopic(frame.topic);
    w.string16(frame.topic);
  }
  switch (frame.kind) {
    case "message":
      if (!Number.isInteger(frame.hops) || frame.hops < 0 || frame.hops > 255) {
        throw new TypeError(
          `Cannot encode a gossip message as 'hops' must be an integer from 0 to 255: current ` +
            `value is ${describe(frame.hops)}`,
        );
      }
      if (!(frame.data instanceof Uint8Array)) {
        throw new TypeError(
          `Cannot encode a gossip message as 'data' must be a Uint8Array: current value is ${
            describe(frame.data)
          }`,
        );
      }
      return w.u8(frame.hops).bytes(frame.data).finish();
    case "ihave":
    case "iwant":
    case "idontwant":
      if (!Array.isArray(frame.ids) || frame.ids.length > MAX_FRAME_IDS) {
        throw new TypeError(
          `Cannot encode a gossip ${frame.kind} as 'ids' must be an array of at most ` +
            `${MAX_FRAME_IDS} ids: current value has ${frame.ids?.length} entries`,
        );
      }
      w.u16(frame.ids.length);
      for (const id of frame.ids) w.bytes(idBytes(id));
      return w.finish();
    default:
      return w.finish();
  }
}

/**
 * Decodes a frame made by {@linkcode encodeGossipFrame}.
 *
 * @example
 * ```ts
 * import { NetworkError } from "@cretoai/network";
 * import { decodeGossipFrame } from "@cretoai/network/gossip";
 *
 * try {
 *   decodeGossipFrame(new Uint8Array([71, 83, 1, 99]));
 * } catch (e) {
 *   console.assert(e instanceof NetworkError && e.code === "ERR_MALFORMED_FRAME");
 * }
 * ```
 *
 * @param bytes The frame's bytes; a message's data is copied out of them.
 * @returns The frame.
 * @throws {NetworkError} `ERR_MALFORMED_FRAME` naming what was wrong: no marker, another
 * version, an unknown kind, a truncated field, a topic of 0 or over 256 bytes or not UTF-8,
 * more than {@linkcode MAX_FRAME_IDS} ids, trailing bytes.
 */
export function decodeGossipFrame(bytes: Uint8Array): GossipFrame {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < HEADER_BYTES) {
    throw malformed(`A gossip frame needs at least ${HEADER_BYTES} bytes: got ${describe(bytes)}`);
  }
  if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1]) {
    throw malformed(`Not a gossip frame: it starts with ${bytes[0]},${bytes[1]}, not 71,83`);
  }
  if (bytes[2] !== GOSSIP_VERSION) {
    throw malformed(
      `Gossip frame version ${bytes[2]} is not supported (expected ${GOSSIP_VERSION})`,
    );
  }
  const kind = KINDS[bytes[3]];
  if (kind === undefined) throw malformed(`Unknown gossip frame kind ${bytes[3]}`);
  const r = new ByteReader(bytes.subarray(HEADER_BYTES), `gossip ${kind}`, malformed);
  const topic = kind === "iwant" || kind === "idontwant" ? "" : readTopic(r);
  switch (kind) {
    case "message": {
      const hops = r.u8("hops");
      return {
        kind,
        topic,
        hops,
        data: r.bytes(bytes.byteLength - HEADER_BYTES - r.offset, "data"),
      };
    }
    case "ihave":
    case "iwant":
    case "idontwant": {
      const count = r.u16("count");
      if (count > MAX_FRAME_IDS) {
        throw malformed(`A gossip ${kind} may carry at most ${MAX_FRAME_IDS} ids: it has ${count}`);
      }
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push(bytesToHex(r.bytes(MESSAGE_ID_BYTES, "id")));
      r.end();
      return kind === "ihave" ? { kind, topic, ids } : { kind, ids };
    }
    default:
      r.end();
      return { kind, topic };
  }
}

/** UTF-8 length of a string without encoding it (simulations size millions of frames). */
function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4; // a surrogate pair is one 4-byte code point
      i++;
    } else n += 3;
  }
  return n;
}

function readTopic(r: ByteReader): string {
  const topic = r.string16("topic", MAX_TOPIC_BYTES);
  if (topic.length === 0) r.fail("'topic' is empty");
  return topic;
}

function idBytes(id: unknown): Uint8Array {
  if (typeof id !== "string" || !/^[0-9a-f]{64}$/.test(id)) {
    throw new TypeError(
      `Cannot encode a gossip message id: must be 64 lowercase hex digits: current value is ${
        describe(id)
      }`,
    );
  }
  return hexToBytes(id);
}
