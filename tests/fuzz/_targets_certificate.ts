/**
 * Fuzz targets of the certificate a peer presents in TLS (handshake v2): the DER/X.509 reader
 * (`src/handshake/_x509.ts`), the identity binding inside the certificate and its check
 * (`PeerCertificateCache.verify`), and both handshake sides given a hostile peer certificate.
 * Inputs are frozen real certificates mutated through their DER tree (`_der_mutate.ts`) and
 * byte by byte, plus random bytes.
 *
 * @module
 */

import { createPublicKey, X509Certificate } from "node:crypto";
import { NetworkError } from "../../src/errors.ts";
import { readCertificate } from "../../src/handshake/_x509.ts";
import { HandshakeDialer, HandshakeListener } from "../../src/handshake/handshake.ts";
import {
  IDENTITY_BINDING_OID,
  PeerCertificateCache,
  type VerifiedPeer,
} from "../../src/handshake/node_credentials.ts";
import { ALPN, dialerNode, listenerNode } from "../handshake/_util.ts";
import type { Prng } from "../_prng.ts";
import { type FuzzTarget, InvariantError } from "./_campaign.ts";
import { NODE_A_CERTIFICATE, NODE_B_CERTIFICATE, PLAIN_CERTIFICATE } from "./_certificates.ts";
import { mutateDer } from "./_der_mutate.ts";

/**
 * Largest certificate generated: a seed is about 6.8 KiB; room for thousands of repeated
 * extensions and deep nesting, below the supervisor's 64 KiB record of an input. (What a peer
 * can really send is bounded by TLS: BoringSSL refuses a certificate list above 100 KiB.)
 */
const MAX_CERTIFICATE_BYTES = 48 * 1024;

function check(ok: boolean, what: string): void {
  if (!ok) throw new InvariantError(what);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

const boundSeeds = () => [NODE_A_CERTIFICATE, NODE_B_CERTIFICATE];

/** What the bound seeds really carry: the TLS key each binding signs, and the peer. */
let knownPeers: Promise<{ spki: Uint8Array; peer: VerifiedPeer }[]> | undefined;
function known() {
  knownPeers ??= Promise.all(
    boundSeeds().map(async (der) => ({
      spki: readCertificate(der, IDENTITY_BINDING_OID).spki,
      peer: await new PeerCertificateCache({ maxEntries: 0 }).verify(der),
    })),
  );
  return knownPeers;
}

/**
 * An accepted certificate must be a real node's: the binding names that node, and the key TLS
 * proves possession of (the SPKI, as our reader and as Deno's X.509 parser see it) is the one
 * the node's identity signed. Anything else is a forged or transplanted binding.
 */
async function checkGenuine(der: Uint8Array, peer: VerifiedPeer): Promise<void> {
  const node = (await known()).find((k) => k.peer.peerId.equals(peer.peerId));
  check(node !== undefined, `accepted a binding of an unknown peer ${peer.peerId}`);
  check(equal(readCertificate(der, IDENTITY_BINDING_OID).spki, node!.spki), "SPKI not signed");
  check(equal(peer.kemPublicKey, node!.peer.kemPublicKey), "ML-KEM key not the node's");
  const theirs = referenceSpki(der);
  check(theirs === undefined || equal(theirs, node!.spki), "another SPKI for Deno's X.509");
}

/**
 * The key of a certificate as Deno's X.509 parser (node:crypto) reads it, as a canonical SPKI;
 * `undefined` when it refuses the certificate.
 */
function referenceSpki(der: Uint8Array): Uint8Array | undefined {
  try {
    return canonical(new X509Certificate(der).publicKey);
  } catch {
    return undefined;
  }
}

/** The key in SPKI bytes, encoded again as canonical DER; `undefined` when it holds none. */
function canonicalSpki(spki: Uint8Array): Uint8Array | undefined {
  try {
    return canonical(createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }));
  } catch {
    return undefined;
  }
}

function canonical(key: ReturnType<typeof createPublicKey>): Uint8Array {
  return new Uint8Array(key.export({ type: "spki", format: "der" }));
}

/** A ClientHello to `listenerNode` of each mode, made once. */
const clientHellos = new Map<boolean, Promise<Uint8Array>>();
function clientHello(pq: boolean): Promise<Uint8Array> {
  if (!clientHellos.has(pq)) {
    clientHellos.set(
      pq,
      new HandshakeDialer({
        credentials: dialerNode,
        alpn: ALPN,
        peerCertificate: listenerNode.certificate.der,
        pqEncryption: pq,
      }).start(),
    );
  }
  return clientHellos.get(pq)!;
}

/** What `run` returned, or the error it threw (an `InvariantError` goes on up). */
async function outcome<T>(run: () => Promise<T>): Promise<T | Error> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof InvariantError || !(e instanceof Error)) throw e;
    return e;
  }
}

/** The certificate targets. */
export const certificateTargets: FuzzTarget[] = [
  {
    name: "handshake/certificate",
    maxInputBytes: MAX_CERTIFICATE_BYTES,
    seeds: () => [...boundSeeds(), PLAIN_CERTIFICATE],
    mutate: mutateDer,
    run(input) {
      const { spki, extension } = readCertificate(input, IDENTITY_BINDING_OID);
      check(spki[0] === 0x30 && spki.byteLength >= 2, "the SPKI is not a SEQUENCE");
      check(extension === undefined || extension.byteLength < input.byteLength, "extension");
      // The key our reader finds must be the key an X.509 parser finds, or a certificate could
      // show TLS one key and the binding check another. Compared canonically: that parser is
      // lenient (BER lengths, odd tags) and re-encodes what it read.
      const theirs = referenceSpki(input);
      const ours = canonicalSpki(spki);
      check(
        theirs === undefined || ours === undefined || equal(theirs, ours),
        "Deno's X.509 finds another key",
      );
    },
  },
  {
    name: "handshake/certificate-binding",
    maxInputBytes: MAX_CERTIFICATE_BYTES,
    quickInputs: 300,
    seeds: boundSeeds,
    mutate: mutateDer,
    async run(input) {
      // No cache: every input is verified in full, signature included.
      const peer = await new PeerCertificateCache({ maxEntries: 0 }).verify(input);
      await checkGenuine(input, peer);
    },
  },
  {
    name: "handshake/peer-certificate",
    maxInputBytes: MAX_CERTIFICATE_BYTES,
    quickInputs: 200,
    seeds: boundSeeds,
    mutate: mutateDer,
    async run(input, rng: Prng) {
      // Both sides get `input` as the peer's certificate, as TLS handed it over: the dialer
      // checks it before its ClientHello, the listener before it answers one.
      const pqEncryption = rng.next() < 0.5;
      const options = { alpn: ALPN, peerCertificate: input, pqEncryption };
      const dialer = await outcome(() =>
        new HandshakeDialer({ ...options, credentials: dialerNode }).start()
      );
      const listener = await outcome(async () =>
        (await new HandshakeListener({ ...options, credentials: listenerNode })
          .receive(await clientHello(pqEncryption))).send!
      );
      // An untyped error of either side is the finding, not the other side's typed one.
      const errors = [dialer, listener].filter((e) => e instanceof Error);
      const untyped = errors.find((e) => !(e instanceof NetworkError));
      if (untyped !== undefined) throw untyped;
      check(
        errors.length !== 1,
        `one side accepted the certificate, the other refused it: ${dialer}, ${listener}`,
      );
      if (errors.length > 0) throw errors[0];
    },
  },
];
