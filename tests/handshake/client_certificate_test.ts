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
  PeerCertificateCache,
  SessionTicketStore,
} from "../../src/handshake/mod.ts";
import { decodeClientHello } from "../../src/handshake/_messages.ts";
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
  assertEquals(certificateReference(clientCertificate.der)?.hash, sha256(certificate.der));
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

/** Dialers and listeners that keep tickets and see each other as a transport's nodes do. */
function resumingPair(listenerCache = new PeerCertificateCache()) {
  const tickets = { dialer: new SessionTicketStore(), listener: new SessionTicketStore() };
  const caches = { dialer: new PeerCertificateCache(), listener: listenerCache };
  return {
    tickets,
    caches,
    dialer: () =>
      new HandshakeDialer({
        credentials: dialerNode,
        alpn: ALPN,
        peerCertificate: listenerNode.certificate.der,
        certificateInHello: true,
        tickets: tickets.dialer,
        certificateCache: caches.dialer,
      }),
    listener: () =>
      new HandshakeListener({
        credentials: listenerNode,
        alpn: ALPN,
        peerCertificate: dialerNode.clientCertificate.der,
        tickets: tickets.listener,
        certificateCache: caches.listener,
      }),
  };
}

const EARLY = new TextEncoder().encode("open");

/**
 * A pair after one full handshake (tickets on both sides), and a listener with the same tickets
 * that no longer remembers the dialer's certificate.
 */
async function afterOneSessionCacheLost() {
  const p = resumingPair();
  const d0 = p.dialer(), l0 = p.listener();
  const sh = await l0.receive(await d0.start(() => EARLY));
  await l0.receive((await d0.receive(sh.send!)).send!);
  const listener = new HandshakeListener({
    credentials: listenerNode,
    alpn: ALPN,
    peerCertificate: dialerNode.clientCertificate.der,
    tickets: p.tickets.listener,
    certificateCache: new PeerCertificateCache(),
  });
  return { p, listener };
}

Deno.test("client certificate: a resuming ClientHello leaves the certificate out; the listener has it", async () => {
  const p = resumingPair();
  // One full handshake (its ClientHello carries the certificate) leaves tickets on both sides.
  const d0 = p.dialer(), l0 = p.listener();
  const first = await d0.start(() => EARLY);
  assertEquals(decodeClientHello(first).certificate, dialerNode.certificate.der);
  const sh = await l0.receive(first);
  await l0.receive((await d0.receive(sh.send!)).send!);
  const listener = p.listener();
  const dialer = p.dialer();
  const hello = await dialer.start(() => EARLY);
  const decoded = decodeClientHello(hello);
  assertEquals(decoded.certificate, undefined);
  assert(decoded.resumption !== undefined, "it resumes");
  assert(hello.byteLength < 1500, `${hello.byteLength} bytes`);
  const answer = await listener.receive(hello);
  assertEquals(answer.done?.resumed, true);
  assertEquals(answer.done?.earlyData, EARLY);
  assertEquals(answer.done?.peerCertificateHash, dialerNode.certificateHash);
  assertEquals((await dialer.receive(answer.send!)).done?.resumed, true);
});

Deno.test("client certificate: a listener that lost the certificate asks for it (HelloRetry); the full handshake follows", async () => {
  const { p, listener } = await afterOneSessionCacheLost();
  const dialer = p.dialer();
  const hello = await dialer.start(() => EARLY);
  const retry = await listener.receive(hello);
  assertEquals([retry.send?.[0], retry.done], [6, undefined], "a HelloRetry");
  // The dialer sends the ClientHello again, with its certificate and without the spent ticket.
  const again = (await dialer.receive(retry.send!)).send!;
  const decoded = decodeClientHello(again);
  assertEquals(decoded.certificate, dialerNode.certificate.der);
  assertEquals(decoded.resumption, undefined);
  const serverHello = await listener.receive(again);
  assertEquals(serverHello.send?.[0], 2, "a full ServerHello");
  const finish = await dialer.receive(serverHello.send!);
  assertEquals(finish.done?.resumed, false);
  const done = (await listener.receive(finish.send!)).done!;
  assertEquals(done.resumed, false);
  assertEquals(done.earlyData, undefined, "the early data of the first ClientHello is dropped");
  assertEquals(done.keys!.recv, finish.done!.keys!.send);
});

Deno.test("client certificate: one HelloRetry at most, and only to a dialer that offered a ticket", async () => {
  const { p, listener } = await afterOneSessionCacheLost();
  const hello = await p.dialer().start(() => EARLY);
  assertEquals((await listener.receive(hello)).send?.[0], 6);
  // The same certificate-less ClientHello again is refused, not retried.
  const e = await assertRejects(() => listener.receive(hello), HandshakeError);
  assert(e.message.includes("its ClientHello carries none"), e.message);
  // A dialer that sent its certificate refuses a HelloRetry.
  const plain = p.dialer();
  await plain.start(); // no early data: no ticket offered, the certificate is sent
  const refused = await assertRejects(
    () => plain.receive(Uint8Array.of(6, 4)),
    HandshakeError,
  );
  assert(refused.message.includes("HelloRetry"), refused.message);
});

Deno.test("client certificate: a resuming ClientHello under a reference made with another key is refused", async () => {
  // The certificate is left out, so the listener takes it from its cache by the hash the TLS
  // certificate names: it must still have the key TLS proved.
  const p = resumingPair();
  const d0 = p.dialer(), l0 = p.listener();
  const sh = await l0.receive(await d0.start(() => EARLY));
  await l0.receive((await d0.receive(sh.send!)).send!);
  const forged = await generateCertificate({
    extensions: [{ oid: REFERENCE_OID, value: Uint8Array.of(1, ...dialerNode.certificateHash) }],
  });
  const listener = new HandshakeListener({
    credentials: listenerNode,
    alpn: ALPN,
    peerCertificate: forged.der,
    tickets: p.tickets.listener,
    certificateCache: p.caches.listener,
  });
  const hello = await p.dialer().start(() => EARLY);
  assertEquals(decodeClientHello(hello).certificate, undefined);
  const e = await assertRejects(() => listener.receive(hello), HandshakeError);
  assert(e.message.includes("with another key"), e.message);
});
