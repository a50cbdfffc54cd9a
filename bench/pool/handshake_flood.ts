/**
 * 500 handshake attempts from one source against a node: raw QUIC connections (QUIC and TLS
 * complete, the transport's identity handshake never starts) from one UDP socket in another
 * process, `--concurrency` (32) at a time. Meanwhile an existing peer pings the node; its p99 is compared with
 * the idle p99. The node runs in its own process; the existing peer (this process) dialed it,
 * so it counts toward the node's inbound-per-IP limit like the attacker (all on 127.0.0.1).
 *
 * Run: `deno run -A bench/pool/handshake_flood.ts [--attempts 500]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { child, node, sleep, summary } from "./_util.ts";
import type { PeerId, QuicTransport } from "../../mod.ts";

const { values } = parseArgs({
  options: {
    attempts: { type: "string", default: "500" },
    samples: { type: "string", default: "300" },
    concurrency: { type: "string", default: "32" },
  },
});
const attempts = Number(values.attempts);
const samples = Number(values.samples);
const concurrency = Number(values.concurrency);

const target = await child({ keepAliveIntervalSecs: 0 });
const peer = await node({ keepAliveIntervalSecs: 0 });
const remote = await peer.connectPeer(`127.0.0.1:${target.port}`);

async function pings(t: QuicTransport, to: PeerId, stop?: () => boolean): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; stop === undefined ? i < samples : !stop() || i < samples; i++) {
    out.push(await t.ping(to));
    await sleep(5);
  }
  return out;
}

const idle = summary(await pings(peer, remote));
const attacker = await child({ attack: attempts, target: target.port, concurrency });
let attackDone = false;
const attack = attacker.output.then((out) => {
  attackDone = true;
  return JSON.parse(out);
});
const loaded = summary(await pings(peer, remote, () => attackDone));
const tally = await attack;
await attacker.close();
console.log(JSON.stringify({
  bench: "handshake_flood",
  concurrency,
  attack: tally,
  idlePingMs: idle,
  floodPingMs: loaded,
  p99Ratio: Math.round((loaded.p99 / idle.p99) * 100) / 100,
  peerStillConnected: peer.peers().length === 1,
}));
await peer.close();
await target.close();
