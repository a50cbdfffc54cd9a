/**
 * A STUN transaction over UDP (RFC 8489 section 6.2.1): its retransmission timers and its
 * single finish, shared by the STUN Binding client and the TURN client. Private to `src/nat/`.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { NetworkError } from "../errors.ts";
import type { StunRetransmitSchedule } from "./stun_client.ts";

/**
 * Runs one transaction's send schedule: calls `send` at every time in `schedule.sendAt`, then
 * `giveUp` at `schedule.giveUpAt` unless stopped first. The first send happens during the
 * call. Times are relative to the start, so timer lateness does not stretch the schedule.
 *
 * @param clock Clock and timers.
 * @param schedule From `stunRetransmitSchedule`.
 * @param send Sends the request once; gets the 1-based attempt number.
 * @param giveUp Called once when the schedule ran out, with the number of requests sent.
 * @returns A function that stops the schedule (idempotent).
 */
function retransmit(
  clock: Clock,
  schedule: StunRetransmitSchedule,
  send: (attempt: number) => void,
  giveUp: (sent: number) => void,
): () => void {
  const start = clock.now();
  let sent = 0;
  let stopped = false;
  let cancelTimer = () => {};
  const step = () => {
    if (stopped) return;
    if (sent >= schedule.sendAt.length) {
      stopped = true;
      giveUp(sent);
      return;
    }
    sent++;
    send(sent);
    if (stopped) return;
    const next = sent < schedule.sendAt.length ? schedule.sendAt[sent] : schedule.giveUpAt;
    cancelTimer = clock.schedule(step, Math.max(0, next - (clock.now() - start)));
  };
  step();
  return () => {
    stopped = true;
    cancelTimer();
  };
}

/** Settles one transaction; the first call wins, later ones are ignored. */
export interface TransactionSettle<T> {
  /** Finishes the transaction with its answer. */
  resolve(value: T): void;
  /** Finishes the transaction with an error. */
  reject(error: unknown): void;
}

/** The client's side of a transaction: where answers come from, how to send, what errors say. */
export interface TransactionHooks<T> {
  /**
   * Registers the transaction so that answers reach `settle`; called once, before the first
   * send.
   *
   * @returns Unregisters it; called once, when the transaction finishes.
   */
  open(settle: TransactionSettle<T>): () => void;
  /** Sends the request once; gets the 1-based attempt number. A rejection fails the transaction. */
  send(attempt: number): Promise<void>;
  /** The error a failed send finishes the transaction with. */
  sendError(cause: unknown): Error;
  /** The error when the schedule ran out, given the number of requests sent. */
  timeoutError(sent: number): Error;
  /** The request, as it starts the message of the error when the signal aborts ("STUN Binding"). */
  what: string;
}

/**
 * Runs one request/answer transaction on the retransmission schedule: registers it, sends on
 * the schedule and finishes exactly once, on the first of an answer (`settle`), a failed send,
 * the end of the schedule or the signal. Finishing stops the timers, removes the abort
 * listener and unregisters the transaction. The signal fails it with `ERR_TIMEOUT` when its
 * reason is a `TimeoutError` (as from `AbortSignal.timeout`), otherwise with `ERR_ABORTED`.
 *
 * @param clock Clock and timers.
 * @param schedule From `stunRetransmitSchedule`.
 * @param signal Aborts the transaction.
 * @param hooks The client's side.
 * @returns The answer, as given to `settle.resolve`.
 */
export function transaction<T>(
  clock: Clock,
  schedule: StunRetransmitSchedule,
  signal: AbortSignal | undefined,
  hooks: TransactionHooks<T>,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(abortError(hooks.what, signal));
  return new Promise<T>((resolve, reject) => {
    let stop = () => {};
    let done = false;
    const finish = (outcome: () => void) => {
      if (done) return;
      done = true;
      stop();
      signal?.removeEventListener("abort", onAbort);
      unregister();
      outcome();
    };
    const onAbort = () => finish(() => reject(abortError(hooks.what, signal!)));
    const unregister = hooks.open({
      resolve: (value) => finish(() => resolve(value)),
      reject: (error) => finish(() => reject(error)),
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    stop = retransmit(
      clock,
      schedule,
      (attempt) => {
        hooks.send(attempt).catch((e: unknown) => finish(() => reject(hooks.sendError(e))));
      },
      (sent) => finish(() => reject(hooks.timeoutError(sent))),
    );
    // The first request went out during retransmit(): an answer delivered synchronously
    // finished the transaction before `stop` was assigned.
    if (done) stop();
  });
}

function abortError(what: string, signal: AbortSignal): NetworkError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof DOMException && reason.name === "TimeoutError";
  return new NetworkError(
    timedOut ? "ERR_TIMEOUT" : "ERR_ABORTED",
    `${what} ${timedOut ? "timed out" : "aborted"} by its signal: ${String(reason)}`,
    { cause: reason },
  );
}
