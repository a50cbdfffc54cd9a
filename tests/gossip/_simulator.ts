/**
 * A network of gossip routers in virtual time, for tests and benches: a seeded PRNG, a random
 * connection graph, latency from the nodes' distance on a plane, message loss, and nodes that fail mid-run without a word
 * (their peers notice after `detectionMs`, as a QUIC idle timeout would). The same network
 * runs plain flooding (every new message to every connected peer) for comparison.
 *
 * @module
 */

import { Prng, quantile } from "../discovery/dht/_simulator.ts";
import { BinaryHeap, earlier, type Scheduled } from "../_binary_heap.ts";
import {
  type GossipFrame,
  gossipFrameBytes,
  GossipRouter,
  type GossipRouterOptions,
} from "../../src/gossip/mod.ts";

export { Prng, quantile };

/** Parameters of one simulated run. */
export interface GossipSimOptions {
  /** Nodes in the network. */
  nodes: number;
  /** Connections each node dials to random others (it also accepts others' dials). */
  dialsPerNode: number;
  /** Messages published, by random live nodes, spread over `publishWindowMs`. */
  messages: number;
  /** Bytes per message. */
  messageBytes: number;
  /** Share of the nodes that fail at the middle of the publish window. */
  failShare: number;
  /** Probability that a frame is lost. */
  lossRate: number;
  /**
   * Link latency in milliseconds: nodes sit at random points of a unit square, and a link
   * takes `min` plus (`max` - `min`) times their distance over the diagonal. Unlike random
   * per-link latency this keeps the triangle inequality: a detour is never faster.
   */
  latencyMs: [number, number];
  /** Time a node takes to validate a message. */
  validationMs: number;
  /** Time until the peers of a failed node notice. */
  detectionMs: number;
  /** Time from start to the first publish, for meshes to form. */
  warmupMs: number;
  /** Publishes are spread over this much time. */
  publishWindowMs: number;
  /** Time after the last publish before the run ends. */
  drainMs: number;
  /** PRNG seed: the same seed gives the same run. */
  seed: number;
  /** Router options (the seeded PRNG is added). */
  router?: GossipRouterOptions;
}

/** What a run measured; delivery counts only nodes alive to the end. */
export interface GossipSimReport {
  /** "gossip" or "flood". */
  protocol: string;
  /** Deliveries / (messages x live nodes other than the publisher). */
  deliveryRatio: number;
  /** Hops of every delivery. */
  hops: number[];
  /** Milliseconds from publish to each delivery. */
  delaysMs: number[];
  /** Full copies received for an id already seen, per delivery. */
  duplicatesPerDelivery: number;
  /** Bytes sent (frame sizes) per node over the run. */
  bytesPerNode: number;
  /** Frames sent per node over the run. */
  framesPerNode: number;
}

interface Event extends Scheduled {
  run: () => void;
}

/** Events by time, then insertion order. */
class EventQueue {
  #heap = new BinaryHeap<Event>(earlier);
  #order = 0;
  now = 0;

  at(at: number, run: () => void): void {
    this.#heap.push({ at, order: this.#order++, run });
  }

  /** Runs events in order until `until`. */
  runUntil(until: number): void {
    while (this.#heap.size > 0 && this.#heap.peek()!.at <= until) {
      const next = this.#heap.pop()!;
      this.now = next.at;
      next.run();
    }
    this.now = until;
  }
}

/** One node's protocol, as the simulator drives it. */
interface SimProtocol {
  addPeer(peer: string): void;
  removePeer(peer: string): void;
  publish(data: Uint8Array, now: number): string;
  receive(from: string, frame: GossipFrame, now: number): void;
}

interface SimNode {
  name: string;
  x: number;
  y: number;
  alive: boolean;
  peers: Set<string>;
  protocol: SimProtocol;
}

const TOPIC = "sim";

/** Delivery bookkeeping shared by every node of a run. */
class Ledger {
  delivered = new Map<string, Set<string>>();
  published = new Map<string, { at: number; by: string }>();
  hops: { node: string; hops: number }[] = [];
  delays: { node: string; ms: number }[] = [];
  duplicates = new Map<string, number>();
  bytes = 0;
  frames = 0;

  deliver(node: string, id: string, hops: number, now: number): void {
    const seen = this.delivered.get(id) ?? new Set();
    this.delivered.set(id, seen);
    seen.add(node);
    this.hops.push({ node, hops });
    this.delays.push({ node, ms: now - this.published.get(id)!.at });
  }

  duplicate(node: string): void {
    this.duplicates.set(node, (this.duplicates.get(node) ?? 0) + 1);
  }
}

/**
 * Runs one simulation of `protocol` and reports what it measured.
 *
 * @param protocol "gossip" for {@linkcode GossipRouter}, "flood" for plain flooding.
 * @param options The run's parameters.
 * @returns The report.
 */
export function simulate(protocol: "gossip" | "flood", options: GossipSimOptions): GossipSimReport {
  const o = options;
  const prng = new Prng(o.seed);
  const queue = new EventQueue();
  const ledger = new Ledger();
  const nodes = new Map<string, SimNode>();
  const [minMs, maxMs] = o.latencyMs;
  const linkLatency = (a: SimNode, b: SimNode) =>
    minMs + (maxMs - minMs) * Math.hypot(a.x - b.x, a.y - b.y) / Math.SQRT2;
  /** Delivers a frame after the link's latency, unless it is lost or either end is down. */
  const transmit = (from: SimNode, to: string, frame: GossipFrame) => {
    ledger.bytes += gossipFrameBytes(frame);
    ledger.frames++;
    if (prng.next() < o.lossRate) return;
    const target = nodes.get(to)!;
    queue.at(queue.now + linkLatency(from, target), () => {
      if (!target.alive || !target.peers.has(from.name)) return;
      target.protocol.receive(from.name, frame, queue.now);
    });
  };

  for (let i = 0; i < o.nodes; i++) {
    const name = `n${i}`;
    const node: SimNode = {
      name,
      x: prng.next(),
      y: prng.next(),
      alive: true,
      peers: new Set(),
      protocol: undefined!,
    };
    node.protocol = protocol === "gossip"
      ? gossipNode(node, o, prng, queue, ledger, transmit)
      : floodNode(node, o, queue, ledger, transmit);
    nodes.set(name, node);
  }
  const names = [...nodes.keys()];
  const connect = (a: SimNode, b: SimNode) => {
    if (a === b || a.peers.has(b.name)) return;
    a.peers.add(b.name);
    b.peers.add(a.name);
    a.protocol.addPeer(b.name);
    b.protocol.addPeer(a.name);
  };
  for (const node of nodes.values()) {
    for (let d = 0; d < o.dialsPerNode; d++) connect(node, nodes.get(prng.pick(names))!);
  }

  const start = o.warmupMs;
  const failAt = start + o.publishWindowMs / 2;
  for (let m = 0; m < o.messages; m++) {
    const at = start + (o.publishWindowMs * m) / o.messages;
    queue.at(at, () => {
      const alive = names.filter((n) => nodes.get(n)!.alive);
      const by = nodes.get(prng.pick(alive))!;
      const data = prng.bytes(o.messageBytes);
      const id = by.protocol.publish(data, queue.now);
      ledger.published.set(id, { at: queue.now, by: by.name });
    });
  }
  queue.at(failAt, () => {
    const victims = [...names];
    for (let i = 0; i < Math.round(o.failShare * o.nodes); i++) {
      const node = nodes.get(victims.splice(prng.int(0, victims.length - 1), 1)[0])!;
      node.alive = false;
      queue.at(queue.now + o.detectionMs, () => {
        for (const peer of node.peers) {
          const other = nodes.get(peer)!;
          other.peers.delete(node.name);
          if (other.alive) other.protocol.removePeer(node.name);
        }
      });
    }
  });
  queue.runUntil(start + o.publishWindowMs + o.drainMs);

  const live = new Set(names.filter((n) => nodes.get(n)!.alive));
  let expected = 0;
  let delivered = 0;
  for (const [id, { by }] of ledger.published) {
    const got = ledger.delivered.get(id) ?? new Set();
    expected += live.size - (live.has(by) ? 1 : 0);
    for (const n of got) if (live.has(n)) delivered++;
  }
  let duplicates = 0;
  for (const [node, n] of ledger.duplicates) if (live.has(node)) duplicates += n;
  return {
    protocol,
    deliveryRatio: delivered / expected,
    hops: ledger.hops.filter((h) => live.has(h.node)).map((h) => h.hops),
    delaysMs: ledger.delays.filter((d) => live.has(d.node)).map((d) => d.ms),
    duplicatesPerDelivery: duplicates / delivered,
    bytesPerNode: ledger.bytes / o.nodes,
    framesPerNode: ledger.frames / o.nodes,
  };
}

function gossipNode(
  node: SimNode,
  o: GossipSimOptions,
  prng: Prng,
  queue: EventQueue,
  ledger: Ledger,
  transmit: (from: SimNode, to: string, frame: GossipFrame) => void,
): SimProtocol {
  const router = new GossipRouter({ ...o.router, random: () => prng.next() });
  let tickAt = Infinity;
  /** Hands out events and frames, and keeps one timer at the router's next tick. */
  const pump = () => {
    if (!node.alive) return;
    for (const event of router.takeEvents()) {
      if (event.type === "validate") {
        const done = () => {
          if (!node.alive) return;
          router.validated(event.id, "accept", queue.now);
          pump();
        };
        if (o.validationMs > 0) queue.at(queue.now + o.validationMs, done);
        else done();
      } else if (event.type === "deliver") {
        ledger.deliver(node.name, event.id, event.hops, queue.now);
      }
    }
    for (const peer of router.queuedPeers()) {
      for (let out; (out = router.takeFrame(peer)) !== undefined;) transmit(node, peer, out.frame);
    }
    const next = router.nextTickAt();
    if (next < tickAt) {
      tickAt = next;
      queue.at(Math.max(queue.now, next), () => {
        if (tickAt !== next) return;
        tickAt = Infinity;
        if (!node.alive) return;
        router.tick(queue.now);
        pump();
      });
    }
  };
  router.subscribe(TOPIC, "consensus");
  // Heartbeats of different nodes are out of phase, as on real machines.
  const phase = prng.next() * (o.router?.heartbeatMs ?? 1000);
  queue.at(phase, pump);
  return {
    addPeer(peer) {
      router.addPeer(peer);
      pump();
    },
    removePeer(peer) {
      router.removePeer(peer);
      pump();
    },
    publish(data, now) {
      const id = router.publish(TOPIC, data, now);
      pump();
      return id;
    },
    receive(from, frame, now) {
      const before = router.stats().duplicates;
      router.handleFrame(from, frame, now);
      if (router.stats().duplicates > before) ledger.duplicate(node.name);
      pump();
    },
  };
}

/**
 * Plain flooding: every new message goes, once validated, to every connected peer but its
 * sender.
 */
function floodNode(
  node: SimNode,
  o: GossipSimOptions,
  queue: EventQueue,
  ledger: Ledger,
  transmit: (from: SimNode, to: string, frame: GossipFrame) => void,
): SimProtocol {
  const seen = new Set<string>();
  let counter = 0;
  const flood = (frame: GossipFrame & { kind: "message" }, except: string | undefined) => {
    for (const peer of node.peers) if (peer !== except) transmit(node, peer, frame);
  };
  return {
    addPeer() {},
    removePeer() {},
    publish(data) {
      // Flooding needs no content hash: a counter per node names the message.
      const id = `${node.name}/${counter++}`;
      seen.add(id);
      ids.set(data, id);
      flood({ kind: "message", topic: TOPIC, data, hops: 1 }, undefined);
      return id;
    },
    receive(from, frame, now) {
      if (frame.kind !== "message" || !node.alive) return;
      const id = ids.get(frame.data)!;
      if (seen.has(id)) return ledger.duplicate(node.name);
      seen.add(id);
      queue.at(now + o.validationMs, () => {
        if (!node.alive) return;
        ledger.deliver(node.name, id, frame.hops, queue.now);
        flood({ ...frame, hops: frame.hops + 1 }, from);
      });
    },
  };
}

/** Flooding passes the same data object along, so its identity names the message. */
const ids = new WeakMap<Uint8Array, string>();

/**
 * Formats reports side by side as a markdown table.
 *
 * @param reports The runs to compare.
 * @returns The table.
 */
export function formatReports(reports: readonly GossipSimReport[]): string {
  const rows: [string, (r: GossipSimReport) => string][] = [
    ["delivery ratio", (r) => `${(100 * r.deliveryRatio).toFixed(3)}%`],
    ["hops median", (r) => String(quantile(r.hops, 0.5))],
    ["hops p99", (r) => String(quantile(r.hops, 0.99))],
    [
      "hops >= 6 (share)",
      (r) => `${(100 * r.hops.filter((h) => h >= 6).length / r.hops.length).toFixed(2)}%`,
    ],
    ["delivery ms median", (r) => quantile(r.delaysMs, 0.5).toFixed(0)],
    ["delivery ms p99", (r) => quantile(r.delaysMs, 0.99).toFixed(0)],
    ["duplicates per delivery", (r) => r.duplicatesPerDelivery.toFixed(2)],
    ["KiB sent per node", (r) => (r.bytesPerNode / 1024).toFixed(0)],
    ["frames sent per node", (r) => r.framesPerNode.toFixed(0)],
  ];
  const lines = [
    `| metric | ${reports.map((r) => r.protocol).join(" | ")} |`,
    `|---|${reports.map(() => "---:").join("|")}|`,
  ];
  for (const [name, cell] of rows) lines.push(`| ${name} | ${reports.map(cell).join(" | ")} |`);
  return lines.join("\n");
}
