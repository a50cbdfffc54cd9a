import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { Identity } from "../../src/identity/identity.ts";
import { createNode, NetworkNode } from "../../src/node/node.ts";
import { addressOf, loopbackNode, nextNodeEvent, untilPeers } from "./_util.ts";

Deno.test("createNode: a node given one bootstrap peer finds the others through the DHT", async () => {
  await using first = await loopbackNode();
  await using second = await loopbackNode({
    targetPeers: 1, // at its target with the first: it does not go looking for the third
    config: { bootstrapPeers: [addressOf(first)] },
  });
  await second.dht!.start(); // joined (start() returns the join under way) before the third exists
  await using third = await loopbackNode({ config: { bootstrapPeers: [addressOf(first)] } });
  await untilPeers(third, 2);
  const seen = new Map(third.peers().map((p) => [p.peerId.toString(), p]));
  assertEquals(seen.get(first.peerId.toString())?.foundBy, "bootstrap");
  assertEquals(seen.get(second.peerId.toString())?.foundBy, "dht");
  assert(third.peers().every((p) => p.path === "direct" && p.direction === "outbound"));
  await untilPeers(second, 2);
  const back = second.peers().find((p) => p.peerId.equals(third.peerId));
  assertEquals(back?.foundBy, "inbound");
  assert(first.dht !== undefined && first.nat !== undefined && first.relay !== undefined);
  assertEquals(first.mdns, undefined, "no mDNS on loopback");
});

Deno.test("createNode: services follow the config; off means undefined", async () => {
  await using node = await loopbackNode({
    config: { enableDht: false, enableNatTraversal: false, enableMdns: false },
  });
  assertEquals([node.dht, node.nat, node.relay, node.mdns], [
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
  assert(node.peerStore !== undefined && node.peerStore.path === undefined, "peers in memory");
});

Deno.test("createNode: bad config gives a typed error naming the field", async () => {
  const e = await assertRejects(
    () => loopbackNode({ config: { quicPort: -1 } }),
    InvalidConfigError,
    "'quicPort'",
  );
  assertEquals(e.field, "quicPort");
  const t = await assertRejects(
    () => loopbackNode({ targetPeers: 11, config: { maxConnections: 10 } }),
    InvalidConfigError,
    "'targetPeers' must be an integer from 0 to maxConnections (10)",
  );
  assertEquals(t.field, "targetPeers");
  await assertRejects(
    () => createNode({ dataDir: 7 as unknown as string }),
    InvalidConfigError,
    "'dataDir'",
  );
});

Deno.test("createNode: unreachable bootstrap peers are reported, the node runs on", async () => {
  // A bound UDP socket that never answers: the dials time out.
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  using _silent = { [Symbol.dispose]: () => silent.close() };
  const address = `127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
  const node = new NetworkNode({
    identity: Identity.generate(),
    config: {
      listenAddr: "127.0.0.1",
      quicPort: 0,
      bootstrapPeers: [address],
      connectionTimeoutMs: 1000,
    },
  });
  await using _node = node;
  const failed = nextNodeEvent(node, "service:failed");
  const dialFailed = nextNodeEvent(node, "dial:failed");
  await node.start();
  const { detail } = await failed;
  assertEquals([detail.service, detail.running], ["dht", true]);
  assert(node.dht !== undefined, "the DHT still serves");
  const dial = (await dialFailed).detail;
  assertEquals([dial.address, dial.foundBy], [address, "bootstrap"]);
  assert((dial.retryInMs ?? 0) >= 1000, `backs off: ${dial.retryInMs}`);
  // It joins once a peer is there.
  await using other = await loopbackNode();
  await node.connectPeer(addressOf(other));
  assertEquals(node.peers()[0].foundBy, "application");
});

Deno.test("NetworkNode: a lost peer is dialed again", async () => {
  await using a = await loopbackNode({ targetPeers: 1 });
  await using b = await loopbackNode({ targetPeers: 0 });
  await a.connectPeer(addressOf(b));
  const back = nextNodeEvent(a, "peer:connected", (e) => e.detail.peerId.equals(b.peerId));
  await b.disconnectPeer(a.peerId);
  const { detail } = await back;
  assertEquals(detail.direction, "outbound", "a dialed b again");
  assertEquals(detail.foundBy, "application", "keeps how it was found");
});

Deno.test("NetworkNode: close stops the services and the transport; idempotent", async () => {
  const node = await loopbackNode();
  await node.close();
  await node.close();
  await assertRejects(() => node.connectPeer("127.0.0.1:9"), NetworkError, "closed");
  await assertRejects(() => node.start(), NetworkError, "closed");
  await assertRejects(() => node.dht!.findPeer(node.peerId), NetworkError, "closed");
});

Deno.test("createNode: a STUN server that does not answer is reported; NAT traversal runs on", async () => {
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  using _silent = { [Symbol.dispose]: () => silent.close() };
  const stun = `127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
  await using node = await createNode({
    start: false,
    config: { listenAddr: "127.0.0.1", quicPort: 0, stunServers: [stun] },
    nat: { discoveryTimeoutMs: 300, stunRetransmit: { rto: 50, rc: 2, rm: 2 } },
  });
  const failed = nextNodeEvent(node, "service:failed");
  await node.start();
  const { detail } = await failed;
  assertEquals([detail.service, detail.running], ["nat", true]);
  assert(node.nat !== undefined && node.nat.nat === undefined, "running, NAT unknown");
});
