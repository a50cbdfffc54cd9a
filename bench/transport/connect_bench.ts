/**
 * Connection setup on loopback: a QUIC connection alone (`QuicEndpoint.connect`: TLS 1.3 with
 * the stateless retry, until the handshake completes) next to a transport connection
 * (`QuicTransport.connectPeer`: the same QUIC connection plus the hybrid Ed25519 + ML-DSA-65
 * identity handshake, with ML-KEM-768 session keys when pqEncryption is on, until both sides
 * accepted the peer). Each iteration is a fresh connection; closing it is not timed.
 *
 * Run: `deno task bench`, or
 * `deno bench --allow-net --allow-read --allow-ffi bench/transport/connect_bench.ts`
 *
 * @module
 */
import { QuicEndpoint } from "../../src/quic/mod.ts";
import { node } from "./_nodes.ts";

const N = 100;

const server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
const client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
(async () => {
  for (;;) await server.accept(); // accepted connections end when the client closes them
})().catch(() => {});

Deno.bench("QUIC alone (QuicEndpoint.connect)", {
  group: "connection setup",
  baseline: true,
  n: N,
  warmup: 10,
}, async (b) => {
  b.start();
  const conn = await client.connect(server.localAddr);
  b.end();
  await conn.close();
});

for (const pqEncryption of [true, false]) {
  const dialer = await node({ pqEncryption });
  const listener = await node({ pqEncryption });
  Deno.bench(
    `QUIC + handshake (QuicTransport.connectPeer), pqEncryption ${pqEncryption ? "on" : "off"}`,
    { group: "connection setup", n: N, warmup: 10 },
    async (b) => {
      b.start();
      const remote = await dialer.connectPeer(listener.localAddr);
      b.end();
      await dialer.disconnectPeer(remote);
      // The listener drops the peer when the close arrives; wait so the next dial is fresh.
      while (listener.peers().length > 0) await new Promise((r) => setTimeout(r, 1));
    },
  );
}
