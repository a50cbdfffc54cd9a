/**
 * Fixtures for the handshake tests: identities and node credentials made once per run,
 * deterministic nonces, and a driver that runs a dialer and a listener against each other in
 * memory.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import {
  type HandshakeDialer,
  type HandshakeListener,
  type HandshakeResult,
  NodeCredentials,
} from "../../src/handshake/mod.ts";
import { Identity } from "../../src/identity/mod.ts";

export const dialerIdentity: Identity = Identity.fromSeeds({
  ed25519Seed: new Uint8Array(32).fill(1),
  mlDsa65Seed: new Uint8Array(32).fill(2),
});
export const listenerIdentity: Identity = Identity.fromSeeds({
  ed25519Seed: new Uint8Array(32).fill(3),
  mlDsa65Seed: new Uint8Array(32).fill(4),
});

/** This run's credentials of the dialer and the listener (their certificates bind them). */
export const dialerNode: NodeCredentials = await NodeCredentials.create(dialerIdentity);
export const listenerNode: NodeCredentials = await NodeCredentials.create(listenerIdentity);
export const ALPN = "cretoai/1";

/** A reproducible stand-in for the system's random source: SHA-256 in counter mode. */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let at = 0; at < n; at += 32) {
      const block = sha256(new TextEncoder().encode(`${seed}/${counter++}`));
      out.set(block.subarray(0, Math.min(32, n - at)), at);
    }
    return out;
  };
}

/** Options for a dialer and a listener that see each other's certificates (no relay). */
export function pairOptions(pqEncryption: boolean, seed = "seed") {
  return {
    dialer: {
      credentials: dialerNode,
      alpn: ALPN,
      peerCertificate: listenerNode.certificate.der,
      pqEncryption,
      randomBytes: seededRandom(`${seed}/dialer`),
    },
    listener: {
      credentials: listenerNode,
      alpn: ALPN,
      peerCertificate: dialerNode.certificate.der,
      pqEncryption,
      randomBytes: seededRandom(`${seed}/listener`),
    },
  };
}

/** The messages and results of one complete handshake. */
export interface Run {
  clientHello: Uint8Array;
  serverHello: Uint8Array;
  clientFinish: Uint8Array;
  dialer: HandshakeResult;
  listener: HandshakeResult;
}

/** Runs a handshake to completion, failing loudly if any step does not do what it should. */
export async function run(dialer: HandshakeDialer, listener: HandshakeListener): Promise<Run> {
  const clientHello = await dialer.start();
  const s1 = await listener.receive(clientHello);
  if (s1.send === undefined || s1.done !== undefined) throw new Error("expected a ServerHello");
  const s2 = await dialer.receive(s1.send);
  if (s2.send === undefined || s2.done === undefined) throw new Error("expected ClientFinish");
  const s3 = await listener.receive(s2.send);
  if (s3.send !== undefined || s3.done === undefined) throw new Error("expected listener done");
  return {
    clientHello,
    serverHello: s1.send,
    clientFinish: s2.send,
    dialer: s2.done,
    listener: s3.done,
  };
}
