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
 *
 * With `"nat":{"stun":[...],"directRetryMs":N,"punchDurationMs":N,"connectionTimeoutMs":N}` in
 * `start`, the node also runs a `NatService` with the relay service as its fallback (a node
 * without TURN servers: the rendezvous), and these commands work:
 * - `{"cmd":"discover"}`: NAT discovery; answers `{"type","publicAddress"}`.
 * - `{"cmd":"natConnect","peer","via","timeoutMs"}`: `nat.connect`; answers `{"path",
 *   "address","relayPath","ms"}` (`relayPath`: what `relay.path` says).
 * - `{"cmd":"upgrade","peer","timeoutMs"}`: `nat.upgrade`; answers `{"path","address","ms"}`.
 * - `{"cmd":"migrated","peer","timeoutMs"}`: waits for the service's `migrated` event for the
 *   peer and the old connection's `retired`; answers the event (`at`: epoch ms), `retired`,
 *   and the peer's path and address now.
 * - `{"cmd":"streamStart","peer","window","bytes","max"}`: sends numbered consensus messages
 *   (sequence number in the first 4 bytes) to the peer, at most `window` unacknowledged,
 *   until stopped or `max`; `{"cmd":"streamStop","peer"}` stops it and waits for the sends
 *   under way; answers `{"sent","acked","errors"}`.
 * - `{"cmd":"streamReceived","peer","atLeast","timeoutMs"}`: the numbered messages received
 *   from the peer (once `atLeast` arrived or the time is up): `{"count","next","anomalies"}`,
 *   `anomalies` listing every number that was not the next one expected (a loss, duplicate or
 *   reordering).
 * - `{"cmd":"natEvents"}`: the NAT service's `connected` events so far (`path`, `address`).
 * - `{"cmd":"pings","peer","count"}`: `{"rttP50","rttP99","path","address"}`.
 * - `{"cmd":"retryFailed","peer","atLeast","timeoutMs"}`: the NAT service's periodic direct
 *   retries of the peer that failed so far (its `upgrade-failed` events), once `atLeast` did or
 *   the time is up: `{"count","lastError"}`.
 * Errors answer `{"error":"...","code":"ERR_..."}` (`code` when the error has one). Ends
 * (closing the node) at end of input.
 *
 * @module
 */

import { Identity, QuicTransport } from "../../mod.ts";
import { type NatConnection, NatService, RelayService, RelaySocket } from "../../src/nat/mod.ts";
import type { PeerMigratedDetail } from "../../src/transport/events.ts";
import { formatAddress } from "../../src/quic/address.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";
import { percentile, randomBytes, sha256Hex } from "../quic/_util.ts";
import { answerCommands, Changes } from "./_child_node.ts";

interface Node {
  transport: QuicTransport;
  relay: RelayService;
  nat?: NatService;
}

/** Numbered messages received from one peer. */
interface Received {
  count: number;
  next: number;
  anomalies: string[];
}

/** Numbered messages being sent to one peer. */
interface Stream {
  stop: boolean;
  sent: number;
  acked: number;
  errors: string[];
  done: Promise<void>;
}

let node: Node | undefined;
let lastReceived = "";
/** Per node, by peer: the NAT service's `migrated` event (and when), `peer:migrated`. */
let natMigrated = new Map<string, { event: NatConnection; at: number }>();
let peerMigrated = new Map<string, PeerMigratedDetail>();
let natConnected: { peerId: string; path: string; address: string }[] = [];
let received = new Map<string, Received>();
/** Per node, by peer: failed periodic direct retries (count, last error). */
let failedRetries = new Map<string, { count: number; lastError: string }>();
const streams = new Map<string, Stream>();
const changes = new Changes();
/** Reported anomalies per peer, at most (the count says how far it went). */
const MAX_ANOMALIES = 20;

async function closeNode(): Promise<void> {
  const n = node;
  node = undefined;
  if (n === undefined) return;
  for (const s of streams.values()) s.stop = true;
  streams.clear();
  await n.nat?.close();
  // The allocation first: freeing it needs the transport's socket.
  await n.relay.close();
  await n.transport.close();
}

async function start(command: {
  listen: string;
  turnServers: { address: string; username: string; password: string }[];
  lifetime?: number;
  nat?: {
    stun: string[];
    directRetryMs?: number;
    punchDurationMs?: number;
    connectionTimeoutMs?: number;
  };
}) {
  await closeNode();
  natMigrated = new Map();
  peerMigrated = new Map();
  natConnected = [];
  received = new Map();
  failedRetries = new Map();
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
    const relay = new RelayService(transport, { relaySocket, lifetimeSecs: command.lifetime });
    try {
      const relayed = await relay.start();
      node = { transport, relay };
      if (command.nat !== undefined) node.nat = await startNat(transport, relay, command.nat);
      receive(transport);
      return {
        peerId: transport.peerId.toString(),
        port,
        relayed,
        lifetime: relay.turn?.lifetimeSecs,
      };
    } catch (e) {
      await relay.close();
      throw e;
    }
  } catch (e) {
    await transport.close();
    throw e;
  }
}

async function startNat(
  transport: QuicTransport,
  relay: RelayService,
  options: NonNullable<Parameters<typeof start>[0]["nat"]>,
): Promise<NatService> {
  const nat = new NatService(transport, {
    stunServers: options.stun,
    filtering: false,
    fallback: relay.fallback,
    directRetryMs: options.directRetryMs,
    punchDurationMs: options.punchDurationMs,
    connectionTimeoutMs: options.connectionTimeoutMs,
  });
  nat.addEventListener("nat:migrated", (e) => {
    const at = performance.timeOrigin + performance.now();
    natMigrated.set(e.detail.peerId.toString(), { event: e.detail, at });
    changes.notify();
  });
  nat.addEventListener("nat:upgrade-failed", (e) => {
    const peer = e.detail.peerId.toString();
    const count = (failedRetries.get(peer)?.count ?? 0) + 1;
    failedRetries.set(peer, { count, lastError: e.detail.error.message });
    changes.notify();
  });
  nat.addEventListener("nat:connected", (e) => {
    const { peerId, path, address } = e.detail;
    natConnected.push({ peerId: peerId.toString(), path, address: formatAddress(address) });
  });
  transport.addEventListener("peer:migrated", (e) => {
    peerMigrated.set(e.detail.peerId.toString(), e.detail);
    changes.notify();
  });
  await nat.start();
  return nat;
}

/** Counts the numbered consensus messages of each peer until the transport closes. */
async function receive(transport: QuicTransport): Promise<void> {
  const mine = received;
  for await (const { from, message } of transport.messages()) {
    if (message.type !== "consensus" || message.data.byteLength < 4) continue;
    const key = from.toString();
    let r = mine.get(key);
    if (r === undefined) mine.set(key, r = { count: 0, next: 0, anomalies: [] });
    const data = message.data;
    const seq = new DataView(data.buffer, data.byteOffset, 4).getUint32(0);
    if (seq !== r.next && r.anomalies.length < MAX_ANOMALIES) {
      r.anomalies.push(`expected ${r.next}, got ${seq}`);
    }
    r.count++;
    r.next = Math.max(r.next, seq + 1);
    changes.notify();
  }
}

/** Sends numbered messages with at most `window` unacknowledged, until stopped or `max`. */
function startStream(peer: string, window: number, bytes: number, max: number): Stream {
  const { transport } = node!;
  const s: Stream = { stop: false, sent: 0, acked: 0, errors: [], done: Promise.resolve() };
  s.done = (async () => {
    const inFlight = new Set<Promise<void>>();
    // Bounded by `max` sends; each round sends one or waits for one of `window` to settle.
    while (!s.stop && s.sent < max && s.errors.length === 0) {
      if (inFlight.size >= window) {
        await Promise.race(inFlight);
        continue;
      }
      const seq = s.sent++;
      const data = new Uint8Array(Math.max(4, bytes));
      new DataView(data.buffer).setUint32(0, seq);
      const sent: Promise<void> = transport.send(peer, { type: "consensus", data })
        .then(() => void s.acked++, (e) => void s.errors.push(`message ${seq}: ${e}`))
        .finally(() => inFlight.delete(sent));
      inFlight.add(sent);
    }
    await Promise.all(inFlight);
  })();
  return s;
}

async function pingStats(peer: string, count: number) {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await node!.transport.ping(peer));
  samples.sort((x, y) => x - y);
  return { rttP50: percentile(samples, 0.5), rttP99: percentile(samples, 0.99) };
}

/** The peer's path (`relay.path`) and its connection's current address. */
function where(peer: string) {
  const info = node!.transport.peers().find((p) => p.peerId.toString() === peer);
  return { path: node!.relay.path(peer), address: info?.addresses[0] };
}

/** Waits for the peer's `migrated` event and its old connection's `retired`. */
async function migrated(peer: string, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  const seen = () => natMigrated.has(peer) && peerMigrated.has(peer);
  if (!await changes.until(seen, timeoutMs)) {
    throw new Error(
      `no migrated event for ${peer} in ${timeoutMs} ms: ${JSON.stringify(where(peer))}`,
    );
  }
  const { event, at } = natMigrated.get(peer)!;
  const moved = peerMigrated.get(peer)!;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"timeout">((r) =>
    timer = setTimeout(() => r("timeout"), Math.max(0, deadline - performance.now()))
  );
  const retired = await Promise.race([moved.retired, late]);
  clearTimeout(timer);
  return {
    path: event.path,
    address: event.address,
    direction: event.direction,
    at,
    previousAddress: moved.previousAddress,
    retired,
    now: where(peer),
  };
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
  const { relay } = node!;
  const result = await echo(peer, bytes);
  return { ...result, path: relay.path(peer), ...await pingStats(peer, pings) };
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
    lifetime: turn.lifetimeSecs,
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
  discover: async () => {
    const nat = await node!.nat!.discover();
    return { type: nat.type, publicAddress: nat.publicAddress };
  },
  natConnect: async (command) => {
    const peer = command.peer as string;
    const t0 = performance.now();
    const c = await node!.nat!.connect(peer, {
      via: command.via as string,
      timeoutMs: command.timeoutMs as number,
    });
    const ms = performance.now() - t0;
    return { path: c.path, address: c.address, relayPath: node!.relay.path(peer), ms };
  },
  upgrade: async (command) => {
    const t0 = performance.now();
    const c = await node!.nat!.upgrade(command.peer as string, {
      timeoutMs: command.timeoutMs as number,
    });
    return { path: c.path, address: c.address, ms: performance.now() - t0 };
  },
  migrated: (command) => migrated(command.peer as string, command.timeoutMs as number),
  streamStart: (command) => {
    const peer = command.peer as string;
    if (streams.has(peer)) throw new Error(`already streaming to ${peer}`);
    const { window, bytes, max } = command as { window: number; bytes: number; max: number };
    streams.set(peer, startStream(peer, window, bytes, max));
    return {};
  },
  streamStop: async (command) => {
    const s = streams.get(command.peer as string);
    if (s === undefined) throw new Error(`not streaming to ${command.peer}`);
    streams.delete(command.peer as string);
    s.stop = true;
    await s.done;
    return { sent: s.sent, acked: s.acked, errors: s.errors };
  },
  streamReceived: async (command) => {
    const peer = command.peer as string;
    const atLeast = (command.atLeast as number) ?? 0;
    await changes.until(
      () => (received.get(peer)?.count ?? 0) >= atLeast,
      command.timeoutMs as number ?? 0,
    );
    return received.get(peer) ?? { count: 0, next: 0, anomalies: [] };
  },
  natEvents: () => ({ connected: natConnected }),
  retryFailed: async (command) => {
    const peer = command.peer as string;
    const atLeast = (command.atLeast as number) ?? 0;
    const count = () => failedRetries.get(peer)?.count ?? 0;
    await changes.until(() => count() >= atLeast, (command.timeoutMs as number) ?? 0);
    return failedRetries.get(peer) ?? { count: 0, lastError: "" };
  },
  pings: async (command) => ({
    ...await pingStats(command.peer as string, command.count as number),
    ...where(command.peer as string),
  }),
}, closeNode);
