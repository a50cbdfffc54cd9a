/**
 * Waiting on a promise that cannot itself be cancelled, until a signal aborts.
 *
 * @module
 */

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as it aborts; the
 * promise runs on, and a later rejection of it is ignored.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  promise.catch(() => {});
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
