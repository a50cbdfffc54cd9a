/**
 * MdnsService: QuicTransport nodes with no configured peers find each other with mDNS,
 * connect, and drop each other on goodbye. Nodes are child processes in the network
 * namespaces of `_mdns_lab.ts` (nothing is sent on the host network); the in-process checks
 * (peer-id mismatch, peers the application connected, `enableMdns: false`, sanitizers) run in
 * `_mdns_service_inns_test.ts` inside a namespace.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Identity } from "../../src/identity/identity.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { MdnsService } from "../../src/discovery/mod.ts";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";
import { ADDR, type LabChild, labSkip, MdnsLab, parseJson } from "./_mdns_lab.ts";

const DENO = Deno.execPath();
const NODE = new URL("./_mdns_service_node.ts", import.meta.url).pathname;
const INNS_TEST = new URL("./_mdns_service_inns_test.ts", import.meta.url).pathname;

const skip = labSkip();
if (skip) console.warn(`mdns_service_test: namespace tests skipped: ${skip}`);

/** Starts a node in `ns` and waits for its `ready` line; returns it with its peer id. */
async function startNode(
  lab: MdnsLab,
  ns: string,
  label: string,
  args: string[] = [],
): Promise<{ node: LabChild; peerId: string; port: number }> {
  const address = ns === lab.nsA ? ADDR.a : ADDR.b;
  // The node's permissions as the README lists them; interfaces are given as addresses, so
  // no --allow-sys.
  const node = lab.spawn(ns, label, [
    DENO,
    "run",
    "--quiet",
    "--allow-net",
    `--allow-ffi=${quicheAddonPath()}`,
    NODE,
    address,
    ...args,
  ], { stdin: true });
  const ready = await node.waitEvent({ event: "ready" }, 20_000);
  return { node, peerId: ready.peerId as string, port: ready.port as number };
}

Deno.test("options are checked up front; enableMdns off and unbound transports", async () => {
  await using transport = new QuicTransport({
    identity: Identity.generate(),
    config: { listenAddr: "127.0.0.1", quicPort: 0 },
  });
  assert.throws(
    () => new MdnsService(transport, { dial: "yes" as unknown as boolean }),
    (e: unknown) => e instanceof InvalidConfigError && e.field === "dial",
  );
  assert.throws(
    () => new MdnsService({} as QuicTransport),
    (e: unknown) => e instanceof InvalidConfigError && e.field === "transport",
  );
  await assert.rejects(
    () => new MdnsService(transport).start(),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_ENDPOINT_CLOSED",
    "the transport must be bound first",
  );
  await transport.bindAndListen();
  await assert.rejects(
    () => new MdnsService(transport).start(),
    (e: unknown) =>
      e instanceof NetworkError && e.code === "ERR_MDNS" && /127\.0\.0\.1/.test(e.message),
    "a loopback transport cannot be reached by peers on the link",
  );
});

Deno.test({
  name: "two nodes with no configured peers find and connect each other; goodbye drops them",
  ignore: skip !== undefined,
  fn: async () => {
    await using lab = await MdnsLab.create();
    const t0 = performance.now();
    const a = await startNode(lab, lab.nsA, "node a");

    // Hostile packets before the peer appears (one service-level check; the discovery tests
    // cover every kind). Datagrams on the veth arrive in order, so by the time A discovers B
    // it has handled all of them.
    const sent = await lab.sendGarbage();

    const b = await startNode(lab, lab.nsB, "node b");
    const tStarted = performance.now();
    // Both dial (each discovers the other); the transport keeps one connection.
    for (const [self, other] of [[a, b], [b, a]]) {
      const found = await self.node.waitEvent(
        { event: "discovered", peerId: other.peerId },
        10_000,
      );
      const hostname = self === a ? ADDR.b : ADDR.a;
      assert.deepEqual(found.addresses, [{ hostname, port: other.port }]);
      assert.equal(found.version, "1");
      await self.node.waitEvent({ event: "connected", peerId: other.peerId }, 10_000);
    }
    const tConnected = performance.now();

    const s = await lab.stats(a.node);
    const d = s.discovery as Record<string, number> & { droppedBy: Record<string, number> };
    assert.equal(d.droppedBy.malformed, sent.malformed, JSON.stringify(s));
    assert.equal(d.droppedBy.oversized, sent.oversized, JSON.stringify(s));
    assert.equal(d.droppedBy.invalid, sent.invalid, JSON.stringify(s));
    assert.equal(d.peers, 1, "only the real peer is known: " + JSON.stringify(s));
    assert.equal(s.peerIdMismatches, 0, JSON.stringify(s));
    assert.equal(s.failures, 0, JSON.stringify(s));
    assert.ok((s.dials as number) <= 1, "nothing but B was dialed: " + JSON.stringify(s));
    assert.ok(!a.node.lines.some((l) => parseJson(l)?.event === "dial:failed"), a.node.dump());

    // B closes (goodbye first, then its transport); A hears the goodbye and forgets B.
    await b.node.send("close");
    await b.node.waitEvent({ event: "closed" }, 5000);
    assert.equal((await b.node.waitExit(5000)).code, 0, "B's process ends by itself after close");
    await a.node.waitEvent({ event: "expired", peerId: b.peerId }, 5000);
    await a.node.waitEvent({ event: "disconnected", peerId: b.peerId }, 5000);
    const tGone = performance.now();
    assert.equal(((await lab.stats(a.node)).discovery as Record<string, number>).peers, 0);
    console.log(
      `two nodes: A ready ${(tStarted - t0).toFixed(0)} ms before B; connected both ways ` +
        `${(tConnected - tStarted).toFixed(0)} ms after B was ready; B gone at A ` +
        `${(tGone - tConnected).toFixed(0)} ms after close was asked`,
    );
  },
});

Deno.test({
  name: "the goodbye alone (transport still up) makes the dialing node disconnect the peer",
  ignore: skip !== undefined,
  fn: async () => {
    await using lab = await MdnsLab.create();
    // Two nodes in one namespace (multicast loopback); only A dials, so A owns the connection.
    const a = await startNode(lab, lab.nsA, "node a");
    const b = await startNode(lab, lab.nsA, "node b", ["--no-dial"]);
    await a.node.waitEvent({ event: "connected", peerId: b.peerId }, 10_000);
    const bConnected = await b.node.waitEvent({ event: "connected", peerId: a.peerId }, 10_000);
    assert.equal(bConnected.direction, "inbound");
    assert.equal((await lab.stats(b.node)).dials, 0, "B only browses");

    const t0 = performance.now();
    await b.node.send("close-mdns");
    await b.node.waitEvent({ event: "mdns-closed" }, 5000);
    const expired = await a.node.waitEvent({ event: "expired", peerId: b.peerId }, 5000);
    assert.equal(expired.disconnect, true, "A connected B because of mDNS");
    // B's transport is still running: the disconnect comes from A (application code 0).
    const bSaw = await b.node.waitEvent({ event: "disconnected", peerId: a.peerId }, 5000);
    assert.equal(bSaw.errorCode, 0, JSON.stringify(bSaw));
    await a.node.waitEvent({ event: "disconnected", peerId: b.peerId }, 5000);
    const s = await lab.stats(a.node);
    assert.equal(s.dropped, 1, JSON.stringify(s));
    assert.equal(s.managed, 0, JSON.stringify(s));
    console.log(`goodbye to disconnect at the peer: ${(performance.now() - t0).toFixed(0)} ms`);

    await b.node.send("close");
    assert.equal((await b.node.waitExit(5000)).code, 0, b.node.dump());
    await a.node.send("close");
    assert.equal((await a.node.waitExit(5000)).code, 0, a.node.dump());
  },
});

Deno.test({
  name: "in-process service checks under Deno's sanitizers (run inside a namespace)",
  ignore: skip !== undefined,
  fn: async () => {
    await using lab = await MdnsLab.create();
    const { status, run } = await lab.testInside(INNS_TEST);
    assert.equal(status.code, 0, run.dump());
    assert.ok(run.lines.some((l) => /ok \| \d+ passed \| 0 failed/.test(l)), run.dump());
  },
});
