/**
 * A cretoai-network node built with `createNode`: listens on a UDP port, joins the network
 * through the `--peer` bootstrap peers (the DHT finds the others, the connection manager keeps
 * `--target-peers` of them connected), prints one line per event (human-readable, or one JSON
 * object per line with `--json`) and runs until SIGINT/SIGTERM or `--duration`.
 *
 * Run (three terminals, see README "Running a node"); node 3 finds node 2 through node 1:
 *
 * ```sh
 * deno run --allow-net --allow-ffi \
 *   --allow-read=node1 --allow-write=node1 \
 *   examples/quic_node.ts --port 9001 --data-dir node1
 * deno run --allow-net --allow-ffi examples/quic_node.ts \
 *   --port 9002 --peer 127.0.0.1:9001
 * deno run --allow-net --allow-ffi examples/quic_node.ts \
 *   --port 9003 --peer 127.0.0.1:9001 --broadcast 5 --wait-peers 2
 * ```
 *
 * Nodes also find each other on the local network with mDNS (on by default, `--no-mdns` turns
 * it off): with `--allow-sys=networkInterfaces` and an unrestricted `--allow-net`, nodes
 * listening on 0.0.0.0 or a LAN address need no `--peer` on one link. A node on loopback, or
 * without those permissions, reports `mdns-off` and runs on without it.
 *
 * Behind a NAT, `--stun IP:PORT` reports the NAT's type and the public address (`nat`), and
 * `--connect PEER_ID` reaches a peer that is also connected to a `--peer`, hole punching
 * through both NATs (`connected` with `path` `direct`) or, with `--turn`, relaying.
 *
 * `deno run examples/quic_node.ts --help` lists every flag. `examples/demo.ts` drives three of
 * these with `--json`.
 *
 * Adding a flag: add it to {@linkcode OPTIONS} and its help to {@linkcode HELP} (the compiler
 * insists on both), read it in {@linkcode parseNodeArgs} and map it to a `createNode` option
 * in {@linkcode runNode}; report what happens through `emit` with a new {@linkcode NodeEvent}
 * variant and its line in `HUMAN`.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import {
  type ConnectionDirection,
  createNode,
  formatAddress,
  Identity,
  type NatBehavior,
  type NatDiscoveryResult,
  type NatType,
  type NetworkMessage,
  type NetworkNode,
  type NodeServiceName,
  parseAddress,
  parseTurnUrl,
  PeerId,
  type PeerPath,
  type PeerSource,
  type TurnServerConfig,
  type UdpAddress,
} from "../mod.ts";
import { type PeerStats, peerStats, serveStatus, type StatusServer } from "./_status_server.ts";

/** The command-line flags, in `node:util` `parseArgs` form. Numbers are parsed by hand. */
export const OPTIONS = {
  port: { type: "string", default: "9001" },
  listen: { type: "string", default: "0.0.0.0" },
  peer: { type: "string", multiple: true, default: [] },
  identity: { type: "string" },
  json: { type: "boolean", default: false },
  duration: { type: "string" },
  "stats-interval": { type: "string", default: "10" },
  keepalive: { type: "string", default: "15" },
  broadcast: { type: "string", default: "0" },
  interval: { type: "string", default: "1000" },
  size: { type: "string", default: "64" },
  "wait-peers": { type: "string", default: "0" },
  "no-mdns": { type: "boolean", default: false },
  "no-dht": { type: "boolean", default: false },
  "data-dir": { type: "string" },
  "target-peers": { type: "string" },
  turn: { type: "string", multiple: true, default: [] },
  stun: { type: "string", multiple: true, default: [] },
  connect: { type: "string", multiple: true, default: [] },
  status: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies ParseArgsOptionsConfig;

/** `--help` text of each flag: the argument's name (empty for switches) and what it does. */
export const HELP: Record<keyof typeof OPTIONS, [arg: string, text: string]> = {
  port: ["PORT", "UDP port to listen on; 0 picks a free one (default 9001)"],
  listen: ["ADDR", "IP address to listen on (default 0.0.0.0)"],
  peer: [
    "HOST:PORT",
    "a bootstrap peer to join through (config bootstrapPeers); repeatable; retried with backoff until it answers",
  ],
  identity: [
    "FILE",
    "identity key file: loaded if it exists, else generated and saved (mode 0600); default: DIR/identity.key with --data-dir, else a fresh identity each run",
  ],
  json: ["", "print one JSON object per line per event instead of human-readable lines"],
  duration: ["SECONDS", "stop after this long (default: run until SIGINT/SIGTERM)"],
  "stats-interval": [
    "SECONDS",
    "print per-peer statistics this often; 0 turns them off (default 10)",
  ],
  keepalive: [
    "SECONDS",
    "keep-alive ping interval; the pings measure the RTT in the statistics (default 15)",
  ],
  broadcast: ["COUNT", "broadcast this many consensus messages to all peers (default 0)"],
  interval: ["MS", "time between two broadcasts (default 1000)"],
  size: ["BYTES", "payload size of each broadcast message (default 64)"],
  "wait-peers": ["N", "start broadcasting once N peers are connected (default 0)"],
  "no-mdns": [
    "",
    "do not announce this node or find and connect peers on the local network with mDNS (on by default; needs --allow-sys=networkInterfaces)",
  ],
  "no-dht": ["", "do not run the Kademlia DHT (then only --peer, mDNS and inbound peers connect)"],
  "data-dir": [
    "DIR",
    "keep the identity and the peers seen (Deno KV) here; a restarted node reconnects to them without --peer",
  ],
  "target-peers": [
    "N",
    "peers the connection manager keeps connected, dialing peers the DHT finds (default min(20, max connections))",
  ],
  turn: [
    "turn:USER:PASSWORD@HOST:PORT",
    "a TURN server to allocate a relayed address on (tried in order; repeatable); peers that cannot reach this node directly connect through it",
  ],
  stun: [
    "HOST:PORT",
    "a STUN server (IP literal) to discover this node's NAT and public address with; repeatable, tried in order",
  ],
  connect: [
    "PEER_ID",
    "reach this peer through the peers given with --peer, hole punching if needed (relayed with --turn if punching fails); repeatable",
  ],
  status: [
    "HOST:PORT",
    "serve a live status page (HTML at /, JSON at /status.json) on this TCP address; PORT alone binds 127.0.0.1 (default: off)",
  ],
  help: ["", "show this help and exit"],
};

/** The parsed and checked command line. */
export interface NodeArgs {
  /** UDP port. */
  port: number;
  /** Listen address. */
  listen: string;
  /** Peers to join, as given. */
  peers: string[];
  /** Identity file, if any. */
  identity?: string;
  /** JSON lines instead of human-readable lines. */
  json: boolean;
  /** Run time in milliseconds; `Infinity` until a signal. */
  durationMs: number;
  /** Statistics interval in milliseconds; 0 for none. */
  statsIntervalMs: number;
  /** Keep-alive interval in seconds. */
  keepAliveSecs: number;
  /** Broadcasts to send. */
  broadcast: number;
  /** Milliseconds between broadcasts. */
  intervalMs: number;
  /** Payload bytes per broadcast. */
  size: number;
  /** Peers to wait for before broadcasting. */
  waitPeers: number;
  /** Announce and browse with mDNS, dialing the peers found. */
  mdns: boolean;
  /** Run the DHT. */
  dht: boolean;
  /** Data directory, if any. */
  dataDir?: string;
  /** Peers to keep connected; `undefined` for the node's default. */
  targetPeers?: number;
  /** Inbound connections per IP address; `undefined` for the config's default. */
  maxInboundPerIp?: number;
  /** TURN servers from `--turn`. */
  turnServers: TurnServerConfig[];
  /** STUN servers from `--stun`, as `HOST:PORT`. */
  stunServers: string[];
  /** Peers to reach through the `--peer` peers, from `--connect`. */
  connect: string[];
  /** Where `--status` serves the status page, if anywhere. */
  status?: UdpAddress;
}

/** Thrown for a bad command line; `main` prints it with a pointer to `--help`. */
export class UsageError extends Error {}

/** One event the node reports; `--json` prints it as is, plus `time`. */
export type NodeEvent =
  | {
    event: "listening";
    peerId: string;
    address: string;
    identity: "loaded" | "created" | "data-dir" | "ephemeral";
  }
  | {
    event: "connected";
    peerId: string;
    address: string;
    direction: ConnectionDirection;
    foundBy: PeerSource;
    path: PeerPath;
  }
  | {
    event: "disconnected";
    peerId: string;
    address: string;
    direction: ConnectionDirection;
    foundBy: PeerSource;
    path: PeerPath;
    reason: string;
  }
  | {
    event: "migrated";
    peerId: string;
    address: string;
    previousAddress: string;
    path: PeerPath;
  }
  | {
    event: "dial-failed";
    address: string;
    foundBy: PeerSource;
    error: string;
    retryInMs: number | undefined;
  }
  | { event: "discovered"; peerId: string; addresses: string[]; version: string | undefined }
  | { event: "expired"; peerId: string; disconnect: boolean }
  | { event: "service-failed"; service: NodeServiceName; error: string; running: boolean }
  | { event: "relayed"; address: string; server: string; lifetimeSecs: number }
  | { event: "relay-expired"; reason: string }
  | {
    event: "nat";
    type: NatType;
    mapping: NatBehavior;
    filtering: NatBehavior;
    publicAddress: string | undefined;
    server: string;
  }
  | { event: "connect-failed"; peerId: string; error: string }
  | { event: "upgrade-failed"; peerId: string; error: string; retryInMs: number | undefined }
  | { event: "message"; from: string; type: NetworkMessage["type"]; size: number }
  | { event: "broadcast"; seq: number; size: number; ok: number; failed: number; errors: string[] }
  | ({ event: "stats" } & PeerStats)
  | { event: "status"; url: string }
  | { event: "progress"; stage: "dht" | "nat" | "relay"; text: string }
  | { event: "stopping"; reason: string };

/** Human-readable line of each event. */
const HUMAN: { [K in NodeEvent["event"]]: (e: Extract<NodeEvent, { event: K }>) => string } = {
  listening: (e) => `listening on ${e.address} as ${e.peerId} (identity ${e.identity})`,
  connected: (e) =>
    `connected ${e.direction} ${e.peerId} at ${e.address} (found by ${e.foundBy}, ${e.path})`,
  disconnected: (e) =>
    `disconnected ${e.peerId} at ${e.address} (found by ${e.foundBy}, ${e.path}): ${e.reason}`,
  migrated: (e) => `moved ${e.peerId} from ${e.previousAddress} to ${e.address} (${e.path})`,
  "dial-failed": (e) =>
    `dial ${e.address} (${e.foundBy}) failed: ${e.error}; ${
      e.retryInMs === undefined ? "given up" : `retrying in ${e.retryInMs / 1000} s`
    }`,
  discovered: (e) => `discovered ${e.peerId} at ${e.addresses.join(", ")} (mDNS, v=${e.version})`,
  expired: (e) => `expired ${e.peerId} (mDNS)${e.disconnect ? "; disconnecting it" : ""}`,
  "service-failed": (e) =>
    `${e.service} ${e.running ? "degraded" : "off"}: ${e.error}${e.running ? " (runs on)" : ""}`,
  relayed: (e) => `relayed address ${e.address} on TURN server ${e.server} (${e.lifetimeSecs} s)`,
  "relay-expired": (e) => `TURN allocation expired: ${e.reason}`,
  nat: (e) =>
    `NAT ${e.type} (mapping ${e.mapping}, filtering ${e.filtering}), public address ${
      e.publicAddress ?? "unknown"
    } (STUN ${e.server})`,
  "connect-failed": (e) => `cannot reach ${e.peerId}: ${e.error}`,
  "upgrade-failed": (e) =>
    `${e.peerId} stays relayed, no direct path yet: ${e.error}${
      e.retryInMs === undefined ? "" : `; next try in ${e.retryInMs / 1000} s`
    }`,
  message: (e) => `message ${e.type} of ${e.size} B from ${e.from}`,
  broadcast: (e) =>
    `broadcast #${e.seq} of ${e.size} B: ${e.ok} ok, ${e.failed} failed` +
    (e.errors.length > 0 ? ` (${e.errors.join("; ")})` : ""),
  stats: (e) =>
    `stats ${e.peerId}: rtt p50 ${e.rttP50Ms.toFixed(2)} ms p99 ${
      e.rttP99Ms.toFixed(2)
    } ms, sent ${e.messagesSent} msgs ${e.bytesSent} B, received ${e.messagesReceived} msgs ${e.bytesReceived} B`,
  status: (e) => `status page at ${e.url}`,
  progress: (e) => `${e.stage === "dht" ? "DHT" : e.stage === "nat" ? "NAT" : "relay"}: ${e.text}`,
  stopping: (e) => `stopping: ${e.reason}`,
};

/**
 * Makes the function every part of the node reports through.
 *
 * @param json One JSON object per line instead of human-readable lines.
 * @param write Where lines go.
 * @returns `emit(event)`.
 */
export function makeEmitter(
  json: boolean,
  write: (line: string) => void = (line) => console.log(line),
): (event: NodeEvent) => void {
  return (event) => {
    const time = new Date().toISOString();
    if (json) {
      write(JSON.stringify({ time, ...event }));
    } else {
      const format = HUMAN[event.event] as (e: NodeEvent) => string;
      write(`${time.slice(11, 23)} ${format(event)}`);
    }
  };
}

/** `--help` text. */
export function usage(): string {
  const rows = Object.entries(HELP).map(([name, [arg, text]]) => {
    const short = "short" in OPTIONS[name as keyof typeof OPTIONS] ? "-h, " : "";
    return [`  ${short}--${name}${arg ? ` ${arg}` : ""}`, text];
  });
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return [
    "Usage: deno run --allow-net --allow-ffi [--allow-read=FILE --allow-write=FILE]",
    "         examples/quic_node.ts [flags]",
    "",
    "A cretoai-network node: authenticated, post-quantum sealed QUIC to its peers.",
    "",
    "Flags:",
    ...rows.map(([flag, text]) => flag.padEnd(width) + text),
  ].join("\n");
}

/**
 * Parses and checks the command line.
 *
 * @param args The arguments after the script name.
 * @returns The node's settings, or `"help"`.
 * @throws {UsageError} naming the flag, the rule and the value.
 */
export function parseNodeArgs(args: string[]): NodeArgs | "help" {
  let values;
  try {
    ({ values } = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const peers = values.peer ?? [];
  for (const peer of peers) {
    try {
      parseAddress(peer);
    } catch {
      throw new UsageError(`Invalid '--peer': expected HOST:PORT: got ${JSON.stringify(peer)}`);
    }
  }
  const seconds = (flag: keyof typeof OPTIONS, text: string | undefined, min: number) =>
    text === undefined ? Infinity : number(flag, text, min, false) * 1000;
  return {
    port: number("port", values.port, 0, true, 65535),
    listen: values.listen,
    peers,
    identity: values.identity,
    json: values.json,
    durationMs: seconds("duration", values.duration, 0),
    statsIntervalMs: seconds("stats-interval", values["stats-interval"], 0),
    keepAliveSecs: number("keepalive", values.keepalive, 0, false),
    broadcast: number("broadcast", values.broadcast, 0, true),
    intervalMs: number("interval", values.interval, 0, true),
    size: number("size", values.size, 4, true, 16 * 1024 * 1024),
    waitPeers: number("wait-peers", values["wait-peers"], 0, true),
    mdns: !values["no-mdns"],
    dht: !values["no-dht"],
    dataDir: values["data-dir"],
    targetPeers: values["target-peers"] === undefined
      ? undefined
      : number("target-peers", values["target-peers"], 0, true),
    turnServers: (values.turn ?? []).map((url) => {
      try {
        return parseTurnUrl(url);
      } catch (e) {
        throw new UsageError(`Invalid '--turn': ${(e as Error).message}`);
      }
    }),
    stunServers: (values.stun ?? []).map((server) => {
      try {
        parseAddress(server);
      } catch {
        throw new UsageError(`Invalid '--stun': expected IP:PORT: got ${JSON.stringify(server)}`);
      }
      return server;
    }),
    status: values.status === undefined ? undefined : statusAddress(values.status),
    connect: (values.connect ?? []).map((peer) => {
      try {
        return PeerId.parse(peer).toString();
      } catch (e) {
        throw new UsageError(`Invalid '--connect': ${(e as Error).message}`);
      }
    }),
  };
}

/** `--status`: `HOST:PORT`, or a port alone on loopback; port 0 picks a free one. */
function statusAddress(text: string): UdpAddress {
  const match = /^(?:(.+):)?(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  try {
    if (match === null || port > 65535) throw new RangeError("no port");
    // parseAddress checks the host (an IP literal); it does not take port 0.
    const { hostname } = parseAddress(`${match[1] ?? "127.0.0.1"}:1`);
    return { hostname, port };
  } catch {
    throw new UsageError(
      `Invalid '--status': expected HOST:PORT or PORT: got ${JSON.stringify(text)}`,
    );
  }
}

function number(
  flag: keyof typeof OPTIONS,
  text: string,
  min: number,
  integer: boolean,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = Number(text);
  if (
    text.trim() === "" || !Number.isFinite(value) || value < min || value > max ||
    (integer && !Number.isInteger(value))
  ) {
    const kind = integer ? "an integer" : "a number";
    throw new UsageError(
      `Invalid '--${flag}': must be ${kind} from ${min} to ${max}: got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/**
 * Loads the identity file, or creates it (mode 0600) when it does not exist.
 *
 * @param path The file.
 * @returns The identity and what happened.
 */
export async function loadOrCreateIdentity(
  path: string,
): Promise<{ identity: Identity; how: "loaded" | "created" }> {
  try {
    return { identity: await Identity.load(path), how: "loaded" };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const identity = Identity.generate();
  await identity.save(path);
  return { identity, how: "created" };
}

/** Prints the statistics of every connected peer. */
function emitStats(node: NetworkNode, emit: (event: NodeEvent) => void): void {
  for (const peer of node.peers()) emit({ event: "stats", ...peerStats(peer) });
}

/**
 * Reaches `target` through the connected peers once NAT discovery is done: punches with the
 * NAT service, and with `--turn` falls back to the relay. `connected` reports it.
 */
async function reach(
  node: NetworkNode,
  target: string,
  ready: Promise<unknown>,
  signal: AbortSignal,
  emit: (event: NodeEvent) => void,
): Promise<void> {
  await ready;
  await untilPeers(node, 1, signal);
  if (signal.aborted) return;
  const nat = node.nat;
  const via = node.peers().map((p) => p.peerId).filter((p) => p.toString() !== target);
  if (
    nat === undefined || (via.length === 0 && !node.peers().some((p) => `${p.peerId}` === target))
  ) {
    const error = nat === undefined ? "NAT traversal is off" : "no connected peer to go through";
    emit({ event: "connect-failed", peerId: target, error });
    return;
  }
  try {
    await nat.connect(target, { via, signal });
  } catch (e) {
    if (!signal.aborted) {
      emit({ event: "connect-failed", peerId: target, error: (e as Error).message });
    }
  }
}

/** Resolves once `count` peers are connected, or `signal` aborts. */
function untilPeers(node: NetworkNode, count: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!signal.aborted && node.peers().length < count) return;
      node.removeEventListener("peer:connected", check);
      signal.removeEventListener("abort", check);
      resolve();
    };
    node.addEventListener("peer:connected", check);
    signal.addEventListener("abort", check, { once: true });
    check();
  });
}

/** Broadcasts `args.broadcast` messages, once `args.waitPeers` peers are connected. */
async function broadcastLoop(
  node: NetworkNode,
  args: NodeArgs,
  signal: AbortSignal,
  emit: (event: NodeEvent) => void,
): Promise<void> {
  await untilPeers(node, args.waitPeers, signal);
  for (let seq = 1; seq <= args.broadcast && !signal.aborted; seq++) {
    const data = new Uint8Array(args.size);
    new DataView(data.buffer).setUint32(0, seq);
    const results = await node.broadcast({ type: "consensus", data });
    const errors = results.flatMap((r) => r.ok ? [] : [`${r.peerId}: ${r.error.message}`]);
    emit({
      event: "broadcast",
      seq,
      size: args.size,
      ok: results.length - errors.length,
      failed: errors.length,
      errors,
    });
    if (seq < args.broadcast) await sleep(args.intervalMs, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function addressOf(address: UdpAddress): string {
  return formatAddress(address);
}

/** Reports what the node's events and services say. */
function report(node: NetworkNode, emit: (event: NodeEvent) => void): void {
  node.addEventListener("peer:connected", ({ detail }) =>
    emit({
      event: "connected",
      peerId: detail.peerId.toString(),
      address: addressOf(detail.address),
      direction: detail.direction,
      foundBy: detail.foundBy,
      path: detail.path,
    }));
  node.addEventListener("peer:disconnected", ({ detail }) =>
    emit({
      event: "disconnected",
      peerId: detail.peerId.toString(),
      address: addressOf(detail.address),
      direction: detail.direction,
      foundBy: detail.foundBy,
      path: detail.path,
      reason: detail.error.message,
    }));
  node.addEventListener("peer:migrated", ({ detail }) =>
    emit({
      event: "migrated",
      peerId: detail.peerId.toString(),
      address: addressOf(detail.address),
      previousAddress: addressOf(detail.previousAddress),
      path: detail.path,
    }));
  node.addEventListener("dial:failed", ({ detail }) =>
    emit({
      event: "dial-failed",
      address: detail.address,
      foundBy: detail.foundBy,
      error: detail.error.message,
      retryInMs: detail.retryInMs,
    }));
  node.addEventListener("service:failed", ({ detail }) =>
    emit({
      event: "service-failed",
      service: detail.service,
      error: detail.error.message,
      running: detail.running,
    }));
}

/** Reports what the services started with, and their later events. */
function reportServices(node: NetworkNode, emit: (event: NodeEvent) => void): void {
  const nat = (detail: NatDiscoveryResult) =>
    emit({
      event: "nat",
      type: detail.type,
      mapping: detail.mapping,
      filtering: detail.filtering,
      publicAddress: detail.publicAddress && addressOf(detail.publicAddress),
      server: addressOf(detail.server),
    });
  if (node.nat?.nat !== undefined) nat(node.nat.nat);
  node.nat?.addEventListener("nat:discovered", ({ detail }) => nat(detail));
  node.nat?.addEventListener("nat:upgrade-failed", ({ detail }) =>
    emit({
      event: "upgrade-failed",
      peerId: detail.peerId.toString(),
      error: detail.error.message,
      retryInMs: detail.retryInMs,
    }));
  const turn = node.relay?.turn;
  if (node.relay?.relayedAddress !== undefined && turn !== undefined) {
    emit({
      event: "relayed",
      address: addressOf(node.relay.relayedAddress),
      server: addressOf(turn.server),
      lifetimeSecs: turn.lifetimeSecs,
    });
  }
  node.relay?.addEventListener(
    "relay:expired",
    ({ detail }) => emit({ event: "relay-expired", reason: detail.message }),
  );
  node.mdns?.addEventListener("mdns:discovered", ({ detail }) =>
    emit({
      event: "discovered",
      peerId: detail.peerId,
      addresses: detail.addresses.map(addressOf),
      version: detail.version,
    }));
  node.mdns?.addEventListener(
    "mdns:expired",
    ({ detail }) => emit({ event: "expired", ...detail }),
  );
}

/** How often the progress lines say what is still running. */
const PROGRESS_INTERVAL_MS = 2000;

/**
 * Says what the long steps of start-up do while they run (human mode): the relay allocation
 * and the DHT bootstrap that `start` waits for, and NAT discovery behind it.
 *
 * @returns A function that stops the reports.
 */
function reportProgress(
  node: NetworkNode,
  args: NodeArgs,
  starting: Promise<void>,
  emit: (event: NodeEvent) => void,
): () => void {
  const startedAt = performance.now();
  const seconds = () => ((performance.now() - startedAt) / 1000).toFixed(1);
  const say = (stage: "dht" | "nat" | "relay", text: string) =>
    emit({ event: "progress", stage, text });
  const pending = new Set<"dht" | "nat" | "relay">();
  const finish = (stage: "dht" | "nat" | "relay", text: string) => {
    if (pending.delete(stage)) say(stage, `${text} after ${seconds()} s`);
    if (pending.size === 0) clearInterval(ticker);
  };
  if (args.turnServers.length > 0) {
    pending.add("relay");
    const servers = args.turnServers.map((t) => t.address).join(", ");
    say("relay", `allocating a relayed address on TURN ${servers}…`);
  }
  if (args.stunServers.length > 0) {
    pending.add("nat");
    say("nat", `discovering the NAT type with STUN ${args.stunServers.join(", ")}…`);
  }
  if (args.dht && args.peers.length > 0) {
    pending.add("dht");
    const peers = args.peers.length > 1 ? `${args.peers.length} peers` : args.peers[0];
    say("dht", `bootstrapping through ${peers}…`);
  }
  const ticker = setInterval(() => {
    // Start-up runs the relay, then the DHT; NAT discovery runs beside them.
    const waiting = [...pending].filter((stage) => stage !== "dht" || node.dht !== undefined);
    for (const stage of waiting) say(stage, `still working (${seconds()} s)…`);
  }, PROGRESS_INTERVAL_MS);
  if (pending.size === 0) clearInterval(ticker);
  node.addEventListener("service:failed", ({ detail }) => {
    const stage = detail.service === "dht" || detail.service === "nat" || detail.service === "relay"
      ? detail.service
      : undefined;
    if (stage !== undefined) finish(stage, `failed: ${detail.error.message}`);
  });
  starting.then(() => {
    if (pending.size === 0) return;
    const relayed = node.relay?.relayedAddress;
    if (relayed !== undefined) finish("relay", `allocated ${addressOf(relayed)}`);
    const dht = node.dht;
    if (dht !== undefined) {
      finish(
        "dht",
        `joined with ${dht.routingTableSize} contact${dht.routingTableSize === 1 ? "" : "s"}`,
      );
    }
    const nat = node.nat;
    if (nat?.nat !== undefined) finish("nat", `found ${nat.nat.type}`);
    else {nat?.addEventListener("nat:discovered", ({ detail }) =>
        finish("nat", `found ${detail.type}`));}
  }, () => clearInterval(ticker));
  return () => clearInterval(ticker);
}

/**
 * Runs a node until SIGINT/SIGTERM or the duration ends, then closes it.
 *
 * @param args The parsed command line.
 * @param emit Where events go.
 */
export async function runNode(args: NodeArgs, emit: (event: NodeEvent) => void): Promise<void> {
  const loaded = args.identity === undefined
    ? undefined
    : await loadOrCreateIdentity(args.identity);
  // Not started yet, so that the connections made while it starts are reported too.
  const node = await createNode({
    identity: loaded?.identity,
    dataDir: args.dataDir,
    targetPeers: args.targetPeers,
    start: false,
    config: {
      listenAddr: args.listen,
      quicPort: args.port,
      bootstrapPeers: args.peers,
      keepAliveIntervalSecs: args.keepAliveSecs,
      // The idle timeout must exceed the keep-alive interval; keep the default's margin.
      idleTimeoutMs: Math.max(90_000, Math.ceil(args.keepAliveSecs * 3000)),
      enableMdns: args.mdns,
      enableDht: args.dht,
      turnServers: args.turnServers,
      stunServers: args.stunServers,
      maxInboundPerIp: args.maxInboundPerIp,
    },
  });
  report(node, emit);
  const stop = new AbortController();
  const onSignal = (name: Deno.Signal) => () => stop.abort(name);
  const signals = (["SIGINT", "SIGTERM"] as const).map((name) => {
    const handler = onSignal(name);
    Deno.addSignalListener(name, handler);
    return () => Deno.removeSignalListener(name, handler);
  });
  const timers: ReturnType<typeof setTimeout>[] = [];
  const startedAt = Date.now();
  let status: StatusServer | undefined;
  let stopProgress: (() => void) | undefined;
  try {
    const starting = node.start();
    if (!args.json) stopProgress = reportProgress(node, args, starting, emit);
    await starting;
    emit({
      event: "listening",
      peerId: node.peerId.toString(),
      address: addressOf(node.localAddr),
      identity: loaded?.how ?? (args.dataDir === undefined ? "ephemeral" : "data-dir"),
    });
    reportServices(node, emit);
    if (args.status !== undefined) {
      status = serveStatus(node, { ...args.status, startedAt });
      emit({ event: "status", url: status.url });
    }
    // --connect waits for NAT discovery (in the background since start) to know the NAT.
    const discovered = node.nat === undefined || args.stunServers.length === 0
      ? Promise.resolve()
      : node.nat.discover().catch(() => {}); // a failure is reported as service-failed

    if (args.durationMs !== Infinity) {
      timers.push(setTimeout(() => stop.abort("duration"), args.durationMs));
    }
    if (args.statsIntervalMs > 0 && args.statsIntervalMs !== Infinity) {
      timers.push(setInterval(() => emitStats(node, emit), args.statsIntervalMs));
    }
    const receiving = (async () => {
      for await (const { from, message } of node.messages()) {
        emit({ event: "message", from: from.toString(), ...describe(message) });
      }
    })();
    const tasks = [
      ...args.connect.map((peer) => reach(node, peer, discovered, stop.signal, emit)),
      broadcastLoop(node, args, stop.signal, emit),
    ];

    if (!stop.signal.aborted) {
      await new Promise((resolve) =>
        stop.signal.addEventListener("abort", resolve, { once: true })
      );
    }
    emit({ event: "stopping", reason: String(stop.signal.reason) });
    await Promise.all(tasks);
    emitStats(node, emit);
    await node.close();
    await receiving;
  } finally {
    for (const timer of timers) clearTimeout(timer);
    for (const remove of signals) remove();
    stopProgress?.();
    await status?.close();
    await node.close();
  }
}

function describe(message: NetworkMessage): { type: NetworkMessage["type"]; size: number } {
  return { type: message.type, size: "data" in message ? message.data.byteLength : 0 };
}

/**
 * The command: parses the flags, prints help or a usage error (exit 2), else runs the node.
 *
 * @param args The arguments after the script name.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  let parsed: NodeArgs | "help";
  try {
    parsed = parseNodeArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`${e.message}\nRun with --help for the flags.`);
    return 2;
  }
  if (parsed === "help") {
    console.log(usage());
    return 0;
  }
  await runNode(parsed, makeEmitter(parsed.json));
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
