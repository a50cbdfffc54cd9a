/**
 * A 1,000-node DHT on a virtual clock: every node joins through `bootstrap`, then random
 * nodes look up random peers' records, before and after 20% of the nodes vanish.
 */
import assert from "node:assert/strict";
import { formatHopTable, quantile, runPeerLookups, SimNetwork } from "./_simulator.ts";

const NODES = 1000;
const LOOKUPS = 1000;

Deno.test("1,000-node simulation: lookups succeed in few hops, also with 20% of nodes gone", async (t) => {
  const net = new SimNetwork({ seed: 2024 });
  await net.grow(NODES);
  assert.equal(net.alive.length, NODES);

  await t.step("all nodes online: >= 99% found, median hops <= 3, p99 <= 5", async () => {
    const run = await runPeerLookups(net, LOOKUPS);
    console.log("\n" + formatHopTable(`${NODES} nodes, all online`, run));
    assert.ok(run.successes / run.attempts >= 0.99, `${run.successes}/${run.attempts} found`);
    assert.ok(quantile(run.hops, 0.5) <= 3, `median hops ${quantile(run.hops, 0.5)}`);
    assert.ok(quantile(run.hops, 0.99) <= 5, `p99 hops ${quantile(run.hops, 0.99)}`);
  });

  await t.step("20% of nodes gone without notice: >= 95% found", async () => {
    const victims = [...net.nodes];
    for (let i = 0; i < NODES / 5; i++) {
      net.kill(victims.splice(net.prng.int(0, victims.length - 1), 1)[0]);
    }
    assert.equal(net.alive.length, NODES * 0.8);
    const run = await runPeerLookups(net, LOOKUPS);
    console.log("\n" + formatHopTable(`${NODES} nodes, 20% gone`, run));
    assert.ok(run.successes / run.attempts >= 0.95, `${run.successes}/${run.attempts} found`);
  });

  for (const node of net.nodes) node.close();
});
