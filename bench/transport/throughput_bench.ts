/**
 * One-way throughput with 1 MiB vertices between two transports on loopback: an iteration
 * sends 16 vertices at once (16 MiB) and lasts until the receiver acknowledged all of them
 * (they are in its `messages()` queue, which a loop drains). MiB/s = 16 / (time per iteration
 * in seconds). Compared: pqEncryption on and off without a rate limit (the bulk cost of the
 * ChaCha20-Poly1305 seal), and pqEncryption on with the default `maxBandwidthBps` (100 Mbit/s).
 * For the ratio to native QUIC and CPU per MiB: `bench/transport/throughput_rounds.ts`.
 *
 * Run: `deno task bench`, or
 * `deno bench --allow-net --allow-read --allow-ffi bench/transport/throughput_bench.ts`
 *
 * @module
 */
import { type NodeOptions, pair } from "./_nodes.ts";

const VERTICES = 16;
const vertex = { type: "vertex", data: new Uint8Array(1024 * 1024).fill(3) } as const;

const cases: [string, NodeOptions, number][] = [
  ["pqEncryption on", { pqEncryption: true }, 20],
  ["pqEncryption off", { pqEncryption: false }, 20],
  ["pqEncryption on, default 100 Mbit/s limit", { maxBandwidthBps: 100_000_000 }, 3],
];
for (const [label, options, n] of cases) {
  const { a, remote } = await pair(options);
  Deno.bench(`${VERTICES} x 1 MiB vertices, ${label}`, {
    group: "vertex throughput",
    baseline: options.pqEncryption === true,
    n,
    warmup: 2,
  }, async () => {
    await Promise.all(Array.from({ length: VERTICES }, () => a.send(remote, vertex)));
  });
}
