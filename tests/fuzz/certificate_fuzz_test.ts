/**
 * Hostile TLS certificates at a live node over real QUIC connections (handshake v2 reads the
 * identity binding from the certificate the peer presents): bindings mutated byte by byte,
 * none, two, another node's binding under the attacker's key, thousands of extensions, and a
 * certificate larger than TLS lets through. The node must refuse each connection whose
 * certificate reaches it with a typed handshake failure (`ERR_HANDSHAKE_FAILED`, seen in its
 * `connection:failed` event) and close it, hold no handshake slot, register no peer, and keep
 * serving a legitimate peer.
 *
 * @module
 */

import { assert, assertEquals } from "../_assert.ts";
import { Prng } from "../_prng.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { type CertificateExtension, generateCertificate } from "../../src/quic/certificate.ts";
import { readCertificate } from "../../src/handshake/_x509.ts";
import { IDENTITY_BINDING_OID, NodeCredentials } from "../../src/handshake/node_credentials.ts";
import { ConnectionClosedError, NetworkError } from "../../src/errors.ts";
import { addr, identity, node, within } from "../transport/_util.ts";
import { rssBytes, stillServes } from "./_live.ts";
import { mutate } from "./_mutate.ts";

const HANDSHAKE_TIMEOUT_MS = 2000;
const MAX_RSS_GROWTH_BYTES = 96 * 1024 * 1024;
/** Mutated bindings tried (the other cases are one each). */
const MUTATED_BINDINGS = 12;

/** One hostile certificate: the extensions it carries besides basicConstraints. */
interface HostileCase {
  what: string;
  extensions: CertificateExtension[];
  /** Refused by QUIC/TLS below the node (a transport close code), not by the binding check. */
  tooLargeForTls?: boolean;
}

function binding(value: Uint8Array): CertificateExtension {
  return { oid: IDENTITY_BINDING_OID, value };
}

Deno.test("fuzz: hostile certificates at a live node are refused at TLS completion and leave it serving", async () => {
  await using victim = await node(0, { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS });
  await using legit = await node(1);
  await legit.connectPeer(addr(victim));
  // The attacker's own valid binding, and a victim-known node's one to transplant.
  const own = await NodeCredentials.create(identity(9));
  const ownBinding = readCertificate(own.certificate.der, IDENTITY_BINDING_OID).extension!;
  const stolen = await NodeCredentials.create(identity(1));
  const stolenBinding = readCertificate(stolen.certificate.der, IDENTITY_BINDING_OID).extension!;
  const rng = new Prng(0x17_0083);
  const cases: HostileCase[] = [
    { what: "no binding", extensions: [] },
    { what: "a legitimate peer's binding under another key", extensions: [binding(stolenBinding)] },
    { what: "the binding twice", extensions: [binding(ownBinding), binding(ownBinding)] },
    {
      what: "3000 extensions before the binding",
      extensions: [
        ...Array.from({ length: 3000 }, (_, i) => ({
          oid: Uint8Array.of(0x2a, 0x03, 0x80 | ((i + 128) >> 7), (i + 128) & 0x7f),
          value: new Uint8Array(0),
        })),
        binding(ownBinding),
      ],
    },
    // BoringSSL bounds a peer's certificate list at 100 KiB (a 99 KiB binding still reaches
    // the node, 101,661 bytes of certificate): the node never sees this one.
    {
      what: "a 160 KiB certificate",
      extensions: [binding(new Uint8Array(160 * 1024))],
      tooLargeForTls: true,
    },
    ...Array.from({ length: MUTATED_BINDINGS }, (_, i) => ({
      what: `mutated binding ${i}`,
      extensions: [binding(mutate(rng, ownBinding, [stolenBinding], 16 * 1024))],
    })),
  ];
  // What the node refused, by source address: its own verdict, whatever the dialer's QUIC
  // stack makes of the close (under load a dialer refused as its TLS handshake completes may
  // close with a transport error of its own before the node's close arrives).
  const refusals = new Map<string, PromiseWithResolvers<Error>>();
  const refusal = (hostname: string) => {
    if (!refusals.has(hostname)) refusals.set(hostname, Promise.withResolvers());
    return refusals.get(hostname)!;
  };
  victim.addEventListener("connection:failed", (e) => {
    refusal(e.detail.address.hostname).resolve(e.detail.error);
  });
  const rssBefore = rssBytes();
  const outcomes: string[] = [];
  for (let batch = 0; batch < cases.length; batch += 6) {
    await Promise.all(
      cases.slice(batch, batch + 6).map(async (c, j) => {
        const certificate = await generateCertificate({
          keys: await tlsKeys(),
          extensions: c.extensions,
        });
        // Each from its own address, so the per-IP limit does not hide what the node does.
        const hostname = `127.0.0.${40 + batch + j}`;
        await using raw = await QuicEndpoint.bind({ hostname, certificate });
        const conn = await raw.connect({ hostname: "127.0.0.1", port: victim.localAddr.port })
          .catch((e) => e as Error);
        const closed = conn instanceof Error
          ? conn
          : await within(conn.closed, HANDSHAKE_TIMEOUT_MS + 5000, `${c.what}: closed`);
        if (c.tooLargeForTls) {
          // Refused by QUIC/TLS below the node: a transport close, no session ever started.
          assert(closed instanceof ConnectionClosedError && closed.isApp === false, closed.message);
          assert(!refusals.has(hostname), `${c.what}: reached the node`);
          outcomes.push(`${c.what}: closed by TLS (transport code ${closed.errorCode})`);
          return;
        }
        // Refused by the binding check as TLS completed: not by the handshake timeout (its own
        // code), and before any stream.
        const error = await within(refusal(hostname).promise, 5000, `${c.what}: refused`);
        assert(
          error instanceof NetworkError && error.code === "ERR_HANDSHAKE_FAILED",
          `${c.what}: ${error}`,
        );
        outcomes.push(`${c.what}: ${error.message.slice(0, 90)}`);
      }),
    );
    await stillServes(victim, legit);
  }
  const growth = rssBytes() - rssBefore;
  console.log(`${outcomes.join("\n")}\nRSS +${growth >> 10} KiB`);
  assertEquals(outcomes.length, cases.length);
  assert(growth < MAX_RSS_GROWTH_BYTES, `RSS grew by ${growth} bytes`);
  assertEquals(victim.stats().pendingHandshakes, 0, "handshake slots still held");
  assertEquals(victim.peers().length, 1, "only the legitimate peer is registered");
});

function tlsKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}
