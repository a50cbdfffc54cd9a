/**
 * Checks every libc-backed datagram socket passes below the QUIC layer: a collector of received
 * datagrams, both ways of sending out, and IPv6 loopback.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import type { DatagramSocket } from "../../src/quic/udp_socket.ts";
import { waitFor, within } from "./_util.ts";

/** Received datagrams, copied, with their sources. */
export function collector(): {
  got: { data: Uint8Array; from: UdpAddress }[];
  receiver: (data: Uint8Array, from: UdpAddress) => void;
} {
  const got: { data: Uint8Array; from: UdpAddress }[] = [];
  return {
    got,
    receiver: (data, from) =>
      got.push({ data: data.slice(), from: { hostname: from.hostname, port: from.port } }),
  };
}

/**
 * Sends from `socket` to `other` through the send-buffer protocol and through `sendCopy` (from
 * a buffer the caller reuses at once); each arrives intact from the socket's own address.
 */
export async function checkSendsOut(
  socket: DatagramSocket,
  other: Deno.DatagramConn,
  otherAddr: UdpAddress,
): Promise<void> {
  const buffer = socket.nextSendBuffer()!;
  buffer.set([1, 2, 3]);
  socket.send(3, otherAddr);
  const [data, from] = await within(other.receive(), 5000, "receive");
  assert.deepEqual(data, new Uint8Array([1, 2, 3]));
  assert.deepEqual(
    { hostname: (from as Deno.NetAddr).hostname, port: (from as Deno.NetAddr).port },
    socket.localAddr,
  );

  const mine = new Uint8Array([4, 5]);
  await socket.sendCopy(mine, otherAddr);
  mine.fill(0);
  assert.deepEqual((await within(other.receive(), 5000, "receive"))[0], new Uint8Array([4, 5]));
}

/** Registers a test of two sockets of one kind on `::1`, both ways of sending; skipped without IPv6. */
export function testIpv6Loopback(
  label: string,
  bind: (address: UdpAddress) => DatagramSocket,
  ignore: boolean,
): void {
  Deno.test({
    name: `${label}: IPv6 loopback`,
    ignore,
    async fn() {
      let socket: DatagramSocket;
      try {
        socket = bind({ hostname: "::1", port: 0 });
      } catch {
        return; // no IPv6 here
      }
      const other = bind({ hostname: "::1", port: 0 });
      try {
        socket.start(() => {});
        const { got, receiver } = collector();
        other.start(receiver);
        assert.equal(socket.localAddr.hostname, "::1");
        socket.nextSendBuffer()!.set([41]);
        socket.send(1, other.localAddr);
        await socket.sendCopy(new Uint8Array([42]), other.localAddr);
        await waitFor(() => got.length === 2, 5000, "IPv6 datagrams");
        assert.deepEqual(got.map((g) => g.data[0]).sort(), [41, 42]);
        assert.deepEqual(got[0].from, socket.localAddr);
      } finally {
        await Promise.all([socket.close(), other.close()]);
      }
    },
  });
}
