/**
 * A UDP relay on loopback for one client, standing in for a TURN relay: the client talks to
 * `port`, the target sees the relay's second socket as the client's address. Closing it cuts
 * the path.
 *
 * @module
 */

import type { UdpAddress } from "../../src/quic/datagram_port.ts";

/** A running relay. */
export interface UdpRelay extends AsyncDisposable {
  /** The port the client sends to. */
  port: number;
  /** The port the target sees the client's datagrams come from. */
  targetSidePort: number;
  /** Datagrams forwarded either way. */
  readonly forwarded: number;
  /** Holds the target's datagrams to the client from now on, until `release()`. */
  hold(): void;
  /** Forwards the held datagrams in order and stops holding. */
  release(): Promise<void>;
  /** Drops the target's next `count` datagrams to the client; resolves once they are gone. */
  drop(count: number): Promise<void>;
}

/** Starts a relay from `127.0.0.1:port` to `target`. */
export function startUdpRelay(target: UdpAddress): UdpRelay {
  const clientSide = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const targetSide = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { transport: "udp" as const, hostname: target.hostname, port: target.port };
  let client: Deno.NetAddr | undefined;
  let forwarded = 0;
  let closed = false;
  let held: Uint8Array[] | undefined;
  let dropping: { left: number; done: () => void } | undefined;
  const fromClient = (async () => {
    for await (const [data, from] of clientSide) {
      client = from as Deno.NetAddr;
      forwarded++;
      await targetSide.send(data, to).catch(() => {});
    }
  })().catch(() => {});
  const fromTarget = (async () => {
    for await (const [data] of targetSide) {
      if (client === undefined) continue;
      if (dropping !== undefined) {
        if (--dropping.left === 0) {
          dropping.done();
          dropping = undefined;
        }
        continue;
      }
      if (held !== undefined) {
        held.push(data);
        continue;
      }
      forwarded++;
      await clientSide.send(data, client).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (clientSide.addr as Deno.NetAddr).port,
    targetSidePort: (targetSide.addr as Deno.NetAddr).port,
    get forwarded() {
      return forwarded;
    },
    hold() {
      held ??= [];
    },
    drop(count) {
      return new Promise((done) => dropping = { left: count, done });
    },
    async release() {
      const datagrams = held ?? [];
      held = undefined;
      for (const data of datagrams) {
        forwarded++;
        if (client !== undefined) await clientSide.send(data, client).catch(() => {});
      }
    },
    async [Symbol.asyncDispose]() {
      if (closed) return;
      closed = true;
      clientSide.close();
      targetSide.close();
      await Promise.all([fromClient, fromTarget]);
    },
  };
}
