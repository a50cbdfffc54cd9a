/**
 * The live status page of `quic_node.ts --status HOST:PORT`: an HTML page at `/` that updates
 * itself (it polls `/status.json` every second) with a peer table, a round-trip chart and a
 * message-rate chart, and the JSON at `/status.json`. No build step, nothing loaded from
 * elsewhere: the page is one file with its script and styles inline.
 *
 * @module
 */
import { formatAddress, type NetworkNode, type NodePeerInfo } from "../mod.ts";
import { STATUS_PAGE } from "./_status_page.ts";

/** A peer's round trips and traffic: the `stats` lines of `quic_node.ts` and the page's table. */
export interface PeerStats {
  /** The peer's id. */
  peerId: string;
  /** Its address on the connection, `HOST:PORT`. */
  address: string;
  /** Median ping round trip, milliseconds. */
  rttP50Ms: number;
  /** 99th percentile ping round trip, milliseconds. */
  rttP99Ms: number;
  /** Messages the peer acknowledged. */
  messagesSent: number;
  /** Messages received from the peer. */
  messagesReceived: number;
  /** Message bytes written to the peer. */
  bytesSent: number;
  /** Message bytes read from the peer. */
  bytesReceived: number;
}

/** One peer in `/status.json`. */
export interface PeerStatus extends PeerStats {
  /** `direct`, or `relay` through a TURN server. */
  path: string;
  /** How the node learned of it: bootstrap, dht, mdns, peer-store, inbound, application. */
  foundBy: string;
  /** Whether this node dialed it. */
  direction: string;
}

/** The statistics of a connected peer. */
export function peerStats({ peerId, addresses, stats }: NodePeerInfo): PeerStats {
  return {
    peerId: peerId.toString(),
    address: addresses[0] ?? "",
    rttP50Ms: stats.p50LatencyMs,
    rttP99Ms: stats.p99LatencyMs,
    messagesSent: stats.messagesSent,
    messagesReceived: stats.messagesReceived,
    bytesSent: stats.bytesSent,
    bytesReceived: stats.bytesReceived,
  };
}

/** `/status.json`. */
export interface NodeStatus {
  /** This node's id. */
  peerId: string;
  /** Where it can be reached: its socket, its public address (STUN), its relayed address. */
  addresses: string[];
  /** The NAT type the last discovery found, `null` before one (or without `--stun`). */
  natType: string | null;
  /** Milliseconds since the node started. */
  uptimeMs: number;
  /** When this snapshot was taken, milliseconds since the epoch. */
  time: number;
  /** One entry per connected peer. */
  peers: PeerStatus[];
}

/** Options of {@linkcode serveStatus}. */
export interface StatusServerOptions {
  /** Address to bind; loopback unless the operator says otherwise. */
  hostname: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Milliseconds since the epoch when the node started. */
  startedAt: number;
  /**
   * How often the server keeps a snapshot for the charts a new page starts with.
   * @default {1000}
   */
  sampleIntervalMs?: number;
  /**
   * Snapshots kept for that (the oldest gives way).
   * @default {300}
   */
  historyLength?: number;
}

/** A running status server. */
export interface StatusServer extends AsyncDisposable {
  /** `http://HOST:PORT/`. */
  readonly url: string;
  /** Stops serving and sampling. */
  close(): Promise<void>;
}

/** The node's status now. */
export function statusOf(node: NetworkNode, startedAt: number): NodeStatus {
  const addresses = [formatAddress(node.localAddr)];
  const publicAddress = node.nat?.nat?.publicAddress;
  if (publicAddress !== undefined) addresses.push(formatAddress(publicAddress));
  const relayed = node.relay?.relayedAddress;
  if (relayed !== undefined) addresses.push(formatAddress(relayed));
  const now = Date.now();
  return {
    peerId: node.peerId.toString(),
    addresses,
    natType: node.nat?.nat?.type ?? null,
    uptimeMs: now - startedAt,
    time: now,
    peers: node.peers().map((peer) => ({
      ...peerStats(peer),
      path: peer.path,
      foundBy: peer.foundBy,
      direction: peer.direction,
    })),
  };
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "[::1]", "localhost"]);
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
};

/**
 * Serves the status page of `node` until closed.
 *
 * @param node The node.
 * @param options Where to listen, and the charts' history.
 * @returns The server.
 */
export function serveStatus(node: NetworkNode, options: StatusServerOptions): StatusServer {
  const { hostname, port, startedAt, sampleIntervalMs = 1000, historyLength = 300 } = options;
  const history: NodeStatus[] = [];
  const sample = () => {
    history.push(statusOf(node, startedAt));
    if (history.length > historyLength) history.shift();
  };
  sample();
  const sampler = setInterval(sample, sampleIntervalMs);
  const server = Deno.serve({ hostname, port, onListen: () => {} }, (request) => {
    // A loopback server is reachable from any web page through DNS rebinding: answer only
    // requests that name it by a loopback name.
    const host = new URL(`http://${request.headers.get("host") ?? ""}`).hostname;
    if (LOOPBACK.has(hostname) && !LOOPBACK.has(host)) {
      return new Response("Misdirected request\n", { status: 421 });
    }
    if (request.method !== "GET") return new Response("Method not allowed\n", { status: 405 });
    const path = new URL(request.url).pathname;
    if (path === "/status.json") {
      return Response.json(statusOf(node, startedAt), { headers: SECURITY_HEADERS });
    }
    if (path === "/") {
      // The history rides in the page, so that the charts have data at once; `<` is escaped
      // so that no string in it can end the script element.
      const initial = JSON.stringify({ history, now: statusOf(node, startedAt) })
        .replaceAll("<", "\\u003c");
      return new Response(STATUS_PAGE.replace("__INITIAL__", () => initial), {
        headers: { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" },
      });
    }
    return new Response("Not found\n", { status: 404 });
  });
  const bound = server.addr;
  const shown = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  let closing: Promise<void> | undefined;
  const close = () => {
    clearInterval(sampler);
    closing ??= server.shutdown();
    return closing;
  };
  return { url: `http://${shown}:${bound.port}/`, close, [Symbol.asyncDispose]: close };
}
