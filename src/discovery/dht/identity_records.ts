/**
 * DHT record signing bound to the node's hybrid identity: the record's public key is the
 * {@linkcode PublicIdentity} encoding, its signature an Ed25519 + ML-DSA-65 signature, and a
 * peer id belongs to a public key when it is that key's hash.
 *
 * @module
 */

import { ByteReader, ByteWriter } from "../../_bytes.ts";
import { Identity } from "../../identity/identity.ts";
import { PeerId } from "../../identity/peer_id.ts";
import { PublicIdentity } from "../../identity/public_identity.ts";
import type { RecordSigner, RecordVerifier } from "./records.ts";

/**
 * Makes the signer of a node's own DHT records from its identity.
 *
 * @example Signing a peer record and checking it
 * ```ts
 * import { Identity } from "@cretoai/network";
 * import {
 *   identityPeerIdBinding,
 *   identityRecordSigner,
 *   identityRecordVerifier,
 *   signPeerRecord,
 *   verifyPeerRecord,
 * } from "@cretoai/network/dht";
 *
 * const identity = Identity.generate();
 * const now = Date.now();
 * const bytes = await signPeerRecord(
 *   { peerId: identity.peerId.toString(), addresses: ["192.0.2.7:4433"], seq: 1, expiresAt: now + 60_000 },
 *   identityRecordSigner(identity),
 * );
 * const record = await verifyPeerRecord(bytes, {
 *   verifier: identityRecordVerifier, peerIdMatches: identityPeerIdBinding, now,
 * });
 * console.assert(record.addresses[0] === "192.0.2.7:4433");
 * ```
 *
 * @param identity The node's identity.
 * @returns A signer whose public key is `identity.publicIdentity.encode()`.
 */
export function identityRecordSigner(identity: Identity): RecordSigner {
  return {
    publicKey: identity.publicIdentity.encode(),
    sign: (payload) => {
      const sig = identity.sign(payload);
      return new ByteWriter().vec16(sig.ed25519).vec16(sig.mlDsa65).finish();
    },
  };
}

/**
 * Verifies record signatures made by {@linkcode identityRecordSigner}. A public key or
 * signature that does not decode gives `false`.
 *
 * @example
 * ```ts
 * import { Identity } from "@cretoai/network";
 * import { identityRecordVerifier } from "@cretoai/network/dht";
 *
 * const key = Identity.generate().publicIdentity.encode();
 * console.assert(!identityRecordVerifier.verify(key, new Uint8Array(8), new Uint8Array(8)));
 * ```
 */
export const identityRecordVerifier: RecordVerifier = {
  verify(publicKey: Uint8Array, payload: Uint8Array, signature: Uint8Array): boolean {
    try {
      const keys = PublicIdentity.decode(publicKey);
      const r = new ByteReader(signature, "record signature", (m) => new Error(m));
      const ed25519 = r.vec16("Ed25519 signature");
      const mlDsa65 = r.vec16("ML-DSA-65 signature");
      r.end();
      return Identity.verify(keys, payload, { ed25519, mlDsa65 });
    } catch {
      return false;
    }
  },
};

/**
 * Checks that a record's public key (a {@linkcode PublicIdentity} encoding) is the one the
 * peer id was derived from (a `PeerIdBinding`). Keys or peer ids that do not decode
 * give `false`.
 *
 * @example
 * ```ts
 * import { Identity } from "@cretoai/network";
 * import { identityPeerIdBinding } from "@cretoai/network/dht";
 *
 * const a = Identity.generate();
 * const b = Identity.generate();
 * const key = a.publicIdentity.encode();
 * console.assert(identityPeerIdBinding(key, a.peerId.toString()));
 * console.assert(!identityPeerIdBinding(key, b.peerId.toString()));
 * ```
 */
export const identityPeerIdBinding = (
  publicKey: Uint8Array,
  peerId: string,
): boolean => {
  try {
    return PeerId.fromPublicIdentity(PublicIdentity.decode(publicKey)).equals(
      PeerId.parse(peerId),
    );
  } catch {
    return false;
  }
};
