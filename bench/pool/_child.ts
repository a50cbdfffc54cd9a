// A benchmark node in its own process, so that sender and receiver (or target and attacker)
// do not share one event loop: `deno run -A bench/pool/_child.ts '<json NetworkConfig>'`.
// Prints `READY <port> <peerId>` once bound, drains its messages, exits when stdin closes.
// With `"attack": N` in the JSON instead, opens N raw QUIC connections to `"target"` (a port)
// that never start the transport handshake, and prints a JSON tally of how each ended. They
// present a certificate with a valid identity binding: a node closes one without at once.
import { Identity } from "../../mod.ts";
import { NodeCredentials } from "../../src/handshake/mod.ts";
import { QuicEndpoint } from "../../src/quic/mod.ts";
import { drain, node } from "./_util.ts";

// JSON has no Infinity: the parent's Infinity arrives as null.
const options = JSON.parse(Deno.args[0] ?? "{}", (_, v) => v === null ? Infinity : v);

if (typeof options.attack === "number") {
  const { certificate } = await NodeCredentials.create(Identity.generate());
  const endpoint = await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
  const target = { hostname: "127.0.0.1", port: options.target as number };
  const codes = new Map<string, number>();
  let connected = 0;
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    while (next < options.attack) {
      next++;
      try {
        const conn = await endpoint.connect(target, { timeoutMs: 5000 });
        connected++;
        const closed = await Promise.race([
          conn.closed,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000)),
        ]);
        const key = closed === undefined ? "still open" : `code ${closed.errorCode}`;
        codes.set(key, (codes.get(key) ?? 0) + 1);
      } catch (e) {
        const key = `connect failed: ${(e as Error).constructor.name}`;
        codes.set(key, (codes.get(key) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 32 }, worker));
  console.log(JSON.stringify({
    attempts: options.attack,
    connected,
    seconds: Math.round(performance.now() - start) / 1000,
    outcomes: Object.fromEntries(codes),
  }));
  await endpoint.close();
} else {
  const transport = await node(options);
  const draining = drain(transport);
  console.log(`READY ${transport.localAddr.port} ${transport.peerId}`);
  for await (const _ of Deno.stdin.readable);
  await transport.close();
  await draining;
}
