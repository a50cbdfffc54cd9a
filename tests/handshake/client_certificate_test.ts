// The dialer's small TLS client certificate: it names the node's full certificate (the identity
// binding) by SHA-256, and the ClientHello carries that full certificate. Every way of making
// the two disagree is refused with ERR_HANDSHAKE_FAILED before any key is derived.
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  HandshakeDialer,
  HandshakeError,
  HandshakeListener,
  IDENTITY_BINDING_OID,
  NodeCredentials,
} from "../../src/handshake/mod.ts";
import { certificateReference } from "../../src/handshake/node_credentials.ts";
import { generateCertificate } from "../../src/quic/mod.ts";
import { Identity } from "../../src/identity/mod.ts";
import { ALPN, dialerIdentity, dialerNode, listenerNode, run } from "./_util.ts";

const REFERENCE_OID = Uint8Array.of(...IDENTITY_BINDING_OID, 0x01);

/** A dialer that sends its certificate in the ClientHello, and a listener that got `inTls`. */
function handshake(inTls: Uint8Array, dialer = dialerNode) {
  return {
    dialer: new HandshakeDialer({
      credentials: dialer,
      alpn: ALPN,
      peerCertificate: listenerNode.certificate.der,
      certificateInHello: true,
    }),
    listener: new HandshakeListener({
      credentials: listenerNode,
      alpn: ALPN,
      peerCertificate: inTls,
    }),
  };
}

async function refused(inTls: Uint8Array, why: string, dialer = dialerNode): Promise<void> {
  const { dialer: d, listener: l } = handshake(inTls, dialer);
  const e = await assertRejects(() => d.start().then((hello) => l.receive(hello)), HandshakeError);
  assertEquals(e.code, "ERR_HANDSHAKE_FAILED");
  assert(e.message.includes(why), e.message);
  assert(e.alert !== undefined, "the dialer hears why");
}

Deno.test("client certificate: small, same key, names the full certificate by SHA-256", () => {
  const { certificate, clientCertificate } = dialerNode;
  assert(clientCertificate.der.byteLength < 600, `${clientCertificate.der.byteLength} bytes`);
  assert(certificate.der.byteLength > 6000, `${certificate.der.byteLength} bytes`);
  assertEquals(certificateReference(clientCertificate.der), sha256(certificate.der));
  assertEquals(certificateReference(certificate.der), undefined);
  assertEquals(clientCertificate.keyPem, certificate.keyPem);
});

Deno.test("client certificate: the ClientHello's certificate completes the handshake", async () => {
  const { dialer, listener } = handshake(dialerNode.clientCertificate.der);
  const r = await run(dialer, listener);
  assert(r.listener.peerId.equals(dialerIdentity.peerId));
  assertEquals(r.listener.peerCertificateHash, dialerNode.certificateHash);
  assertEquals(r.dialer.transcriptHash, r.listener.transcriptHash);
});

Deno.test("client certificate: a reference in TLS and no certificate in the ClientHello is refused", async () => {
  const dialer = new HandshakeDialer({
    credentials: dialerNode,
    alpn: ALPN,
    peerCertificate: listenerNode.certificate.der,
  });
  const listener = new HandshakeListener({
    credentials: listenerNode,
    alpn: ALPN,
    peerCertificate: dialerNode.clientCertificate.der,
  });
  const e = await assertRejects(async () => listener.receive(await dialer.start()), HandshakeError);
  assert(e.message.includes("its ClientHello carries none"), e.message);
});

Deno.test("client certificate: the ClientHello carrying another node's certificate is refused", async () => {
  // The TLS certificate names this dialer's full certificate; the hello carries another one.
  const other = await NodeCredentials.create(Identity.generate());
  await refused(other.clientCertificate.der, "is not the one its TLS certificate names");
});

Deno.test("client certificate: a reference made with another key to a victim's certificate is refused", async () => {
  // What a thief of a certificate (public) without its key can do: present a TLS certificate of
  // its own key naming the victim's full certificate, and send the victim's certificate.
  const forged = await generateCertificate({
    extensions: [{
      oid: REFERENCE_OID,
      value: Uint8Array.of(1, ...sha256(dialerNode.certificate.der)),
    }],
  });
  await refused(forged.der, "has another key than its TLS certificate");
});

Deno.test("client certificate: a full certificate in TLS and another in the ClientHello is refused", async () => {
  const other = await NodeCredentials.create(Identity.generate());
  await refused(other.certificate.der, "carries another certificate than the one TLS received");
});

Deno.test("client certificate: a malformed reference is a typed refusal", async () => {
  for (const value of [Uint8Array.of(1, 2, 3), Uint8Array.of(2, ...new Uint8Array(32))]) {
    const bad = await generateCertificate({ extensions: [{ oid: REFERENCE_OID, value }] });
    await refused(bad.der, "Malformed certificate reference");
  }
});
