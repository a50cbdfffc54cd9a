/**
 * Connection setup on loopback: a QUIC connection alone (`QuicEndpoint.connect`: TLS 1.3 with
 * the stateless retry, until the handshake completes) next to a transport connection
 * (`QuicTransport.connectPeer`: the same QUIC connection plus the identity handshake of
 * docs/handshake.md, until both sides accepted the peer). "reconnect": the same two nodes again
 * and again, so each side's certificate is in the other's cache; "new peer": a fresh dialer
 * node every time (made outside the timing), so both sides verify the other's identity binding.
 * Each iteration is a fresh connection; closing it is not timed. Goals (issue 16): a new peer
 * at most 5x QUIC alone, a reconnect at most 2x. "QUIC alone" reconnects from one client
 * endpoint, so it resumes its TLS session and skips the Retry (as a transport reconnect does);
 * the second QUIC case, from a new endpoint each time, pays what a new peer pays at that layer.
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

// Like for like with "new peer": a client endpoint the server has not seen, so the connect
// pays what a new peer's does at the QUIC layer (a Retry to validate its address, a full TLS
// handshake), where the baseline above resumes its session without a Retry.
const NEW_CLIENTS = 30;
const WARMUP_NEW_CLIENTS = 3;
const clients = await Promise.all(
  Array.from(
    { length: NEW_CLIENTS + WARMUP_NEW_CLIENTS },
    () => QuicEndpoint.bind({ hostname: "127.0.0.1" }),
  ),
);
Deno.bench("QUIC alone, a new client endpoint each time (Retry, full TLS)", {
  group: "connection setup",
  n: NEW_CLIENTS,
  warmup: WARMUP_NEW_CLIENTS,
}, async (b) => {
  const fresh = clients.pop()!;
  b.start();
  const conn = await fresh.connect(server.localAddr);
  b.end();
  await conn.close();
  await fresh.close();
});

const target = await node();
// Fresh dialers made up front: making one (key generation, the binding's signature) right
// before the timed connect would time its garbage collection too.
const NEW_PEERS = 30;
const WARMUP_NEW = 3;
const dialers = await Promise.all(Array.from({ length: NEW_PEERS + WARMUP_NEW }, () => node()));
Deno.bench("new peer (QuicTransport.connectPeer), pqEncryption on; goal <= 5x", {
  group: "connection setup",
  n: NEW_PEERS,
  warmup: WARMUP_NEW,
}, async (b) => {
  const dialer = dialers.pop()!;
  b.start();
  const remote = await dialer.connectPeer(target.localAddr);
  b.end();
  await dialer.disconnectPeer(remote);
  await dialer.close();
  while (target.peers().length > 0) await new Promise((r) => setTimeout(r, 1));
});

for (const pqEncryption of [true, false]) {
  const dialer = await node({ pqEncryption });
  const listener = await node({ pqEncryption });
  Deno.bench(
    `reconnect (QuicTransport.connectPeer), pqEncryption ${
      pqEncryption ? "on" : "off"
    }; goal <= 2x`,
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
