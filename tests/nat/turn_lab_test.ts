/**
 * Issue 9 in the NAT lab: two nodes behind symmetric NATs (where hole punching cannot work)
 * connect through coturn in `pub` with QUIC over the relay, 20 times in a row, each time with
 * fresh allocations, and echo 10 MiB intact. Prints throughput and RTT through the relay.
 */
import assert from "node:assert/strict";
import { LAB, labSkipReason, NatLab } from "../_netlab.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { ChildNode } from "./_child_node.ts";

const ignore = labSkipReason() !== undefined;
const CHILD = new URL("./_relay_child.ts", import.meta.url).pathname;
const TRIES = 20;
const BYTES = 10 * 1024 * 1024;

Deno.test({
  name: `NAT lab (sym/sym): QUIC through TURN, ${TRIES} of ${TRIES} tries, 10 MiB intact`,
  ignore,
  fn: async () => {
    await using lab = await NatLab.create({ modeA: "sym", modeB: "sym" });
    await lab.startCoturn();
    const server: UdpAddress = { hostname: LAB.server1, port: 3478 };
    await using a = new ChildNode(lab.ns.hA, CHILD);
    await using b = new ChildNode(lab.ns.hB, CHILD);
    const results = [];
    for (let i = 0; i < TRIES; i++) {
      const rb = await b.request({ cmd: "alloc", server });
      const ra = await a.request({ cmd: "alloc", server });
      // The server sees each node at its router's WAN address: both are behind NAT.
      assert.equal((ra.mapped as UdpAddress).hostname, LAB.rAWan);
      assert.equal((rb.mapped as UdpAddress).hostname, LAB.rBWan);
      await b.request({ cmd: "peer", peer: ra.relayed });
      const r = await a.request({ cmd: "connect", peer: rb.relayed, bytes: BYTES, rtts: 50 });
      assert.equal(r.path, "relay");
      assert.equal(r.intact, true, `try ${i + 1}: 10 MiB not intact`);
      results.push(r as { connectMs: number; echoMs: number; rttP50: number; rttP99: number });
      await a.request({ cmd: "close" });
      await b.request({ cmd: "close" });
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const mbps = results.map((r) => (2 * 8 * BYTES) / (r.echoMs / 1000) / 1e6);
    console.log(
      `[turn lab] ${results.length}/${TRIES} connected over relay, 10 MiB echo intact each; ` +
        `connect median ${median(results.map((r) => r.connectMs)).toFixed(1)} ms; echo ` +
        `median ${median(mbps).toFixed(0)} Mbit/s both ways (min ${
          Math.min(...mbps).toFixed(0)
        }, max ${Math.max(...mbps).toFixed(0)}); 256 B RTT p50 median ${
          median(results.map((r) => r.rttP50)).toFixed(2)
        } ms, p99 median ${median(results.map((r) => r.rttP99)).toFixed(2)} ms`,
    );
    assert.equal(results.length, TRIES);
  },
});
