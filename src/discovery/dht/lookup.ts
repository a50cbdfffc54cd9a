/**
 * The iterative Kademlia lookup: ask the closest known contacts about a target, learn closer
 * ones from their answers, and repeat until the k closest known contacts have all answered
 * (or failed), or until enough values were found.
 *
 * The lookup is written over a query function and an injected clock, so the same code runs
 * against a simulated network and over QUIC.
 *
 * @module
 */

import type { DhtContact } from "./contact.ts";
import type { Clock } from "../../clock.ts";
import { compareDistance, type DhtKey } from "./key.ts";
import { requireInteger, requirePositiveFinite } from "../../_validate.ts";
import { NetworkError } from "../../errors.ts";

/** What one contact answered to a lookup query. */
export interface LookupReply<T> {
  /** Contacts the queried node knows that are close to the target. */
  readonly closer: readonly DhtContact[];
  /** Values the queried node holds for the target (records, providers); may be empty. */
  readonly values?: readonly T[];
}

/** Options of {@linkcode iterativeLookup}. */
export interface LookupOptions<T> {
  /** Time source for per-request timeouts. */
  clock: Clock;
  /**
   * How many closest contacts the lookup converges on.
   *
   * @default {20}
   */
  k?: number;
  /**
   * How many queries are in flight at once.
   *
   * @default {3}
   */
  alpha?: number;
  /**
   * A query that has not answered within this many milliseconds counts as failed.
   *
   * @default {5000}
   */
  requestTimeoutMs?: number;
  /**
   * The local node's id, never queried even when another node names it.
   *
   * @default {undefined}
   */
  selfId?: string;
  /**
   * Stops the lookup early once the values found so far are enough.
   *
   * @default {() => false}
   */
  enough?: (values: readonly T[]) => boolean;
  /**
   * Called when a contact answered, so the routing table can mark it seen.
   *
   * @default {undefined}
   */
  onReply?: (contact: DhtContact) => void;
  /**
   * Called when a query failed or timed out, so the routing table can count the failure.
   *
   * @default {undefined}
   */
  onFailure?: (contact: DhtContact, error: unknown) => void;
}

/** Counters of one lookup. */
export interface LookupStats {
  /**
   * Hops to the result: the query depth of the contact that returned the first value, or,
   * when no value was found, of the closest contact that answered. Contacts from the local
   * table are depth 1; a contact first learned from a depth-d answer is depth d + 1.
   */
  readonly hops: number;
  /** Queries sent. */
  readonly queried: number;
  /** Queries that failed or timed out. */
  readonly failed: number;
  /** Clock time from start to finish, in milliseconds. */
  readonly durationMs: number;
}

/** The outcome of {@linkcode iterativeLookup}. */
export interface LookupResult<T> {
  /** The up to k closest contacts that answered, closest first. */
  readonly closest: DhtContact[];
  /** Values found, in the order they arrived. */
  readonly values: T[];
  /** Counters. */
  readonly stats: LookupStats;
}

/** Asks one contact about the lookup's target. */
export type LookupQuery<T> = (contact: DhtContact) => Promise<LookupReply<T>>;

type State = "waiting" | "pending" | "answered" | "failed";

interface Candidate {
  contact: DhtContact;
  depth: number;
  state: State;
}

/**
 * Runs an iterative lookup towards `target`, starting from `seeds`.
 *
 * Up to `alpha` queries are in flight; each goes to the closest contact not yet asked among
 * the k closest known that have not failed. The lookup ends when those k closest have all
 * answered or failed and nothing is in flight, when `enough(values)` holds, or when no
 * contact is left to ask. Failed queries never end the lookup early: the next closest
 * contact takes their place.
 *
 * @example A lookup over an in-memory "network" of three nodes
 * ```ts
 * import { iterativeLookup, makeContact, wallClock } from "@cretoai/network/dht";
 *
 * const a = makeContact("a"), b = makeContact("b"), c = makeContact("c");
 * const knows: Record<string, typeof a[]> = { a: [b], b: [c], c: [] };
 * const result = await iterativeLookup(c.key, [a], async (contact) => ({
 *   closer: knows[contact.id],
 *   values: contact.id === "c" ? ["found"] : [],
 * }), { clock: wallClock, enough: (v) => v.length > 0 });
 * console.assert(result.values[0] === "found" && result.stats.hops === 3);
 * ```
 *
 * @param target The key looked up.
 * @param seeds Contacts to start from, usually the local table's closest to `target`.
 * @param query Sends one query; a rejection counts as a failure of that contact.
 * @param options Clock, k, alpha, timeout, early stop and callbacks.
 * @returns The closest contacts that answered, the values found and counters.
 * @throws {InvalidConfigError} If `k`, `alpha` or `requestTimeoutMs` is not positive.
 */
export function iterativeLookup<T>(
  target: DhtKey,
  seeds: readonly DhtContact[],
  query: LookupQuery<T>,
  options: LookupOptions<T>,
): Promise<LookupResult<T>> {
  const {
    clock,
    k = 20,
    alpha = 3,
    requestTimeoutMs = 5000,
    selfId,
    enough = () => false,
    onReply,
    onFailure,
  } = options;
  requireInteger("k", k, 1);
  requireInteger("alpha", alpha, 1);
  requirePositiveFinite("requestTimeoutMs", requestTimeoutMs);

  const started = clock.now();
  // Sorted closest first; every contact ever heard of, so a failed one is never re-added.
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  const values: T[] = [];
  const cancels = new Set<() => void>();
  let valueDepth = 0;
  let inFlight = 0;
  let queried = 0;
  let failed = 0;
  let finished = false;

  const add = (contact: DhtContact, depth: number) => {
    if (contact.id === selfId || seen.has(contact.id)) return;
    seen.add(contact.id);
    let lo = 0, hi = candidates.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareDistance(target, candidates[mid].contact.key, contact.key) < 0) lo = mid + 1;
      else hi = mid;
    }
    candidates.splice(lo, 0, { contact, depth, state: "waiting" });
  };
  for (const seed of seeds) add(seed, 1);

  return new Promise<LookupResult<T>>((resolve) => {
    const finish = () => {
      finished = true;
      for (const cancel of cancels) cancel();
      cancels.clear();
      const closest: DhtContact[] = [];
      let hops = valueDepth;
      for (const c of candidates) {
        if (c.state !== "answered") continue;
        if (closest.length === 0 && values.length === 0) hops = c.depth;
        closest.push(c.contact);
        if (closest.length === k) break;
      }
      resolve({
        closest,
        values,
        stats: { hops, queried, failed, durationMs: clock.now() - started },
      });
    };

    const send = (c: Candidate) => {
      c.state = "pending";
      inFlight++;
      queried++;
      let settled = false;
      const settle = () => {
        if (settled || finished) return false;
        settled = true;
        cancels.delete(cancelTimer);
        cancelTimer();
        inFlight--;
        return true;
      };
      const fail = (error: unknown) => {
        if (!settle()) return;
        c.state = "failed";
        failed++;
        onFailure?.(c.contact, error);
        pump();
      };
      const cancelTimer = clock.schedule(() => {
        fail(
          new NetworkError(
            "ERR_TIMEOUT",
            `DHT query to ${c.contact.id} got no answer within ${requestTimeoutMs} ms`,
          ),
        );
      }, requestTimeoutMs);
      cancels.add(cancelTimer);
      let reply: Promise<LookupReply<T>>;
      try {
        reply = query(c.contact);
      } catch (error) {
        reply = Promise.reject(error);
      }
      reply.then((r) => {
        if (!settle()) return;
        c.state = "answered";
        onReply?.(c.contact);
        for (const contact of r.closer) add(contact, c.depth + 1);
        if (r.values !== undefined && r.values.length > 0) {
          if (values.length === 0) valueDepth = c.depth;
          values.push(...r.values);
          if (enough(values)) return finish();
        }
        pump();
      }, fail);
    };

    const pump = () => {
      if (finished) return;
      let considered = 0;
      for (const c of candidates) {
        if (inFlight >= alpha || considered >= k) break;
        if (c.state === "failed") continue;
        considered++;
        if (c.state === "waiting") send(c);
      }
      if (finished) return;
      if (inFlight === 0) finish();
    };

    pump();
  });
}
