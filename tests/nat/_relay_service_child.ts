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
 * Errors answer `{"error":"...","code":"ERR_..."}` (`code` when the error has one). Ends
 * (closing the node) at end of input.
 *
 * @module
 */

import { Identity, QuicTransport } from "../../mod.ts";
import { RelayService, RelaySocket } from "../../src/nat/mod.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";
import { percentile, randomBytes, sha256Hex } from "../quic/_util.ts";
import { answerCommands } from "./_child_node.ts";

interface Node {
  transport: QuicTransport;
  relay: RelayService;
}

let node: Node | undefined;
let lastReceived = "";

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
    lastReceived = await sha256Hex(request);
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
  return { sent: await sha256Hex(data), back: await sha256Hex(back), echoMs };
}

async function exchange(peer: string, bytes: number, pings: number) {
  const { transport, relay } = node!;
  const result = await echo(peer, bytes);
  const samples: number[] = [];
  for (let i = 0; i < pings; i++) samples.push(await transport.ping(peer));
  samples.sort((x, y) => x - y);
  return {
    ...result,
    path: relay.path(peer),
    rttP50: percentile(samples, 0.5),
    rttP99: percentile(samples, 0.99),
  };
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

await answerCommands({
  start: (command) => start(command as Parameters<typeof start>[0]),
  dial: async (command) => ({
    peerId: (await node!.transport.connectPeer(command.address as string)).toString(),
  }),
  relay: async (command) => {
    const peer = command.peer as string;
    const t0 = performance.now();
    await node!.relay.connect(peer, { via: command.via as string });
    return { path: node!.relay.path(peer), connectMs: performance.now() - t0 };
  },
  exchange: (command) =>
    exchange(command.peer as string, command.bytes as number, command.pings as number),
  received: () => ({ hash: lastReceived }),
  outlive: (command) => outlive(command.peer as string),
}, closeNode);
