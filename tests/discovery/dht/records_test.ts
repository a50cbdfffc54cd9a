import assert from "node:assert/strict";
import {
  contentKey,
  decodePeerRecord,
  decodeProviderRecord,
  DhtRecordError,
  type DhtRecordErrorReason,
  encodePeerRecord,
  encodeProviderRecord,
  type PeerRecord,
  peerRecordPayload,
  signPeerRecord,
  validateProviderRecord,
  verifyPeerRecord,
} from "../../../src/discovery/dht/mod.ts";
import { HmacIdentity, hmacPeerIdMatches, HmacRegistry, Prng } from "./_simulator.ts";

const NOW = 1_000_000;
const rng = new Prng(42);
const registry = new HmacRegistry();
const alice = new HmacIdentity(rng.bytes(32));
const mallory = new HmacIdentity(rng.bytes(32));
registry.register(alice);
registry.register(mallory);
const opts = { verifier: registry, peerIdMatches: hmacPeerIdMatches, now: NOW };

function aliceRecord(over: Partial<Omit<PeerRecord, "publicKey">> = {}) {
  return {
    peerId: alice.peerId,
    addresses: ["192.0.2.1:4433", "[2001:db8::1]:4433"],
    seq: 5,
    expiresAt: NOW + 3_600_000,
    ...over,
  };
}

async function refused(bytes: Uint8Array | Promise<Uint8Array>, reason: DhtRecordErrorReason) {
  const b = await bytes;
  await assert.rejects(verifyPeerRecord(b, opts), (e: unknown) => {
    assert.ok(e instanceof DhtRecordError, String(e));
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.code, "ERR_DHT");
    return true;
  });
}

Deno.test("a signed peer record round-trips and verifies", async () => {
  const bytes = await signPeerRecord(aliceRecord(), alice);
  const record = await verifyPeerRecord(bytes, { ...opts, expectedPeerId: alice.peerId });
  assert.equal(record.peerId, alice.peerId);
  assert.deepEqual(record.addresses, aliceRecord().addresses);
  assert.equal(record.seq, 5);
  assert.deepEqual(record.publicKey, alice.publicKey);
  assert.deepEqual(encodePeerRecord(record), bytes);
});

Deno.test("unsigned records are refused", async () => {
  const unsigned = encodePeerRecord({
    ...aliceRecord(),
    publicKey: alice.publicKey,
    signature: new Uint8Array(0),
  });
  await refused(unsigned, "unsigned");
});

Deno.test("forged records are refused", async () => {
  // Tampered addresses under Alice's genuine signature.
  const genuine = decodePeerRecord(await signPeerRecord(aliceRecord(), alice));
  await refused(
    encodePeerRecord({ ...genuine, addresses: ["203.0.113.66:4433"] }),
    "bad-signature",
  );
  // A random signature.
  await refused(encodePeerRecord({ ...genuine, signature: rng.bytes(32) }), "bad-signature");
  // Mallory signs a record claiming Alice's id with her own key: the key is not Alice's.
  await refused(signPeerRecord(aliceRecord(), mallory), "peer-id-mismatch");
  // Mallory puts Alice's public key in, but cannot sign for it.
  const payload = peerRecordPayload({ ...aliceRecord(), publicKey: alice.publicKey });
  await refused(
    encodePeerRecord({
      ...aliceRecord(),
      publicKey: alice.publicKey,
      signature: mallory.sign(payload),
    }),
    "bad-signature",
  );
  // A genuine record for someone else than the peer asked for.
  await assert.rejects(
    verifyPeerRecord(await signPeerRecord(aliceRecord(), alice), {
      ...opts,
      expectedPeerId: mallory.peerId,
    }),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "peer-id-mismatch",
  );
});

Deno.test("expired records, and records that live too long, are refused", async () => {
  await refused(signPeerRecord(aliceRecord({ expiresAt: NOW }), alice), "expired");
  await refused(signPeerRecord(aliceRecord({ expiresAt: NOW - 1 }), alice), "expired");
  await refused(
    signPeerRecord(aliceRecord({ expiresAt: NOW + 49 * 3_600_000 }), alice),
    "ttl-too-long",
  );
});

Deno.test("oversize records are refused when encoding and when decoding", async () => {
  const tooMany = Array.from({ length: 17 }, (_, i) => `192.0.2.${i}:4433`);
  await assert.rejects(
    signPeerRecord(aliceRecord({ addresses: tooMany }), alice),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "too-large" && /17/.test(e.message),
  );
  await assert.rejects(
    signPeerRecord(aliceRecord({ addresses: ["x".repeat(257)] }), alice),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "too-large",
  );
  // A record that was fine under generous limits is too large under the default ones.
  const big = await signPeerRecord(
    aliceRecord({ addresses: Array.from({ length: 60 }, () => "y".repeat(250)) }),
    alice,
    { maxAddresses: 60, maxRecordBytes: 1 << 16 },
  );
  await refused(big, "too-large");
  await assert.rejects(
    verifyPeerRecord(new Uint8Array(20_000), opts),
    (e: unknown) => e instanceof DhtRecordError && /20000/.test(e.message),
  );
});

Deno.test("malformed bytes are refused", async () => {
  const bytes = await signPeerRecord(aliceRecord(), alice);
  await refused(bytes.subarray(0, bytes.length - 3), "malformed");
  await refused(new Uint8Array([...bytes, 0]), "malformed");
  const wrongKind = bytes.slice();
  wrongKind[1] = 9;
  await refused(wrongKind, "malformed");
  await refused(new Uint8Array(0), "malformed");
});

Deno.test("provider records round-trip and are bound to their sender", () => {
  const record = {
    key: contentKey("file"),
    providerId: alice.peerId,
    addresses: ["192.0.2.1:4433"],
    expiresAt: NOW + 1000,
  };
  const decoded = decodeProviderRecord(encodeProviderRecord(record));
  assert.deepEqual(decoded, record);
  validateProviderRecord(record, { now: NOW, senderId: alice.peerId });
  assert.throws(
    () => validateProviderRecord(record, { now: NOW, senderId: mallory.peerId }),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "peer-id-mismatch",
  );
  assert.throws(
    () => validateProviderRecord(record, { now: NOW + 1000 }),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "expired",
  );
  assert.throws(
    () => decodeProviderRecord(encodeProviderRecord(record).subarray(0, 40)),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "malformed",
  );
});
