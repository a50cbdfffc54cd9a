/**
 * Node identity: hybrid Ed25519 + ML-DSA-65 signing keys, their public bundle and the peer id
 * derived from it.
 *
 * @module
 */

export { PeerId } from "./peer_id.ts";
export { PublicIdentity, type PublicKeys } from "./public_identity.ts";
export {
  type HybridSignature,
  Identity,
  type IdentitySeeds,
  type SaveIdentityOptions,
} from "./identity.ts";
