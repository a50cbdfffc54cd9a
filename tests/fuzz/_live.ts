/**
 * Helpers of the live fuzzers: a UDP relay that records the datagrams of a real QUIC
 * connection (seeds for mutation), and a check that a node still serves a legitimate peer.
 *
 * @module
 */

import type { QuicTransport } from "../../src/transport/transport.ts";
import { within } from "../transport/_util.ts";

/** A relay on loopback that forwards one client to a target and keeps what it forwarded. */
export interface RecordingRelay extends AsyncDisposable {
  /** The port the client dials. */
  port: number;
  /** The port the target sees the client at. */
  targetSidePort: number;
  /** Datagrams from the client, in order (at most `keep`). */
  fromClient: Uint8Array[];
  /** Datagrams from the target, in order (at most `keep`). */
  fromTarget: Uint8Array[];
}

/** Starts a recording relay to `127.0.0.1:targetPort`, keeping up to `keep` datagrams a way. */
export function recordingRelay(targetPort: number, keep = 256): RecordingRelay {
  const clientSide = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const targetSide = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const target = { transport: "udp" as const, hostname: "127.0.0.1", port: targetPort };
  const fromClient: Uint8Array[] = [];
  const fromTarget: Uint8Array[] = [];
  let client: Deno.NetAddr | undefined;
  const pump = async (
    from: Deno.DatagramConn,
    to: Deno.DatagramConn,
    kept: Uint8Array[],
    dest: () => Deno.NetAddr | undefined,
    remember?: (a: Deno.NetAddr) => void,
  ) => {
    try {
      for await (const [data, addr] of from) {
        remember?.(addr as Deno.NetAddr);
        if (kept.length < keep) kept.push(data.slice());
        const d = dest();
        if (d !== undefined) await to.send(data, d).catch(() => {});
      }
    } catch {
      // The socket closed.
    }
  };
  const pumps = [
    pump(clientSide, targetSide, fromClient, () => target, (a) => client ??= a),
    pump(targetSide, clientSide, fromTarget, () => client),
  ];
  return {
    port: (clientSide.addr as Deno.NetAddr).port,
    targetSidePort: (targetSide.addr as Deno.NetAddr).port,
    fromClient,
    fromTarget,
    async [Symbol.asyncDispose]() {
      clientSide.close();
      targetSide.close();
      await Promise.all(pumps);
    },
  };
}

/**
 * Checks that `victim` still serves `peer`: a ping round trip and a message that arrives, each
 * within 5 s.
 */
export async function stillServes(victim: QuicTransport, peer: QuicTransport): Promise<void> {
  await within(peer.ping(victim.peerId), 5000, "ping of the legitimate peer");
  const data = crypto.getRandomValues(new Uint8Array(32));
  const got = (async () => {
    for await (const m of victim.messages()) {
      if (
        m.from.equals(peer.peerId) && m.message.type === "vertex" &&
        m.message.data.join() === data.join()
      ) return;
    }
  })();
  await within(peer.send(victim.peerId, { type: "vertex", data }), 5000, "legitimate send");
  await within(got, 5000, "the legitimate message arrives");
}

/** Resident set size of this process, in bytes. */
export function rssBytes(): number {
  return Deno.memoryUsage().rss;
}
