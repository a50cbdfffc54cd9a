/**
 * Simulates a Kademlia DHT of many nodes on a virtual clock and prints the distribution of
 * lookup hops, before and after a share of the nodes vanish.
 *
 * Run: deno run -A bench/discovery/dht_simulation.ts [--nodes 1000] [--lookups 1000]
 *      [--gone 0.2] [--seed 1]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  formatHopTable,
  runPeerLookups,
  SimNetwork,
} from "../../tests/discovery/dht/_simulator.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "1000" },
    lookups: { type: "string", default: "1000" },
    gone: { type: "string", default: "0.2" },
    seed: { type: "string", default: "1" },
  },
});
const nodes = Number(values.nodes);
const lookups = Number(values.lookups);
const gone = Number(values.gone);
const seed = Number(values.seed);

const started = performance.now();
const net = new SimNetwork({ seed });
await net.grow(nodes);
const sizes = net.nodes.map((n) => n.table.size);
console.log(
  `${nodes} nodes joined in ${((performance.now() - started) / 1000).toFixed(1)} s; routing ` +
    `table size median ${sizes.sort((a, b) => a - b)[sizes.length >> 1]}, ` +
    `${net.messages} requests`,
);

const healthy = await runPeerLookups(net, lookups);
console.log("\n" + formatHopTable(`All ${nodes} nodes online`, healthy));

const victims = [...net.nodes];
for (let i = 0; i < Math.round(gone * nodes); i++) {
  const at = net.prng.int(0, victims.length - 1);
  net.kill(victims.splice(at, 1)[0]);
}
const degraded = await runPeerLookups(net, lookups);
console.log(
  "\n" + formatHopTable(`${Math.round(gone * 100)}% of nodes gone without notice`, degraded),
);
console.log(`\nTotal ${((performance.now() - started) / 1000).toFixed(1)} s wall time`);
