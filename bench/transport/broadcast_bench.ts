/**
 * Broadcast of one 256-byte consensus message from a hub to 10 and to 50 connected peers on
 * loopback (51 transports in one process); an iteration lasts until every peer acknowledged.
 * The peers connect before the timed part.
 *
 * Run: `deno task bench`, or
 * `deno bench --allow-net --allow-read --allow-ffi bench/transport/broadcast_bench.ts`
 *
 * @module
 */
import { star } from "./_nodes.ts";

const message = { type: "consensus", data: new Uint8Array(256).fill(7) } as const;

for (const peers of [10, 50]) {
  const { hub } = await star(peers);
  Deno.bench(`broadcast 256 B to ${peers} peers`, {
    group: "broadcast",
    baseline: peers === 10,
    n: peers === 10 ? 1000 : 300,
    warmup: 20,
  }, async () => {
    const results = await hub.broadcast(message);
    if (results.length !== peers || results.some((r) => !r.ok)) {
      throw new Error(`broadcast reached ${results.filter((r) => r.ok).length} of ${peers}`);
    }
  });
}
