// Transports on loopback for the benchmarks in this folder and bench/compare.ts: a node, a
// connected pair, a star of leaves around a hub, each receiving node draining (or echoing)
// its messages so flow control never holds senders back.
import { Identity, type NetworkConfig, type PeerId, QuicTransport } from "../../mod.ts";

/** Settings of the benchmark nodes. */
export interface NodeOptions {
  /** Seal frames with the handshake's ML-KEM keys. Default true (the transport's default). */
  pqEncryption?: boolean;
  /**
   * Node-wide send rate limit. Default `Infinity`: the transport's own default (100 Mbit/s)
   * would make every throughput figure the limiter's rate.
   */
  maxBandwidthBps?: number;
  /**
   * Closes a connection without messages for this long; 0 never does. Default the transport's
   * (90 s): the memory benchmark keeps idle peers longer than that on a loaded machine.
   */
  idleTimeoutMs?: number;
  /** Keep-alive ping interval in seconds, 0 for none. Default the transport's (15 s). */
  keepAliveIntervalSecs?: number;
}

/** A bound transport on 127.0.0.1 with a free port. */
export async function node(options: NodeOptions = {}): Promise<QuicTransport> {
  const { pqEncryption = true, maxBandwidthBps = Infinity, idleTimeoutMs, keepAliveIntervalSecs } =
    options;
  const config: NetworkConfig = {
    listenAddr: "127.0.0.1",
    quicPort: 0,
    pqEncryption,
    maxBandwidthBps,
    idleTimeoutMs,
    keepAliveIntervalSecs,
    // Every benchmark peer dials from 127.0.0.1; the default (8 per IP) would refuse a star,
    // the default pool (100) the memory benchmark's 1000 peers.
    maxInboundPerIp: 2048,
    maxConnections: 2048,
  };
  const transport = new QuicTransport({ identity: Identity.generate(), config });
  await transport.bindAndListen();
  return transport;
}

/** Takes every message a node receives and drops it. */
export function drain(transport: QuicTransport): Promise<void> {
  return (async () => {
    for await (const _ of transport.messages());
  })();
}

/** Sends every consensus message a node receives back to its sender; drops the others. */
export function echo(transport: QuicTransport): Promise<void> {
  return (async () => {
    for await (const { from, message } of transport.messages()) {
      // Only the RTT probes: echoing bulk vertices would halve a throughput measurement.
      if (message.type === "consensus") transport.send(from, message).catch(() => {});
    }
  })();
}

/** `a` connected to `b`; `b` handles what it receives with `serve`. */
export interface Pair {
  a: QuicTransport;
  b: QuicTransport;
  /** `b`'s peer id, as `a` knows it. */
  remote: PeerId;
  close(): Promise<void>;
}

/** Two connected nodes; `b` runs `serve` (default {@linkcode drain}) on its messages. */
export async function pair(
  options: NodeOptions = {},
  serve: (t: QuicTransport) => Promise<void> = drain,
): Promise<Pair> {
  const a = await node(options);
  const b = await node(options);
  const served = serve(b);
  const remote = await a.connectPeer(b.localAddr);
  return {
    a,
    b,
    remote,
    async close() {
      await a.close();
      await b.close();
      await served;
    },
  };
}

/** A hub connected to `leaves` nodes that drain their messages. */
export async function star(
  leaves: number,
  options: NodeOptions = {},
): Promise<{ hub: QuicTransport; close(): Promise<void> }> {
  const hub = await node(options);
  const nodes = await Promise.all(Array.from({ length: leaves }, () => node(options)));
  const drained = nodes.map(drain);
  for (const leaf of nodes) await leaf.connectPeer(hub.localAddr);
  while (hub.peers().length < leaves) await new Promise((r) => setTimeout(r, 10));
  return {
    hub,
    async close() {
      await Promise.all([hub, ...nodes].map((t) => t.close()));
      await Promise.all(drained);
    },
  };
}
