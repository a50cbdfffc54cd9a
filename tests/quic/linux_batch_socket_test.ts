import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { LinuxBatchSocket } from "../../src/quic/linux_batch_socket.ts";
import { waitFor } from "./_util.ts";
import { testEndpointsOn } from "./_socket_endpoint_tests.ts";
import { checkSendsOut, collector, testIpv6Loopback } from "./_socket_checks.ts";

const ignore = Deno.build.os !== "linux" ||
  (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64");
const LOOPBACK = { hostname: "127.0.0.1", port: 0 };

Deno.test({
  name: "linux batch socket: datagrams go both ways with their source addresses",
  ignore,
  async fn() {
    const socket = LinuxBatchSocket.bind(LOOPBACK);
    const other = Deno.listenDatagram({ transport: "udp", ...LOOPBACK });
    try {
      assert.equal(socket.localAddr.hostname, "127.0.0.1");
      assert.ok(socket.localAddr.port > 0);
      const { got, receiver } = collector();
      socket.start(receiver);
      const otherAddr = { hostname: "127.0.0.1", port: (other.addr as Deno.NetAddr).port };

      await checkSendsOut(socket, other, otherAddr);

      // In, with the sender's address.
      await other.send(new Uint8Array([6, 7, 8, 9]), { transport: "udp", ...socket.localAddr });
      await waitFor(() => got.length === 1, 5000, "datagram in");
      assert.deepEqual(got[0].data, new Uint8Array([6, 7, 8, 9]));
      assert.deepEqual(got[0].from, otherAddr);
      assert.equal(socket.sendErrors, 0);
    } finally {
      other.close();
      await socket.close();
    }
  },
});

Deno.test({
  name: "linux batch socket: 2,000 datagrams queued in one turn all arrive intact",
  ignore,
  async fn() {
    // Fewer buffers than datagrams: nextSendBuffer() flushes the full queue itself.
    const sender = LinuxBatchSocket.bind({ ...LOOPBACK, sendBuffers: 256 });
    const receiver = LinuxBatchSocket.bind(LOOPBACK);
    try {
      sender.start(() => {});
      const seen = new Set<number>();
      let corrupt = 0;
      receiver.start((data, from) => {
        const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
        const n = view.getUint32(0);
        if (
          data.byteLength !== 1000 || data[999] !== (n & 255) || from.port !== sender.localAddr.port
        ) {
          corrupt++;
        }
        seen.add(n);
      });
      const count = 2000;
      for (let n = 0; n < count; n++) {
        const buffer = sender.nextSendBuffer();
        assert.ok(buffer !== null);
        new DataView(buffer.buffer, buffer.byteOffset).setUint32(0, n);
        buffer[999] = n & 255;
        sender.send(1000, receiver.localAddr);
      }
      await waitFor(() => seen.size === count, 5000, `${count} datagrams (got ${seen.size})`);
      assert.equal(corrupt, 0);
      assert.equal(sender.sendErrors, 0);
      assert.equal(receiver.receiveTruncated, 0);
    } finally {
      await Promise.all([sender.close(), receiver.close()]);
    }
  },
});

Deno.test({
  name: "linux batch socket: a refused address counts a send error, later datagrams still go",
  ignore,
  async fn() {
    const socket = LinuxBatchSocket.bind(LOOPBACK);
    const other = LinuxBatchSocket.bind(LOOPBACK);
    try {
      socket.start(() => {});
      const { got, receiver } = collector();
      other.start(receiver);
      socket.nextSendBuffer();
      socket.send(10, { hostname: "::1", port: 9 }); // not IPv4
      socket.nextSendBuffer();
      socket.send(10, { hostname: "127.0.0.1", port: 0 }); // port 0: EINVAL
      socket.nextSendBuffer()!.fill(7);
      socket.send(10, other.localAddr);
      await waitFor(() => got.length === 1, 5000, "datagram after the refused ones");
      assert.equal(socket.sendErrors, 2);
      await assert.rejects(
        socket.sendCopy(new Uint8Array(1), { hostname: "::1", port: 9 }),
        NetworkError,
      );
    } finally {
      await Promise.all([socket.close(), other.close()]);
    }
  },
});

testIpv6Loopback("linux batch socket", (address) => LinuxBatchSocket.bind(address), ignore);

Deno.test({
  name: "linux batch socket: bind errors and closing without start",
  ignore,
  async fn() {
    assert.throws(() => LinuxBatchSocket.bind({ hostname: "not-an-ip", port: 0 }), NetworkError);
    assert.throws(() => LinuxBatchSocket.bind({ ...LOOPBACK, sendBuffers: 1 }), NetworkError);
    const first = LinuxBatchSocket.bind(LOOPBACK);
    assert.throws(() => LinuxBatchSocket.bind(first.localAddr), NetworkError); // in use
    await first.close();
    await first.close(); // idempotent
    await assert.rejects(first.sendCopy(new Uint8Array(1), first.localAddr), NetworkError);
  },
});

testEndpointsOn({
  label: "linux batch socket",
  bind: () => LinuxBatchSocket.bind(LOOPBACK),
  is: (socket) => socket instanceof LinuxBatchSocket,
  ignore,
});
