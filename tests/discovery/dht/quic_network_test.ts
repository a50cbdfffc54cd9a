/**
 * The DHT over real QUIC on loopback: 30 nodes bootstrapped from one find every node's
 * record and a provided key, refuse forged records, and connect to peers by id.
 *
 * @module
 */

import { assert, assertEquals, assertRejects } from "../../_assert.ts";
import { Identity } from "../../../src/identity/mod.ts";
import { NetworkError } from "../../../src/errors.ts";
import {
  contentKey,
  DhtProtocolError,
  encodePeerRecord,
  makeContact,
  QuicDhtRpc,
} from "../../../src/discovery/dht/mod.ts";
import {
  closeAll,
  makeNode,
  makeTransport,
  type QuicDhtNode,
  recordSignedByAnother,
} from "./_quic_net.ts";

const NODES = 30;
/**
 * k = 10 rather than the default 20: with 30 nodes, k = 20 makes a full mesh, and in one
 * process each connection's hybrid-signature handshake (about 55 ms of CPU) adds up to about
 * 45 s of CPU for the test; k = 10 still spreads every record over a third of the network.
 * The long request timeout absorbs CPU contention of all 30 nodes sharing one thread.
 */
const TUNING = { k: 10, requestTimeoutMs: 15_000 };

Deno.test("dht over QUIC: 30 nodes from one bootstrap find every record and provider, refuse forgeries, connect by id", async () => {
  const nodes: QuicDhtNode[] = [];
  const extra: Partial<QuicDhtNode>[] = [];
  const t0 = performance.now();
  const lap = (what: string, since: number) =>
    console.log(`  ${what}: ${(performance.now() - since).toFixed(0)} ms`);
  try {
    nodes.push(await makeNode(TUNING));
    const seed = nodes[0].address;
    for (let i = 1; i < NODES; i++) {
      nodes.push(await makeNode({ ...TUNING, bootstrapPeers: [seed] }));
    }
    lap(`${NODES} identities and transports`, t0);

    // Node 0 starts the DHT; the others join through it, a few at a time.
    let t = performance.now();
    await nodes[0].dht.start();
    for (let i = 1; i < NODES; i += 5) {
      await Promise.all(nodes.slice(i, i + 5).map((n) => n.dht.start()));
    }
    lap("bootstrap of 29 nodes through one", t);
    const sizes = nodes.map((n) => n.dht.routingTableSize);
    console.log(`  routing table sizes: min ${Math.min(...sizes)}, max ${Math.max(...sizes)}`);

    // Every node finds every other node's record, with the address it listens on.
    t = performance.now();
    let lookups = 0;
    for (const a of nodes) {
      await Promise.all(nodes.map(async (b) => {
        if (a === b) return;
        const record = await a.dht.findPeer(b.transport.peerId);
        lookups++;
        assert(record !== undefined, `${a.address} did not find ${b.address}`);
        assertEquals(record.peerId, b.transport.peerId.toString());
        assertEquals([...record.addresses], [b.address]);
      }));
    }
    lap(`${lookups} peer lookups, all found`, t);

    // Two nodes provide one key; every node finds both.
    t = performance.now();
    const key = contentKey("dag-vertex:0f1e2d3c");
    const providers = [nodes[7], nodes[19]];
    for (const p of providers) assert((await p.dht.provide(key)) > 0);
    const expected = providers.map((p) => p.transport.peerId.toString()).sort();
    await Promise.all(nodes.map(async (n) => {
      const found = await n.dht.findProviders(key);
      assertEquals(found.map((p) => p.providerId).sort(), expected, `at ${n.address}`);
      for (const p of found) {
        assertEquals([...p.addresses], [
          providers.find((q) => q.transport.peerId.toString() === p.providerId)!.address,
        ]);
      }
    }));
    assertEquals(await nodes[3].dht.findProviders(contentKey("nobody has this")), []);
    lap("provide twice, 30 provider lookups", t);

    // Mallory pushes forged records to every node: its own record for a peer id that is not
    // its own, a victim's record signed by Mallory, and the victim's genuine record with a
    // new address and a higher sequence number. Every node refuses all three.
    t = performance.now();
    const mallory = await makeTransport();
    const malloryRpc = new QuicDhtRpc(mallory);
    extra.push({ transport: mallory });
    try {
      const victim = nodes[11];
      const victimId = victim.transport.peerId.toString();
      const ghost = Identity.generate().peerId.toString();
      const malloryAddress = `127.0.0.1:${mallory.localAddr.port}`;
      const genuine = await nodes[0].dht.findPeer(victimId);
      assert(genuine !== undefined);
      const tampered = encodePeerRecord({
        ...genuine,
        addresses: [malloryAddress],
        seq: genuine.seq + 1,
      });
      const identity = Identity.generate();
      const forgeries: [Uint8Array, string][] = [
        [await recordSignedByAnother(ghost, identity, [malloryAddress]), "peer-id-mismatch"],
        [await recordSignedByAnother(victimId, identity, [malloryAddress]), "peer-id-mismatch"],
        [tampered, "bad-signature"],
      ];
      await Promise.all(nodes.map(async (n) => {
        const to = makeContact(n.transport.peerId.toString(), [n.address]);
        for (const [record, reason] of forgeries) {
          const e = await assertRejects(
            () => malloryRpc.putPeerRecord(to, record),
            DhtProtocolError,
          );
          assertEquals([e.reason, e.remoteReason], ["refused", reason]);
        }
      }));
      await Promise.all(nodes.map(async (n) => {
        if (n === victim) return;
        const record = await n.dht.findPeer(victimId);
        assertEquals(record?.addresses, [victim.address], `${n.address} believed a forgery`);
        assertEquals(await n.dht.findPeer(ghost), undefined);
      }));
    } finally {
      malloryRpc.close();
    }
    lap("90 forged records refused, victim still found everywhere", t);

    // A node that joins late connects by peer id to peers it is not connected to.
    t = performance.now();
    const late = await makeNode({ ...TUNING, bootstrapPeers: [seed] });
    extra.push(late);
    await late.dht.start();
    for (const target of [nodes[5], nodes[23], nodes[29]]) {
      await late.transport.disconnectPeer(target.transport.peerId);
      assert(!connected(late, target));
      const id = await late.dht.connect(target.transport.peerId.toString());
      assert(id.equals(target.transport.peerId) && connected(late, target));
    }
    // The transport itself resolves a PeerId through the service.
    await late.transport.disconnectPeer(nodes[13].transport.peerId);
    await late.transport.connectPeer(nodes[13].transport.peerId);
    assert(connected(late, nodes[13]));
    const stranger = Identity.generate().peerId;
    const e = await assertRejects(() => late.dht.connect(stranger), NetworkError);
    assertEquals(e.code, "ERR_UNKNOWN_PEER");
    lap("connect by peer id (4 peers, 1 unknown)", t);
  } finally {
    const tc = performance.now();
    await closeAll([...nodes, ...extra]);
    lap("close", tc);
    lap("total", t0);
  }
});

function connected(a: QuicDhtNode, b: QuicDhtNode): boolean {
  return a.transport.peers().some((p) => p.peerId.equals(b.transport.peerId));
}
