/**
 * An in-process network of DHT nodes for tests and benches: a virtual clock, a seeded PRNG,
 * simulated latency, nodes that vanish without a word, and a cheap HMAC "identity" standing
 * in for the real hybrid signer.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type Clock,
  type DhtContact,
  DhtNode,
  type DhtNodeOptions,
  type DhtRpc,
  keyToHex,
  type PeerIdBinding,
  type RecordSigner,
  type RecordVerifier,
} from "../../../src/discovery/dht/mod.ts";
import { Prng } from "../../_prng.ts";
import { BinaryHeap, earlier, type Scheduled } from "../../_binary_heap.ts";

export { Prng };

interface Timer extends Scheduled {
  callback: () => void;
  cancelled: boolean;
}

/**
 * A clock whose time moves only when {@linkcode SimulationClock.run} finds nothing else to do.
 * Unlike the unit tests' `VirtualClock` (`tests/_virtual_clock.ts`) it is an event queue built
 * for thousands of nodes: a heap with lazy cancellation, all timers due at one instant fired
 * before promises run, and `run(promise)` as the simulation's event loop.
 */
export class SimulationClock implements Clock {
  #now: number;
  #order = 0;
  #heap = new BinaryHeap<Timer>(earlier);
  #cancelled = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  schedule(callback: () => void, delayMs: number): () => void {
    const timer: Timer = {
      at: this.#now + Math.max(0, delayMs),
      order: this.#order++,
      callback,
      cancelled: false,
    };
    this.#heap.push(timer);
    return () => {
      if (timer.cancelled) return;
      timer.cancelled = true;
      // Timeouts are nearly always cancelled; dropping them keeps the heap small.
      if (++this.#cancelled > 1024 && this.#cancelled * 2 > this.#heap.size) this.#compact();
    };
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.#heap.count((t) => !t.cancelled);
  }

  /** Moves time forward by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    await drain();
    while (this.#heap.size > 0 && this.#heap.peek()!.at <= until) {
      this.#fireNext();
      await drain();
    }
    this.#now = until;
  }

  /**
   * Runs the event loop of the simulation until `promise` settles: lets every microtask run,
   * then jumps to the next timer, and so on.
   */
  async run<T>(promise: Promise<T>): Promise<T> {
    let settled = false;
    promise.then(() => settled = true, () => settled = true);
    await drain();
    while (!settled) {
      if (!this.#fireNext()) {
        throw new Error(`Simulation stalled at ${this.#now} ms: promise pending, no timers left`);
      }
      await drain();
    }
    return promise;
  }

  /** Fires every timer due at the earliest pending time; `false` if there were none. */
  #fireNext(): boolean {
    let first: Timer | undefined;
    while (this.#heap.size > 0) {
      const t = this.#heap.pop()!;
      if (!t.cancelled) {
        first = t;
        break;
      }
    }
    if (first === undefined) return false;
    this.#now = first.at;
    first.callback();
    while (this.#heap.size > 0 && this.#heap.peek()!.at === first.at) {
      const t = this.#heap.pop()!;
      if (!t.cancelled) t.callback();
    }
    return true;
  }

  #compact(): void {
    this.#heap.retain((t) => !t.cancelled);
    this.#cancelled = 0;
  }
}

/** Lets every queued microtask (and those they queue) run. */
function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A fake identity: the secret signs with HMAC-SHA256, the "public key" is a hash of the
 * secret, and the peer id is a hash of the public key, as with the real identity.
 */
export class HmacIdentity implements RecordSigner {
  readonly secret: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly peerId: string;

  constructor(secret: Uint8Array) {
    this.secret = secret;
    this.publicKey = sha256(secret);
    this.peerId = hmacPeerId(this.publicKey);
  }

  sign(payload: Uint8Array): Uint8Array {
    return hmac(sha256, this.secret, payload);
  }
}

/** The peer id an HMAC identity with this public key has. */
export function hmacPeerId(publicKey: Uint8Array): string {
  return "sim" + keyToHex(sha256(publicKey)).slice(0, 40);
}

/** Checks that a public key hashes to the peer id. */
export const hmacPeerIdMatches: PeerIdBinding = (publicKey, peerId) =>
  hmacPeerId(publicKey) === peerId;

/**
 * Verifies HMAC signatures by looking up the secret behind a public key: the simulation's
 * stand-in for public-key verification (only the registered owner can produce a signature).
 */
export class HmacRegistry implements RecordVerifier {
  readonly #secrets = new Map<string, Uint8Array>();

  register(identity: HmacIdentity): void {
    this.#secrets.set(keyToHex(identity.publicKey), identity.secret);
  }

  verify(publicKey: Uint8Array, payload: Uint8Array, signature: Uint8Array): boolean {
    const secret = this.#secrets.get(keyToHex(publicKey));
    if (secret === undefined) return false;
    const expected = hmac(sha256, secret, payload);
    if (expected.length !== signature.length) return false;
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ signature[i];
    return diff === 0;
  }
}

/** Options of a {@linkcode SimNetwork}. */
export interface SimOptions {
  /** PRNG seed. */
  seed?: number;
  /** One-way latency range in virtual milliseconds. */
  minLatencyMs?: number;
  maxLatencyMs?: number;
  /** Overrides passed to every node. */
  node?: Partial<DhtNodeOptions>;
}

/** A simulated network of DHT nodes. */
export class SimNetwork {
  readonly clock = new SimulationClock(1_700_000_000_000);
  readonly prng: Prng;
  readonly registry = new HmacRegistry();
  readonly nodes: DhtNode[] = [];
  readonly identities = new Map<string, HmacIdentity>();
  readonly #alive = new Map<string, DhtNode>();
  readonly #minLatency: number;
  readonly #maxLatency: number;
  readonly #nodeOptions: Partial<DhtNodeOptions>;
  /** Requests delivered, for cost accounting. */
  messages = 0;

  constructor(options: SimOptions = {}) {
    const { seed = 1, minLatencyMs = 10, maxLatencyMs = 120, node = {} } = options;
    this.prng = new Prng(seed);
    this.#minLatency = minLatencyMs;
    this.#maxLatency = maxLatencyMs;
    this.#nodeOptions = node;
  }

  /** Nodes still online. */
  get alive(): DhtNode[] {
    return [...this.#alive.values()];
  }

  isAlive(id: string): boolean {
    return this.#alive.has(id);
  }

  /** Creates a node (not yet bootstrapped) and puts it online. */
  addNode(): DhtNode {
    const identity = new HmacIdentity(this.prng.bytes(32));
    this.registry.register(identity);
    this.identities.set(identity.peerId, identity);
    const id = identity.peerId;
    const self = (): DhtContact => node.contact;
    const node: DhtNode = new DhtNode({
      id,
      addresses: [`10.${this.nodes.length >> 8}.${this.nodes.length & 255}.1:4433`],
      rpc: this.#rpcFor(self),
      signer: identity,
      verifier: this.registry,
      peerIdMatches: hmacPeerIdMatches,
      clock: this.clock,
      randomBytes: (n) => this.prng.bytes(n),
      requestTimeoutMs: 1000,
      ...this.#nodeOptions,
    });
    this.nodes.push(node);
    this.#alive.set(id, node);
    return node;
  }

  /** Takes a node offline without notice: its requests go unanswered from now on. */
  kill(node: DhtNode): void {
    this.#alive.delete(node.contact.id);
    node.close();
  }

  /**
   * Grows the network to `count` nodes: each new node bootstraps from up to three random
   * nodes already in, `concurrency` joins at a time.
   */
  async grow(count: number, concurrency = 20): Promise<void> {
    if (this.nodes.length === 0) await this.clock.run(this.addNode().bootstrap([]));
    while (this.nodes.length < count) {
      const joined = this.alive;
      const batch: Promise<number>[] = [];
      const n = Math.min(concurrency, count - this.nodes.length, joined.length);
      for (let i = 0; i < n; i++) {
        const seeds = new Map<string, DhtContact>();
        for (let j = 0; j < 3; j++) {
          const c = this.prng.pick(joined).contact;
          seeds.set(c.id, c);
        }
        batch.push(this.addNode().bootstrap([...seeds.values()]));
      }
      await this.clock.run(Promise.all(batch));
    }
  }

  /** One-way latency of one message. */
  latency(): number {
    return this.prng.int(this.#minLatency, this.#maxLatency);
  }

  /** Delivers a request after a latency, and its answer after another; none if `to` is gone. */
  #call<T>(to: DhtContact, handle: (node: DhtNode) => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.clock.schedule(() => {
        const node = this.#alive.get(to.id);
        if (node === undefined) return;
        this.messages++;
        let answer: Promise<T>;
        try {
          answer = Promise.resolve(handle(node));
        } catch (error) {
          answer = Promise.reject(error);
        }
        answer.then(
          (value) => this.clock.schedule(() => resolve(value), this.latency()),
          (error) => this.clock.schedule(() => reject(error), this.latency()),
        );
      }, this.latency());
    });
  }

  #rpcFor(self: () => DhtContact): DhtRpc {
    return {
      ping: (to) => this.#call(to, (n) => n.handlePing(self())),
      findNode: (to, target) => this.#call(to, (n) => n.handleFindNode(self(), target)),
      getPeerRecord: (to, id) => this.#call(to, (n) => n.handleGetPeerRecord(self(), id)),
      putPeerRecord: (to, record) => this.#call(to, (n) => n.handlePutPeerRecord(self(), record)),
      findProviders: (to, key) => this.#call(to, (n) => n.handleFindProviders(self(), key)),
      addProvider: (to, record) => this.#call(to, (n) => n.handleAddProvider(self(), record)),
    };
  }
}

/** The outcome of a batch of peer lookups. */
export interface LookupRun {
  attempts: number;
  successes: number;
  /** Hops of each successful lookup. */
  hops: number[];
  /** Queries sent per lookup, successful or not. */
  queries: number[];
  /** Virtual milliseconds per lookup. */
  durations: number[];
}

/**
 * Runs `count` findPeer lookups from random live nodes for random other live nodes,
 * `concurrency` at a time. A lookup succeeds when it returns the target's record with the
 * target's addresses.
 */
export async function runPeerLookups(
  net: SimNetwork,
  count: number,
  concurrency = 50,
): Promise<LookupRun> {
  const run: LookupRun = { attempts: 0, successes: 0, hops: [], queries: [], durations: [] };
  const alive = net.alive;
  while (run.attempts < count) {
    const batch: Promise<void>[] = [];
    for (let i = 0; i < concurrency && run.attempts < count; i++, run.attempts++) {
      const from = net.prng.pick(alive);
      let target = net.prng.pick(alive);
      while (target === from) target = net.prng.pick(alive);
      batch.push(
        from.lookupPeer(target.contact.id).then(({ record, stats }) => {
          run.queries.push(stats.queried);
          run.durations.push(stats.durationMs);
          if (
            record?.peerId === target.contact.id &&
            record.addresses.join() === target.contact.addresses.join()
          ) {
            run.successes++;
            run.hops.push(stats.hops);
          }
        }),
      );
    }
    await net.clock.run(Promise.all(batch));
  }
  return run;
}

/** The q-quantile (0..1) of a list of numbers, by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Formats a hop histogram as a text table with a bar per row. */
export function formatHopTable(title: string, run: LookupRun): string {
  const counts = new Map<number, number>();
  for (const h of run.hops) counts.set(h, (counts.get(h) ?? 0) + 1);
  const max = Math.max(0, ...counts.keys());
  const lines = [
    `${title}: ${run.successes}/${run.attempts} found ` +
    `(${(100 * run.successes / run.attempts).toFixed(1)}%), hops median ${
      quantile(run.hops, 0.5)
    } p99 ${quantile(run.hops, 0.99)} max ${max}; queries/lookup median ` +
    `${quantile(run.queries, 0.5)} p99 ${quantile(run.queries, 0.99)}; ` +
    `virtual ms/lookup median ${quantile(run.durations, 0.5)} p99 ${quantile(run.durations, 0.99)}`,
    "hops | lookups |      % | cumulative %",
    "-----|---------|--------|-------------",
  ];
  let cumulative = 0;
  for (let h = 0; h <= max; h++) {
    const n = counts.get(h) ?? 0;
    cumulative += n;
    const pct = (100 * n) / Math.max(1, run.hops.length);
    const cum = (100 * cumulative) / Math.max(1, run.hops.length);
    lines.push(
      `${String(h).padStart(4)} | ${String(n).padStart(7)} | ${pct.toFixed(1).padStart(6)} | ` +
        `${cum.toFixed(1).padStart(12)} ${"#".repeat(Math.round(pct / 2))}`,
    );
  }
  return lines.join("\n");
}
