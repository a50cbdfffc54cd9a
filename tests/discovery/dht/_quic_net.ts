/**
 * Helpers of the DHT-over-QUIC tests: DHT nodes on loopback transports, and forged records.
 *
 * @module
 */

import { Identity } from "../../../src/identity/mod.ts";
import { QuicTransport } from "../../../src/transport/transport.ts";
import {
  DhtService,
  type DhtServiceOptions,
  identityRecordSigner,
  signPeerRecord,
} from "../../../src/discovery/dht/mod.ts";

/**
 * Loopback settings: every node shares 127.0.0.1, so the per-IP inbound limit is lifted.
 * `pqEncryption` is off for speed: it only seals frames inside TLS, and DHT messages, the
 * handshake's peer authentication and the records' hybrid signatures are the same with it on.
 * No keep-alive: tests are short, and no interval must outlive them. (A variable, not a
 * literal, so that options newer than a given transport are simply ignored.)
 */
const LOOPBACK = {
  listenAddr: "127.0.0.1",
  quicPort: 0,
  pqEncryption: false,
  keepAliveIntervalSecs: 0,
  maxInboundPerIp: Infinity,
  maxPendingHandshakes: Infinity,
};

/** A bound transport and, once started, its DHT service. */
export interface QuicDhtNode {
  identity: Identity;
  transport: QuicTransport;
  dht: DhtService;
  address: string;
}

/** Binds a transport on loopback with a fresh identity; the DHT service is created, not started. */
export async function makeNode(
  options: Partial<Omit<DhtServiceOptions, "transport" | "identity">> = {},
  identity: Identity = Identity.generate(),
): Promise<QuicDhtNode> {
  const transport = new QuicTransport({ identity, config: LOOPBACK });
  try {
    const { port } = await transport.bindAndListen();
    const dht = new DhtService(transport, { identity, ...options });
    return { identity, transport, dht, address: `127.0.0.1:${port}` };
  } catch (e) {
    await transport.close();
    throw e;
  }
}

/** A bare bound transport on loopback (no DHT service). */
export async function makeTransport(identity = Identity.generate()): Promise<QuicTransport> {
  const transport = new QuicTransport({ identity, config: LOOPBACK });
  await transport.bindAndListen().catch(async (e) => {
    await transport.close();
    throw e;
  });
  return transport;
}

/** Closes services, then transports; never throws. */
export async function closeAll(nodes: readonly Partial<QuicDhtNode>[]): Promise<void> {
  await Promise.allSettled(nodes.map((n) => n.dht?.close()));
  await Promise.allSettled(nodes.map((n) => n.transport?.close()));
}

/** A peer record that claims `peerId` but is signed by `signer` (another identity). */
export function recordSignedByAnother(
  peerId: string,
  signer: Identity,
  addresses: string[],
  seq = Date.now() + 1_000_000,
): Promise<Uint8Array> {
  return signPeerRecord(
    { peerId, addresses, seq, expiresAt: Date.now() + 3_600_000 },
    identityRecordSigner(signer),
  );
}
