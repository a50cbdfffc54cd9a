/**
 * The vertices of `examples/dag_node.ts`: their encoding, signing and decoding, and the demo
 * committee's identities. Tests use it to make vertices, good and bad.
 *
 * ```
 * vertex = body | Ed25519 signature (64) | ML-DSA-65 signature (3309), over body
 * body   = version u8 (=1) | round u32 | author u16 | createdAtMs f64 | count u16 |
 *          count parent ids (32 bytes each) | payload length u32 | payload
 * id     = SHA-256(body), hex
 * ```
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { Identity } from "../mod.ts";

/** The gossip topic of vertices. */
export const TOPIC = "dag/vertices";
const VERSION = 1;
const ED25519_SIGNATURE_BYTES = 64;
const ML_DSA_65_SIGNATURE_BYTES = 3309;
const ID_BYTES = 32;

/** A decoded vertex. */
export interface Vertex {
  id: string;
  round: number;
  author: number;
  createdAtMs: number;
  parents: string[];
  payload: Uint8Array;
  /** The whole signed encoding, as stored and sent. */
  bytes: Uint8Array;
}

/** Why a vertex was refused: the reason is printed with `--json`. */
export class Refused extends Error {}

/** The signed part of a vertex. */
export function encodeBody(
  round: number,
  author: number,
  createdAtMs: number,
  parents: string[],
  payload: Uint8Array,
): Uint8Array {
  const body = new Uint8Array(1 + 4 + 2 + 8 + 2 + ID_BYTES * parents.length + 4 + payload.length);
  const view = new DataView(body.buffer);
  let at = 0;
  body[at++] = VERSION;
  view.setUint32(at, round), at += 4;
  view.setUint16(at, author), at += 2;
  view.setFloat64(at, createdAtMs), at += 8;
  view.setUint16(at, parents.length), at += 2;
  for (const p of parents) {
    for (let i = 0; i < ID_BYTES; i++) body[at++] = parseInt(p.slice(2 * i, 2 * i + 2), 16);
  }
  view.setUint32(at, payload.length), at += 4;
  body.set(payload, at);
  return body;
}

/** Splits a vertex into body and signature and decodes the body; throws {@linkcode Refused}. */
export function decodeVertex(bytes: Uint8Array): { vertex: Vertex; body: Uint8Array; sig: Sig } {
  const sigBytes = ED25519_SIGNATURE_BYTES + ML_DSA_65_SIGNATURE_BYTES;
  if (bytes.length < 21 + sigBytes) throw new Refused(`vertex of ${bytes.length} bytes: too short`);
  const body = bytes.subarray(0, bytes.length - sigBytes);
  const sig = {
    ed25519: bytes.subarray(body.length, body.length + ED25519_SIGNATURE_BYTES),
    mlDsa65: bytes.subarray(body.length + ED25519_SIGNATURE_BYTES),
  };
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body[0] !== VERSION) throw new Refused(`vertex version ${body[0]}`);
  const round = view.getUint32(1);
  const author = view.getUint16(5);
  const createdAtMs = view.getFloat64(7);
  const count = view.getUint16(15);
  let at = 17;
  if (body.length < at + ID_BYTES * count + 4) throw new Refused("vertex truncated in parents");
  const parents: string[] = [];
  for (let i = 0; i < count; i++, at += ID_BYTES) {
    parents.push(bytesToHex(body.subarray(at, at + ID_BYTES)));
  }
  const length = view.getUint32(at);
  at += 4;
  if (body.length !== at + length) throw new Refused("vertex payload length mismatch");
  const payload = body.subarray(at);
  const id = bytesToHex(sha256(body));
  return { vertex: { id, round, author, createdAtMs, parents, payload, bytes }, body, sig };
}

/** A vertex's hybrid signature. */
export type Sig = { ed25519: Uint8Array; mlDsa65: Uint8Array };

/** The committee's identities, derived from a shared seed (a demo shortcut). */
export function deriveCommittee(seed: string, size: number): Identity[] {
  const derive = (i: number, key: string) =>
    sha256(new TextEncoder().encode(`${seed}/${i}/${key}`));
  return Array.from(
    { length: size },
    (_, i) => Identity.fromSeeds({ ed25519Seed: derive(i, "ed"), mlDsa65Seed: derive(i, "dsa") }),
  );
}

/** Encodes and signs a vertex with `identity` (normally the author's own). */
export function signVertex(
  identity: Identity,
  fields: { round: number; author: number; parents: string[]; payload: Uint8Array },
): Vertex {
  const { round, author, parents, payload } = fields;
  const body = encodeBody(round, author, Date.now(), parents, payload);
  const sig = identity.sign(body);
  const bytes = new Uint8Array(body.length + ED25519_SIGNATURE_BYTES + ML_DSA_65_SIGNATURE_BYTES);
  bytes.set(body);
  bytes.set(sig.ed25519, body.length);
  bytes.set(sig.mlDsa65, body.length + ED25519_SIGNATURE_BYTES);
  return decodeVertex(bytes).vertex;
}
