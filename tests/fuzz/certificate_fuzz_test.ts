/**
 * Hostile TLS certificates at a live node over real QUIC connections (handshake v2 reads the
 * identity binding from the certificate the peer presents): bindings mutated byte by byte,
 * none, two, another node's binding under the attacker's key, thousands of extensions, and a
 * certificate larger than TLS lets through. The node must close each such connection with the
 * handshake-failed code before any handshake stream, hold no handshake slot, and keep serving a
 * legitimate peer.
 *
 * @module
 */

import { assert, assertEquals } from "../_assert.ts";
import { Prng } from "../_prng.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { type CertificateExtension, generateCertificate } from "../../src/quic/certificate.ts";
import { readCertificate } from "../../src/handshake/_x509.ts";
import { IDENTITY_BINDING_OID, NodeCredentials } from "../../src/handshake/node_credentials.ts";
import { APP_ERROR_HANDSHAKE_FAILED } from "../../src/transport/close_codes.ts";
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
  const rssBefore = rssBytes();
  const closes: string[] = [];
  for (let batch = 0; batch < cases.length; batch += 6) {
    await Promise.all(
      cases.slice(batch, batch + 6).map(async (c, j) => {
        const certificate = await generateCertificate({
          keys: await tlsKeys(),
          extensions: c.extensions,
        });
        // Each from its own address, so the per-IP limit does not hide what the node does.
        await using raw = await QuicEndpoint.bind({
          hostname: `127.0.0.${40 + batch + j}`,
          certificate,
        });
        const conn = await raw.connect({ hostname: "127.0.0.1", port: victim.localAddr.port })
          .catch((e) => e as Error);
        if (conn instanceof Error) {
          closes.push(`${c.what}: refused by TLS (${conn.message.slice(0, 80)})`);
          return;
        }
        const closed = await within(conn.closed, HANDSHAKE_TIMEOUT_MS + 5000, `${c.what}: closed`);
        closes.push(
          `${c.what}: ${closed.isApp ? "application" : "transport"} code ${closed.errorCode}`,
        );
        if (c.tooLargeForTls) {
          assertEquals(closed.isApp, false, `${c.what}: ${closed.message}`);
          return;
        }
        // Closed at TLS completion with the handshake-failed code: not by a timeout, and before
        // any stream (a timeout would close with its own code after HANDSHAKE_TIMEOUT_MS).
        assertEquals(closed.errorCode, APP_ERROR_HANDSHAKE_FAILED, `${c.what}: ${closed.message}`);
      }),
    );
    await stillServes(victim, legit);
  }
  const growth = rssBytes() - rssBefore;
  console.log(`${closes.join("\n")}\nRSS +${growth >> 10} KiB`);
  assertEquals(closes.length, cases.length);
  assert(growth < MAX_RSS_GROWTH_BYTES, `RSS grew by ${growth} bytes`);
  assertEquals(victim.stats().pendingHandshakes, 0, "handshake slots still held");
  assertEquals(victim.peers().length, 1, "only the legitimate peer is registered");
});

function tlsKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}
