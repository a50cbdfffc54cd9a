/**
 * Peer ids: the stable name of a node, derived from its public keys.
 *
 * @module
 */

import { sha256 } from "../_sha256.ts";
import { describe, NetworkError } from "../errors.ts";
import { decodeBase32, encodeBase32 } from "./_base32.ts";
import type { PublicIdentity } from "./public_identity.ts";

/**
 * Prefix hashed before the public keys. A hash of the same keys made for another purpose (a
 * fingerprint, a signature transcript) can then never collide with a peer id.
 */
const PEER_ID_DOMAIN = new TextEncoder().encode("cretoai-network/peer-id/v1\0");

/** Length of a peer id in bytes (a SHA-256 digest). */
const PEER_ID_LENGTH = 32;

/** Length of the string form of a peer id: 32 bytes in unpadded base32. */
const PEER_ID_STRING_LENGTH = 52;

/**
 * The identity of a node: SHA-256 over a domain-separation prefix and both of its public keys
 * (Ed25519 and ML-DSA-65), written as 52 characters of lowercase base32 without padding
 * (RFC 4648 alphabet `a-z2-7`). Base32 rather than base58 because it is case-insensitive-safe
 * (DNS labels, file names) and trivially canonical.
 *
 * A peer id commits to both keys: replacing either one changes the id, so taking over an id
 * would need a SHA-256 second preimage, not just a break of one signature algorithm.
 *
 * @example Parsing, formatting, comparing
 * ```ts
 * import { Identity, PeerId } from "@cretoai/network";
 *
 * const id = Identity.generate().peerId;
 * const text = id.toString();
 * console.assert(text.length === 52);
 * console.assert(PeerId.parse(text).equals(id));
 * ```
 */
export class PeerId {
  readonly #bytes: Uint8Array;
  readonly #text: string;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#text = encodeBase32(bytes);
  }

  /**
   * Derives the peer id of a public-key bundle.
   *
   * @example
   * ```ts
   * import { Identity, PeerId } from "@cretoai/network";
   *
   * const identity = Identity.generate();
   * console.assert(PeerId.fromPublicIdentity(identity.publicIdentity).equals(identity.peerId));
   * ```
   *
   * @param keys The public keys.
   * @returns The peer id.
   */
  static fromPublicIdentity(keys: PublicIdentity): PeerId {
    const encoded = keys.encode();
    const input = new Uint8Array(PEER_ID_DOMAIN.byteLength + encoded.byteLength);
    input.set(PEER_ID_DOMAIN);
    input.set(encoded, PEER_ID_DOMAIN.byteLength);
    return new PeerId(sha256(input));
  }

  /**
   * Reads a peer id from its 32-byte binary form.
   *
   * @example
   * ```ts
   * import { Identity, PeerId } from "@cretoai/network";
   *
   * const id = Identity.generate().peerId;
   * console.assert(PeerId.fromBytes(id.toBytes()).equals(id));
   * ```
   *
   * @param bytes Exactly 32 bytes.
   * @returns The peer id (it keeps a copy of the bytes).
   * @throws {NetworkError} `ERR_INVALID_PEER_ID` when the length is not 32.
   */
  static fromBytes(bytes: Uint8Array): PeerId {
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== PEER_ID_LENGTH) {
      throw new NetworkError(
        "ERR_INVALID_PEER_ID",
        `Invalid peer id: must be ${PEER_ID_LENGTH} bytes: current value is ${describe(bytes)}`,
      );
    }
    return new PeerId(bytes.slice());
  }

  /**
   * Parses the string form of a peer id.
   *
   * @example
   * ```ts
   * import { NetworkError, PeerId } from "@cretoai/network";
   *
   * try {
   *   PeerId.parse("not-a-peer-id");
   * } catch (e) {
   *   console.assert(e instanceof NetworkError && e.code === "ERR_INVALID_PEER_ID");
   * }
   * ```
   *
   * @param text 52 characters of lowercase unpadded base32.
   * @returns The peer id.
   * @throws {NetworkError} `ERR_INVALID_PEER_ID` naming the rule that failed and the value seen.
   */
  static parse(text: string): PeerId {
    const fail = (why: string): never => {
      throw new NetworkError(
        "ERR_INVALID_PEER_ID",
        `Invalid peer id ${describe(text)}: ${why}`,
      );
    };
    if (typeof text !== "string") return fail("expected a string");
    if (text.length !== PEER_ID_STRING_LENGTH) {
      return fail(`expected ${PEER_ID_STRING_LENGTH} characters, got ${text.length}`);
    }
    const decoded = decodeBase32(text);
    if (typeof decoded === "string") return fail(decoded);
    return new PeerId(decoded);
  }

  /**
   * Returns a copy of the 32-byte binary form.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * console.assert(Identity.generate().peerId.toBytes().byteLength === 32);
   * ```
   *
   * @returns The bytes.
   */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /**
   * Returns the canonical string form (52 lowercase base32 characters).
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * console.assert(/^[a-z2-7]{52}$/.test(Identity.generate().peerId.toString()));
   * ```
   *
   * @returns The string.
   */
  toString(): string {
    return this.#text;
  }

  /**
   * Returns the string form, so that peer ids serialize readably in JSON.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const id = Identity.generate().peerId;
   * console.assert(JSON.stringify({ id }) === `{"id":"${id}"}`);
   * ```
   *
   * @returns The string form.
   */
  toJSON(): string {
    return this.#text;
  }

  /**
   * Tells whether two peer ids are the same.
   *
   * @example
   * ```ts
   * import { Identity, PeerId } from "@cretoai/network";
   *
   * const a = Identity.generate().peerId;
   * console.assert(a.equals(PeerId.parse(a.toString())));
   * console.assert(!a.equals(Identity.generate().peerId));
   * ```
   *
   * @param other The other peer id.
   * @returns `true` when both name the same keys.
   */
  equals(other: PeerId): boolean {
    return other instanceof PeerId && other.#text === this.#text;
  }
}
