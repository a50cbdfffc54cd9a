/**
 * A `QuicTransport` node with a `RelayService` for the NAT-lab relay tests, run inside a lab
 * namespace and driven over stdin/stdout, one JSON object per line each way. Commands:
 * - `{"cmd":"start","listen":IP,"turnServers":[...],"lifetime":S}`: a new identity, relay
 *   socket, transport and relay service (closing the previous ones); answers
 *   `{"peerId","port","relayed","lifetime"}`.
 * - `{"cmd":"dial","address":"H:P"}`: `connectPeer`; answers `{"peerId"}`.
 * - `{"cmd":"relay","peer":ID,"via":ID}`: `relay.connect`; answers `{"path","connectMs"}`.
 * - `{"cmd":"exchange","peer":ID,"bytes":N,"pings":K}`: N random bytes echoed by the peer's
 *   `/lab/echo/1` handler, then K pings; answers SHA-256 of sent and returned bytes, timings.
 * - `{"cmd":"received"}`: SHA-256 of the last request this node's echo handler got.
 * - `{"cmd":"outlive","peer":ID}`: pings the peer without pause until the allocation has been
 *   refreshed past its first expiry and that expiry has passed, then echoes 1 MiB; answers
 *   counts and timings.
 * - `{"cmd":"close"}`: closes the node.
 * Errors answer `{"error":"...","code":"ERR_..."}`. Ends (closing the node) at end of input.
 *
 * @module
 */

import { Identity, QuicTransport } from "../../mod.ts";
import { RelayService, RelaySocket } from "../../src/nat/mod.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";

interface Node {
  transport: QuicTransport;
  relay: RelayService;
}

let node: Node | undefined;
let lastReceived = "";
const encoder = new TextEncoder();
const reply = (o: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(o) + "\n"));

async function sha256(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(n, at + 65536)));
  }
  return data;
}

async function closeNode(): Promise<void> {
  const n = node;
  node = undefined;
  if (n === undefined) return;
  // The allocation first: freeing it needs the transport's socket.
  await n.relay.close();
  await n.transport.close();
}

async function start(command: {
  listen: string;
  turnServers: { address: string; username: string; password: string }[];
  lifetime?: number;
}) {
  await closeNode();
  const relaySocket = new RelaySocket(DenoUdpSocket.bind({ hostname: command.listen, port: 0 }));
  const transport = new QuicTransport({
    identity: Identity.generate(),
    socket: relaySocket,
    config: { turnServers: command.turnServers, keepAliveIntervalSecs: 0 },
  });
  transport.handle("/lab/echo/1", async (request) => {
    lastReceived = await sha256(request);
    return request;
  });
  try {
    const { port } = await transport.bindAndListen();
    const relay = new RelayService(transport, { relaySocket, lifetime: command.lifetime });
    try {
      const relayed = await relay.start();
      node = { transport, relay };
      return { peerId: transport.peerId.toString(), port, relayed, lifetime: relay.turn?.lifetime };
    } catch (e) {
      await relay.close();
      throw e;
    }
  } catch (e) {
    await transport.close();
    throw e;
  }
}

async function echo(peer: string, bytes: number) {
  const { transport } = node!;
  const data = randomBytes(bytes);
  const t0 = performance.now();
  const back = await transport.request(peer, "/lab/echo/1", data, { timeoutMs: 60_000 });
  const echoMs = performance.now() - t0;
  return { sent: await sha256(data), back: await sha256(back), echoMs };
}

async function exchange(peer: string, bytes: number, pings: number) {
  const { transport, relay } = node!;
  const result = await echo(peer, bytes);
  const samples: number[] = [];
  for (let i = 0; i < pings; i++) samples.push(await transport.ping(peer));
  samples.sort((x, y) => x - y);
  const at = (p: number) => samples[Math.min(samples.length - 1, Math.floor(samples.length * p))];
  return { ...result, path: relay.path(peer), rttP50: at(0.5), rttP99: at(0.99) };
}

async function outlive(peer: string) {
  const { transport, relay } = node!;
  const turn = relay.turn!;
  const firstExpiry = turn.expiresAt;
  const t0 = performance.now();
  let pings = 0;
  // Traffic the whole time, no pause: every ping crosses both relays.
  while (!(turn.expiresAt > firstExpiry && performance.now() > firstExpiry + 500)) {
    await transport.ping(peer);
    pings++;
    if (turn.expired) throw new Error("the allocation expired");
  }
  const after = await echo(peer, 1024 * 1024);
  return {
    ...after,
    pings,
    elapsedMs: performance.now() - t0,
    pastFirstExpiryMs: performance.now() - firstExpiry,
    lifetime: turn.lifetime,
    expiresIn: turn.expiresAt - performance.now(),
    path: relay.path(peer),
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
      if (command.cmd === "start") {
        reply(await start(command));
      } else if (command.cmd === "dial") {
        reply({ peerId: (await node!.transport.connectPeer(command.address)).toString() });
      } else if (command.cmd === "relay") {
        const t0 = performance.now();
        await node!.relay.connect(command.peer, { via: command.via });
        reply({ path: node!.relay.path(command.peer), connectMs: performance.now() - t0 });
      } else if (command.cmd === "exchange") {
        reply(await exchange(command.peer, command.bytes, command.pings));
      } else if (command.cmd === "received") {
        reply({ hash: lastReceived });
      } else if (command.cmd === "outlive") {
        reply(await outlive(command.peer));
      } else if (command.cmd === "close") {
        await closeNode();
        reply({});
      } else {
        reply({ error: `unknown command ${JSON.stringify(command.cmd)}` });
      }
    } catch (e) {
      reply({ error: String(e), code: (e as { code?: string }).code });
    }
  }
}
await closeNode();
