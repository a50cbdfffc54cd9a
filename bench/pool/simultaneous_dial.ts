/**
 * Simultaneous dials: in each round two fresh nodes dial each other at the same moment; the
 * round passes when both end with exactly one connection, in matching directions, that carries
 * a message each way, and still one after a short settle.
 *
 * Run: `deno run -A bench/pool/simultaneous_dial.ts [--rounds 50]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { addr, node, sleep, summary } from "./_util.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "50" } } });
const rounds = Number(values.rounds);
let passed = 0;
const times: number[] = [];
const failures: string[] = [];
for (let round = 0; round < rounds; round++) {
  const a = await node();
  const b = await node();
  try {
    const start = performance.now();
    const [toB, toA] = await Promise.all([a.connectPeer(addr(b)), b.connectPeer(addr(a))]);
    times.push(performance.now() - start);
    const received = Promise.all([a.messages().next(), b.messages().next()]);
    await a.send(toB, { type: "consensus", data: new Uint8Array([1]) });
    await b.send(toA, { type: "consensus", data: new Uint8Array([2]) });
    await received;
    await sleep(100);
    const [pa, pb] = [a.peers(), b.peers()];
    if (
      pa.length === 1 && pb.length === 1 &&
      (pa[0].direction === "outbound") === (pb[0].direction === "inbound")
    ) {
      passed++;
    } else {
      failures.push(`round ${round}: ${pa.length}/${pb.length} connections`);
    }
  } catch (e) {
    failures.push(`round ${round}: ${e}`);
  } finally {
    await a.close();
    await b.close();
  }
}
console.log(JSON.stringify({
  bench: "simultaneous_dial",
  rounds,
  exactlyOneConnection: passed,
  connectMs: summary(times),
  failures,
}));
