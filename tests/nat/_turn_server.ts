/**
 * A coturn TURN server on loopback for the TURN tests, as a child of the test (`startCoturn`
 * of `_netlab.ts` on one IP): a free port, long-term credentials `test:secret` in realm
 * `example.org`, relay on 127.0.0.1, and extra flags (short lifetimes) per test. Killed and waited for by `stop()` / `await using`.
 *
 * @module
 */

import { type LabProcess, skipReason, startCoturn } from "../_netlab.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";

/** Why the coturn tests cannot run here, or `undefined` when they can. */
export function turnSkipReason(): string | undefined {
  if (typeof Deno.listenDatagram !== "function") return "Deno.listenDatagram needs --unstable-net";
  return skipReason({ tools: ["turnserver"] });
}

/** Options of {@link startTurnServer}. */
export interface TurnServerOptions {
  /** Listening IP, also the relay IP. Default `"127.0.0.1"`. */
  ip?: string;
  /** Listening port; 0 picks a free one. Default 0. */
  port?: number;
  /** Network namespace to run in. Default: the test's own. */
  netns?: string;
  /** More coturn flags, for example `["--max-allocate-lifetime", "4"]`. */
  extraArgs?: readonly string[];
}

/** A running coturn. */
export interface TurnServer extends AsyncDisposable {
  /** Where it listens for TURN over UDP. */
  readonly address: UdpAddress;
  /** The process, for its log. */
  readonly process: LabProcess;
  /** Kills it and waits for it. */
  stop(): Promise<void>;
}

/** Credentials every test server accepts. */
export const TURN_USER = Object.freeze({ username: "test", password: "secret" });

/**
 * Starts coturn and resolves once its UDP listener is open (read from its log).
 *
 * @param options Where, and extra flags.
 * @returns The running server.
 */
export async function startTurnServer(options: TurnServerOptions = {}): Promise<TurnServer> {
  const { ip = "127.0.0.1", port, netns, extraArgs } = options;
  const coturn = await startCoturn({
    netns,
    listen: [ip],
    port,
    user: [TURN_USER.username, TURN_USER.password],
    extraArgs,
  });
  return {
    address: { hostname: ip, port: coturn.port },
    process: coturn.process,
    stop: coturn.stop,
    [Symbol.asyncDispose]: coturn.stop,
  };
}
