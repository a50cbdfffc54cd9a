/**
 * One budget of buffered bytes per peer connection: the peer's messages waiting in the
 * `messages()` queue, partial frames on its lanes and request streams, and requests being
 * served all draw from it, so that no mix of streams holds more than the budget.
 *
 * @module
 */

import { DEFAULT_MAX_STREAMS_BIDI } from "../quic/options.ts";

/** Smallest and largest QUIC receive window a connection's unread data may grow to. */
const MIN_RECEIVE_WINDOW_BYTES = 1024 * 1024;
const MAX_RECEIVE_WINDOW_BYTES = 24 * 1024 * 1024;

/**
 * The QUIC flow-control window (connection and stream) a peer's unread data may grow to in
 * quiche: an eighth of the per-peer budget, from 1 MiB (the window a connection starts with)
 * to 24 MiB. 2 MiB for a 16 MiB budget still carries 100 Mbit/s at 160 ms of round trip.
 */
export function receiveWindowBytes(bufferedBytesPerPeer: number): number {
  return Math.min(
    MAX_RECEIVE_WINDOW_BYTES,
    Math.max(MIN_RECEIVE_WINDOW_BYTES, Math.floor(bufferedBytesPerPeer / 8)),
  );
}

/**
 * What one request stream a peer holds open costs this node besides its frame: quiche's
 * stream state and ours (the stream, its reader and the serving task, whose deadline is an
 * entry in the connection's `DeadlineSweep`), and the growth of V8's young generation that
 * keeping them alive brings. Measured with `bench/abuse/stalled_streams.ts --message-bytes
 * 1024 --streams 258` (streams stalled on 1 KiB frames, RSS growth, medians of three): +3.7
 * MiB, about 15 KiB a stream (+4.6 MiB in the same sitting with a timer and a promise race per
 * stream). V8's heap grows by 3.4 KB a stream, 1.3 KB of it the stalled frame's bytes (it was
 * 5.9 KB: 27 closures, 10 promises, 3 suspended async functions and a timer a stream, now 10,
 * 3, 2 and none).
 */
export const STREAM_STATE_BYTES = 16 * 1024;

/**
 * What a peer's frames (queued messages, partial frames, requests being served) may hold: the
 * per-peer budget less quiche's receive window and the state of every request stream the peer
 * may hold open (`streamsPerPeer`, at most the QUIC limit on bidirectional streams), so that
 * all of them together stay within the budget, when what is left still holds one largest
 * message; otherwise the whole budget (the window and the streams then come on top, for
 * example with the defaults, where the budget is one 16 MiB message).
 */
export function frameBudgetBytes(
  bufferedBytesPerPeer: number,
  maxMessageBytes: number,
  streamsPerPeer: number,
): number {
  const streams = Math.min(streamsPerPeer, DEFAULT_MAX_STREAMS_BIDI);
  const rest = bufferedBytesPerPeer - receiveWindowBytes(bufferedBytesPerPeer) -
    streams * STREAM_STATE_BYTES;
  return rest >= maxMessageBytes ? rest : bufferedBytesPerPeer;
}

/** Bytes charged against a limit, with waiters for room. */
export class ByteBudget {
  /** The most bytes that may be charged (waiters get room only below it). */
  readonly limit: number;
  #used = 0;
  #waiters: { bytes: number; resolve: () => void }[] = [];
  #closed = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes charged now. */
  get used(): number {
    return this.#used;
  }

  /** Charges bytes already held; may go over the limit (the caller decides what that means). */
  charge(bytes: number): void {
    this.#used += bytes;
  }

  /** Returns bytes. */
  release(bytes: number): void {
    this.#used -= bytes;
    this.#wake();
  }

  /**
   * Charges `bytes` once they fit under the limit, or at once when nothing else is charged
   * (so that one frame larger than the budget can still pass alone). Waiters are served in
   * order; after {@linkcode ByteBudget.close} every wait returns at once.
   */
  reserve(bytes: number): Promise<void> | undefined {
    if (this.#fits(bytes) && this.#waiters.length === 0) {
      this.#used += bytes;
      return undefined;
    }
    return new Promise((resolve) => {
      this.#waiters.push({ bytes, resolve });
      this.#wake();
    });
  }

  /** Ends every wait: the connection is gone. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #fits(bytes: number): boolean {
    return this.#closed || this.#used === 0 || this.#used + bytes <= this.limit;
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0].bytes)) {
      const waiter = this.#waiters.shift()!;
      this.#used += waiter.bytes;
      waiter.resolve();
    }
  }
}
