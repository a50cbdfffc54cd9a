/**
 * Propagation of 1 KiB gossip messages through a loopback network of real transports (all
 * in this process, so they share its one JavaScript thread): each node dials `--dials`
 * random others, every node subscribes to one topic, then `--messages` messages are
 * published one at a time by random nodes. Prints the delay from publish to each delivery
 * and to the last node (p50, p99, max) and the hops the deliveries took.
 *
 * Run: deno run -A bench/gossip/propagation.ts [--nodes 30] [--messages 100] [--dials 4]
 *      [--bytes 1024] [--seed 1]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { GossipService, type QuicTransport } from "../../mod.ts";
import { gossipMessageId } from "../../src/gossip/mod.ts";
import { Prng, quantile } from "../../tests/gossip/_simulator.ts";
import { node } from "../transport/_nodes.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "30" },
    messages: { type: "string", default: "100" },
    dials: { type: "string", default: "4" },
    bytes: { type: "string", default: "1024" },
    seed: { type: "string", default: "1" },
  },
});
const nodes = Number(values.nodes);
const messages = Number(values.messages);
const dials = Number(values.dials);
const bytes = Number(values.bytes);
const prng = new Prng(Number(values.seed));
const TOPIC = "bench";
const TIMEOUT_MS = 10_000;

const transports: QuicTransport[] = [];
const services: GossipService[] = [];
try {
  for (let i = 0; i < nodes; i++) {
    const transport = await node();
    transports.push(transport);
    const gossip = new GossipService({ transport });
    services.push(gossip);
    await gossip.start();
  }
  const started = performance.now();
  // One node's dials at a time: hundreds of handshakes at once (ML-DSA signatures in
  // JavaScript) would outlast the handshake timeout.
  for (let i = 0; i < nodes; i++) {
    const targets = new Set<number>();
    while (targets.size < Math.min(dials, nodes - 1)) {
      const j = prng.int(0, nodes - 1);
      if (j !== i) targets.add(j);
    }
    await Promise.all(
      [...targets].map((j) =>
        transports[i].connectPeer(`127.0.0.1:${transports[j].localAddr.port}`)
      ),
    );
  }
  /** Arrival times of each message id, by node. */
  const arrivals = new Map<string, number[]>();
  const waiters = new Map<string, () => void>();
  const subscriptions = services.map((gossip) => gossip.subscribe(TOPIC));
  subscriptions.forEach(async (sub) => {
    for await (const { id } of sub) {
      const at = arrivals.get(id) ?? [];
      arrivals.set(id, at);
      at.push(performance.now());
      if (at.length === nodes - 1) waiters.get(id)?.();
    }
  });
  await Promise.all(
    services.map((s) =>
      s.whenMeshed(TOPIC, Math.min(2, nodes - 1), AbortSignal.timeout(TIMEOUT_MS))
    ),
  );
  console.log(
    `${nodes} nodes, ${transports.reduce((n, t) => n + t.peers().length, 0) / 2} connections ` +
      `in ${(performance.now() - started).toFixed(0)} ms; mesh sizes ${
        services.map((s) => s.mesh(TOPIC).length).join(",")
      }`,
  );

  const delays: number[] = [];
  const lastDelays: number[] = [];
  let incomplete = 0;
  for (let m = 0; m < messages + 10; m++) {
    const data = prng.bytes(bytes);
    const publisher = services[prng.int(0, nodes - 1)];
    const id = gossipMessageId(TOPIC, data);
    const complete = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), TIMEOUT_MS);
      waiters.set(id, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    const t0 = performance.now();
    await publisher.publish(TOPIC, data);
    const ok = await complete;
    waiters.delete(id);
    if (m < 10) continue; // warm-up: JIT and connection windows
    if (!ok) incomplete++;
    const at = arrivals.get(id) ?? [];
    for (const t of at) delays.push(t - t0);
    if (ok) lastDelays.push(Math.max(...at) - t0);
  }
  const f = (v: number) => v.toFixed(2);
  console.log(
    `${messages} messages of ${bytes} bytes: delivery delay p50 ${f(quantile(delays, 0.5))} ms, ` +
      `p99 ${f(quantile(delays, 0.99))} ms, max ${f(Math.max(...delays))} ms; ` +
      `all ${nodes - 1} reached: p50 ${f(quantile(lastDelays, 0.5))} ms, ` +
      `p99 ${f(quantile(lastDelays, 0.99))} ms; incomplete ${incomplete}`,
  );
  const stats = services.map((s) => s.stats());
  const delivered = stats.reduce((n, s) => n + s.delivered, 0);
  const duplicates = stats.reduce((n, s) => n + s.duplicates, 0);
  console.log(`duplicates per delivery ${(duplicates / delivered).toFixed(2)}`);
} finally {
  for (const s of services) await s.close();
  await Promise.all(transports.map((t) => t.close()));
}
