/**
 * Gossip against plain flooding on a simulated network of many nodes in virtual time
 * (`tests/gossip/_simulator.ts`): a random graph (each node dials `--dials` others), latency
 * from the nodes' distance on a plane (5-100 ms), `--loss` of the frames lost, `--fail` of the
 * nodes failing at the middle of the publish window (peers notice after 5 s), validation
 * taking `--validation-ms` per hop. Prints the two side by side as a markdown table.
 *
 * Run: deno run -A bench/gossip/gossip_simulation.ts [--nodes 1000] [--messages 100]
 *      [--dials 10] [--loss 0.05] [--fail 0.1] [--validation-ms 8] [--seed 1]
 *      [--router '{"unchokedDegree":4}']
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatReports, simulate } from "../../tests/gossip/_simulator.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "1000" },
    messages: { type: "string", default: "100" },
    dials: { type: "string", default: "10" },
    loss: { type: "string", default: "0.05" },
    fail: { type: "string", default: "0.1" },
    "validation-ms": { type: "string", default: "8" },
    seed: { type: "string", default: "1" },
    router: { type: "string", default: "{}" },
  },
});
const options = {
  nodes: Number(values.nodes),
  dialsPerNode: Number(values.dials),
  messages: Number(values.messages),
  messageBytes: 1024,
  failShare: Number(values.fail),
  lossRate: Number(values.loss),
  latencyMs: [5, 100] as [number, number],
  validationMs: Number(values["validation-ms"]),
  detectionMs: 5000,
  warmupMs: 3000,
  publishWindowMs: 20_000,
  drainMs: 10_000,
  seed: Number(values.seed),
  router: JSON.parse(values.router),
};
console.log(
  `${options.nodes} nodes, ${options.messages} messages of ${options.messageBytes} bytes over ` +
    `${options.publishWindowMs / 1000} s, ${options.failShare * 100}% failing mid-run, ` +
    `${options.lossRate * 100}% loss, validation ${options.validationMs} ms, seed ${options.seed}`,
);
const reports = [];
for (const protocol of ["gossip", "flood"] as const) {
  const started = performance.now();
  reports.push(simulate(protocol, options));
  console.log(`${protocol}: ${((performance.now() - started) / 1000).toFixed(1)} s wall time`);
}
console.log("\n" + formatReports(reports));
