/**
 * Gossip against flooding on a simulated network (`_simulator.ts`): 300 nodes, 10% of them
 * failing mid-run, 5% of frames lost, validation taking 8 ms a hop (a hybrid signature check
 * measured here). The full 1,000-node table: `deno run -A bench/gossip/gossip_simulation.ts`.
 */
import { assert } from "../_assert.ts";
import { formatReports, type GossipSimOptions, quantile, simulate } from "./_simulator.ts";

const SMALL_RUN: GossipSimOptions = {
  nodes: 300,
  dialsPerNode: 10,
  messages: 40,
  messageBytes: 1024,
  failShare: 0.1,
  lossRate: 0.05,
  latencyMs: [5, 100],
  validationMs: 8,
  detectionMs: 5000,
  warmupMs: 3000,
  publishWindowMs: 10_000,
  drainMs: 10_000,
  seed: 7,
};

Deno.test("gossip simulation: >= 99.9% delivered, p99 hops <= 5, <= 2 duplicates per delivery, less traffic than flooding", () => {
  const gossip = simulate("gossip", SMALL_RUN);
  const flood = simulate("flood", SMALL_RUN);
  console.log("\n" + formatReports([gossip, flood]));
  assert(gossip.deliveryRatio >= 0.999, `delivery ${gossip.deliveryRatio}`);
  assert(quantile(gossip.hops, 0.99) <= 5, `p99 hops ${quantile(gossip.hops, 0.99)}`);
  assert(gossip.duplicatesPerDelivery <= 2, `duplicates ${gossip.duplicatesPerDelivery}`);
  assert(gossip.bytesPerNode < flood.bytesPerNode / 2, "gossip sends under half of flooding");
});

Deno.test("gossip simulation: the same seed gives the same run", () => {
  const options = { ...SMALL_RUN, nodes: 60, messages: 10 };
  const a = simulate("gossip", options);
  const b = simulate("gossip", options);
  assert(JSON.stringify(a) === JSON.stringify(b), "two runs with one seed differ");
});
