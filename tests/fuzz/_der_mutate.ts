/**
 * Structure-aware mutation of DER (certificates): the seed is read as a tree of TLVs, one node
 * is changed (its length written in another form or claiming another size, its tag, its
 * content), duplicated many times, deleted, nested deep, or swapped for a node of another seed,
 * and the tree is encoded again with every enclosing length recomputed, so that the change
 * reaches the field it was made to, not only the outermost length check.
 *
 * @module
 */

import { concatBytes } from "../../src/_bytes.ts";
import type { Prng } from "../_prng.ts";

/** One TLV: a constructed node has children, a primitive one content. */
interface DerNode {
  tag: number;
  /** Length octets as written; `undefined` writes the minimal definite form of the real size. */
  lengthBytes?: Uint8Array;
  children?: DerNode[];
  content?: Uint8Array;
  /** Bytes written as they are instead of this node's TLV (many copies, encoded once). */
  raw?: Uint8Array;
}

/** Length fields that lie: zero, off by one, the long-form edges, 2^31 and 2^32 - 1. */
const LYING_LENGTHS = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffff, 0x7fffffff];
/** Tags worth trying: universal edges, the multi-byte escape, context tags of a certificate. */
const TAGS = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x1f, 0x30, 0x31, 0xa0, 0xa3, 0xff];
/** Copies of one node at most (a certificate with thousands of extensions). */
const MAX_COPIES = 4096;
/** Nesting depth at most (a SEQUENCE inside a SEQUENCE inside ...). */
const MAX_WRAPS = 2048;

const trees = new WeakMap<Uint8Array, DerNode>();

/**
 * One structural mutation of the DER `seed` (never changed itself), bounded by `maxBytes`.
 * Seeds that are not DER get a random byte flipped instead.
 *
 * @param others Further DER seeds: a node may be swapped for one of theirs.
 */
export function mutateDer(
  rng: Prng,
  seed: Uint8Array,
  others: readonly Uint8Array[],
  maxBytes: number,
): Uint8Array {
  const root = treeOf(seed);
  if (root === undefined) {
    const out = seed.slice();
    if (out.byteLength > 0) out[rng.int(0, out.byteLength - 1)] ^= 1 << rng.int(0, 7);
    return out;
  }
  const copy = clone(root);
  const nodes: { node: DerNode; parent: DerNode | undefined }[] = [];
  walk(copy, undefined, nodes);
  const { node, parent } = rng.pick(nodes);
  const siblings = parent?.children;
  const at = siblings?.indexOf(node) ?? -1;
  switch (rng.int(0, 7)) {
    case 0: // The same length in a non-minimal long form, or the indefinite form.
      node.lengthBytes = rng.next() < 0.2
        ? Uint8Array.of(0x80)
        : longForm(contentOf(node).byteLength, rng.int(1, 8));
      break;
    case 1: { // A length that lies, in a short or long form.
      const claim = rng.next() < 0.5
        ? rng.pick(LYING_LENGTHS)
        : Math.max(0, contentOf(node).byteLength + rng.int(-3, 3));
      node.lengthBytes = claim < 0x80 && rng.next() < 0.5
        ? Uint8Array.of(claim)
        : longForm(claim, rng.int(1, 5));
      break;
    }
    case 2: // Another tag, or this one with its constructed bit flipped.
      node.tag = rng.next() < 0.5 ? rng.pick(TAGS) : node.tag ^ 0x20;
      break;
    case 3: // Copies among its siblings (a repeated extension, thousands of them).
      if (siblings !== undefined) {
        const once = encode(node);
        const most = Math.max(1, Math.floor(maxBytes / once.byteLength));
        const copies = Math.min(most, rng.next() < 0.7 ? rng.int(1, 3) : rng.int(4, MAX_COPIES));
        const raw = new Uint8Array(once.byteLength * copies);
        for (let i = 0; i < copies; i++) raw.set(once, i * once.byteLength);
        siblings.splice(at, 0, { tag: node.tag, raw });
      }
      break;
    case 4: // Gone.
      if (siblings !== undefined) siblings.splice(at, 1);
      break;
    case 5: { // Nested inside SEQUENCEs (deep nesting).
      if (siblings === undefined) break;
      // Headers made inside out and joined once: re-encoding each level would copy the node
      // once per level.
      const inner = encode(node);
      const depth = rng.next() < 0.7 ? rng.int(1, 4) : rng.int(5, MAX_WRAPS);
      const headers: Uint8Array[] = [];
      let size = inner.byteLength;
      for (let i = 1; i < depth; i++) {
        const header = concatBytes([Uint8Array.of(0x30), minimalLength(size)]);
        headers.push(header);
        size += header.byteLength;
      }
      siblings[at] = { tag: 0x30, content: concatBytes([...headers.reverse(), inner]) };
      break;
    }
    case 6: { // Its content replaced: random bytes, truncated, or emptied.
      const body = contentOf(node);
      node.content = rng.next() < 0.5
        ? rng.bytes(rng.int(0, Math.min(body.byteLength + 8, 256)))
        : body.subarray(0, rng.int(0, body.byteLength));
      node.children = undefined;
      break;
    }
    default: { // A node of another seed in its place (another node's key, binding, name).
      const other = treeOf(rng.pick(others.length > 0 ? others : [seed]));
      if (other !== undefined && siblings !== undefined) {
        const theirs: { node: DerNode; parent: DerNode | undefined }[] = [];
        walk(other, undefined, theirs);
        const sameTag = theirs.filter((t) => t.node.tag === node.tag);
        siblings[at] = clone(rng.pick(sameTag.length > 0 ? sameTag : theirs).node);
      }
    }
  }
  const out = encode(copy);
  return out.byteLength > maxBytes ? out.subarray(0, maxBytes) : out;
}

function treeOf(der: Uint8Array): DerNode | undefined {
  if (!trees.has(der)) {
    const parsed = parse(der, 0, der.byteLength, 0);
    if (parsed?.length === 1) trees.set(der, parsed[0]);
  }
  return trees.get(der);
}

/** The TLVs filling `der[from, to)` exactly, or `undefined` when it is not DER. */
function parse(der: Uint8Array, from: number, to: number, depth: number): DerNode[] | undefined {
  const out: DerNode[] = [];
  let at = from;
  while (at < to) {
    if (at + 2 > to || depth > 32) return undefined;
    const tag = der[at];
    let length = der[at + 1];
    let body = at + 2;
    if (length & 0x80) {
      const octets = length & 0x7f;
      if (octets === 0 || octets > 3 || body + octets > to) return undefined;
      length = 0;
      for (let i = 0; i < octets; i++) length = length * 256 + der[body + i];
      body += octets;
    }
    const end = body + length;
    if (end > to) return undefined;
    // A constructed tag holds TLVs; so, in a certificate, may an OCTET STRING (an extension's
    // value) or a BIT STRING: read them as trees when they parse as one, else as bytes.
    const children = tag & 0x20 || tag === 0x04 ? parse(der, body, end, depth + 1) : undefined;
    out.push(
      children !== undefined && (tag & 0x20 || children.length > 0)
        ? { tag, children }
        : { tag, content: der.slice(body, end) },
    );
    at = end;
  }
  return out;
}

function walk(
  node: DerNode,
  parent: DerNode | undefined,
  out: { node: DerNode; parent: DerNode | undefined }[],
): void {
  out.push({ node, parent });
  for (const child of node.children ?? []) walk(child, node, out);
}

function clone(node: DerNode): DerNode {
  return {
    tag: node.tag,
    lengthBytes: node.lengthBytes,
    children: node.children?.map(clone),
    content: node.content,
  };
}

/** The node's content as encoded. */
function contentOf(node: DerNode): Uint8Array {
  return node.content ?? concatBytes(node.children!.map(encode));
}

/** `value` as a long-form length of `octets` bytes (high bytes dropped when it does not fit). */
function longForm(value: number, octets: number): Uint8Array {
  const out = new Uint8Array(1 + octets);
  out[0] = 0x80 | octets;
  for (let i = octets, v = value; i >= 1; i--, v = Math.floor(v / 256)) out[i] = v % 256;
  return out;
}

function encode(node: DerNode): Uint8Array {
  if (node.raw !== undefined) return node.raw;
  const body = contentOf(node);
  return concatBytes([
    Uint8Array.of(node.tag),
    node.lengthBytes ?? minimalLength(body.byteLength),
    body,
  ]);
}

function minimalLength(size: number): Uint8Array {
  return size < 0x80
    ? Uint8Array.of(size)
    : longForm(size, size < 0x100 ? 1 : size < 0x10000 ? 2 : 3);
}
