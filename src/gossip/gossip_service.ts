/**
 * `GossipService`: topic publish/subscribe over a {@linkcode QuicTransport}, the thin I/O
 * layer that drives a {@linkcode GossipRouter}. Gossip frames travel as transport messages:
 * `consensus` messages for consensus topics and `vertex` messages for bulk ones, so the
 * transport's lanes and bandwidth limiter put consensus traffic first.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "../clock.ts";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import type { PeerId } from "../identity/peer_id.ts";
import type { NetworkMessage } from "../transport/codec.ts";
import { TypedEventTarget } from "../transport/events.ts";
import type { TransportEventMap } from "../transport/events.ts";
import type { QuicTransport } from "../transport/transport.ts";
import { requireInteger } from "../_validate.ts";
import {
  checkTopic,
  decodeGossipFrame,
  encodeGossipFrame,
  type GossipFrame,
  gossipFrameBytes,
  isGossipFrame,
} from "./codec.ts";
import {
  type GossipPenaltyReason,
  type GossipPriority,
  GossipRouter,
  type GossipRouterOptions,
  type GossipRouterStats,
  type ValidationResult,
} from "./router.ts";

const log = getLogger(["cretoai", "gossip"]);

/** Why a peer was penalized: the router's reasons, or a gossip frame that did not decode. */
export type GossipServicePenaltyReason = GossipPenaltyReason | "malformed-frame";

/** A message of a topic, as a subscription yields it and a validator sees it. */
export interface GossipMessage {
  /** The topic. */
  topic: string;
  /** The message id: a hash of topic and data (see `gossipMessageId`). */
  id: string;
  /** The peer it came from (the last hop, not necessarily the publisher). */
  from: PeerId;
  /** The message's bytes. */
  data: Uint8Array;
}

/**
 * Decides whether a received message is delivered and forwarded (`accept`), dropped
 * (`ignore`), or dropped with a penalty for its senders (`reject`). A validator that throws
 * counts as `ignore`; one that takes longer than the router's `validationTimeoutMs` too.
 */
export type GossipValidator = (
  message: GossipMessage,
) => ValidationResult | Promise<ValidationResult>;

/** Options of {@linkcode GossipService.subscribe}. */
export interface GossipSubscribeOptions {
  /**
   * The application's check before a message is delivered or forwarded.
   * @default {() => "accept"}
   */
  validate?: GossipValidator;
  /**
   * `consensus` topics go ahead of `bulk` ones on the wire.
   * @default {"bulk"}
   */
  priority?: GossipPriority;
  /**
   * Messages held for the iterator before the oldest is dropped (and counted in
   * `dropped`): a subscriber that does not read cannot grow memory.
   * @default {1024}
   */
  bufferLength?: number;
}

/** Options of {@linkcode GossipService.publish}. */
export interface GossipPublishOptions {
  /**
   * Priority for a topic this node does not subscribe to (a subscribed one uses its own).
   * @default {"bulk"}
   */
  priority?: GossipPriority;
}

/** Options of {@linkcode GossipService}. */
export interface GossipServiceOptions {
  /** The transport to run on. */
  transport: QuicTransport;
  /**
   * Mesh degrees, times and bounds of the protocol; see {@linkcode GossipRouterOptions}.
   * @default {{}}
   */
  router?: GossipRouterOptions;
  /**
   * Time source of the heartbeat and validation deadlines.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * Whether the service reads the transport's `messages()` itself. Set it to false when
   * another loop reads them and hands the gossip frames to {@linkcode GossipService.receive};
   * the service's own loop drops messages that are not gossip frames.
   * @default {true}
   */
  readMessages?: boolean;
  /**
   * Frames sent to one peer and not yet acknowledged by its transport; more wait in the
   * router's bounded outbox.
   * @default {64}
   */
  maxInFlightPerPeer?: number;
  /**
   * Called when a peer misbehaved (sent a rejected message, a malformed frame, ...): the
   * hook into the node's peer score, which bans a peer that keeps doing it.
   * @default {undefined}
   */
  penalize?: (peerId: PeerId, reason: GossipServicePenaltyReason) => void;
}

/** Detail of `gossip:rejected`. */
export interface GossipRejectedDetail {
  /** The topic. */
  topic: string;
  /** The message id. */
  id: string;
  /** The peer it came from first. */
  from: PeerId;
}

/** Detail of `gossip:penalized`. */
export interface GossipPenalizedDetail {
  /** The peer. */
  peerId: PeerId;
  /** Why. */
  reason: GossipServicePenaltyReason;
}

/** The events of a {@linkcode GossipService}, by name. */
export interface GossipEventMap {
  /** A message the validator accepted, once per id. */
  "gossip:message": CustomEvent<GossipMessage>;
  /** A message the validator rejected; it was not forwarded. */
  "gossip:rejected": CustomEvent<GossipRejectedDetail>;
  /** A peer was penalized (see {@linkcode GossipServiceOptions.penalize}). */
  "gossip:penalized": CustomEvent<GossipPenalizedDetail>;
}

/**
 * The messages of one topic, in arrival order, each once; iteration ends on
 * {@linkcode GossipSubscription.unsubscribe} or when the service closes. Leaving a
 * `for await` loop early (`break`, `return`, a throw) unsubscribes too, as closing a stream
 * would.
 *
 * @example
 * ```ts ignore
 * const sub = gossip.subscribe("vertices");
 * for await (const { from, data, id } of sub) console.log(from, id, data.byteLength);
 * ```
 */
export class GossipSubscription implements AsyncIterable<GossipMessage>, Disposable {
  /** The topic. */
  readonly topic: string;
  /** Messages dropped because the buffer was full. */
  dropped = 0;
  readonly #bufferLength: number;
  readonly #onEnd: () => void;
  #buffer: GossipMessage[] = [];
  #waiters: ((next: IteratorResult<GossipMessage, undefined>) => void)[] = [];
  #ended = false;

  /** @internal Made by {@linkcode GossipService.subscribe}. */
  constructor(topic: string, bufferLength: number, onEnd: () => void) {
    this.topic = topic;
    this.#bufferLength = bufferLength;
    this.#onEnd = onEnd;
  }

  /** @internal Hands a message to the iterator, dropping the oldest beyond the buffer. */
  push(message: GossipMessage): void {
    if (this.#ended) return;
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) return waiter({ value: message, done: false });
    if (this.#buffer.length >= this.#bufferLength) {
      this.#buffer.shift();
      this.dropped++;
    }
    this.#buffer.push(message);
  }

  /** @internal Ends iteration once the buffered messages are taken. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true });
  }

  /** Leaves the topic and ends iteration (after the messages already buffered). */
  unsubscribe(): void {
    if (this.#ended) return;
    this.end();
    this.#onEnd();
  }

  /** Same as {@linkcode GossipSubscription.unsubscribe}, for `using`. */
  [Symbol.dispose](): void {
    this.unsubscribe();
  }

  /** Iterates over the topic's messages. */
  [Symbol.asyncIterator](): AsyncIterator<GossipMessage, undefined> {
    return {
      next: () => {
        const value = this.#buffer.shift();
        if (value !== undefined) return Promise.resolve({ value, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push(resolve));
      },
      return: () => {
        this.unsubscribe();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

interface TopicHandler {
  subscription: GossipSubscription;
  validate: GossipValidator;
}

/**
 * Topic publish/subscribe over a {@linkcode QuicTransport} (gossipsub-like: a mesh per topic,
 * lazy ihave/iwant, validation before forwarding; see {@linkcode GossipRouter}).
 *
 * @example Two nodes, one topic
 * ```ts
 * import { GossipService, Identity, QuicTransport } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
 * await using a = new QuicTransport({ identity: Identity.generate(), config });
 * await using b = new QuicTransport({ identity: Identity.generate(), config });
 * await a.bindAndListen();
 * const { port } = await b.bindAndListen();
 * await using gossipA = new GossipService({ transport: a });
 * await using gossipB = new GossipService({ transport: b });
 * await gossipA.start();
 * await gossipB.start();
 * const sub = gossipB.subscribe("vertices", { validate: () => "accept" });
 * gossipA.subscribe("vertices");
 * await a.connectPeer(`127.0.0.1:${port}`);
 * await gossipA.whenMeshed("vertices", 1);
 * const id = await gossipA.publish("vertices", new Uint8Array([1, 2, 3]));
 * for await (const message of sub) {
 *   console.assert(message.id === id && message.from.equals(a.peerId));
 *   break;
 * }
 * ```
 */
export class GossipService extends TypedEventTarget<GossipEventMap> implements AsyncDisposable {
  readonly #transport: QuicTransport;
  readonly #router: GossipRouter;
  readonly #clock: Clock;
  readonly #readMessages: boolean;
  readonly #maxInFlight: number;
  readonly #penalizeHook: GossipServiceOptions["penalize"];
  #peers = new Map<string, PeerId>();
  #inFlight = new Map<string, number>();
  #topics = new Map<string, TopicHandler>();
  #meshWaiters = new Set<() => void>();
  #cancelTimer: (() => void) | undefined;
  #timerAt = Infinity;
  #started = false;
  #closed = false;

  readonly #onConnected = (e: TransportEventMap["peer:connected"]) => {
    this.#addPeer(e.detail.peerId);
  };
  readonly #onDisconnected = (e: TransportEventMap["peer:disconnected"]) => {
    this.#removePeer(e.detail.peerId.toString());
  };

  /**
   * Creates the service; nothing happens until {@linkcode GossipService.start}.
   *
   * @example
   * ```ts
   * import { GossipService, Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({ identity: Identity.generate() });
   * await using gossip = new GossipService({ transport, router: { meshDegree: 8 } });
   * console.assert(gossip.stats().delivered === 0);
   * ```
   *
   * @param options The transport, protocol options, clock and hooks.
   * @throws {InvalidConfigError} naming the field, the rule and the value, for a bad option.
   */
  constructor(options: GossipServiceOptions) {
    super();
    const {
      transport,
      router = {},
      clock = systemClock,
      readMessages = true,
      maxInFlightPerPeer = 64,
      penalize,
    } = options ?? {};
    if (transport === undefined || typeof transport.send !== "function") {
      throw new InvalidConfigError("transport", "a QuicTransport", transport);
    }
    requireInteger("maxInFlightPerPeer", maxInFlightPerPeer, 1);
    if (penalize !== undefined && typeof penalize !== "function") {
      throw new InvalidConfigError("penalize", "a function", penalize);
    }
    this.#transport = transport;
    this.#router = new GossipRouter(router);
    this.#clock = clock;
    this.#readMessages = readMessages;
    this.#maxInFlight = maxInFlightPerPeer;
    this.#penalizeHook = penalize;
  }

  /**
   * Starts following the transport's peers (those connected now and later) and, unless
   * `readMessages` is false, reading its messages. Idempotent.
   *
   * @example
   * ```ts ignore
   * await gossip.start();
   * ```
   *
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` after close.
   */
  start(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new NetworkError("ERR_ENDPOINT_CLOSED", "Cannot start: the gossip service is closed"),
      );
    }
    if (this.#started) return Promise.resolve();
    this.#started = true;
    this.#transport.addEventListener("peer:connected", this.#onConnected);
    this.#transport.addEventListener("peer:disconnected", this.#onDisconnected);
    for (const { peerId } of this.#transport.peers()) this.#addPeer(peerId);
    if (this.#readMessages) this.#readLoop();
    this.#pump();
    return Promise.resolve();
  }

  /**
   * Subscribes to a topic: joins its mesh and returns the iterator of its accepted messages.
   *
   * @example
   * ```ts ignore
   * const sub = gossip.subscribe("vertices", {
   *   priority: "consensus",
   *   validate: ({ data }) => data.byteLength > 0 ? "accept" : "reject",
   * });
   * ```
   *
   * @param topic 1 to 256 UTF-8 bytes.
   * @param options Validator, priority and buffer length.
   * @returns The subscription.
   * @throws {TypeError} for a bad topic, or one already subscribed.
   * @throws {InvalidConfigError} for a bad option.
   */
  subscribe(topic: string, options: GossipSubscribeOptions = {}): GossipSubscription {
    checkTopic(topic);
    if (this.#topics.has(topic)) {
      throw new TypeError(`Cannot subscribe to ${JSON.stringify(topic)}: already subscribed`);
    }
    const { validate = () => "accept", priority = "bulk", bufferLength = 1024 } = options;
    if (typeof validate !== "function") {
      throw new InvalidConfigError("validate", "a function", validate);
    }
    if (priority !== "consensus" && priority !== "bulk") {
      throw new InvalidConfigError("priority", '"consensus" or "bulk"', priority);
    }
    requireInteger("bufferLength", bufferLength, 1);
    const subscription = new GossipSubscription(topic, bufferLength, () => {
      if (this.#topics.get(topic)?.subscription !== subscription) return;
      this.#topics.delete(topic);
      this.#router.unsubscribe(topic);
      this.#pump();
    });
    this.#topics.set(topic, { subscription, validate });
    this.#router.subscribe(topic, priority);
    this.#pump();
    return subscription;
  }

  /**
   * Publishes a message on a topic; subscribers elsewhere receive it once, after their
   * validators accepted it. Publishing the same bytes on the same topic again sends nothing.
   *
   * @example
   * ```ts ignore
   * const id = await gossip.publish("vertices", bytes);
   * ```
   *
   * @param topic The topic (subscribed or not).
   * @param data The message's bytes.
   * @param options Priority for a topic not subscribed.
   * @returns The message id, a hash of topic and data.
   * @throws {TypeError} for a bad topic or data.
   * @throws {NetworkError} `ERR_MESSAGE_TOO_LARGE` when the frame would exceed the
   * transport's `maxMessageBytes`; `ERR_ENDPOINT_CLOSED` after close.
   */
  publish(topic: string, data: Uint8Array, options: GossipPublishOptions = {}): Promise<string> {
    try {
      if (this.#closed) {
        throw new NetworkError(
          "ERR_ENDPOINT_CLOSED",
          "Cannot publish: the gossip service is closed",
        );
      }
      checkTopic(topic);
      if (!(data instanceof Uint8Array)) {
        throw new TypeError(`Cannot publish: 'data' must be a Uint8Array: got ${typeof data}`);
      }
      const size = gossipFrameBytes({ kind: "message", topic, data, hops: 0 });
      const max = this.#transport.config.maxMessageBytes;
      if (size > max) {
        throw new NetworkError(
          "ERR_MESSAGE_TOO_LARGE",
          `Cannot publish ${data.byteLength} bytes on ${JSON.stringify(topic)}: the frame of ` +
            `${size} bytes exceeds maxMessageBytes (${max})`,
        );
      }
      const id = this.#router.publish(topic, data, this.#clock.now(), options.priority);
      this.#pump();
      return Promise.resolve(id);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Hands the service a transport message that another loop read (with `readMessages`
   * false).
   *
   * @example
   * ```ts ignore
   * for await (const { from, message } of transport.messages()) {
   *   if (!gossip.receive(from, message)) handleOther(from, message);
   * }
   * ```
   *
   * @param from The sender.
   * @param message The message.
   * @returns Whether it was a gossip frame (taken by the service).
   */
  receive(from: PeerId, message: NetworkMessage): boolean {
    if (message.type !== "consensus" && message.type !== "vertex") return false;
    if (!isGossipFrame(message.data)) return false;
    if (this.#closed) return true;
    const key = from.toString();
    if (!this.#peers.has(key)) this.#addPeer(from);
    let frame: GossipFrame;
    try {
      frame = decodeGossipFrame(message.data);
    } catch (e) {
      log.info("Malformed gossip frame from {peer}: {error}", { peer: key, error: String(e) });
      this.#penalize(from, "malformed-frame");
      return true;
    }
    this.#router.handleFrame(key, frame, this.#clock.now());
    this.#pump();
    return true;
  }

  /**
   * The mesh peers of a subscribed topic.
   *
   * @example
   * ```ts ignore
   * console.log(gossip.mesh("vertices").length);
   * ```
   *
   * @param topic The topic.
   * @returns Their ids.
   */
  mesh(topic: string): PeerId[] {
    return this.#router.mesh(topic).flatMap((key) => this.#peers.get(key) ?? []);
  }

  /**
   * Resolves once a subscribed topic's mesh holds at least `peers` peers (for tests and
   * start-up: publishing before any mesh exists reaches nobody).
   *
   * @example
   * ```ts ignore
   * await gossip.whenMeshed("vertices", 2, AbortSignal.timeout(5000));
   * ```
   *
   * @param topic The topic.
   * @param peers How many.
   * @param signal Stops waiting.
   * @throws {NetworkError} `ERR_ABORTED` when the signal aborts; `ERR_ENDPOINT_CLOSED` when
   * the service closes first.
   */
  whenMeshed(topic: string, peers: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.#closed) {
          done();
          reject(new NetworkError("ERR_ENDPOINT_CLOSED", "The gossip service closed"));
        } else if (signal?.aborted) {
          done();
          reject(new NetworkError("ERR_ABORTED", `Stopped waiting for a mesh on ${topic}`));
        } else if (this.#router.mesh(topic).length >= peers) {
          done();
          resolve();
        }
      };
      const done = () => {
        this.#meshWaiters.delete(check);
        signal?.removeEventListener("abort", check);
      };
      this.#meshWaiters.add(check);
      signal?.addEventListener("abort", check);
      check();
    });
  }

  /**
   * The router's counters: delivered, duplicates, rejected, drops, ...
   *
   * @example
   * ```ts ignore
   * const { delivered, duplicates } = gossip.stats();
   * ```
   *
   * @returns A snapshot.
   */
  stats(): GossipRouterStats {
    return this.#router.stats();
  }

  /**
   * Stops the service: ends every subscription, stops following the transport. The
   * transport stays open. Idempotent.
   *
   * @example
   * ```ts ignore
   * await gossip.close();
   * ```
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#transport.removeEventListener("peer:connected", this.#onConnected);
    this.#transport.removeEventListener("peer:disconnected", this.#onDisconnected);
    for (const { subscription } of this.#topics.values()) subscription.end();
    this.#topics.clear();
    for (const check of [...this.#meshWaiters]) check();
    return Promise.resolve();
  }

  /** Same as {@linkcode GossipService.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #addPeer(peerId: PeerId): void {
    if (this.#closed) return;
    const key = peerId.toString();
    if (this.#peers.has(key)) return;
    this.#peers.set(key, peerId);
    this.#router.addPeer(key);
    this.#pump();
  }

  #removePeer(key: string): void {
    if (!this.#peers.delete(key)) return;
    this.#inFlight.delete(key);
    this.#router.removePeer(key);
    this.#pump();
  }

  async #readLoop(): Promise<void> {
    for await (const { from, message } of this.#transport.messages()) {
      if (this.#closed) return;
      this.receive(from, message);
    }
  }

  #penalize(peerId: PeerId, reason: GossipServicePenaltyReason): void {
    log.info("Penalizing {peer}: {reason}", { peer: peerId.toString(), reason });
    this.dispatchEvent(new CustomEvent("gossip:penalized", { detail: { peerId, reason } }));
    try {
      this.#penalizeHook?.(peerId, reason);
    } catch (e) {
      log.warn("The penalize hook failed: {error}", { error: String(e) });
    }
  }

  /** Runs the router's events, sends what it queued, and arms its next tick. */
  #pump(): void {
    if (this.#closed || !this.#started) return;
    for (const event of this.#router.takeEvents()) {
      switch (event.type) {
        case "validate":
          this.#validate(event.topic, event.id, event.from, event.data);
          break;
        case "deliver": {
          const from = this.#peers.get(event.from);
          const handler = this.#topics.get(event.topic);
          if (from === undefined || handler === undefined) break;
          const message = { topic: event.topic, id: event.id, from, data: event.data };
          handler.subscription.push(message);
          this.dispatchEvent(new CustomEvent("gossip:message", { detail: message }));
          break;
        }
        case "penalize": {
          const peerId = this.#peers.get(event.peer);
          if (peerId !== undefined) this.#penalize(peerId, event.reason);
          break;
        }
      }
    }
    for (const key of this.#router.queuedPeers()) this.#sendQueued(key);
    for (const check of [...this.#meshWaiters]) check();
    this.#armTimer();
  }

  #sendQueued(key: string): void {
    const peerId = this.#peers.get(key);
    if (peerId === undefined) return;
    let inFlight = this.#inFlight.get(key) ?? 0;
    while (inFlight < this.#maxInFlight) {
      const out = this.#router.takeFrame(key);
      if (out === undefined) break;
      inFlight++;
      const message: NetworkMessage = {
        type: out.priority === "consensus" ? "consensus" : "vertex",
        data: encodeGossipFrame(out.frame),
      };
      this.#transport.send(peerId, message).catch((e) => {
        log.debug("Gossip send to {peer} failed: {error}", { peer: key, error: String(e) });
        // A frame from a peer that had already gone (read after its disconnect) re-added it.
        if (e instanceof NetworkError && e.code === "ERR_UNKNOWN_PEER") this.#removePeer(key);
      }).finally(() => {
        const left = (this.#inFlight.get(key) ?? 1) - 1;
        if (!this.#peers.has(key)) return;
        this.#inFlight.set(key, left);
        this.#sendQueued(key);
      });
    }
    this.#inFlight.set(key, inFlight);
  }

  #validate(topic: string, id: string, fromKey: string, data: Uint8Array): void {
    const from = this.#peers.get(fromKey);
    const handler = this.#topics.get(topic);
    if (from === undefined || handler === undefined) {
      this.#router.validated(id, "ignore", this.#clock.now());
      return;
    }
    const finish = (result: ValidationResult) => {
      if (this.#closed) return;
      if (result !== "accept" && result !== "ignore" && result !== "reject") {
        log.warn("Validator of {topic} returned {result}; counted as ignore", { topic, result });
        result = "ignore";
      }
      if (!this.#router.validated(id, result, this.#clock.now())) return; // past its deadline
      if (result === "reject") {
        this.dispatchEvent(new CustomEvent("gossip:rejected", { detail: { topic, id, from } }));
      }
      this.#pump();
    };
    let verdict: ValidationResult | Promise<ValidationResult>;
    try {
      verdict = handler.validate({ topic, id, from, data });
    } catch (e) {
      log.warn("Validator of {topic} threw: {error}", { topic, error: String(e) });
      return finish("ignore");
    }
    if (typeof verdict === "string") return finish(verdict);
    Promise.resolve(verdict).then(finish, (e) => {
      log.warn("Validator of {topic} failed: {error}", { topic, error: String(e) });
      finish("ignore");
    });
  }

  #armTimer(): void {
    const at = this.#router.nextTickAt();
    if (at >= this.#timerAt) return;
    this.#cancelTimer?.();
    this.#timerAt = at;
    this.#cancelTimer = this.#clock.schedule(() => {
      this.#cancelTimer = undefined;
      this.#timerAt = Infinity;
      if (this.#closed) return;
      this.#router.tick(this.#clock.now());
      this.#pump();
    }, Math.max(0, at - this.#clock.now()));
  }
}
