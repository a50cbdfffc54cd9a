/**
 * Gossip message ids: a hash of the content, so the same bytes on the same topic are one
 * message wherever they come from, and a peer cannot pass one message off as another.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const encoder = new TextEncoder();
/** Encoded topic names: a node uses few topics and hashes every message it receives. */
const topicCache = new Map<string, Uint8Array>();
const MAX_CACHED_TOPICS = 1024;

/** Bytes of a message id on the wire (a SHA-256 digest). */
export const MESSAGE_ID_BYTES = 32;

/**
 * The id of a gossip message: SHA-256 over the topic's UTF-8 length (u16), the topic and the
 * data, as 64 lowercase hex digits.
 *
 * @example
 * ```ts
 * import { gossipMessageId } from "@cretoai/network/gossip";
 *
 * const data = new Uint8Array([1, 2, 3]);
 * const id = gossipMessageId("vertices", data);
 * console.assert(id.length === 64 && id === gossipMessageId("vertices", data));
 * console.assert(id !== gossipMessageId("blocks", data));
 * ```
 *
 * @param topic The topic the message is published on.
 * @param data The message's bytes.
 * @returns The id as hex.
 */
export function gossipMessageId(topic: string, data: Uint8Array): string {
  let name = topicCache.get(topic);
  if (name === undefined) {
    name = encoder.encode(topic);
    if (topicCache.size >= MAX_CACHED_TOPICS) topicCache.clear();
    topicCache.set(topic, name);
  }
  const input = new Uint8Array(2 + name.byteLength + data.byteLength);
  input[0] = name.byteLength >>> 8;
  input[1] = name.byteLength & 0xff;
  input.set(name, 2);
  input.set(data, 2 + name.byteLength);
  return bytesToHex(sha256(input));
}
