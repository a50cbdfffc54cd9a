import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { NodeCredentials, PeerCertificateCache } from "../../src/handshake/mod.ts";
import {
  decapsulate,
  encapsulate,
  generateKemKeyPair,
  importKemPublicKey,
  verifyHybridSignature,
} from "../../src/handshake/_pq_crypto.ts";
import { Identity } from "../../src/identity/mod.ts";
import { dialerIdentity, dialerNode } from "./_util.ts";

Deno.test("WebCrypto ML-KEM-768 agrees with @noble/post-quantum in both directions", async () => {
  const noble = ml_kem768.keygen();
  const toNoble = await encapsulate(await importKemPublicKey(noble.publicKey));
  assertEquals(ml_kem768.decapsulate(toNoble.cipherText, noble.secretKey), toNoble.secret);
  const native = await generateKemKeyPair();
  const toNative = ml_kem768.encapsulate(native.publicKey);
  assertEquals(await decapsulate(native.privateKey, toNative.cipherText), toNative.sharedSecret);
  // A key with out-of-range coefficients is refused, as FIPS 203 requires.
  await assertRejects(() => importKemPublicKey(new Uint8Array(1184).fill(0xff)), Error);
});

Deno.test("the native hybrid check agrees with Identity.verify", async () => {
  const msg = new TextEncoder().encode("binding");
  const sig = dialerIdentity.sign(msg);
  const keys = dialerIdentity.publicIdentity;
  assert(Identity.verify(keys, msg, sig));
  assert(await verifyHybridSignature(keys, msg, sig));
  const badEd = { ...sig, ed25519: sig.ed25519.map((b, i) => i === 5 ? b ^ 1 : b) };
  const badDsa = { ...sig, mlDsa65: sig.mlDsa65.map((b, i) => i === 900 ? b ^ 1 : b) };
  for (const bad of [badEd, badDsa, { ...sig, mlDsa65: new Uint8Array(10) }]) {
    assertEquals(await verifyHybridSignature(keys, msg, bad), Identity.verify(keys, msg, bad));
    assert(!await verifyHybridSignature(keys, msg, bad));
  }
  assert(!await verifyHybridSignature(Identity.generate().publicIdentity, msg, sig));
});

Deno.test("credentials: the certificate names the identity and its ML-KEM key", async () => {
  const peer = await new PeerCertificateCache().verify(dialerNode.certificate.der);
  assert(peer.peerId.equals(dialerIdentity.peerId));
  assertEquals(peer.kemPublicKey, dialerNode.kemPublicKey);
  assertEquals(peer.certificateHash, dialerNode.certificateHash);
  const { cipherText, secret } = await encapsulate(peer.kemKey);
  assertEquals(await dialerNode.decapsulate(cipherText), secret);
  await assertRejects(
    () => NodeCredentials.create("me" as unknown as Identity),
    InvalidConfigError,
    "'identity'",
  );
});

Deno.test("certificate cache: a reconnect's certificate is found by its bytes, and only by all of them", async () => {
  const cache = new PeerCertificateCache({ maxEntries: 1 });
  const der = dialerNode.certificate.der;
  const first = await cache.verify(der);
  // Found again from a copy (TLS hands over new bytes on every connection).
  assertEquals(await cache.verify(der.slice()), first);
  // Same length and last bytes (the key of the recent certificates), one byte changed in the
  // binding's signature: not the certificate that passed, so it is checked, and refused.
  const forged = der.slice();
  forged[der.byteLength - 200] ^= 1;
  await assertRejects(() => cache.verify(forged), Error);
  // Evicted from the cache (maxEntries 1) by another certificate: verified anew, and cached.
  const other = await NodeCredentials.create(Identity.generate());
  await cache.verify(other.certificate.der);
  assertEquals(cache.lookup(dialerNode.certificateHash), undefined);
  const again = await cache.verify(der.slice());
  assert(again !== first && again.peerId.equals(first.peerId));
  assertEquals(cache.lookup(dialerNode.certificateHash), again);
  // With no entries allowed, nothing is remembered, whole or by hash.
  const none = new PeerCertificateCache({ maxEntries: 0 });
  assert(await none.verify(der) !== await none.verify(der));
});
