/**
 * DHT records: signed peer records (a peer's addresses, with a sequence number and an expiry)
 * and provider records (a peer that serves the content under a key), their binary encoding
 * with size limits, and the checks a node runs before it stores or believes one.
 *
 * Signing is abstract: {@linkcode RecordSigner} and {@linkcode RecordVerifier} are bound to
 * the node's hybrid identity outside the DHT, and {@linkcode PeerIdBinding} checks that a
 * record's public key is the one its peer id was derived from.
 *
 * @module
 */

import { assertKey, type DhtKey, KEY_BYTES } from "./key.ts";
import { resolveRecordLimits } from "./_record_limits.ts";
import { DhtRecordError } from "./record_error.ts";
import { type ByteErrorKind, ByteReader, ByteWriter, utf8Length } from "../../_bytes.ts";

/** A peer's signed statement of where it can be reached. */
export interface PeerRecord {
  /** The peer id's string form. */
  readonly peerId: string;
  /** The public key the record is signed with; it must hash to `peerId`. */
  readonly publicKey: Uint8Array;
  /** Transport addresses, for example `"192.0.2.7:4433"`. */
  readonly addresses: readonly string[];
  /** Increases with every new record of the peer; a lower or equal one is stale. */
  readonly seq: number;
  /** Expiry time in clock milliseconds; the record is dropped after it. */
  readonly expiresAt: number;
}

/** A peer record with the signature over its payload. */
export interface SignedPeerRecord extends PeerRecord {
  /** Signature over {@linkcode peerRecordPayload}; empty means unsigned. */
  readonly signature: Uint8Array;
}

/** A statement that `providerId` serves the content under `key`. */
export interface ProviderRecord {
  /** The content key. */
  readonly key: DhtKey;
  /** The provider's peer id. */
  readonly providerId: string;
  /** The provider's transport addresses. */
  readonly addresses: readonly string[];
  /** Expiry time in clock milliseconds. */
  readonly expiresAt: number;
}

/**
 * Signs record payloads with the local node's identity.
 *
 * @example A toy signer (real nodes bind the hybrid Ed25519 + ML-DSA identity)
 * ```ts
 * import type { RecordSigner } from "@cretoai/network/dht";
 *
 * const signer: RecordSigner = {
 *   publicKey: new Uint8Array([1, 2, 3]),
 *   sign: (payload) => payload.slice(0, 8),
 * };
 * console.assert((await signer.sign(new Uint8Array(16))).length === 8);
 * ```
 */
export interface RecordSigner {
  /** The public key verifiers check signatures against. */
  readonly publicKey: Uint8Array;
  /** Signs `payload` (already domain-separated). */
  sign(payload: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/**
 * Checks a signature made by a {@linkcode RecordSigner}.
 *
 * @example
 * ```ts
 * import type { RecordVerifier } from "@cretoai/network/dht";
 *
 * const verifier: RecordVerifier = { verify: (_key, _payload, signature) => signature.length > 0 };
 * console.assert(!(await verifier.verify(new Uint8Array(32), new Uint8Array(8), new Uint8Array())));
 * ```
 */
export interface RecordVerifier {
  /** Returns whether `signature` is valid for `payload` under `publicKey`. */
  verify(
    publicKey: Uint8Array,
    payload: Uint8Array,
    signature: Uint8Array,
  ): boolean | Promise<boolean>;
}

/**
 * Returns whether `publicKey` is the key `peerId` was derived from (the peer id is a hash of
 * the public key), so that nobody can sign records for a peer id that is not theirs.
 */
export type PeerIdBinding = (publicKey: Uint8Array, peerId: string) => boolean | Promise<boolean>;

/** Size and lifetime limits on records. */
export interface RecordLimits {
  /**
   * Largest encoded peer record, signature included. Hybrid Ed25519 + ML-DSA-87 keys and
   * signatures take about 7.3 KB, so this leaves room for addresses.
   *
   * @default {12288}
   */
  maxRecordBytes?: number;
  /**
   * Most addresses in one record.
   *
   * @default {16}
   */
  maxAddresses?: number;
  /**
   * Longest address, in UTF-8 bytes.
   *
   * @default {256}
   */
  maxAddressBytes?: number;
  /**
   * Longest peer id, in UTF-8 bytes.
   *
   * @default {256}
   */
  maxPeerIdBytes?: number;
  /**
   * Furthest a record's expiry may lie in the future, in milliseconds.
   *
   * @default {172_800_000} (48 hours)
   */
  maxTtlMs?: number;
}

/** Options of {@linkcode verifyPeerRecord}. */
export interface VerifyPeerRecordOptions {
  /** Checks the signature. */
  verifier: RecordVerifier;
  /** Checks that the public key belongs to the peer id. */
  peerIdMatches: PeerIdBinding;
  /** Current clock time, for the expiry checks. */
  now: number;
  /**
   * When set, the record must be for this peer.
   *
   * @default {undefined}
   */
  expectedPeerId?: string;
  /**
   * Size and lifetime limits.
   *
   * @default {{}}
   */
  limits?: RecordLimits;
}

const PEER_RECORD_KIND = 1;
const PROVIDER_RECORD_KIND = 2;
const VERSION = 1;
const PEER_RECORD_DOMAIN = new TextEncoder().encode("cretoai-dht/peer-record/v1\0");

/** Record decoding fails with a `DhtRecordError` whose reason is the reader's error kind. */
const recordError = (message: string, kind: ByteErrorKind) => new DhtRecordError(kind, message);

function checkFields(
  what: string,
  peerId: string,
  addresses: readonly string[],
  expiresAt: number,
  limits: Required<RecordLimits>,
): void {
  const idBytes = utf8Length(peerId);
  if (idBytes === 0 || idBytes > limits.maxPeerIdBytes) {
    throw new DhtRecordError(
      idBytes === 0 ? "malformed" : "too-large",
      `Refused ${what}: peer id must be 1 to ${limits.maxPeerIdBytes} bytes: current size is ${idBytes}`,
    );
  }
  if (addresses.length > Math.min(limits.maxAddresses, 255)) {
    throw new DhtRecordError(
      "too-large",
      `Refused ${what}: at most ${limits.maxAddresses} addresses allowed: current count is ${addresses.length}`,
    );
  }
  for (const address of addresses) {
    const n = utf8Length(address);
    if (n > limits.maxAddressBytes) {
      throw new DhtRecordError(
        "too-large",
        `Refused ${what}: an address must be at most ${limits.maxAddressBytes} bytes: current size is ${n}`,
      );
    }
  }
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) {
    throw new DhtRecordError(
      "malformed",
      `Refused ${what}: 'expiresAt' must be a non-negative safe integer: current value is ${expiresAt}`,
    );
  }
}

function writePeerPayload(w: ByteWriter, record: PeerRecord): ByteWriter {
  w.u8(VERSION).u8(PEER_RECORD_KIND).string16(record.peerId).vec16(record.publicKey);
  w.u64(record.seq).u64(record.expiresAt).u8(record.addresses.length);
  for (const address of record.addresses) w.string16(address);
  return w;
}

/**
 * Builds the bytes a peer record's signature covers: a domain-separation prefix, then the
 * record's fields in their binary encoding.
 *
 * @example
 * ```ts
 * import { peerRecordPayload } from "@cretoai/network/dht";
 *
 * const payload = peerRecordPayload({
 *   peerId: "peer", publicKey: new Uint8Array(32), addresses: [], seq: 1, expiresAt: 1000,
 * });
 * console.assert(payload.length > 0);
 * ```
 *
 * @param record The record's fields.
 * @returns The payload to sign or verify.
 */
export function peerRecordPayload(record: PeerRecord): Uint8Array {
  return writePeerPayload(new ByteWriter().bytes(PEER_RECORD_DOMAIN), record).finish();
}

/**
 * Encodes a signed peer record to bytes.
 *
 * @example
 * ```ts
 * import { decodePeerRecord, encodePeerRecord } from "@cretoai/network/dht";
 *
 * const bytes = encodePeerRecord({
 *   peerId: "peer", publicKey: new Uint8Array(32), addresses: ["192.0.2.7:4433"],
 *   seq: 1, expiresAt: 1000, signature: new Uint8Array(64),
 * });
 * console.assert(decodePeerRecord(bytes).addresses[0] === "192.0.2.7:4433");
 * ```
 *
 * @param record The record and its signature.
 * @param limits Size limits the record must meet.
 * @returns The encoded record.
 * @throws {DhtRecordError} `too-large` or `malformed` if a field or the whole breaks a limit.
 */
export function encodePeerRecord(record: SignedPeerRecord, limits?: RecordLimits): Uint8Array {
  const l = resolveRecordLimits(limits);
  checkFields("peer record", record.peerId, record.addresses, record.expiresAt, l);
  if (!Number.isSafeInteger(record.seq) || record.seq < 0) {
    throw new DhtRecordError(
      "malformed",
      `Refused peer record: 'seq' must be a non-negative safe integer: current value is ${record.seq}`,
    );
  }
  if (record.publicKey.length > 0xffff || record.signature.length > 0xffff) {
    throw new DhtRecordError(
      "too-large",
      `Refused peer record: public key and signature must be under 64 KiB: current sizes are ` +
        `${record.publicKey.length} and ${record.signature.length}`,
    );
  }
  const bytes = writePeerPayload(new ByteWriter(), record).vec16(record.signature).finish();
  tooLarge("peer record", bytes.length, l.maxRecordBytes);
  return bytes;
}

/**
 * Decodes a peer record from bytes, checking structure and size limits only (not the
 * signature: see {@linkcode verifyPeerRecord}).
 *
 * @example
 * ```ts
 * import { decodePeerRecord, DhtRecordError } from "@cretoai/network/dht";
 *
 * try {
 *   decodePeerRecord(new Uint8Array([1, 1, 0]));
 * } catch (e) {
 *   console.assert(e instanceof DhtRecordError && e.reason === "malformed");
 * }
 * ```
 *
 * @param bytes The encoded record.
 * @param limits Size limits the record must meet.
 * @returns The record and its signature.
 * @throws {DhtRecordError} `too-large` or `malformed`.
 */
export function decodePeerRecord(bytes: Uint8Array, limits?: RecordLimits): SignedPeerRecord {
  const l = resolveRecordLimits(limits);
  tooLarge("peer record", bytes.length, l.maxRecordBytes);
  const r = new ByteReader(bytes, "peer record", recordError);
  header(r, PEER_RECORD_KIND, "peer record");
  const peerId = r.string16("peerId", l.maxPeerIdBytes);
  const publicKey = r.vec16("publicKey", l.maxRecordBytes);
  const seq = r.u64("seq");
  const expiresAt = r.u64("expiresAt");
  const addresses = readAddresses(r, l);
  const signature = r.vec16("signature", l.maxRecordBytes);
  r.end();
  checkFields("peer record", peerId, addresses, expiresAt, l);
  return { peerId, publicKey, addresses, seq, expiresAt, signature };
}

/**
 * Signs a peer record with the local identity and encodes it.
 *
 * @example
 * ```ts
 * import { decodePeerRecord, signPeerRecord } from "@cretoai/network/dht";
 *
 * const signer = { publicKey: new Uint8Array(32), sign: () => new Uint8Array(64) };
 * const bytes = await signPeerRecord(
 *   { peerId: "me", addresses: ["192.0.2.7:4433"], seq: 1, expiresAt: Date.now() + 3_600_000 },
 *   signer,
 * );
 * console.assert(decodePeerRecord(bytes).signature.length === 64);
 * ```
 *
 * @param record The record's fields, without the public key (taken from the signer).
 * @param signer The local identity.
 * @param limits Size limits the record must meet.
 * @returns The encoded signed record.
 * @throws {DhtRecordError} `too-large` or `malformed` if the record breaks a limit.
 */
export async function signPeerRecord(
  record: Omit<PeerRecord, "publicKey">,
  signer: RecordSigner,
  limits?: RecordLimits,
): Promise<Uint8Array> {
  const full: PeerRecord = { ...record, publicKey: signer.publicKey };
  const signature = await signer.sign(peerRecordPayload(full));
  return encodePeerRecord({ ...full, signature }, limits);
}

/**
 * Decodes a peer record and checks everything a node needs before storing or believing it:
 * size, structure, expiry, the public key's binding to the peer id, and the signature.
 * Staleness against a record already held is checked by the store.
 *
 * @example Refusing an unsigned record
 * ```ts
 * import { DhtRecordError, encodePeerRecord, verifyPeerRecord } from "@cretoai/network/dht";
 *
 * const bytes = encodePeerRecord({
 *   peerId: "peer", publicKey: new Uint8Array(32), addresses: [], seq: 1,
 *   expiresAt: 10_000, signature: new Uint8Array(0),
 * });
 * try {
 *   await verifyPeerRecord(bytes, {
 *     now: 0, verifier: { verify: () => true }, peerIdMatches: () => true,
 *   });
 * } catch (e) {
 *   console.assert(e instanceof DhtRecordError && e.reason === "unsigned");
 * }
 * ```
 *
 * @param bytes The encoded record.
 * @param options Verifier, peer id binding, current time, limits, expected peer.
 * @returns The verified record.
 * @throws {DhtRecordError} `too-large`, `malformed`, `unsigned`, `expired`, `ttl-too-long`,
 *   `peer-id-mismatch` or `bad-signature`.
 */
export async function verifyPeerRecord(
  bytes: Uint8Array,
  options: VerifyPeerRecordOptions,
): Promise<SignedPeerRecord> {
  const { verifier, peerIdMatches, now, expectedPeerId, limits } = options;
  const l = resolveRecordLimits(limits);
  const record = decodePeerRecord(bytes, l);
  if (record.signature.length === 0) {
    throw new DhtRecordError("unsigned", `Refused peer record of ${record.peerId}: no signature`);
  }
  if (expectedPeerId !== undefined && record.peerId !== expectedPeerId) {
    throw new DhtRecordError(
      "peer-id-mismatch",
      `Refused peer record: asked for ${JSON.stringify(expectedPeerId)}, got one for ` +
        JSON.stringify(record.peerId),
    );
  }
  checkExpiry("peer record", record.expiresAt, now, l.maxTtlMs);
  if (!(await peerIdMatches(record.publicKey, record.peerId))) {
    throw new DhtRecordError(
      "peer-id-mismatch",
      `Refused peer record: its ${record.publicKey.length}-byte public key does not belong to ` +
        `peer id ${JSON.stringify(record.peerId)}`,
    );
  }
  if (!(await verifier.verify(record.publicKey, peerRecordPayload(record), record.signature))) {
    throw new DhtRecordError(
      "bad-signature",
      `Refused peer record of ${record.peerId}: the ${record.signature.length}-byte signature ` +
        `does not verify`,
    );
  }
  return record;
}

/**
 * Encodes a provider record to bytes.
 *
 * @example
 * ```ts
 * import { contentKey, decodeProviderRecord, encodeProviderRecord } from "@cretoai/network/dht";
 *
 * const bytes = encodeProviderRecord({
 *   key: contentKey("file"), providerId: "peer", addresses: [], expiresAt: 1000,
 * });
 * console.assert(decodeProviderRecord(bytes).providerId === "peer");
 * ```
 *
 * @param record The record.
 * @param limits Size limits the record must meet.
 * @returns The encoded record.
 * @throws {DhtRecordError} `too-large` or `malformed` if a field breaks a limit.
 */
export function encodeProviderRecord(record: ProviderRecord, limits?: RecordLimits): Uint8Array {
  const l = resolveRecordLimits(limits);
  assertKey(record.key, "key");
  checkFields("provider record", record.providerId, record.addresses, record.expiresAt, l);
  const w = new ByteWriter().u8(VERSION).u8(PROVIDER_RECORD_KIND).bytes(record.key);
  w.string16(record.providerId).u64(record.expiresAt).u8(record.addresses.length);
  for (const address of record.addresses) w.string16(address);
  return w.finish();
}

/**
 * Decodes a provider record from bytes, checking structure and size limits.
 *
 * @example
 * ```ts
 * import { decodeProviderRecord, DhtRecordError } from "@cretoai/network/dht";
 *
 * try {
 *   decodeProviderRecord(new Uint8Array(3));
 * } catch (e) {
 *   console.assert(e instanceof DhtRecordError);
 * }
 * ```
 *
 * @param bytes The encoded record.
 * @param limits Size limits the record must meet.
 * @returns The record.
 * @throws {DhtRecordError} `too-large` or `malformed`.
 */
export function decodeProviderRecord(bytes: Uint8Array, limits?: RecordLimits): ProviderRecord {
  const l = resolveRecordLimits(limits);
  tooLarge("provider record", bytes.length, l.maxRecordBytes);
  const r = new ByteReader(bytes, "provider record", recordError);
  header(r, PROVIDER_RECORD_KIND, "provider record");
  const key = r.bytes(KEY_BYTES, "key");
  const providerId = r.string16("providerId", l.maxPeerIdBytes);
  const expiresAt = r.u64("expiresAt");
  const addresses = readAddresses(r, l);
  r.end();
  checkFields("provider record", providerId, addresses, expiresAt, l);
  return { key, providerId, addresses, expiresAt };
}

/**
 * Checks a provider record a peer asked us to store. Provider records are not signed: the
 * sender is authenticated by the transport, so a node accepts a provider record only from the
 * provider itself (`senderId`), and whoever dials the provider later authenticates it again.
 *
 * @example
 * ```ts
 * import { contentKey, validateProviderRecord } from "@cretoai/network/dht";
 *
 * const record = { key: contentKey("file"), providerId: "peer", addresses: [], expiresAt: 5000 };
 * validateProviderRecord(record, { now: 0, senderId: "peer" });
 * ```
 *
 * @param record The record.
 * @param options Current time, the authenticated sender, limits.
 * @throws {DhtRecordError} `peer-id-mismatch` if the sender is not the provider; `expired`,
 *   `ttl-too-long`, `too-large` or `malformed`.
 */
export function validateProviderRecord(
  record: ProviderRecord,
  options: { now: number; senderId?: string; limits?: RecordLimits },
): void {
  const { now, senderId, limits } = options;
  const l = resolveRecordLimits(limits);
  assertKeyRecord(record.key);
  checkFields("provider record", record.providerId, record.addresses, record.expiresAt, l);
  if (senderId !== undefined && senderId !== record.providerId) {
    throw new DhtRecordError(
      "peer-id-mismatch",
      `Refused provider record: sent by ${JSON.stringify(senderId)} but names provider ` +
        JSON.stringify(record.providerId),
    );
  }
  checkExpiry("provider record", record.expiresAt, now, l.maxTtlMs);
}

function assertKeyRecord(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new DhtRecordError(
      "malformed",
      `Refused provider record: key must be ${KEY_BYTES} bytes: current size is ${key?.length}`,
    );
  }
}

function checkExpiry(what: string, expiresAt: number, now: number, maxTtlMs: number): void {
  if (expiresAt <= now) {
    throw new DhtRecordError(
      "expired",
      `Refused ${what}: expired at ${expiresAt}, now is ${now}`,
    );
  }
  if (expiresAt - now > maxTtlMs) {
    throw new DhtRecordError(
      "ttl-too-long",
      `Refused ${what}: expires ${expiresAt - now} ms from now, at most ${maxTtlMs} allowed`,
    );
  }
}

function tooLarge(what: string, size: number, max: number): void {
  if (size > max) {
    throw new DhtRecordError(
      "too-large",
      `Refused ${what}: must be at most ${max} bytes: current size is ${size}`,
    );
  }
}

function header(r: ByteReader, kind: number, what: string): void {
  const version = r.u8("version");
  const k = r.u8("kind");
  if (version !== VERSION || k !== kind) {
    throw new DhtRecordError(
      "malformed",
      `Malformed ${what}: expected version ${VERSION} kind ${kind}, got version ${version} kind ${k}`,
    );
  }
}

function readAddresses(r: ByteReader, l: Required<RecordLimits>): string[] {
  const count = r.u8("addressCount");
  if (count > l.maxAddresses) {
    throw new DhtRecordError(
      "too-large",
      `Refused record: at most ${l.maxAddresses} addresses allowed: current count is ${count}`,
    );
  }
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(r.string16("address", l.maxAddressBytes));
  return out;
}
