/**
 * Consensus latency while a vertex flood saturates the bandwidth limit: p99 of the time from
 * `send` to the peer's acknowledgement for small consensus messages, idle and under a flood of
 * 64 KiB vertex messages kept queued far beyond the limit. The receiver runs in its own process.
 *
 * Run: `deno run -A bench/pool/priority_latency.ts [--mbit 20] [--samples 300]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { child, node, sleep, summary } from "./_util.ts";
import type { PeerId, QuicTransport } from "../../mod.ts";

const { values } = parseArgs({
  options: {
    mbit: { type: "string", default: "20" },
    samples: { type: "string", default: "300" },
  },
});
const bps = Number(values.mbit) * 1e6;
const samples = Number(values.samples);

const a = await node({ maxBandwidthBps: bps });
const b = await child({ maxBandwidthBps: Infinity });
const remote = await a.connectPeer(`127.0.0.1:${b.port}`);

async function consensusLatencies(t: QuicTransport, peer: PeerId): Promise<number[]> {
  const out: number[] = [];
  const data = new Uint8Array(256);
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    await t.send(peer, { type: "consensus", data });
    out.push(performance.now() - start);
    await sleep(10);
  }
  return out;
}

const idle = summary(await consensusLatencies(a, remote));

// The flood: keep 64 vertex messages of 64 KiB queued (4 MiB, 1.6 s at 20 Mbit/s) at all times.
let flooding = true;
let vertexBytes = 0;
const vertex = new Uint8Array(64 * 1024);
const flood = Promise.all(Array.from({ length: 64 }, async () => {
  while (flooding) {
    await a.send(remote, { type: "vertex", data: vertex });
    vertexBytes += vertex.byteLength;
  }
}));
await sleep(1000); // let the queue build up
const floodStart = performance.now();
const bytesAtStart = vertexBytes;
const loaded = summary(await consensusLatencies(a, remote));
const floodSeconds = (performance.now() - floodStart) / 1000;
const vertexMbit = ((vertexBytes - bytesAtStart) * 8) / floodSeconds / 1e6;
flooding = false;
await flood;

console.log(JSON.stringify({
  bench: "priority_latency",
  limitMbit: bps / 1e6,
  idleMs: idle,
  floodMs: loaded,
  p99Ratio: Math.round((loaded.p99 / idle.p99) * 100) / 100,
  vertexMbitDuringFlood: Math.round(vertexMbit * 100) / 100,
}));
await a.close();
await b.close();
