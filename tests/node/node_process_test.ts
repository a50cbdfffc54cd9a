/**
 * The node as users run it: `examples/quic_node.ts` processes on loopback.
 *
 * @module
 */

import { assert, assertEquals } from "../_assert.ts";
import { LOOPBACK_FLAGS as LOOPBACK, NodeProcess } from "./_node_process.ts";

Deno.test("quic_node: three terminals; node 3 given only node 1 connects node 2, its broadcast reaches both", async () => {
  await using node1 = new NodeProcess("node1", LOOPBACK);
  await node1.listening();
  await using node2 = new NodeProcess("node2", [...LOOPBACK, "--peer", node1.address]);
  await node2.until("connected to node1", () => node2.peers.has(node1.peerId), 30_000);
  await using node3 = new NodeProcess("node3", [
    ...LOOPBACK,
    "--peer",
    node1.address,
    "--broadcast",
    "1",
    "--wait-peers",
    "2",
  ]);
  await node3.listening();
  await node3.until("holding both peers", () => node3.peers.size === 2, 30_000);
  assertEquals(node3.peers.get(node1.peerId)?.foundBy, "bootstrap");
  // Node 3 finds node 2 in the DHT, unless node 2 (below its target, looking up peers in the
  // DHT too) found node 3 first and dialed it.
  const viaDht = node3.peers.get(node2.peerId)?.foundBy;
  assert(viaDht === "dht" || viaDht === "inbound", `found by ${viaDht}`);
  assert([...node3.peers.values()].every((e) => e.path === "direct"));
  const got = (node: NodeProcess) => () =>
    node.events.some((e) => e.event === "message" && e.from === node3.peerId);
  await node1.until("receiving node3's broadcast", got(node1), 30_000);
  await node2.until("receiving node3's broadcast", got(node2), 30_000);
  await node3.until(
    "reporting its broadcast",
    () => node3.events.some((e) => e.event === "broadcast"),
    30_000,
  );
  const broadcast = node3.events.find((e) => e.event === "broadcast");
  assertEquals([broadcast?.ok, broadcast?.failed], [2, 0]);
});

Deno.test("quic_node: a node killed and restarted with its data directory reconnects without bootstrap peers", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "quic_node_restart_" });
  try {
    await using other = new NodeProcess("other", LOOPBACK);
    await other.listening();
    const first = new NodeProcess(
      "first run",
      [...LOOPBACK, "--data-dir", dataDir, "--peer", other.address],
      { dataDir },
    );
    try {
      await first.listening();
      await first.until("connected", () => first.peers.has(other.peerId), 30_000);
    } finally {
      await first.kill("SIGKILL");
    }
    await using second = new NodeProcess(
      "second run",
      [...LOOPBACK, "--data-dir", dataDir],
      { dataDir },
    );
    await second.listening();
    await second.until("reconnected", () => second.peers.has(other.peerId), 30_000);
    assertEquals(second.peerId, first.peerId, "same identity from the data directory");
    assertEquals(second.peers.get(other.peerId)?.foundBy, "peer-store");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("quic_node: 20 nodes on loopback from one bootstrap node converge, each holding min(targetPeers, 19) peers", async () => {
  const count = 20;
  const targetPeers = 20; // the default
  const want = Math.min(targetPeers, count - 1);
  // Default limits: loopback is exempt from the per-IP count and handshake rates.
  const flags = LOOPBACK;
  const nodes: NodeProcess[] = [];
  try {
    nodes.push(new NodeProcess("node0", flags));
    await nodes[0].listening(60_000);
    for (let i = 1; i < count; i++) {
      nodes.push(new NodeProcess(`node${i}`, [...flags, "--peer", nodes[0].address]));
    }
    const started = performance.now();
    await Promise.all(
      nodes.map((n) => n.until(`holding ${want} peers`, () => n.peers.size >= want, 300_000)),
    ).catch((e) => {
      // Where each node stands, and why the laggards' dials failed.
      const lines = nodes.map((n) => {
        const errors = n.events.filter((e) => e.event === "dial-failed").slice(-3);
        return `${n.name}: ${n.peers.size} peers; last dial failures: ${
          errors.map((e) => `${e.address} (${e.foundBy}): ${e.error}`).join(" | ")
        }`;
      });
      throw new Error(`${e.message}\n${lines.join("\n")}`);
    });
    await Promise.all(nodes.map((n) => n.listening(60_000)));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${count} nodes converged to ${want} peers each in ${seconds} s`);
    const ids = new Set(nodes.map((n) => n.peerId));
    for (const n of nodes) {
      assert([...n.peers.keys()].every((id) => ids.has(id)), `${n.name} holds a stranger`);
    }
  } finally {
    await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
  }
});
