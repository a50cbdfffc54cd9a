/**
 * Cost of one complete identity handshake in memory, both sides' CPU: four ML-KEM-768
 * operations and two HMACs, with the peers' certificates either verified before (a shared
 * {@linkcode PeerCertificateCache}, as the transport runs it) or verified on every handshake
 * (an Ed25519 and an ML-DSA-65 verification per side). Beside it, what the handshake no longer
 * does per connection: one hybrid (Ed25519 + ML-DSA-65) signature in JavaScript.
 *
 * Run: `deno bench -A bench/handshake/handshake_bench.ts`
 *
 * @module
 */

import {
  HandshakeDialer,
  HandshakeListener,
  NodeCredentials,
  PeerCertificateCache,
} from "../../src/handshake/mod.ts";
import { Identity } from "../../src/identity/mod.ts";

const dialerNode = await NodeCredentials.create(Identity.generate());
const listenerNode = await NodeCredentials.create(Identity.generate());
const sharedCache = new PeerCertificateCache();

for (const cached of [true, false]) {
  for (const pqEncryption of [true, false]) {
    Deno.bench(
      `handshake, pqEncryption ${pqEncryption ? "on" : "off"}, certificates ${
        cached ? "cached" : "verified each time"
      }`,
      { group: "handshake", baseline: cached && pqEncryption, n: 200 },
      async () => {
        const certificateCache = cached ? sharedCache : undefined;
        const dialer = new HandshakeDialer({
          credentials: dialerNode,
          alpn: "cretoai/1",
          peerCertificate: listenerNode.certificate.der,
          certificateCache,
          pqEncryption,
        });
        const listener = new HandshakeListener({
          credentials: listenerNode,
          alpn: "cretoai/1",
          peerCertificate: dialerNode.certificate.der,
          certificateCache,
          pqEncryption,
        });
        const serverHello = (await listener.receive(await dialer.start())).send!;
        await listener.receive((await dialer.receive(serverHello)).send!);
      },
    );
  }
}

const identity = Identity.generate();
const message = new Uint8Array(32);
Deno.bench("one hybrid signature (the old handshake made two per connection)", {
  group: "handshake",
  n: 20,
}, () => {
  identity.sign(message);
});
