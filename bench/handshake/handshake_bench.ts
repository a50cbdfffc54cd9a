/**
 * Cost of one complete handshake in memory (both sides' CPU: two ML-DSA-65 + Ed25519 signatures
 * and verifications, plus ML-KEM-768 when `pqEncryption` is on).
 *
 * Run: `deno bench bench/handshake/handshake_bench.ts`
 *
 * @module
 */

import { HandshakeDialer, HandshakeListener } from "../../src/handshake/mod.ts";
import { Identity } from "../../src/identity/mod.ts";

const dialerIdentity = Identity.generate();
const listenerIdentity = Identity.generate();
const dialerCert = new Uint8Array(32).fill(1);
const listenerCert = new Uint8Array(32).fill(2);

for (const pqEncryption of [true, false]) {
  Deno.bench(`handshake, pqEncryption ${pqEncryption ? "on" : "off"}`, { n: 100 }, () => {
    const dialer = new HandshakeDialer({
      identity: dialerIdentity,
      alpn: "cretoai/1",
      localCertHash: dialerCert,
      peerCertHash: listenerCert,
      pqEncryption,
    });
    const listener = new HandshakeListener({
      identity: listenerIdentity,
      alpn: "cretoai/1",
      localCertHash: listenerCert,
      peerCertHash: dialerCert,
      pqEncryption,
    });
    const serverHello = listener.receive(dialer.start()).send!;
    listener.receive(dialer.receive(serverHello).send!);
  });
}
