/**
 * The public half of a node's identity: its Ed25519 and ML-DSA-65 public keys.
 *
 * @module
 */

import { ByteReader, ByteWriter } from "../_bytes.ts";
import {
  checkKeyLength,
  ED25519_PUBLIC_KEY_LENGTH,
  invalidKey,
  ML_DSA65_PUBLIC_KEY_LENGTH,
  SUITE_ED25519_MLDSA65,
} from "./_keys.ts";
import { PeerId } from "./peer_id.ts";

/** The two public keys of a node, as plain bytes. */
export interface PublicKeys {
  /** Ed25519 public key, 32 bytes. */
  ed25519: Uint8Array;
  /** ML-DSA-65 public key, 1952 bytes. */
  mlDsa65: Uint8Array;
}

/**
 * A node's public keys with their peer id and a compact, versioned encoding:
 * `suite u8 (=1) | len u16 | Ed25519 key | len u16 | ML-DSA-65 key` (1989 bytes).
 *
 * @example Encoding and decoding
 * ```ts
 * import { Identity, PublicIdentity } from "@cretoai/network";
 *
 * const pub = Identity.generate().publicIdentity;
 * const copy = PublicIdentity.decode(pub.encode());
 * console.assert(copy.peerId.equals(pub.peerId));
 * ```
 */
export class PublicIdentity {
  /** Ed25519 public key, 32 bytes. */
  readonly ed25519: Uint8Array;
  /** ML-DSA-65 public key, 1952 bytes. */
  readonly mlDsa65: Uint8Array;
  #peerId: PeerId | undefined;

  /**
   * Makes a bundle from two public keys, checking their sizes.
   *
   * @example
   * ```ts
   * import { PublicIdentity } from "@cretoai/network";
   *
   * try {
   *   new PublicIdentity({ ed25519: new Uint8Array(31), mlDsa65: new Uint8Array(1952) });
   * } catch (e) {
   *   console.assert((e as Error).message.includes("31 bytes"));
   * }
   * ```
   *
   * @param keys The keys; they are copied.
   * @throws {NetworkError} `ERR_INVALID_KEY` naming the key, the expected and the seen size.
   */
  constructor(keys: PublicKeys) {
    checkKeyLength("Ed25519 public key", keys?.ed25519, ED25519_PUBLIC_KEY_LENGTH);
    checkKeyLength("ML-DSA-65 public key", keys?.mlDsa65, ML_DSA65_PUBLIC_KEY_LENGTH);
    this.ed25519 = keys.ed25519.slice();
    this.mlDsa65 = keys.mlDsa65.slice();
  }

  /**
   * The peer id these keys hash to.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const identity = Identity.generate();
   * console.assert(identity.publicIdentity.peerId.equals(identity.peerId));
   * ```
   */
  get peerId(): PeerId {
    return this.#peerId ??= PeerId.fromPublicIdentity(this);
  }

  /**
   * Encodes the keys (1989 bytes).
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * console.assert(Identity.generate().publicIdentity.encode().byteLength === 1989);
   * ```
   *
   * @returns The encoding.
   */
  encode(): Uint8Array {
    return new ByteWriter().u8(SUITE_ED25519_MLDSA65).vec16(this.ed25519).vec16(this.mlDsa65)
      .finish();
  }

  /**
   * Decodes keys written by {@linkcode PublicIdentity.encode}.
   *
   * @example
   * ```ts
   * import { NetworkError, PublicIdentity } from "@cretoai/network";
   *
   * try {
   *   PublicIdentity.decode(new Uint8Array([1, 0, 2, 9, 9]));
   * } catch (e) {
   *   console.assert(e instanceof NetworkError && e.code === "ERR_INVALID_KEY");
   * }
   * ```
   *
   * @param bytes The encoding.
   * @returns The keys.
   * @throws {NetworkError} `ERR_INVALID_KEY` for an unknown suite, a truncated encoding, a key
   * of the wrong size, or trailing bytes.
   */
  static decode(bytes: Uint8Array): PublicIdentity {
    const r = new ByteReader(bytes, "public identity", invalidKey);
    const suite = r.u8("suite");
    if (suite !== SUITE_ED25519_MLDSA65) {
      r.fail(`unknown key suite ${suite}, expected ${SUITE_ED25519_MLDSA65} (Ed25519+ML-DSA-65)`);
    }
    const ed = r.vec16("Ed25519 public key");
    const dsa = r.vec16("ML-DSA-65 public key");
    r.end();
    return new PublicIdentity({ ed25519: ed, mlDsa65: dsa });
  }
}
