/**
 * `GossipRouter`: the gossip protocol as a pure state machine, after libp2p's gossipsub v1.2.
 * It holds a mesh per topic, a seen-cache, a cache of recent messages and one bounded outbox
 * per peer; it has no sockets and no clock. A driver feeds it frames, peers and the time, and
 * takes out frames to send and events (validate, deliver, penalize): `GossipService` over a
 * `QuicTransport`, or a simulator on a virtual clock.
 *
 * Rules:
 * - Mesh: each subscribed topic keeps `meshDegree` (D) peers that get every message in full;
 *   the heartbeat grafts peers when fewer than `meshDegreeLow` remain and prunes random ones
 *   down to D above `meshDegreeHigh`. A pruned peer is not grafted again for `pruneBackoffMs`.
 * - Lazy gossip: each heartbeat announces the ids of the last `historyGossip` heartbeats'
 *   messages (ihave) to `lazyDegree` random subscribed peers outside the mesh; they ask for
 *   what they miss (iwant), each id at most once per `iwantTimeoutMs`.
 * - Each message id is handled once (seen-cache). A message of `idontwantMinBytes` or more
 *   is announced right away, before validation, to the mesh as idontwant, and a peer's
 *   idontwant (or its own copy of the message) keeps it from being sent there.
 * - Choking (after the gossipsub choke extension): a node counts, per mesh peer, the new
 *   messages that peer brought first (in full, or as an ihave of an id not seen yet). Once
 *   a heartbeat's sample holds {@linkcode CHOKE_SAMPLE_MESSAGES} new messages, it keeps the
 *   `unchokedDegree` best peers sending full messages and chokes the others: they send an
 *   ihave at once instead of the message, and the node asks with iwant if it still lacks it.
 *   Copies that only arrive late stop costing bandwidth, and a choked peer that starts to be
 *   first gets unchoked at the next ranking. A peer joining a mesh that already has
 *   `unchokedDegree` unchoked peers starts choked; when an unchoked one leaves, the best
 *   choked one is unchoked at once.
 * - Push while few nodes have a message, announce once most have it: a message goes to every
 *   subscribed peer on its first `floodHops` links (the publisher's own when `floodPublish`),
 *   then in full to the whole mesh, choked or not, up to `fullPushHops` links, then in full
 *   only to unchoked peers. How far "few" reaches depends on the network's size, which no
 *   node knows; the hop counts of the messages it receives tell it: while their decaying mean
 *   over about {@linkcode HOP_SAMPLE_MESSAGES} messages exceeds `deepPushMeanHops`, the node
 *   pushes one link further in full (`fullPushHops` + 1). A new topic starts as if one
 *   message had come over `deepPushMeanHops` + 1 links: the node pushes deeper until the
 *   messages it receives say the network is small.
 * - Nothing is forwarded before the application's verdict (`validated`): accept forwards and
 *   delivers, ignore drops, reject drops and penalizes every peer that sent it; after
 *   `graylistRejects` rejects a peer leaves every mesh and its frames are dropped. A verdict
 *   not given within `validationTimeoutMs` counts as ignore.
 * - Bounds and drop rules: per topic, at most `maxPendingValidations` messages wait for a
 *   verdict (a newer one is dropped and forgotten, so a later ihave can bring it again); per
 *   peer and priority, at most `maxQueuedFrames` frames wait to be sent (the oldest is
 *   dropped: a message it carried is still announced by ihave). Consensus frames leave before
 *   bulk ones.
 *
 * @module
 */

import { requireInteger, requirePositiveFinite } from "../_validate.ts";
import { InvalidConfigError } from "../errors.ts";
import { checkTopic, type GossipFrame, MAX_FRAME_IDS } from "./codec.ts";
import { ExpiringSet } from "./_expiring_set.ts";
import { gossipMessageId } from "./message_id.ts";

/** Which frames go first: `consensus` topics ahead of `bulk` ones. */
export type GossipPriority = "consensus" | "bulk";

/** The application's verdict on a received message. */
export type ValidationResult = "accept" | "ignore" | "reject";

/** New messages a topic's mesh must bring before its peers are ranked for choking. */
export const CHOKE_SAMPLE_MESSAGES = 10;

/**
 * Messages over which a topic's mean hop count is taken, for `deepPushMeanHops`: older ones
 * weigh half once twice this many arrived.
 */
export const HOP_SAMPLE_MESSAGES = 16;

/** Why the router asks for a peer to be penalized. */
export type GossipPenaltyReason = "invalid-message" | "too-many-topics" | "graft-in-backoff";

/** Options of {@linkcode GossipRouter}; times are in milliseconds of the driver's clock. */
export interface GossipRouterOptions {
  /**
   * D: the number of mesh peers per topic that get every message in full.
   * @default {6}
   */
  meshDegree?: number;
  /**
   * D_lo: below this many mesh peers the heartbeat grafts more, up to D.
   * @default {4}
   */
  meshDegreeLow?: number;
  /**
   * D_hi: above this many mesh peers the heartbeat prunes random ones down to D.
   * @default {12}
   */
  meshDegreeHigh?: number;
  /**
   * Mesh peers per topic that keep sending full messages once choking ranked them; the
   * others send ihave instead. At `meshDegreeHigh` or more, nobody is choked. In the
   * simulator (`bench/gossip/`), 1 cost 1,000 nodes the same hops as 2 for 0.35 fewer
   * duplicates per message, once the pushes of the first links reach most nodes.
   * @default {1}
   */
  unchokedDegree?: number;
  /**
   * Messages travel in full to every mesh peer, choked or not, for their first this many
   * links (push while few nodes have a message, ihave once most have it, as in push-pull
   * rumor spreading); 0 turns this off. `deepPushMeanHops` adds one link in large networks.
   * @default {2}
   */
  fullPushHops?: number;
  /**
   * Messages go to every subscribed peer, not just the mesh, for their first this many
   * links: with 2, the publisher's peers flood too, and with about 20 peers a node, some
   * 200 nodes hold a message after two links. The publisher's own link floods when
   * `floodPublish`; 1 or less floods no relay.
   * @default {2}
   */
  floodHops?: number;
  /**
   * While the messages of a topic reached this node over more than this many links on
   * average (a decaying mean over about {@linkcode HOP_SAMPLE_MESSAGES} messages), the node
   * pushes them in full one link further (`fullPushHops` + 1): the mean grows with the
   * network's size, so large networks push deeper and small ones, which that push would
   * flood with duplicates, do not. `Infinity` turns this off. In the simulator
   * (`bench/gossip/`), the mean was 2.5-2.6 at 300 nodes and 3.1-3.3 at 1,000.
   * @default {2.7}
   */
  deepPushMeanHops?: number;
  /**
   * Whether this node's own messages go in full to every subscribed peer, not just the
   * mesh (gossipsub's flood publishing): one hop less for everyone, at little cost.
   * @default {true}
   */
  floodPublish?: boolean;
  /**
   * Least number of peers outside the mesh that get ihave each heartbeat.
   * @default {6}
   */
  lazyDegree?: number;
  /**
   * Share of the peers outside the mesh that get ihave, when more than `lazyDegree`.
   * @default {0.25}
   */
  gossipFactor?: number;
  /**
   * Interval of the heartbeat: mesh repair, ihave, cache shift.
   * @default {1000}
   */
  heartbeatMs?: number;
  /**
   * Heartbeats a message stays in the cache that answers iwant.
   * @default {5}
   */
  historyLength?: number;
  /**
   * Heartbeats of recent messages announced by ihave (at most `historyLength`).
   * @default {3}
   */
  historyGossip?: number;
  /**
   * How long a message id is remembered as seen.
   * @default {120000}
   */
  seenTtlMs?: number;
  /**
   * Most ids in the seen-cache; the oldest is forgotten first.
   * @default {100000}
   */
  maxSeen?: number;
  /**
   * Time before an id asked for with iwant may be asked for again (from another ihave).
   * @default {1000}
   */
  iwantTimeoutMs?: number;
  /**
   * Most messages sent to one peer per heartbeat in answer to iwant.
   * @default {1000}
   */
  maxIWantPerHeartbeat?: number;
  /**
   * Time the application has for a verdict on a message; later counts as ignore.
   * @default {2000}
   */
  validationTimeoutMs?: number;
  /**
   * Messages per topic that may wait for a verdict; more are dropped on arrival.
   * @default {1024}
   */
  maxPendingValidations?: number;
  /**
   * Frames per peer and priority waiting to be sent; the oldest is dropped beyond it.
   * @default {1024}
   */
  maxQueuedFrames?: number;
  /**
   * Messages of at least this many bytes are announced to the mesh with idontwant on arrival.
   * @default {1024}
   */
  idontwantMinBytes?: number;
  /**
   * Time after a prune before that peer is grafted again on the topic.
   * @default {60000}
   */
  pruneBackoffMs?: number;
  /**
   * Rejected messages after which a peer's frames are dropped and it leaves every mesh.
   * @default {3}
   */
  graylistRejects?: number;
  /**
   * Topics one peer may subscribe to; more are refused and penalized.
   * @default {256}
   */
  maxPeerTopics?: number;
  /**
   * Source of randomness in [0, 1) for mesh and gossip choices (seed it for simulations).
   * @default {Math.random}
   */
  random?: () => number;
}

/** What the router asks of its driver, taken with {@linkcode GossipRouter.takeEvents}. */
export type GossipRouterEvent =
  | {
    /** A new message waits for the application's verdict ({@linkcode GossipRouter.validated}). */
    type: "validate";
    /** Its topic. */
    topic: string;
    /** Its id. */
    id: string;
    /** The peer it came from first. */
    from: string;
    /** Its bytes. */
    data: Uint8Array;
  }
  | {
    /** An accepted message, to hand to the topic's subscribers (once per id). */
    type: "deliver";
    /** Its topic. */
    topic: string;
    /** Its id. */
    id: string;
    /** The peer it came from first. */
    from: string;
    /** Its bytes. */
    data: Uint8Array;
    /** Links it travelled from its publisher. */
    hops: number;
  }
  | {
    /** A peer misbehaved: lower its score. */
    type: "penalize";
    /** The peer. */
    peer: string;
    /** Why. */
    reason: GossipPenaltyReason;
  };

/** A frame to send and its priority, from {@linkcode GossipRouter.takeFrame}. */
export interface OutgoingFrame {
  /** The frame. */
  frame: GossipFrame;
  /** The priority of its topic. */
  priority: GossipPriority;
}

/** Counters of a {@linkcode GossipRouter}, from {@linkcode GossipRouter.stats}. */
export interface GossipRouterStats {
  /** Messages accepted and delivered. */
  delivered: number;
  /** Full messages received whose id was already seen. */
  duplicates: number;
  /** Verdicts of ignore, including timeouts. */
  ignored: number;
  /** Verdicts of reject. */
  rejected: number;
  /** Messages that got no verdict within `validationTimeoutMs`. */
  validationTimeouts: number;
  /** Messages dropped on arrival because their topic's validation queue was full. */
  validationQueueDrops: number;
  /** Frames dropped from a full outbox. */
  outboxDrops: number;
  /** Ids asked for with iwant. */
  iwantRequested: number;
  /** Frames dropped because their sender is graylisted. */
  graylistedFrames: number;
}

interface PeerState {
  topics: Set<string>;
  /** Frames to send: consensus first, then bulk. */
  outbox: [GossipFrame[], GossipFrame[]];
  dontWant: ExpiringSet;
  rejects: number;
  iwantServed: number;
}

interface TopicState {
  mesh: Set<string>;
  /**
   * Decaying count of the messages delivered, and the sum of their hop counts; it starts as
   * one message of `deepPushMeanHops` + 1 hops, so a new node pushes deeper until its own
   * messages say otherwise.
   */
  hopSample: { messages: number; hops: number };
  priority: GossipPriority;
  pending: number;
  backoff: Map<string, number>;
  /** Mesh peers this node choked: they send ihave instead of messages. */
  choked: Set<string>;
  /** Mesh peers that choked this node: they get ihave instead of messages. */
  chokedBy: Set<string>;
  /** New messages each mesh peer brought first since the last ranking. */
  firsts: Map<string, number>;
  /** New messages since the last ranking. */
  sample: number;
}

interface PendingMessage {
  topic: string;
  data: Uint8Array;
  hops: number;
  from: string;
  sources: Set<string>;
  deadline: number;
}

interface CachedMessage {
  topic: string;
  data: Uint8Array;
  hops: number;
  priority: GossipPriority;
}

const DEFAULTS = {
  meshDegree: 6,
  meshDegreeLow: 4,
  meshDegreeHigh: 12,
  unchokedDegree: 1,
  floodPublish: true,
  fullPushHops: 2,
  floodHops: 2,
  deepPushMeanHops: 2.7,
  lazyDegree: 6,
  gossipFactor: 0.25,
  heartbeatMs: 1000,
  historyLength: 5,
  historyGossip: 3,
  seenTtlMs: 120_000,
  maxSeen: 100_000,
  iwantTimeoutMs: 1000,
  maxIWantPerHeartbeat: 1000,
  validationTimeoutMs: 2000,
  maxPendingValidations: 1024,
  maxQueuedFrames: 1024,
  idontwantMinBytes: 1024,
  pruneBackoffMs: 60_000,
  graylistRejects: 3,
  maxPeerTopics: 256,
};

/** Most ids a peer's idontwant entries may hold. */
const MAX_DONT_WANT = MAX_FRAME_IDS;

/**
 * The gossip protocol's state machine (see the module documentation for its rules). Peer ids
 * are strings; every input that depends on time takes `now` from the driver.
 *
 * @example Two routers wired by hand
 * ```ts
 * import { GossipRouter } from "@cretoai/network/gossip";
 *
 * const a = new GossipRouter();
 * const b = new GossipRouter();
 * a.addPeer("b");
 * b.addPeer("a");
 * a.subscribe("t");
 * b.subscribe("t");
 * const pump = () => {
 *   for (const [from, to, peer] of [[a, b, "b"], [b, a, "a"]] as const) {
 *     for (let out; (out = from.takeFrame(peer)) !== undefined;) {
 *       to.handleFrame(from === a ? "a" : "b", out.frame, 0);
 *     }
 *   }
 * };
 * pump();
 * const id = a.publish("t", new Uint8Array([1]), 0);
 * pump();
 * const [validate] = b.takeEvents();
 * console.assert(validate.type === "validate" && validate.id === id);
 * b.validated(id, "accept", 0);
 * console.assert(b.takeEvents()[0].type === "deliver");
 * ```
 */
export class GossipRouter {
  readonly #o: Required<GossipRouterOptions>;
  readonly #random: () => number;
  #peers = new Map<string, PeerState>();
  #topics = new Map<string, TopicState>();
  #seen: ExpiringSet;
  #wanted: ExpiringSet;
  #pending = new Map<string, PendingMessage>();
  #cache = new Map<string, CachedMessage>();
  /** Ids cached per heartbeat, newest first. */
  #windows: string[][] = [[]];
  #events: GossipRouterEvent[] = [];
  /** Peers whose outbox may hold frames. */
  #queued = new Set<string>();
  #nextHeartbeatAt = 0;
  #stats: GossipRouterStats = {
    delivered: 0,
    duplicates: 0,
    ignored: 0,
    rejected: 0,
    validationTimeouts: 0,
    validationQueueDrops: 0,
    outboxDrops: 0,
    iwantRequested: 0,
    graylistedFrames: 0,
  };

  /**
   * Creates a router with no peers and no topics.
   *
   * @example
   * ```ts
   * import { GossipRouter } from "@cretoai/network/gossip";
   *
   * const router = new GossipRouter({ meshDegree: 8, meshDegreeLow: 6, meshDegreeHigh: 16 });
   * console.assert(router.nextTickAt() === 0);
   * ```
   *
   * @param options Degrees, times and bounds; see {@linkcode GossipRouterOptions}.
   * @throws {InvalidConfigError} naming the field, the rule and the value, for a bad option.
   */
  constructor(options: GossipRouterOptions = {}) {
    const o = { ...DEFAULTS, random: Math.random, ...options };
    for (
      const field of [
        "meshDegree",
        "unchokedDegree",
        "lazyDegree",
        "historyLength",
        "historyGossip",
        "maxSeen",
        "maxIWantPerHeartbeat",
        "maxPendingValidations",
        "maxQueuedFrames",
        "graylistRejects",
        "maxPeerTopics",
      ] as const
    ) requireInteger(field, o[field], 1);
    requireInteger("meshDegreeLow", o.meshDegreeLow, 1, o.meshDegree);
    requireInteger("meshDegreeHigh", o.meshDegreeHigh, o.meshDegree);
    requireInteger("historyGossip", o.historyGossip, 1, o.historyLength);
    requireInteger("idontwantMinBytes", o.idontwantMinBytes, 0);
    requireInteger("fullPushHops", o.fullPushHops, 0, 255);
    requireInteger("floodHops", o.floodHops, 0, 255);
    if (!(typeof o.deepPushMeanHops === "number" && o.deepPushMeanHops >= 0)) {
      throw new InvalidConfigError(
        "deepPushMeanHops",
        "a number of 0 or more (Infinity turns it off)",
        o.deepPushMeanHops,
      );
    }
    for (
      const field of [
        "heartbeatMs",
        "seenTtlMs",
        "iwantTimeoutMs",
        "validationTimeoutMs",
        "pruneBackoffMs",
      ] as const
    ) requirePositiveFinite(field, o[field]);
    if (!(o.gossipFactor >= 0 && o.gossipFactor <= 1)) {
      throw new InvalidConfigError("gossipFactor", "a number from 0 to 1", o.gossipFactor);
    }
    if (typeof o.random !== "function") {
      throw new InvalidConfigError("random", "a function", o.random);
    }
    this.#o = o;
    this.#random = o.random;
    this.#seen = new ExpiringSet(o.seenTtlMs, o.maxSeen);
    this.#wanted = new ExpiringSet(o.iwantTimeoutMs, o.maxSeen);
  }

  /** A snapshot of the counters. */
  stats(): GossipRouterStats {
    return { ...this.#stats };
  }

  /** The topics subscribed to. */
  get topics(): string[] {
    return [...this.#topics.keys()];
  }

  /**
   * The mesh peers of a subscribed topic.
   *
   * @param topic The topic.
   * @returns Peer ids; empty for a topic not subscribed.
   */
  mesh(topic: string): string[] {
    return [...this.#topics.get(topic)?.mesh ?? []];
  }

  /**
   * The connected peers that subscribe to a topic.
   *
   * @param topic The topic.
   * @returns Peer ids.
   */
  subscribers(topic: string): string[] {
    return [...this.#peers].filter(([, p]) => p.topics.has(topic)).map(([id]) => id);
  }

  /**
   * A peer connected: it learns this node's topics.
   *
   * @param peer The peer's id.
   */
  addPeer(peer: string): void {
    if (this.#peers.has(peer)) return;
    this.#peers.set(peer, {
      topics: new Set(),
      outbox: [[], []],
      dontWant: new ExpiringSet(this.#o.historyLength * this.#o.heartbeatMs, MAX_DONT_WANT),
      rejects: 0,
      iwantServed: 0,
    });
    for (const [topic, t] of this.#topics) {
      this.#send(peer, { kind: "subscribe", topic }, t.priority);
    }
  }

  /**
   * A peer disconnected: it leaves every mesh and its queued frames are dropped.
   *
   * @param peer The peer's id.
   */
  removePeer(peer: string): void {
    if (!this.#peers.delete(peer)) return;
    this.#queued.delete(peer);
    for (const [topic, t] of this.#topics) {
      if (this.#leaveMesh(t, peer)) this.#rankMesh(topic, t, false);
    }
  }

  /**
   * Joins a topic: tells every peer and grafts up to D of its subscribers at once.
   *
   * @param topic 1 to 256 UTF-8 bytes.
   * @param priority `consensus` frames of the topic leave before `bulk` ones.
   * @throws {TypeError} for a bad topic.
   */
  subscribe(topic: string, priority: GossipPriority = "bulk"): void {
    checkTopic(topic);
    const existing = this.#topics.get(topic);
    if (existing !== undefined) {
      existing.priority = priority;
      return;
    }
    const t: TopicState = {
      mesh: new Set(),
      // A hop count is at most 255, so a larger deepPushMeanHops never pushes deeper.
      hopSample: { messages: 1, hops: Math.min(255, this.#o.deepPushMeanHops + 1) },
      priority,
      pending: 0,
      backoff: new Map(),
      choked: new Set(),
      chokedBy: new Set(),
      firsts: new Map(),
      sample: 0,
    };
    this.#topics.set(topic, t);
    for (const peer of this.#peers.keys()) this.#send(peer, { kind: "subscribe", topic }, priority);
    this.#fillMesh(topic, t, this.#o.meshDegree, -Infinity);
  }

  /**
   * Leaves a topic: prunes its mesh and tells every peer. Messages of it waiting for a verdict
   * are no longer delivered.
   *
   * @param topic The topic.
   */
  unsubscribe(topic: string): void {
    const t = this.#topics.get(topic);
    if (t === undefined) return;
    this.#topics.delete(topic);
    for (const peer of t.mesh) this.#send(peer, { kind: "prune", topic }, t.priority);
    for (const peer of this.#peers.keys()) {
      this.#send(peer, { kind: "unsubscribe", topic }, t.priority);
    }
  }

  /**
   * Publishes a message: it goes to the topic's mesh (or, for a topic not subscribed, to up
   * to D of its subscribers), and is announced by ihave for `historyGossip` heartbeats.
   * Publishing the same bytes again on the topic sends nothing.
   *
   * @param topic The topic.
   * @param data The message's bytes.
   * @param now The driver's time.
   * @param priority For a topic not subscribed; a subscribed one uses its own.
   * @returns The message id.
   * @throws {TypeError} for a bad topic or data that is not a Uint8Array.
   */
  publish(topic: string, data: Uint8Array, now: number, priority: GossipPriority = "bulk"): string {
    checkTopic(topic);
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(`Cannot publish: 'data' must be a Uint8Array: got ${typeof data}`);
    }
    const id = gossipMessageId(topic, data);
    if (this.#seen.has(id, now)) return id;
    this.#seen.add(id, now);
    const p = this.#topics.get(topic)?.priority ?? priority;
    this.#remember(id, { topic, data, hops: 0, priority: p });
    if (this.#o.floodPublish) {
      for (const peer of this.subscribers(topic)) {
        if (this.#peers.get(peer)!.rejects < this.#o.graylistRejects) {
          this.#send(peer, { kind: "message", topic, data, hops: 1 }, p);
        }
      }
    } else this.#forward(id, topic, data, 1, p, new Set(), now);
    return id;
  }

  /**
   * Handles a frame from a peer. Frames of unknown or graylisted peers are dropped.
   *
   * @param from The sender's id.
   * @param frame The decoded frame.
   * @param now The driver's time.
   */
  handleFrame(from: string, frame: GossipFrame, now: number): void {
    const peer = this.#peers.get(from);
    if (peer === undefined) return;
    if (peer.rejects >= this.#o.graylistRejects) {
      this.#stats.graylistedFrames++;
      return;
    }
    switch (frame.kind) {
      case "message":
        return this.#onMessage(from, frame.topic, frame.data, frame.hops, now);
      case "ihave":
        return this.#onIHave(from, frame.topic, frame.ids, now);
      case "iwant":
        return this.#onIWant(from, peer, frame.ids);
      case "idontwant":
        for (const id of frame.ids.slice(0, MAX_FRAME_IDS)) peer.dontWant.add(id, now);
        return;
      case "graft":
        return this.#onGraft(from, peer, frame.topic, now);
      case "prune": {
        const t = this.#topics.get(frame.topic);
        if (t === undefined) return;
        this.#leaveMesh(t, from);
        t.backoff.set(from, now + this.#o.pruneBackoffMs);
        return;
      }
      case "choke":
      case "unchoke": {
        const t = this.#topics.get(frame.topic);
        if (t === undefined || !t.mesh.has(from)) return;
        if (frame.kind === "choke") t.chokedBy.add(from);
        else t.chokedBy.delete(from);
        return;
      }
      case "subscribe":
        if (peer.topics.has(frame.topic)) return;
        if (peer.topics.size >= this.#o.maxPeerTopics) {
          return this.#penalize(from, "too-many-topics");
        }
        peer.topics.add(frame.topic);
        return this.#onSubscribed(from, frame.topic, now);
      case "unsubscribe":
        peer.topics.delete(frame.topic);
        this.#leaveMesh(this.#topics.get(frame.topic), from);
        return;
    }
  }

  /**
   * Gives the application's verdict on a message announced by a `validate` event. Accept
   * delivers and forwards it; ignore drops it; reject drops it and penalizes its senders.
   *
   * @param id The message id.
   * @param result The verdict.
   * @param now The driver's time.
   * @returns Whether the message was still waiting (false after its deadline).
   */
  validated(id: string, result: ValidationResult, now: number): boolean {
    const p = this.#pending.get(id);
    if (p === undefined) return false;
    this.#pending.delete(id);
    const t = this.#topics.get(p.topic);
    if (t !== undefined) t.pending--;
    if (result === "reject") {
      this.#stats.rejected++;
      for (const source of p.sources) this.#penalize(source, "invalid-message");
      return true;
    }
    if (result !== "accept" || t === undefined) {
      this.#stats.ignored++;
      return true;
    }
    this.#stats.delivered++;
    this.#sampleHops(t, p.hops);
    this.#remember(id, { topic: p.topic, data: p.data, hops: p.hops, priority: t.priority });
    this.#events.push({
      type: "deliver",
      topic: p.topic,
      id,
      from: p.from,
      data: p.data,
      hops: p.hops,
    });
    this.#forward(id, p.topic, p.data, Math.min(255, p.hops + 1), t.priority, p.sources, now);
    return true;
  }

  /**
   * When {@linkcode GossipRouter.tick} is due next: the next heartbeat or validation deadline.
   *
   * @returns A time of the driver's clock; 0 before the first tick.
   */
  nextTickAt(): number {
    const first = this.#pending.values().next().value;
    return Math.min(this.#nextHeartbeatAt, first?.deadline ?? Infinity);
  }

  /**
   * Runs what is due at `now`: validation deadlines, and the heartbeat.
   *
   * @param now The driver's time.
   */
  tick(now: number): void {
    for (const [id, p] of this.#pending) {
      if (p.deadline > now) break;
      this.#stats.validationTimeouts++;
      this.validated(id, "ignore", now);
    }
    if (now < this.#nextHeartbeatAt) return;
    this.#nextHeartbeatAt = now + this.#o.heartbeatMs;
    this.#heartbeat(now);
  }

  /**
   * Takes the events (validate, deliver, penalize) produced since the last call.
   *
   * @returns The events, in order.
   */
  takeEvents(): GossipRouterEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }

  /**
   * Peers that have frames waiting.
   *
   * @returns Peer ids.
   */
  queuedPeers(): string[] {
    const peers: string[] = [];
    for (const id of this.#queued) {
      const p = this.#peers.get(id);
      if (p !== undefined && p.outbox[0].length + p.outbox[1].length > 0) peers.push(id);
      else this.#queued.delete(id);
    }
    return peers;
  }

  /**
   * Takes the next frame to send to a peer: consensus frames first, then bulk, each oldest
   * first.
   *
   * @param peer The peer's id.
   * @returns The frame, or `undefined` when none waits.
   */
  takeFrame(peer: string): OutgoingFrame | undefined {
    const p = this.#peers.get(peer);
    if (p === undefined) return undefined;
    if (p.outbox[0].length > 0) return { frame: p.outbox[0].shift()!, priority: "consensus" };
    if (p.outbox[1].length > 0) return { frame: p.outbox[1].shift()!, priority: "bulk" };
    return undefined;
  }

  #send(peer: string, frame: GossipFrame, priority: GossipPriority): void {
    const p = this.#peers.get(peer);
    if (p === undefined) return;
    const queue = p.outbox[priority === "consensus" ? 0 : 1];
    if (queue.length >= this.#o.maxQueuedFrames) {
      queue.shift();
      this.#stats.outboxDrops++;
    }
    queue.push(frame);
    this.#queued.add(peer);
  }

  #penalize(peer: string, reason: GossipPenaltyReason): void {
    this.#events.push({ type: "penalize", peer, reason });
    const p = this.#peers.get(peer);
    if (p === undefined || reason !== "invalid-message") return;
    if (++p.rejects < this.#o.graylistRejects) return;
    for (const [topic, t] of this.#topics) {
      if (this.#leaveMesh(t, peer)) this.#send(peer, { kind: "prune", topic }, t.priority);
    }
  }

  #remember(id: string, message: CachedMessage): void {
    this.#cache.set(id, message);
    this.#windows[0].push(id);
  }

  /** Sends a message to the mesh (or fanout) except its sources and peers that have it. */
  #forward(
    id: string,
    topic: string,
    data: Uint8Array,
    hops: number,
    priority: GossipPriority,
    except: Set<string>,
    now: number,
  ): void {
    const t = this.#topics.get(topic);
    const targets = t === undefined
      ? this.#shuffle(this.subscribers(topic)).slice(0, this.#o.meshDegree)
      : hops > 1 && hops <= this.#o.floodHops // a publisher's own link: floodPublish
      ? this.subscribers(topic).filter((peer) =>
        this.#peers.get(peer)!.rejects < this.#o.graylistRejects
      )
      : t.mesh;
    const pushHops = t !== undefined && this.#pushesDeeper(t)
      ? this.#o.fullPushHops + 1
      : this.#o.fullPushHops;
    for (const peer of targets) {
      if (except.has(peer) || this.#peers.get(peer)?.dontWant.has(id, now) === true) {
        continue;
      }
      const frame: GossipFrame = hops > pushHops && t?.chokedBy.has(peer)
        ? { kind: "ihave", topic, ids: [id] }
        : { kind: "message", topic, data, hops };
      this.#send(peer, frame, priority);
    }
  }

  /** Adds a delivered message's hop count to the topic's decaying sample. */
  #sampleHops(t: TopicState, hops: number): void {
    const sample = t.hopSample;
    sample.messages++;
    sample.hops += hops;
    if (sample.messages >= 2 * HOP_SAMPLE_MESSAGES) {
      sample.messages /= 2;
      sample.hops /= 2;
    }
  }

  /** Whether recent messages came over more than `deepPushMeanHops` links on average. */
  #pushesDeeper(t: TopicState): boolean {
    const { messages, hops } = t.hopSample;
    return hops > this.#o.deepPushMeanHops * messages;
  }

  #onMessage(from: string, topic: string, data: Uint8Array, hops: number, now: number): void {
    const t = this.#topics.get(topic);
    if (t === undefined) return;
    const id = gossipMessageId(topic, data);
    if (this.#seen.has(id, now)) {
      this.#stats.duplicates++;
      this.#pending.get(id)?.sources.add(from);
      this.#peers.get(from)?.dontWant.add(id, now);
      return;
    }
    if (t.pending >= this.#o.maxPendingValidations) {
      this.#stats.validationQueueDrops++;
      return;
    }
    this.#seen.add(id, now);
    this.#wanted.delete(id);
    this.#countFirst(t, from);
    if (data.byteLength >= this.#o.idontwantMinBytes) {
      for (const peer of t.mesh) {
        if (peer !== from) this.#send(peer, { kind: "idontwant", ids: [id] }, t.priority);
      }
    }
    t.pending++;
    this.#pending.set(id, {
      topic,
      data,
      hops,
      from,
      sources: new Set([from]),
      deadline: now + this.#o.validationTimeoutMs,
    });
    this.#events.push({ type: "validate", topic, id, from, data });
  }

  #onIHave(from: string, topic: string, ids: string[], now: number): void {
    const t = this.#topics.get(topic);
    if (t === undefined) return;
    const want: string[] = [];
    for (const id of ids.slice(0, MAX_FRAME_IDS)) {
      if (this.#seen.has(id, now) || this.#wanted.has(id, now)) continue;
      this.#wanted.add(id, now);
      this.#countFirst(t, from);
      want.push(id);
    }
    if (want.length === 0) return;
    this.#stats.iwantRequested += want.length;
    this.#send(from, { kind: "iwant", ids: want }, t.priority);
  }

  #onIWant(from: string, peer: PeerState, ids: string[]): void {
    for (const id of ids.slice(0, MAX_FRAME_IDS)) {
      const m = this.#cache.get(id);
      if (m === undefined) continue;
      if (peer.iwantServed >= this.#o.maxIWantPerHeartbeat) return;
      peer.iwantServed++;
      const frame: GossipFrame = {
        kind: "message",
        topic: m.topic,
        data: m.data,
        hops: Math.min(255, m.hops + 1),
      };
      this.#send(from, frame, m.priority);
    }
  }

  #onGraft(from: string, peer: PeerState, topic: string, now: number): void {
    const t = this.#topics.get(topic);
    if (t === undefined) {
      this.#send(from, { kind: "prune", topic }, "bulk");
      return;
    }
    if ((t.backoff.get(from) ?? -Infinity) > now) {
      this.#penalize(from, "graft-in-backoff");
      this.#send(from, { kind: "prune", topic }, t.priority);
      return;
    }
    if (peer.topics.size < this.#o.maxPeerTopics) peer.topics.add(topic);
    this.#joinMesh(topic, t, from, false);
  }

  /**
   * Adds a peer to a topic's mesh (with a graft when this node asks); it starts choked when
   * `unchokedDegree` peers already send in full, so a new mesh never floods.
   */
  #joinMesh(topic: string, t: TopicState, peer: string, graft: boolean): void {
    if (t.mesh.has(peer)) return;
    t.mesh.add(peer);
    if (graft) this.#send(peer, { kind: "graft", topic }, t.priority);
    if (t.mesh.size - t.choked.size > this.#o.unchokedDegree) {
      t.choked.add(peer);
      this.#send(peer, { kind: "choke", topic }, t.priority);
    }
  }

  /** Removes a peer from a topic's mesh and its choke state; returns whether it was in it. */
  #leaveMesh(t: TopicState | undefined, peer: string): boolean {
    if (t === undefined || !t.mesh.delete(peer)) return false;
    t.choked.delete(peer);
    t.chokedBy.delete(peer);
    t.firsts.delete(peer);
    return true;
  }

  #countFirst(t: TopicState, peer: string): void {
    if (!t.mesh.has(peer)) return;
    t.firsts.set(peer, (t.firsts.get(peer) ?? 0) + 1);
    t.sample++;
  }

  /**
   * Keeps the `unchokedDegree` mesh peers that brought most new messages first sending in
   * full and chokes the others; with `rerank` false, only unchokes the best choked peers
   * while fewer than `unchokedDegree` are unchoked (after a departure).
   */
  #rankMesh(topic: string, t: TopicState, rerank: boolean): void {
    const keep = this.#o.unchokedDegree;
    const ranked = this.#shuffle([...t.mesh])
      .sort((a, b) => (t.firsts.get(b) ?? 0) - (t.firsts.get(a) ?? 0));
    if (!rerank) {
      let unchoked = t.mesh.size - t.choked.size;
      for (const peer of ranked) {
        if (unchoked >= keep) return;
        if (!t.choked.delete(peer)) continue;
        unchoked++;
        this.#send(peer, { kind: "unchoke", topic }, t.priority);
      }
      return;
    }
    ranked.forEach((peer, rank) => {
      if (rank < keep && t.choked.delete(peer)) {
        this.#send(peer, { kind: "unchoke", topic }, t.priority);
      } else if (rank >= keep && !t.choked.has(peer)) {
        t.choked.add(peer);
        this.#send(peer, { kind: "choke", topic }, t.priority);
      }
    });
    t.firsts.clear();
    t.sample = 0;
  }

  #onSubscribed(peer: string, topic: string, now: number): void {
    const t = this.#topics.get(topic);
    if (t === undefined || t.mesh.size >= this.#o.meshDegree) return;
    if ((t.backoff.get(peer) ?? -Infinity) > now) return;
    this.#joinMesh(topic, t, peer, true);
  }

  /** Grafts random eligible subscribers until the mesh has `size` peers. */
  #fillMesh(topic: string, t: TopicState, size: number, now: number): void {
    if (t.mesh.size >= size) return;
    const candidates = this.#shuffle(
      [...this.#peers].filter(([id, p]) =>
        p.topics.has(topic) && !t.mesh.has(id) && p.rejects < this.#o.graylistRejects &&
        (t.backoff.get(id) ?? -Infinity) <= now
      ).map(([id]) => id),
    );
    for (const peer of candidates.slice(0, size - t.mesh.size)) {
      this.#joinMesh(topic, t, peer, true);
    }
  }

  #heartbeat(now: number): void {
    const o = this.#o;
    this.#seen.prune(now);
    this.#wanted.prune(now);
    for (const p of this.#peers.values()) {
      p.dontWant.prune(now);
      p.iwantServed = 0;
    }
    const gossip = new Map<string, string[]>();
    for (const window of this.#windows.slice(0, o.historyGossip)) {
      for (const id of window) {
        const topic = this.#cache.get(id)?.topic;
        if (topic === undefined) continue;
        const ids = gossip.get(topic) ?? [];
        if (ids.length < MAX_FRAME_IDS) ids.push(id);
        gossip.set(topic, ids);
      }
    }
    for (const [topic, t] of this.#topics) {
      for (const [peer, until] of t.backoff) if (until <= now) t.backoff.delete(peer);
      if (t.mesh.size < o.meshDegreeLow) this.#fillMesh(topic, t, o.meshDegree, now);
      if (t.mesh.size > o.meshDegreeHigh) {
        const excess = this.#shuffle([...t.mesh]).slice(0, t.mesh.size - o.meshDegree);
        for (const peer of excess) {
          this.#leaveMesh(t, peer);
          t.backoff.set(peer, now + o.pruneBackoffMs);
          this.#send(peer, { kind: "prune", topic }, t.priority);
        }
      }
      this.#rankMesh(topic, t, t.sample >= CHOKE_SAMPLE_MESSAGES);
      const ids = gossip.get(topic);
      if (ids === undefined) continue;
      const outside = [...this.#peers].filter(([id, p]) =>
        p.topics.has(topic) && !t.mesh.has(id) && p.rejects < o.graylistRejects
      ).map(([id]) => id);
      const count = Math.max(o.lazyDegree, Math.ceil(o.gossipFactor * outside.length));
      for (const peer of this.#shuffle(outside).slice(0, count)) {
        this.#send(peer, { kind: "ihave", topic, ids }, t.priority);
      }
    }
    this.#windows.unshift([]);
    for (const id of this.#windows.splice(o.historyLength).flat()) this.#cache.delete(id);
  }

  /** Shuffles in place (Fisher-Yates) with the injected randomness. */
  #shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}
