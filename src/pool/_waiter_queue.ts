/**
 * The queue of waiting `acquire` calls shared by the token bucket and the bandwidth limiter:
 * ordering by priority then arrival, abort handling, and one timer for the next retry.
 * What may be granted is decided by the owner's serve pass.
 *
 * @module
 */

import { NetworkError } from "../errors.ts";
import type { Clock } from "../clock.ts";

/** What a serve pass decided: the requests granted now, and when to look again. */
export interface ServeResult<T> {
  /** Requests to resolve now; the pass has already taken their tokens. */
  granted: T[];
  /** Milliseconds until a retry may grant more; `undefined` when only a new event can. */
  retryInMs: number | undefined;
}

/** Sees the queued requests in service order and grants those that may go now. */
export type ServePass<T> = (queue: readonly T[]) => ServeResult<T>;

interface Entry<T> {
  request: T;
  priority: number;
  resolve: () => void;
  reject: (error: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Waiters served by descending priority, first come first served within a priority. */
export class WaiterQueue<T> {
  #entries: Entry<T>[] = [];
  #cancelTimer: (() => void) | undefined;
  #clock: Clock;
  #serve: ServePass<T>;

  constructor(clock: Clock, serve: ServePass<T>) {
    this.#clock = clock;
    this.#serve = serve;
  }

  /** Number of waiters. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Queues a request and runs a serve pass, so a request that can go now resolves at once.
   * `what` completes the abort message: "Cannot <what>: the signal was aborted".
   */
  enqueue(
    request: T,
    priority: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(what, signal));
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const entry: Entry<T> = { request, priority, resolve, reject, signal, onAbort: undefined };
    if (signal !== undefined) {
      entry.onAbort = () => {
        this.#remove(entry);
        reject(abortError(what, signal));
        // The aborted waiter may have been holding back others behind it.
        this.pump();
      };
      signal.addEventListener("abort", entry.onAbort, { once: true });
    }
    // Insert after every waiter of the same or higher priority: FIFO within a priority.
    let i = this.#entries.length;
    while (i > 0 && this.#entries[i - 1].priority < priority) i--;
    this.#entries.splice(i, 0, entry);
    this.pump();
    return promise;
  }

  /** Rejects and drops every waiter whose request matches, then serves the rest. */
  rejectWhere(matches: (request: T) => boolean, error: Error): void {
    for (const entry of this.#entries.filter((e) => matches(e.request))) {
      this.#remove(entry);
      entry.reject(error);
    }
    this.pump();
  }

  /** Runs a serve pass now and arms the timer for the next one. */
  pump(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    if (this.#entries.length === 0) return;
    const { granted, retryInMs } = this.#serve(this.#entries.map((e) => e.request));
    if (granted.length > 0) {
      const done = new Set(granted);
      for (const entry of this.#entries.filter((e) => done.has(e.request))) {
        this.#remove(entry);
        entry.resolve();
      }
    }
    if (this.#entries.length > 0 && retryInMs !== undefined) {
      this.#cancelTimer = this.#clock.schedule(() => {
        this.#cancelTimer = undefined;
        this.pump();
      }, retryInMs);
    }
  }

  #remove(entry: Entry<T>): void {
    const i = this.#entries.indexOf(entry);
    if (i >= 0) this.#entries.splice(i, 1);
    if (entry.onAbort !== undefined) entry.signal?.removeEventListener("abort", entry.onAbort);
  }
}

function abortError(what: string, signal: AbortSignal): NetworkError {
  return new NetworkError("ERR_ABORTED", `Cannot ${what}: the signal was aborted`, {
    cause: signal.reason,
  });
}
