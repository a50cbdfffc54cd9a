/**
 * Key sizes, size checks and the hybrid signature primitive shared by `Identity`,
 * `PublicIdentity` and the handshake.
 *
 * @module
 */

import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, NetworkError } from "../errors.ts";
import type { HybridSignature } from "./identity.ts";
import type { PublicIdentity } from "./public_identity.ts";

/** Length of an Ed25519 public key in bytes. */
export const ED25519_PUBLIC_KEY_LENGTH = 32;
/** Length of an ML-DSA-65 public key in bytes (FIPS 204). */
export const ML_DSA65_PUBLIC_KEY_LENGTH = 1952;
/** Length of an Ed25519 secret key (its seed) in bytes. */
export const ED25519_SEED_LENGTH = 32;
/** Length of the ML-DSA-65 key-generation seed in bytes (FIPS 204 xi). */
export const ML_DSA65_SEED_LENGTH = 32;
/** Length of an Ed25519 signature in bytes. */
export const ED25519_SIGNATURE_LENGTH = 64;
/** Length of an ML-DSA-65 signature in bytes (FIPS 204). */
export const ML_DSA65_SIGNATURE_LENGTH = 3309;
/** Suite byte of encodings: Ed25519 + ML-DSA-65. Another suite gets another number. */
export const SUITE_ED25519_MLDSA65 = 1;

/** Makes the `ERR_INVALID_KEY` error of key and identity decoding (a `ByteErrorFactory`). */
export function invalidKey(message: string): NetworkError {
  return new NetworkError("ERR_INVALID_KEY", message);
}

/**
 * Checks a key's length and throws `ERR_INVALID_KEY` naming the key, the expected and the seen
 * size.
 *
 * @param which The key's name, for example `"Ed25519 public key"`.
 * @param key The key.
 * @param expected The required length.
 */
export function checkKeyLength(which: string, key: unknown, expected: number): void {
  if (!(key instanceof Uint8Array)) {
    throw new NetworkError(
      "ERR_INVALID_KEY",
      `Invalid ${which}: must be a Uint8Array of ${expected} bytes: current value is ${
        describe(key)
      }`,
    );
  }
  if (key.byteLength !== expected) {
    throw new NetworkError(
      "ERR_INVALID_KEY",
      `Invalid ${which}: must be ${expected} bytes: current size is ${key.byteLength} bytes`,
    );
  }
}

/**
 * Prefix signed before every message. Neither half of a hybrid signature is then a valid
 * signature of the bare message, so a half cannot be lifted into another protocol that uses
 * the same key, and the signature is bound to this scheme.
 */
const SIGNATURE_DOMAIN = new TextEncoder().encode("cretoai-network/hybrid-signature/v1\0");

/** The bytes both algorithms actually sign. */
export function signatureInput(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNATURE_DOMAIN.byteLength + msg.byteLength);
  out.set(SIGNATURE_DOMAIN);
  out.set(msg, SIGNATURE_DOMAIN.byteLength);
  return out;
}

/**
 * Verifies a hybrid signature: `true` only if the Ed25519 and the ML-DSA-65 signature both
 * verify. Malformed signatures give `false`, never an exception.
 */
export function verifyHybrid(
  keys: PublicIdentity,
  msg: Uint8Array,
  sig: HybridSignature,
): boolean {
  if (
    !(sig?.ed25519 instanceof Uint8Array) ||
    sig.ed25519.byteLength !== ED25519_SIGNATURE_LENGTH ||
    !(sig.mlDsa65 instanceof Uint8Array) ||
    sig.mlDsa65.byteLength !== ML_DSA65_SIGNATURE_LENGTH
  ) return false;
  const input = signatureInput(msg);
  try {
    return ed25519.verify(sig.ed25519, input, keys.ed25519) &&
      ml_dsa65.verify(sig.mlDsa65, input, keys.mlDsa65);
  } catch {
    return false;
  }
}
