/**
 * A coturn TURN server on loopback for the TURN tests, as a child of the test: free ports,
 * long-term credentials `test:secret` in realm `example.org`, relay on 127.0.0.1, and extra
 * flags (short lifetimes) per test. Killed and waited for by `stop()` / `await using`.
 *
 * @module
 */

import { findExecutable, LabProcess, skipReason } from "../_netlab.ts";
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
  const { ip = "127.0.0.1", netns, extraArgs = [] } = options;
  const port = options.port || freePort(ip);
  const dir = await Deno.makeTempDir({ prefix: "cretoai-turn-" });
  // A random relay range, so concurrent servers on loopback do not reach for the same ports.
  const minRelay = 50000 + Math.floor(Math.random() * 700) * 20;
  const argv = [
    ...(netns === undefined ? [] : ["ip", "netns", "exec", netns]),
    findExecutable("turnserver") ?? "turnserver",
    "-n",
    "--no-cli",
    "--log-file",
    "stdout",
    "--simple-log",
    "-v",
    "-L",
    ip,
    "--relay-ip",
    ip,
    "-p",
    String(port),
    // No RFC 5780 alternate port: one listener is all TURN needs.
    "--no-rfc5780",
    "--min-port",
    String(minRelay),
    "--max-port",
    String(minRelay + 19),
    "--no-tls",
    "--no-dtls",
    "--fingerprint",
    "--lt-cred-mech",
    "--user",
    `${TURN_USER.username}:${TURN_USER.password}`,
    "--realm",
    "example.org",
    "--pidfile",
    `${dir}/turnserver.pid`,
    "--userdb",
    `${dir}/turndb`,
    ...(ip.startsWith("127.") ? ["--allow-loopback-peers"] : []),
    ...extraArgs,
  ];
  const process = new LabProcess(argv);
  const stop = async () => {
    await process.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await process.waitForOutput(
      (out) => out.includes(`UDP listener opened on: ${ip}:${port}`),
      5000,
      `coturn opened its UDP listener ${ip}:${port}`,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { address: { hostname: ip, port }, process, stop, [Symbol.asyncDispose]: stop };
}

/** A UDP port free on `ip` now (bound and released). */
function freePort(ip: string): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: ip, port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}
