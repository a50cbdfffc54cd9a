/**
 * SHA-256 through `node:crypto`, native and synchronous: the handshake hashes a 6.9 KB peer
 * certificate and a 2.4 KB transcript on every connection (and a new peer's 2 KB public
 * identity into its peer id), 99-141 µs and 36-66 µs in JavaScript (`@noble/hashes`) against
 * 9-24 µs natively on this machine. Inputs of a few dozen
 * bytes gain nothing (Deno's per-call overhead), so HMACs of 32-byte keys stay with noble.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** SHA-256 of `data`, in an array of its own (not a view of a pooled buffer). */
export function sha256(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash("sha256").update(data).digest());
}
