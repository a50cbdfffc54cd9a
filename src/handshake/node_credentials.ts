/**
 * A node's per-run credentials and the check of a peer's: the identity signs, once when the
 * node starts, a binding of its fresh TLS key and a fresh ML-KEM-768 key to itself, and the
 * binding travels in the TLS certificate as an extension (the pattern of libp2p-tls). TLS proves
 * possession of the certificate key on every connection, the handshake proves possession of the
 * ML-KEM key, and a verified peer certificate can be cached: a connection costs four ML-KEM
 * operations (native, through WebCrypto) and no signature at all.
 *
 * @module
 */

import { sha256 } from "../_sha256.ts";
import { ByteReader, ByteWriter, equalBytes, toHex } from "../_bytes.ts";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import { Identity } from "../identity/identity.ts";
import type { PeerId } from "../identity/peer_id.ts";
import { PublicIdentity } from "../identity/public_identity.ts";
import { generateCertificate, type TlsCertificate } from "../quic/certificate.ts";
import { readCertificate } from "./_x509.ts";
import {
  decapsulate,
  generateKemKeyPair,
  importKemPublicKey,
  verifyHybridSignature,
} from "./_pq_crypto.ts";

/** Version byte of the binding layout. */
const BINDING_VERSION = 1;
/** What the identity signs is prefixed with this, so that it is never valid elsewhere. */
const BINDING_LABEL = new TextEncoder().encode("cretoai-network/identity-binding/v1\0");
/**
 * OID 2.25.57492006390580924705514465954089883310 (a UUID arc, X.667) of the certificate
 * extension that carries the binding; content bytes of its DER encoding.
 */
export const IDENTITY_BINDING_OID: Uint8Array = Uint8Array.of(
  0x69,
  0xd6,
  0xc0,
  0xc7,
  0xb0,
  0xe8,
  0xc9,
  0xba,
  0xbe,
  0xb5,
  0x81,
  0xa2,
  0xad,
  0xed,
  0xe7,
  0x93,
  0xcd,
  0xad,
  0x2e,
);
/** Length of an ML-KEM-768 encapsulation key. */
const KEM_PUBLIC_KEY_LENGTH = 1184;

/**
 * OID 2.25.57492006390580924705514465954089883310.1 of the extension of a node's client
 * certificate: `version u8 (=1) | SHA-256 of the node's full certificate`.
 */
const CERTIFICATE_REFERENCE_OID = Uint8Array.of(...IDENTITY_BINDING_OID, 0x01);
const REFERENCE_VERSION = 1;

/** What the identity signs: label, SHA-256 of the TLS key (SPKI DER), the ML-KEM key. */
function bindingMessage(spki: Uint8Array, kemPublicKey: Uint8Array): Uint8Array {
  return new ByteWriter().bytes(BINDING_LABEL).bytes(sha256(spki)).u8(BINDING_VERSION)
    .vec16(kemPublicKey).finish();
}

/** Options of {@linkcode NodeCredentials.create}. */
export interface NodeCredentialsOptions {
  /**
   * Validity of the TLS certificate, in days (TLS does not check it here: the binding, not a
   * CA, vouches for the certificate).
   *
   * @default {30}
   */
  validityDays?: number;
}

/**
 * What a node presents for one run: a TLS certificate whose extension binds the certificate's
 * key and an ML-KEM-768 key to the node's identity, signed once by the identity, and the ML-KEM
 * secret key that proves the binding is this node's on every connection. Nothing of it is
 * stored: a restart makes new credentials.
 *
 * @example
 * ```ts
 * import { Identity } from "@cretoai/network";
 * import { NodeCredentials, PeerCertificateCache } from "@cretoai/network/handshake";
 *
 * const identity = Identity.generate();
 * const credentials = await NodeCredentials.create(identity);
 * const peer = await new PeerCertificateCache().verify(credentials.certificate.der);
 * console.assert(peer.peerId.equals(identity.peerId));
 * ```
 */
export class NodeCredentials {
  /** The node's identity. */
  readonly identity: Identity;
  /** The certificate to present in TLS, carrying the binding. */
  readonly certificate: TlsCertificate;
  /**
   * The certificate to present as a TLS client: the same key, and instead of the binding the
   * SHA-256 of {@linkcode NodeCredentials.certificate}, which the dialer then sends in its
   * ClientHello (`HandshakeOptions.certificateInHello`). A listener's TLS session tickets carry
   * the client certificate, and every resumed TLS handshake carries the ticket: 6.9 KB of
   * binding there made a resuming ClientHello seven Initial packets and the listener's tickets
   * 13.5 KB (docs/handshake.md, "Client certificate").
   */
  readonly clientCertificate: TlsCertificate;
  /** SHA-256 of the certificate's DER. */
  readonly certificateHash: Uint8Array;
  /** The ML-KEM-768 encapsulation key in the binding. */
  readonly kemPublicKey: Uint8Array;
  readonly #kemSecretKey: CryptoKey;

  private constructor(
    identity: Identity,
    certificate: TlsCertificate,
    clientCertificate: TlsCertificate,
    kemPublicKey: Uint8Array,
    kemSecretKey: CryptoKey,
  ) {
    this.identity = identity;
    this.certificate = certificate;
    this.clientCertificate = clientCertificate;
    this.certificateHash = sha256(certificate.der);
    this.kemPublicKey = kemPublicKey;
    this.#kemSecretKey = kemSecretKey;
  }

  /**
   * Makes fresh credentials: an Ed25519 TLS key, an ML-KEM-768 key pair, one hybrid signature
   * by `identity` over both, and the certificate carrying them.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   * import { NodeCredentials } from "@cretoai/network/handshake";
   *
   * const credentials = await NodeCredentials.create(Identity.generate(), { validityDays: 7 });
   * console.assert(credentials.kemPublicKey.byteLength === 1184);
   * ```
   *
   * @param identity The node's identity; it signs the binding.
   * @param options Certificate validity.
   * @returns The credentials.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` for a value that is not an `Identity`.
   */
  static async create(
    identity: Identity,
    options: NodeCredentialsOptions = {},
  ): Promise<NodeCredentials> {
    if (!(identity instanceof Identity)) {
      throw new InvalidConfigError("identity", "an Identity", identity);
    }
    const { validityDays = 30 } = options;
    const keys = await crypto.subtle.generateKey("Ed25519", true, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
    const kem = await generateKemKeyPair();
    const sig = identity.sign(bindingMessage(spki, kem.publicKey));
    const value = new ByteWriter()
      .u8(BINDING_VERSION)
      .vec16(identity.publicIdentity.encode())
      .vec16(kem.publicKey)
      .vec16(sig.ed25519)
      .vec16(sig.mlDsa65)
      .finish();
    const certificate = await generateCertificate({
      validityDays,
      keys,
      extensions: [{ oid: IDENTITY_BINDING_OID, value }],
    });
    const reference = new ByteWriter().u8(REFERENCE_VERSION).bytes(sha256(certificate.der))
      .finish();
    const clientCertificate = await generateCertificate({
      validityDays,
      keys,
      extensions: [{ oid: CERTIFICATE_REFERENCE_OID, value: reference }],
    });
    return new NodeCredentials(
      identity,
      certificate,
      clientCertificate,
      kem.publicKey,
      kem.privateKey,
    );
  }

  /**
   * Decapsulates an ML-KEM-768 ciphertext sent to this node's binding key. A wrong ciphertext
   * gives a secret nobody else shares (implicit rejection), never an error.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   * import { NodeCredentials } from "@cretoai/network/handshake";
   * import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
   *
   * const credentials = await NodeCredentials.create(Identity.generate());
   * const { cipherText, sharedSecret } = ml_kem768.encapsulate(credentials.kemPublicKey);
   * const secret = await credentials.decapsulate(cipherText);
   * console.assert(secret.every((b, i) => b === sharedSecret[i]));
   * ```
   *
   * @param cipherText 1088 bytes.
   * @returns The 32-byte shared secret.
   */
  decapsulate(cipherText: Uint8Array): Promise<Uint8Array> {
    return decapsulate(this.#kemSecretKey, cipherText);
  }
}

/** A peer whose certificate carried a valid identity binding. */
export interface VerifiedPeer {
  /** The peer's id. */
  readonly peerId: PeerId;
  /** The peer's public identity keys. */
  readonly publicIdentity: PublicIdentity;
  /** The ML-KEM-768 encapsulation key the identity bound to this certificate. */
  readonly kemPublicKey: Uint8Array;
  /** The same key imported for WebCrypto's `encapsulateBits`. */
  readonly kemKey: CryptoKey;
  /** SHA-256 of the certificate's DER. */
  readonly certificateHash: Uint8Array;
  /** The certificate's SubjectPublicKeyInfo (DER): the TLS key the binding signs. */
  readonly subjectPublicKeyInfo: Uint8Array;
}

/** Options of {@linkcode PeerCertificateCache}. */
export interface PeerCertificateCacheOptions {
  /**
   * Verified certificates kept; the least recently used goes first. An entry is about 3.5 KiB.
   *
   * @default {1024}
   */
  maxEntries?: number;
}

function refuse(message: string): never {
  throw new NetworkError("ERR_HANDSHAKE_FAILED", message);
}

/** What a node's client certificate says: the SHA-256 of its full certificate, and its key. */
export interface CertificateReference {
  /** SHA-256 of the full certificate it names. */
  hash: Uint8Array;
  /** Its SubjectPublicKeyInfo (DER), the key TLS proved. */
  spki: Uint8Array;
}

/**
 * The reference of a node's client certificate, or `undefined` for a certificate without that
 * extension (a full certificate, or none of ours).
 *
 * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` for a malformed certificate or reference.
 */
export function certificateReference(der: Uint8Array): CertificateReference | undefined {
  const { spki, extension } = readCertificate(der, CERTIFICATE_REFERENCE_OID);
  if (extension === undefined) return undefined;
  if (extension.byteLength !== 33 || extension[0] !== REFERENCE_VERSION) {
    refuse(
      `Malformed certificate reference: expected version ${REFERENCE_VERSION} and 32 bytes, got ` +
        `${extension.byteLength} bytes of version ${extension[0]}`,
    );
  }
  return { hash: extension.subarray(1), spki };
}

/**
 * Refuses a peer remembered under the hash a TLS certificate names unless that certificate has
 * the peer's key: the key TLS proved the dialer holds must be the one the binding signs.
 *
 * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` when the keys differ.
 */
export function checkReferencedKey(reference: CertificateReference, peer: VerifiedPeer): void {
  if (!equalBytes(reference.spki, peer.subjectPublicKeyInfo)) {
    refuse(`The dialer's TLS certificate names the certificate of ${peer.peerId} with another key`);
  }
}

/**
 * The dialer's full certificate, from the certificate TLS received and the one its ClientHello
 * carried. TLS proved that the dialer holds the key of the first; a reference there is honoured
 * only for a certificate of that same key with that SHA-256.
 *
 * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` when the two do not fit together.
 */
export function dialerCertificate(
  inTls: Uint8Array,
  inHello: Uint8Array | undefined,
): Uint8Array {
  const reference = certificateReference(inTls);
  if (reference === undefined) {
    if (inHello !== undefined && !equalBytes(inHello, inTls)) {
      refuse("The dialer's ClientHello carries another certificate than the one TLS received");
    }
    return inTls;
  }
  if (inHello === undefined) {
    refuse(
      "The dialer's TLS certificate names its certificate by hash, but its ClientHello carries " +
        "none",
    );
  }
  if (!equalBytes(sha256(inHello), reference.hash)) {
    refuse("The certificate in the dialer's ClientHello is not the one its TLS certificate names");
  }
  if (!equalBytes(readCertificate(inHello, IDENTITY_BINDING_OID).spki, reference.spki)) {
    refuse(
      "The certificate in the dialer's ClientHello has another key than its TLS certificate",
    );
  }
  return inHello;
}

/**
 * Checks peers' certificates for a valid identity binding and remembers the ones that passed,
 * keyed by the SHA-256 of the certificate, so that reconnecting to a peer (or a peer
 * reconnecting) costs no signature verification. The last 16 are also kept whole (about 7 KB
 * each), so that one of them is found by comparing its bytes, without hashing it.
 *
 * @example
 * ```ts
 * import { Identity } from "@cretoai/network";
 * import { NodeCredentials, PeerCertificateCache } from "@cretoai/network/handshake";
 *
 * const cache = new PeerCertificateCache({ maxEntries: 16 });
 * const { certificate } = await NodeCredentials.create(Identity.generate());
 * const first = await cache.verify(certificate.der); // verifies the hybrid signature
 * console.assert((await cache.verify(certificate.der)) === first && cache.size === 1); // cached
 * ```
 */
export class PeerCertificateCache {
  readonly #max: number;
  readonly #entries = new Map<string, VerifiedPeer>();
  /**
   * The certificates verified last, whole, by {@linkcode certificateTail}: a reconnect finds its
   * peer's certificate by comparing bytes, not by hashing them (a 7 KB certificate's SHA-256 took
   * 56 µs of a reconnect, the comparison 6). Bounded by {@linkcode RECENT_CERTIFICATES}.
   */
  readonly #recent = new Map<string, { der: Uint8Array; key: string; peer: VerifiedPeer }>();

  /**
   * Creates an empty cache.
   *
   * @param options See {@linkcode PeerCertificateCacheOptions}.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` for a `maxEntries` that is not a
   * non-negative integer.
   */
  constructor(options: PeerCertificateCacheOptions = {}) {
    const { maxEntries = 1024 } = options;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) {
      throw new InvalidConfigError("maxEntries", "a non-negative integer", maxEntries);
    }
    this.#max = maxEntries;
  }

  /** Certificates remembered now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The peer of a certificate that passed {@linkcode PeerCertificateCache.verify} and is still
   * remembered, by the SHA-256 of its DER; `undefined` otherwise. Counts as a use.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   * import { NodeCredentials, PeerCertificateCache } from "@cretoai/network/handshake";
   *
   * const node = await NodeCredentials.create(Identity.generate());
   * const cache = new PeerCertificateCache();
   * console.assert(cache.lookup(node.certificateHash) === undefined);
   * await cache.verify(node.certificate.der);
   * console.assert(cache.lookup(node.certificateHash)?.peerId.equals(node.identity.peerId));
   * ```
   *
   * @param certificateHash SHA-256 of the certificate's DER.
   * @returns The verified peer, or `undefined`.
   */
  lookup(certificateHash: Uint8Array): VerifiedPeer | undefined {
    return this.#use(toHex(certificateHash));
  }

  /** The entry under `key`, made the most recently used. */
  #use(key: string): VerifiedPeer | undefined {
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
    }
    return hit;
  }

  /**
   * Returns the peer a certificate's identity binding names, verifying the binding's hybrid
   * signature unless this certificate passed before.
   *
   * @example
   * ```ts
   * import { NetworkError } from "@cretoai/network";
   * import { PeerCertificateCache } from "@cretoai/network/handshake";
   * import { generateCertificate } from "@cretoai/network/quic";
   *
   * const plain = await generateCertificate(); // no binding
   * try {
   *   await new PeerCertificateCache().verify(plain.der);
   * } catch (e) {
   *   console.assert(e instanceof NetworkError && e.code === "ERR_HANDSHAKE_FAILED");
   * }
   * ```
   *
   * @param der The peer's certificate, DER, as TLS received it.
   * @returns The peer.
   * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` when the certificate is malformed, carries no
   * binding, or the binding's signature does not verify for the certificate's key.
   */
  async verify(der: Uint8Array): Promise<VerifiedPeer> {
    // Natively: a listener hashes every dialer's certificate (about 7 KiB with the binding)
    // before the dialer proved anything; in JavaScript that took 0.14 ms of its event loop.
    const tail = certificateTail(der);
    const recent = this.#recent.get(tail);
    // Counts only while its verified entry is still held (not evicted, not replaced).
    if (
      recent !== undefined && equalBytes(recent.der, der) &&
      this.#use(recent.key) === recent.peer
    ) {
      return recent.peer;
    }
    const certificateHash = sha256(der);
    const key = toHex(certificateHash);
    const peer = this.lookup(certificateHash) ?? await verifyBinding(der, certificateHash);
    if (this.#max > 0) {
      if (!this.#entries.has(key) && this.#entries.size >= this.#max) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
      this.#entries.set(key, peer);
      this.#recent.delete(tail);
      if (this.#recent.size >= RECENT_CERTIFICATES) {
        this.#recent.delete(this.#recent.keys().next().value!);
      }
      this.#recent.set(tail, { der: der.slice(), key, peer });
    }
    return peer;
  }
}

/** Certificates {@linkcode PeerCertificateCache} keeps whole for reconnects (7 KB each). */
const RECENT_CERTIFICATES = 16;

/**
 * A certificate's length and last 16 bytes (its signature's): a key to find it among the recent
 * ones, which only the comparison of all its bytes confirms.
 */
function certificateTail(der: Uint8Array): string {
  return `${der.byteLength}:${String.fromCharCode(...der.subarray(der.byteLength - 16))}`;
}

async function verifyBinding(
  der: Uint8Array,
  certificateHash: Uint8Array,
): Promise<VerifiedPeer> {
  const { spki, extension } = readCertificate(der, IDENTITY_BINDING_OID);
  if (extension === undefined) {
    refuse(
      "The peer's TLS certificate carries no identity binding: not a cretoai node of this " +
        "version, or a relay terminating TLS",
    );
  }
  const r = new ByteReader(
    extension,
    "identity binding",
    (m) => new NetworkError("ERR_HANDSHAKE_FAILED", m),
  );
  const version = r.u8("version");
  if (version !== BINDING_VERSION) {
    r.fail(`unsupported version ${version}, this side speaks version ${BINDING_VERSION}`);
  }
  const identityBytes = r.vec16("identity");
  const kemPublicKey = r.vec16("ML-KEM public key");
  if (kemPublicKey.byteLength !== KEM_PUBLIC_KEY_LENGTH) {
    r.fail(
      `'ML-KEM public key' must be ${KEM_PUBLIC_KEY_LENGTH} bytes: current size is ${kemPublicKey.byteLength}`,
    );
  }
  const ed25519 = r.vec16("Ed25519 signature");
  const mlDsa65 = r.vec16("ML-DSA-65 signature");
  r.end();
  let publicIdentity: PublicIdentity;
  try {
    publicIdentity = PublicIdentity.decode(identityBytes);
  } catch (e) {
    return refuse(`Invalid identity in the peer's binding: ${(e as Error).message}`);
  }
  const message = bindingMessage(spki, kemPublicKey);
  if (!await verifyHybridSignature(publicIdentity, message, { ed25519, mlDsa65 })) {
    refuse(
      `Invalid identity binding for ${publicIdentity.peerId}: its signature does not cover ` +
        `this certificate's key (a certificate of another node or a relay) or is forged`,
    );
  }
  let kemKey: CryptoKey;
  try {
    kemKey = await importKemPublicKey(kemPublicKey);
  } catch (e) {
    return refuse(`Invalid ML-KEM-768 key in the binding of ${publicIdentity.peerId}: ${e}`);
  }
  return {
    peerId: publicIdentity.peerId,
    publicIdentity,
    kemPublicKey,
    kemKey,
    certificateHash,
    subjectPublicKeyInfo: spki.slice(),
  };
}
