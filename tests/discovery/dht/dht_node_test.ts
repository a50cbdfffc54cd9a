import assert from "node:assert/strict";
import {
  contentKey,
  type DhtNode,
  DhtRecordError,
  makeContact,
  signPeerRecord,
} from "../../../src/discovery/dht/mod.ts";
import { NetworkError } from "../../../src/errors.ts";
import { HmacIdentity, runPeerLookups, SimNetwork } from "./_simulator.ts";

const isCode = (code: string) => (e: unknown) => e instanceof NetworkError && e.code === code;

Deno.test("incoming requests are rate limited per peer, and the bucket refills", async () => {
  const net = new SimNetwork({ node: { rateLimit: { requestsPerSecond: 10, burst: 3 } } });
  const node = net.addNode();
  const alice = makeContact("alice"), bob = makeContact("bob");
  for (let i = 0; i < 3; i++) node.handlePing(alice);
  assert.throws(() => node.handlePing(alice), isCode("ERR_LIMIT_EXCEEDED"));
  assert.throws(() => node.handleFindNode(alice, contentKey("x")), /limit of 3/);
  node.handlePing(bob); // other peers are unaffected
  await net.clock.advance(100); // one token back at 10 per second
  node.handlePing(alice);
  assert.throws(() => node.handlePing(alice), isCode("ERR_LIMIT_EXCEEDED"));
  node.close();
});

Deno.test("a node refuses forged, unsigned, stale and oversize peer records", async () => {
  const net = new SimNetwork({ seed: 9 });
  const node = net.addNode();
  const owner = new HmacIdentity(net.prng.bytes(32));
  const forger = new HmacIdentity(net.prng.bytes(32));
  net.registry.register(owner);
  net.registry.register(forger);
  const from = makeContact(owner.peerId);
  const now = net.clock.now();
  const fields = (seq: number) => ({
    peerId: owner.peerId,
    addresses: ["192.0.2.1:4433"],
    seq,
    expiresAt: now + 60_000,
  });
  const refusedWith = (reason: string) => (e: unknown) =>
    e instanceof DhtRecordError && e.reason === reason;

  await node.handlePutPeerRecord(from, await signPeerRecord(fields(5), owner));
  await assert.rejects(
    node.handlePutPeerRecord(from, await signPeerRecord(fields(4), owner)),
    refusedWith("stale"),
  );
  await assert.rejects(
    node.handlePutPeerRecord(from, await signPeerRecord(fields(6), forger)),
    refusedWith("peer-id-mismatch"),
  );
  const unsigned = await signPeerRecord(fields(7), { ...owner, sign: () => new Uint8Array(0) });
  await assert.rejects(node.handlePutPeerRecord(from, unsigned), refusedWith("unsigned"));
  const tampered = await signPeerRecord(fields(8), owner);
  tampered[tampered.length - 1] ^= 1;
  await assert.rejects(node.handlePutPeerRecord(from, tampered), refusedWith("bad-signature"));
  await assert.rejects(
    node.handlePutPeerRecord(from, new Uint8Array(13_000)),
    refusedWith("too-large"),
  );
  // The node still serves the good record, seq 5.
  const reply = node.handleGetPeerRecord(from, owner.peerId);
  assert.ok(reply.record !== undefined);
  assert.equal((await node.findPeer(owner.peerId))?.seq, 5);
  node.close();
});

Deno.test("provide and findProviders across a small network", async () => {
  const net = new SimNetwork({ seed: 2 });
  await net.grow(60);
  const key = contentKey("dataset.parquet");
  const [p1, p2, asker] = [net.nodes[5], net.nodes[40], net.nodes[59]];
  assert.ok((await net.clock.run(p1.provide(key))) >= 15);
  await net.clock.run(p2.provide(key));
  const found = await net.clock.run(asker.findProviders(key));
  assert.deepEqual(
    found.map((p) => p.providerId).sort(),
    [p1.contact.id, p2.contact.id].sort(),
  );
  assert.deepEqual(found.find((p) => p.providerId === p1.contact.id)?.addresses, [
    ...p1.contact.addresses,
  ]);
  assert.deepEqual(await net.clock.run(asker.findProviders(contentKey("nothing"))), []);
  // A node may not announce someone else as a provider.
  assert.throws(
    () =>
      asker.handleAddProvider(p1.contact, {
        key,
        providerId: p2.contact.id,
        addresses: [],
        expiresAt: net.clock.now() + 1000,
      }),
    (e: unknown) => e instanceof DhtRecordError && e.reason === "peer-id-mismatch",
  );
  for (const n of net.nodes) n.close();
});

Deno.test("findPeer finds live peers and returns undefined for unknown ones", async () => {
  const net = new SimNetwork({ seed: 4 });
  await net.grow(80);
  const run = await runPeerLookups(net, 100);
  assert.equal(run.successes, 100);
  const missing = await net.clock.run(net.nodes[0].lookupPeer("sim-nobody"));
  assert.equal(missing.record, undefined);
  assert.ok(missing.stats.queried >= 20);
  for (const n of net.nodes) n.close();
});

Deno.test("bootstrap fails with ERR_DHT when no contact answers", async () => {
  const net = new SimNetwork();
  const node = net.addNode();
  const ghost = makeContact("ghost", ["192.0.2.99:4433"]);
  await assert.rejects(net.clock.run(node.bootstrap([ghost])), (e: unknown) => {
    assert.ok(isCode("ERR_DHT")(e));
    assert.match((e as Error).message, /none of the 1 bootstrap contacts answered \(ghost\)/);
    return true;
  });
  node.close();
  assert.throws(() => node.handlePing(ghost), /closed/);
});

Deno.test("refresh and republish run when due on the virtual clock", async () => {
  const net = new SimNetwork({
    seed: 6,
    node: { refreshIntervalMs: 60_000, recordTtlMs: 600_000 },
  });
  await net.grow(40);
  const node: DhtNode = net.nodes[10];
  assert.equal(await net.clock.run(node.republish()), 0);
  assert.equal(await net.clock.run(node.refresh()), 0);
  await net.clock.advance(300_001);
  assert.ok(node.nextMaintenanceAt() <= net.clock.now());
  assert.ok((await net.clock.run(node.refresh())) > 0);
  const before = (await net.clock.run(node.findPeer(node.contact.id)))!.seq;
  assert.equal(await net.clock.run(node.republish()), 1);
  const own = (await net.clock.run(node.findPeer(node.contact.id)))!;
  assert.ok(own.seq > before, `seq ${own.seq} should be above ${before}`);
  assert.ok(own.expiresAt > net.clock.now() + 500_000);
  // The new record reached the k closest nodes.
  let holders = 0;
  for (const other of net.nodes) {
    if (other === node) continue;
    const reply = other.handleGetPeerRecord(net.nodes[0].contact, node.contact.id);
    if (reply.record !== undefined && (await other.findPeer(node.contact.id))?.seq === own.seq) {
      holders++;
    }
  }
  assert.ok(holders >= 15, `only ${holders} nodes hold the republished record`);
  for (const n of net.nodes) n.close();
});
