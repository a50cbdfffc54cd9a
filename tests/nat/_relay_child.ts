/**
 * A node for the NAT-lab TURN test, run inside a lab namespace and driven over stdin/stdout,
 * one JSON object per line each way. Commands:
 * - `{"cmd":"alloc","server":{...}}`: new relay socket, QUIC endpoint (echoing every stream)
 *   and TURN allocation; answers `{"relayed":{...},"mapped":{...}}`.
 * - `{"cmd":"peer","peer":{...}}`: relays the peer; answers `{"channel":N}`.
 * - `{"cmd":"connect","peer":{...},"bytes":N,"rtts":K}`: relays the peer, connects, echoes N
 *   bytes on one stream and K 256-byte requests; answers with timings and `intact`.
 * - `{"cmd":"close"}`: closes the node; answers `{}`.
 * Errors answer `{"error":"..."}` (with the error's `code` when it has one). Ends at end of
 * input.
 *
 * @module
 */

import { RelaySocket, TurnClient } from "../../src/nat/mod.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { generateCertificate } from "../../src/quic/certificate.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";
import { echo, percentile, randomBytes, serveEcho } from "../quic/_util.ts";
import { answerCommands } from "./_child_node.ts";

interface Node {
  relay: RelaySocket;
  endpoint: QuicEndpoint;
  turn: TurnClient;
}

let node: Node | undefined;
// One certificate per node process, as a real node has: the tries differ in their sockets,
// endpoints and allocations, not in identity.
const certificate = await generateCertificate();

function serve(endpoint: QuicEndpoint): void {
  (async () => {
    for (;;) {
      const conn = await endpoint.accept(); // rejects when the endpoint closes
      serveEcho(conn, { streaming: true });
    }
  })().catch(() => {});
}

async function closeNode(): Promise<void> {
  const n = node;
  node = undefined;
  if (n === undefined) return;
  await n.turn.close();
  await n.endpoint.close();
}

async function connect(peer: UdpAddress, bytes: number, rtts: number) {
  const { relay, endpoint, turn } = node!;
  await relay.addPeer(peer, turn);
  const t0 = performance.now();
  const conn: QuicConnection = await endpoint.connect(peer, { timeoutMs: 5000 });
  const connectMs = performance.now() - t0;
  const data = randomBytes(bytes);
  const t1 = performance.now();
  const back = await echo(conn, data);
  const echoMs = performance.now() - t1;
  const intact = back.byteLength === data.byteLength && back.every((b, i) => b === data[i]);
  const samples: number[] = [];
  const request = new Uint8Array(256);
  for (let i = 0; i < rtts; i++) {
    const s = performance.now();
    await echo(conn, request);
    samples.push(performance.now() - s);
  }
  samples.sort((x, y) => x - y);
  await conn.close();
  return {
    path: relay.isRelayed(conn.remoteAddr) ? "relay" : "direct",
    connectMs,
    echoMs,
    intact,
    rttP50: percentile(samples, 0.5),
    rttP99: percentile(samples, 0.99),
    stats: relay.stats,
  };
}

await answerCommands({
  alloc: async (command) => {
    await closeNode();
    const relay = new RelaySocket(DenoUdpSocket.bind({ hostname: "0.0.0.0", port: 0 }));
    const endpoint = await QuicEndpoint.bind({ socket: relay, certificate });
    const turn = await TurnClient.allocate(endpoint, {
      server: command.server as UdpAddress,
      username: "test",
      password: "secret",
    });
    node = { relay, endpoint, turn };
    serve(endpoint);
    return { relayed: turn.relayedAddress, mapped: turn.mappedAddress };
  },
  peer: async (command) => ({
    channel: await node!.relay.addPeer(command.peer as UdpAddress, node!.turn),
  }),
  connect: (command) =>
    connect(command.peer as UdpAddress, command.bytes as number, command.rtts as number),
}, closeNode);
