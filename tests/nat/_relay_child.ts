/**
 * A node for the NAT-lab TURN test, run inside a lab namespace and driven over stdin/stdout,
 * one JSON object per line each way. Commands:
 * - `{"cmd":"alloc","server":{...}}`: new relay socket, QUIC endpoint (echoing every stream)
 *   and TURN allocation; answers `{"relayed":{...},"mapped":{...}}`.
 * - `{"cmd":"peer","peer":{...}}`: relays the peer; answers `{"channel":N}`.
 * - `{"cmd":"connect","peer":{...},"bytes":N,"rtts":K}`: relays the peer, connects, echoes N
 *   bytes on one stream and K 256-byte requests; answers with timings and `intact`.
 * - `{"cmd":"close"}`: closes the node; answers `{}`.
 * Errors answer `{"error":"..."}`. Ends at end of input.
 *
 * @module
 */

import { RelaySocket, TurnClient } from "../../src/nat/mod.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { generateCertificate } from "../../src/quic/certificate.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";

interface Node {
  relay: RelaySocket;
  endpoint: QuicEndpoint;
  turn: TurnClient;
}

let node: Node | undefined;
// One certificate per node process, as a real node has: the tries differ in their sockets,
// endpoints and allocations, not in identity.
const certificate = await generateCertificate();
const encoder = new TextEncoder();
const reply = (o: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(o) + "\n"));

function serve(endpoint: QuicEndpoint): void {
  (async () => {
    for (;;) {
      const conn = await endpoint.accept(); // rejects when the endpoint closes
      (async () => {
        for (;;) {
          const stream = await conn.acceptBidi();
          (async () => {
            for (;;) {
              const chunk = await stream.read();
              if (chunk === null) break;
              await stream.write(chunk.slice());
            }
            await stream.write(new Uint8Array(0), true);
          })().catch(() => {});
        }
      })().catch(() => {});
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
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65536)));
  }
  const echo = async (d: Uint8Array) => {
    const stream = await conn.openBidi();
    const back = stream.readAll();
    await stream.write(d, true);
    return await back;
  };
  const t1 = performance.now();
  const back = await echo(data);
  const echoMs = performance.now() - t1;
  const intact = back.byteLength === data.byteLength && back.every((b, i) => b === data[i]);
  const samples: number[] = [];
  const request = new Uint8Array(256);
  for (let i = 0; i < rtts; i++) {
    const s = performance.now();
    await echo(request);
    samples.push(performance.now() - s);
  }
  samples.sort((x, y) => x - y);
  const at = (p: number) => samples[Math.min(samples.length - 1, Math.floor(samples.length * p))];
  await conn.close();
  return {
    path: relay.isRelayed(conn.remoteAddr) ? "relay" : "direct",
    connectMs,
    echoMs,
    intact,
    rttP50: at(0.5),
    rttP99: at(0.99),
    stats: relay.stats,
  };
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffered = "";
for await (const chunk of lines) {
  buffered += chunk;
  let nl: number;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const command = JSON.parse(line);
    try {
      if (command.cmd === "alloc") {
        await closeNode();
        const relay = new RelaySocket(DenoUdpSocket.bind({ hostname: "0.0.0.0", port: 0 }));
        const endpoint = await QuicEndpoint.bind({ socket: relay, certificate });
        const turn = await TurnClient.allocate(endpoint, {
          server: command.server,
          username: "test",
          password: "secret",
        });
        node = { relay, endpoint, turn };
        serve(endpoint);
        reply({ relayed: turn.relayedAddress, mapped: turn.mappedAddress });
      } else if (command.cmd === "peer") {
        reply({ channel: await node!.relay.addPeer(command.peer, node!.turn) });
      } else if (command.cmd === "connect") {
        reply(await connect(command.peer, command.bytes, command.rtts));
      } else if (command.cmd === "close") {
        await closeNode();
        reply({});
      } else {
        reply({ error: `unknown command ${JSON.stringify(command.cmd)}` });
      }
    } catch (e) {
      reply({ error: String(e) });
    }
  }
}
await closeNode();
