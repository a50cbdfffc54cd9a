/**
 * The connection manager's I/O: drives a {@linkcode DialPlanner} with the transport's dials,
 * the DHT's contacts and one timer. The rules live in the planner.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Clock } from "../clock.ts";
import type { DhtService } from "../discovery/dht/dht_service.ts";
import { PeerId } from "../identity/peer_id.ts";
import type { QuicTransport } from "../transport/transport.ts";
import type { DialCandidate, DialPlanner } from "./dial_planner.ts";
import type { DialFailedDetail, PeerSource } from "./events.ts";

const log = getLogger(["cretoai", "node"]);

/** Time between two looks at the peers while the node is below its target. */
const BELOW_TARGET_TICK_MS = 2000;
/** Time between two looks at the peers while the node holds its target. */
const AT_TARGET_TICK_MS = 30_000;
/** First and longest wait between two DHT lookups that found no new peer. */
const LOOKUP_MIN_MS = 1000;
const LOOKUP_MAX_MS = 30_000;

export interface ConnectionManagerOptions {
  transport: QuicTransport;
  planner: DialPlanner;
  /** The running DHT, if any. */
  dht: () => DhtService | undefined;
  clock: Clock;
  /** Called before a dial, so the node can tell how the peer it connects was found. */
  dialing: (address: string, foundBy: PeerSource) => () => void;
  dialFailed: (detail: DialFailedDetail) => void;
}

/**
 * Keeps the node at its target number of peers: dials the planner's candidates, feeds it the
 * DHT's contacts, and looks up more peers in the DHT while it runs out of candidates.
 */
export class ConnectionManager {
  readonly #o: ConnectionManagerOptions;
  readonly #closer = new AbortController();
  readonly #dials = new Set<Promise<void>>();
  #cancelTimer: (() => void) | undefined;
  #timerAt = Infinity;
  #lookup: Promise<void> | undefined;
  #lookupAt = 0;
  #lookupWaitMs = LOOKUP_MIN_MS;

  constructor(options: ConnectionManagerOptions) {
    this.#o = options;
  }

  /** Adds a candidate and looks at the peers at once. */
  add(candidate: DialCandidate): void {
    if (this.#o.planner.add(candidate)) this.kick();
  }

  /** Looks at the peers now (after a disconnection, a new candidate, a finished dial). */
  kick(): void {
    this.#arm(0);
  }

  /** Stops dialing; dials in flight are abandoned. */
  async close(): Promise<void> {
    this.#closer.abort();
    this.#cancelTimer?.();
    await Promise.allSettled([...this.#dials, this.#lookup]);
  }

  #arm(delayMs: number): void {
    if (this.#closer.signal.aborted) return;
    const at = this.#o.clock.now() + delayMs;
    if (at >= this.#timerAt) return;
    this.#cancelTimer?.();
    this.#timerAt = at;
    this.#cancelTimer = this.#o.clock.schedule(() => {
      this.#timerAt = Infinity;
      this.#tick();
    }, delayMs);
  }

  #tick(): void {
    if (this.#closer.signal.aborted) return;
    const { planner, clock } = this.#o;
    const dht = this.#o.dht();
    let found = 0;
    for (const contact of dht?.contacts() ?? []) {
      if (contact.addresses.length === 0) continue;
      if (planner.add({ peerId: contact.id, addresses: contact.addresses, foundBy: "dht" })) {
        found++;
      }
    }
    if (found > 0) this.#lookupWaitMs = LOOKUP_MIN_MS;
    const now = clock.now();
    for (const candidate of planner.next(now)) {
      const dial = this.#dial(candidate).finally(() => {
        this.#dials.delete(dial);
        this.kick();
      });
      this.#dials.add(dial);
    }
    const starved = planner.starved(now);
    if (starved && dht !== undefined && this.#lookup === undefined && now >= this.#lookupAt) {
      this.#lookup = this.#lookUp(dht).finally(() => {
        this.#lookup = undefined;
        this.kick();
      });
    }
    const below = planner.connectedCount < planner.targetPeers;
    const waits = [below ? BELOW_TARGET_TICK_MS : AT_TARGET_TICK_MS];
    const due = planner.nextDueAt(now);
    if (due !== undefined) waits.push(due - now);
    if (starved && dht !== undefined) waits.push(Math.max(0, this.#lookupAt - now));
    this.#arm(Math.max(0, Math.min(...waits)));
  }

  /** A DHT lookup for this node's neighbourhood, fewer of them while they find nobody new. */
  async #lookUp(dht: DhtService): Promise<void> {
    const before = this.#o.planner.size;
    try {
      await dht.join();
    } catch (e) {
      if (!this.#closer.signal.aborted) {
        log.debug("DHT lookup failed: {error}", { error: String(e) });
      }
    }
    const found = this.#o.planner.size > before ||
      dht.contacts().some((c) => this.#o.planner.get(c.id) === undefined);
    this.#lookupWaitMs = found ? LOOKUP_MIN_MS : Math.min(LOOKUP_MAX_MS, this.#lookupWaitMs * 2);
    this.#lookupAt = this.#o.clock.now() + this.#lookupWaitMs;
  }

  async #dial(candidate: DialCandidate): Promise<void> {
    const { transport, planner, clock } = this.#o;
    const signal = this.#closer.signal;
    const expectedPeerId = candidate.peerId === undefined
      ? undefined
      : PeerId.parse(candidate.peerId);
    let failure: Error | undefined;
    for (const address of candidate.addresses) {
      const done = this.#o.dialing(address, candidate.foundBy);
      try {
        const peerId = await transport.connectPeer(address, { expectedPeerId, signal });
        planner.dialSucceeded(candidate, peerId.toString());
        return;
      } catch (e) {
        failure = e as Error;
      } finally {
        done();
      }
      if (signal.aborted) return;
    }
    const retryInMs = planner.dialFailed(candidate, clock.now());
    if (signal.aborted || failure === undefined) return;
    this.#o.dialFailed({
      address: candidate.addresses.join(", "),
      peerId: expectedPeerId,
      foundBy: candidate.foundBy,
      error: failure,
      retryInMs,
    });
  }
}
