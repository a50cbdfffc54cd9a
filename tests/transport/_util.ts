/**
 * Helpers of the transport tests: transports on loopback with free ports, identities made
 * once per run, and waiting for events with a bound.
 *
 * @module
 */

import { NodeCredentials } from "../../src/handshake/node_credentials.ts";
import { Identity } from "../../src/identity/mod.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { NetworkConfig } from "../../src/transport/config.ts";
import type { TransportEventMap } from "../../src/transport/events.ts";
import { QuicTransport } from "../../src/transport/transport.ts";

const identities: Identity[] = [];

/** The `i`-th test identity, generated on first use. */
export function identity(i: number): Identity {
  while (identities.length <= i) identities.push(Identity.generate());
  return identities[i];
}

/** A bound transport on 127.0.0.1 with a free port. */
export async function node(i: number, config: NetworkConfig = {}): Promise<QuicTransport> {
  const transport = new QuicTransport({
    identity: identity(i),
    config: { listenAddr: "127.0.0.1", quicPort: 0, ...config },
  });
  try {
    await transport.bindAndListen();
  } catch (e) {
    await transport.close();
    throw e;
  }
  return transport;
}

/**
 * A bare QUIC endpoint on 127.0.0.1 whose connections never start the identity handshake.
 * Its certificate carries a valid identity binding (of test identity 9): since handshake v2 a
 * node closes a connection without one as soon as TLS completes, so it would never stay silent.
 */
export async function silentDialer(): Promise<QuicEndpoint> {
  const { certificate } = await NodeCredentials.create(identity(9));
  return await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
}

/** `HOST:PORT` of a bound transport. */
export function addr(t: QuicTransport): string {
  return `127.0.0.1:${t.localAddr.port}`;
}

/** Resolves with the next event of `type` that `match` accepts; rejects after `ms`. */
export function nextEvent<K extends keyof TransportEventMap & string>(
  target: QuicTransport,
  type: K,
  match: (e: TransportEventMap[K]) => boolean = () => true,
  ms = 10_000,
): Promise<TransportEventMap[K]> {
  return new Promise((resolve, reject) => {
    const listener = (e: TransportEventMap[K]) => {
      if (!match(e)) return;
      clearTimeout(timer);
      target.removeEventListener(type, listener);
      resolve(e);
    };
    const timer = setTimeout(() => {
      target.removeEventListener(type, listener);
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    target.addEventListener(type, listener);
  });
}

/** Rejects when `promise` takes longer than `ms`, so that a failing test does not hang. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Whether `promise` is still pending after `ms` (for asserting that something waits). */
export async function stillPending(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const marker = Symbol("pending");
  let timer: ReturnType<typeof setTimeout>;
  const result = await Promise.race([
    promise.then(() => "settled", () => "settled"),
    new Promise<symbol>((resolve) => timer = setTimeout(() => resolve(marker), ms)),
  ]);
  clearTimeout(timer!);
  return result === marker;
}
