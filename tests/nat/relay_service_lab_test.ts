/**
 * Issue 9 at the transport level, in the NAT lab: two `QuicTransport` nodes behind symmetric
 * NATs (where hole punching cannot work) find each other through a public node both are
 * connected to, swap relayed addresses with `RelayService` and connect through coturn in
 * `pub`, with path `relay`, 20 times in a row with fresh identities and allocations, each time
 * exchanging 10 MiB (SHA-256 compared on both sides). Also: wrong credentials fail with
 * `ERR_TURN_AUTH`, and an allocation outliving its first lifetime is refreshed and keeps
 * working. Prints throughput and RTT through the relay.
 */
import assert from "node:assert/strict";
import { LAB, labSkipReason, NatLab } from "../_netlab.ts";
import { ChildNode } from "./_child_node.ts";
import { startTurnServer, TURN_USER } from "./_turn_server.ts";

const ignore = labSkipReason() !== undefined;
const CHILD = new URL("./_relay_service_child.ts", import.meta.url).pathname;
const TRIES = 20;
const BYTES = 10 * 1024 * 1024;
const TURN = [{ address: `${LAB.server1}:3478`, ...TURN_USER }];

/** A public node in `pub` (forwarding only) and one node behind each NAT, A dialing C and B. */
async function startNodes(a: ChildNode, b: ChildNode, lifetime?: number) {
  const ra = await a.request({ cmd: "start", listen: "0.0.0.0", turnServers: TURN, lifetime });
  const rb = await b.request({ cmd: "start", listen: "0.0.0.0", turnServers: TURN, lifetime });
  return { a: ra.peerId as string, b: rb.peerId as string, ra, rb };
}

Deno.test({
  name: `NAT lab (sym/sym): RelayService connects over TURN, ${TRIES} of ${TRIES}, 10 MiB intact`,
  ignore,
  fn: async () => {
    await using lab = await NatLab.create({ modeA: "sym", modeB: "sym" });
    await lab.startCoturn();
    await using c = new ChildNode(lab.ns.pub, CHILD);
    await using a = new ChildNode(lab.ns.hA, CHILD);
    await using b = new ChildNode(lab.ns.hB, CHILD);
    const rc = await c.request({ cmd: "start", listen: LAB.server2, turnServers: [] });
    const cAddress = `${LAB.server2}:${rc.port}`;
    const results = [];
    for (let i = 0; i < TRIES; i++) {
      const ids = await startNodes(a, b);
      await a.request({ cmd: "dial", address: cAddress });
      await b.request({ cmd: "dial", address: cAddress });
      const r = await a.request({ cmd: "relay", peer: ids.b, via: rc.peerId });
      assert.equal(r.path, "relay", `try ${i + 1}: path ${r.path}`);
      const x = await a.request({ cmd: "exchange", peer: ids.b, bytes: BYTES, pings: 50 }, 60_000);
      const got = await b.request({ cmd: "received" });
      assert.equal(got.hash, x.sent, `try ${i + 1}: B did not get A's 10 MiB intact`);
      assert.equal(x.back, x.sent, `try ${i + 1}: the 10 MiB did not come back intact`);
      assert.equal(x.path, "relay");
      results.push({ connectMs: r.connectMs as number, ...x } as {
        connectMs: number;
        echoMs: number;
        rttP50: number;
        rttP99: number;
      });
      await a.request({ cmd: "close" });
      await b.request({ cmd: "close" });
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const mbps = results.map((r) => (2 * 8 * BYTES) / (r.echoMs / 1000) / 1e6);
    console.log(
      `[relay service lab] ${results.length}/${TRIES} connected with path relay, 10 MiB ` +
        `echoed intact each (SHA-256 on both sides); relay.connect median ${
          median(results.map((r) => r.connectMs)).toFixed(1)
        } ms (signalling + QUIC + PQ handshake); request echo median ${
          median(mbps).toFixed(0)
        } Mbit/s both ways (min ${Math.min(...mbps).toFixed(0)}, max ${
          Math.max(...mbps).toFixed(0)
        }); ping RTT p50 median ${median(results.map((r) => r.rttP50)).toFixed(2)} ms, p99 ` +
        `median ${median(results.map((r) => r.rttP99)).toFixed(2)} ms`,
    );
    assert.equal(results.length, TRIES);
  },
});

Deno.test({
  name: "NAT lab (sym/sym): RelayService: wrong credentials give ERR_TURN_AUTH; an allocation " +
    "outliving its first lifetime is refreshed and keeps working",
  ignore,
  fn: async () => {
    await using lab = await NatLab.create({ modeA: "sym", modeB: "sym" });
    const lifetime = 6;
    await using _turn = await startTurnServer({
      ip: LAB.server1,
      port: 3478,
      netns: lab.ns.pub,
      extraArgs: [`--max-allocate-lifetime=${lifetime}`],
    });
    await using c = new ChildNode(lab.ns.pub, CHILD);
    await using a = new ChildNode(lab.ns.hA, CHILD);
    await using b = new ChildNode(lab.ns.hB, CHILD);

    const wrong = await a.send({
      cmd: "start",
      listen: "0.0.0.0",
      turnServers: [{ ...TURN[0], password: "not-the-secret" }],
    });
    assert.equal(wrong.code, "ERR_TURN_AUTH", `wrong credentials: ${JSON.stringify(wrong)}`);

    const rc = await c.request({ cmd: "start", listen: LAB.server2, turnServers: [] });
    // Asked for and capped by coturn (which raises short requests to its maximum).
    const ids = await startNodes(a, b, lifetime);
    assert.equal(ids.ra.lifetime, lifetime);
    await a.request({ cmd: "dial", address: `${LAB.server2}:${rc.port}` });
    await b.request({ cmd: "dial", address: `${LAB.server2}:${rc.port}` });
    const r = await a.request({ cmd: "relay", peer: ids.b, via: rc.peerId });
    assert.equal(r.path, "relay");
    const o = await a.request({ cmd: "outlive", peer: ids.b }, 4 * lifetime * 1000);
    assert.equal(o.back, o.sent, "1 MiB after the first lifetime came back intact");
    assert.equal((await b.request({ cmd: "received" })).hash, o.sent);
    assert.equal(o.path, "relay");
    assert.ok((o.pastFirstExpiryMs as number) > 0, "the first lifetime is over");
    console.log(
      `[relay service lab] allocation of ${lifetime} s refreshed; ${o.pings} pings over ${
        (o.elapsedMs as number).toFixed(0)
      } ms without a failure, then 1 MiB intact ${
        (o.pastFirstExpiryMs as number).toFixed(0)
      } ms after the first lifetime ended; next expiry in ${
        ((o.expiresIn as number) / 1000).toFixed(1)
      } s`,
    );
  },
});
