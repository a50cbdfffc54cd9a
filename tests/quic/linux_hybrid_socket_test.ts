import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { LinuxHybridSocket } from "../../src/quic/linux_hybrid_socket.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";
import { findUdpDescriptor, openLibc } from "../../src/quic/_libc_udp.ts";
import { quicheAddonPath } from "../../src/quic/_quiche.ts";
import { connect, echo, pair, serveEcho, waitFor, within } from "./_util.ts";
import { testEndpointsOn } from "./_socket_endpoint_tests.ts";
import { checkSendsOut, collector, testIpv6Loopback } from "./_socket_checks.ts";

const ignore = Deno.build.os !== "linux" ||
  (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64");
const LOOPBACK = { hostname: "127.0.0.1", port: 0 };

Deno.test({
  name: "linux hybrid socket: datagrams go both ways with their source addresses",
  ignore,
  async fn() {
    const socket = LinuxHybridSocket.bind(LOOPBACK);
    const other = Deno.listenDatagram({ transport: "udp", ...LOOPBACK });
    try {
      assert.equal(socket.localAddr.hostname, "127.0.0.1");
      assert.ok(socket.localAddr.port > 0);
      const { got, receiver } = collector();
      socket.start(receiver);
      const otherAddr = { hostname: "127.0.0.1", port: (other.addr as Deno.NetAddr).port };

      await checkSendsOut(socket, other, otherAddr);

      // In: the first datagram through Deno's receive, the rest drained by recvmmsg.
      const to = { transport: "udp" as const, ...socket.localAddr };
      await Promise.all([1, 2, 3].map((n) => other.send(new Uint8Array([n, 6, 7, 8]), to)));
      await waitFor(() => got.length === 3, 5000, "datagrams in");
      assert.deepEqual(got.map((g) => g.data[0]).sort(), [1, 2, 3]);
      for (const g of got) {
        assert.deepEqual(g.data.subarray(1), new Uint8Array([6, 7, 8]));
        assert.deepEqual(g.from, otherAddr);
      }
      assert.equal(socket.sendErrors, 0);
    } finally {
      other.close();
      await socket.close();
    }
  },
});

for (const gso of [true, false]) {
  Deno.test({
    name:
      `linux hybrid socket: 2,000 datagrams queued in one turn arrive intact, in order (gso ${gso})`,
    ignore,
    async fn() {
      // Fewer buffers than datagrams: nextSendBuffer() flushes the full queue itself.
      const sender = LinuxHybridSocket.bind({ ...LOOPBACK, sendBuffers: 256, gso });
      const receiver = LinuxHybridSocket.bind(LOOPBACK);
      try {
        sender.start(() => {});
        const seen: number[] = [];
        let corrupt = 0;
        receiver.start((data, from) => {
          const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
          if (
            data.byteLength !== 1000 || data[999] !== (n & 255) ||
            from.port !== sender.localAddr.port
          ) {
            corrupt++;
          }
          seen.push(n);
        });
        const count = 2000;
        for (let n = 0; n < count; n++) {
          const buffer = sender.nextSendBuffer();
          assert.ok(buffer !== null);
          new DataView(buffer.buffer, buffer.byteOffset).setUint32(0, n);
          buffer[999] = n & 255;
          sender.send(1000, receiver.localAddr);
        }
        await waitFor(() => seen.length === count, 5000, `${count} datagrams (got ${seen.length})`);
        assert.equal(corrupt, 0);
        // One receive outstanding, then drains: loopback keeps the order.
        assert.deepEqual(seen, Array.from({ length: count }, (_, n) => n));
        assert.equal(sender.sendErrors, 0);
        assert.equal(receiver.receiveTruncated, 0);
      } finally {
        await Promise.all([sender.close(), receiver.close()]);
      }
    },
  });
}

Deno.test({
  name: "linux hybrid socket: mixed sizes and destinations in one turn keep their boundaries",
  ignore,
  async fn() {
    const sender = LinuxHybridSocket.bind(LOOPBACK);
    const a = LinuxHybridSocket.bind(LOOPBACK);
    const b = LinuxHybridSocket.bind(LOOPBACK);
    try {
      sender.start(() => {});
      const got = new Map<number, number[]>([[0, []], [1, []]]);
      const check = (which: number) => (data: Uint8Array) => {
        // Each datagram: its number, then its length, then filler of its number.
        const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
        const n = view.getUint32(0);
        assert.equal(view.getUint32(4), data.byteLength, `datagram ${n} length`);
        assert.ok(data.subarray(8).every((x) => x === (n & 255)), `datagram ${n} content`);
        got.get(which)!.push(n);
      };
      a.start(check(0));
      b.start(check(1));
      // Runs of one size to one address, broken by shorter, longer and other-address ones.
      const plan: { to: 0 | 1; size: number }[] = [];
      for (let n = 0; n < 600; n++) {
        const size = n % 97 === 5 ? 300 : n % 89 === 7 ? 1400 : 1200;
        plan.push({ to: n % 150 < 100 ? 0 : 1, size });
      }
      const targets = [a.localAddr, { ...b.localAddr }]; // a copy: equal, not identical
      plan.forEach(({ to, size }, n) => {
        const buffer = sender.nextSendBuffer()!;
        const view = new DataView(buffer.buffer, buffer.byteOffset);
        view.setUint32(0, n);
        view.setUint32(4, size);
        buffer.fill(n & 255, 8, size);
        sender.send(size, n % 2 === 0 ? targets[to] : { ...targets[to] });
      });
      const want = (which: number) => plan.flatMap((p, n) => p.to === which ? [n] : []);
      await waitFor(
        () => got.get(0)!.length + got.get(1)!.length === plan.length,
        5000,
        "all datagrams",
      );
      assert.deepEqual(got.get(0), want(0));
      assert.deepEqual(got.get(1), want(1));
      assert.equal(sender.sendErrors, 0);
    } finally {
      await Promise.all([sender.close(), a.close(), b.close()]);
    }
  },
});

Deno.test({
  name: "linux hybrid socket: a refused address counts a send error, later datagrams still go",
  ignore,
  async fn() {
    const socket = LinuxHybridSocket.bind(LOOPBACK);
    const other = LinuxHybridSocket.bind(LOOPBACK);
    try {
      socket.start(() => {});
      const { got, receiver } = collector();
      other.start(receiver);
      socket.nextSendBuffer();
      socket.send(10, { hostname: "::1", port: 9 }); // not IPv4
      for (let i = 0; i < 3; i++) {
        // Port 0: EINVAL, for the GSO message of the three and then for each one alone.
        socket.nextSendBuffer();
        socket.send(10, { hostname: "127.0.0.1", port: 0 });
      }
      socket.nextSendBuffer()!.fill(7);
      socket.send(10, other.localAddr);
      socket.nextSendBuffer()!.fill(8);
      socket.send(10, other.localAddr);
      await waitFor(() => got.length === 2, 5000, "datagrams after the refused ones");
      assert.deepEqual(got.map((g) => g.data), [7, 8].map((n) => new Uint8Array(10).fill(n)));
      assert.equal(socket.sendErrors, 4);
      await assert.rejects(
        socket.sendCopy(new Uint8Array(1), { hostname: "127.0.0.1", port: 0 }),
        NetworkError,
      );
      assert.equal(socket.sendErrors, 5);
    } finally {
      await Promise.all([socket.close(), other.close()]);
    }
  },
});

testIpv6Loopback("linux hybrid socket", (address) => LinuxHybridSocket.bind(address), ignore);

Deno.test({
  name: "linux hybrid socket: a dual-stack socket reports an IPv4 peer alike on both receive paths",
  ignore,
  async fn() {
    let socket: LinuxHybridSocket;
    try {
      socket = LinuxHybridSocket.bind({ hostname: "::", port: 0 });
    } catch {
      return; // no IPv6 here
    }
    const other = Deno.listenDatagram({ transport: "udp", ...LOOPBACK });
    try {
      const { got, receiver } = collector();
      socket.start(receiver);
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: socket.localAddr.port };
      // Several at once: the first through Deno's receive, the rest through recvmmsg.
      await Promise.all([1, 2, 3, 4].map((n) => other.send(new Uint8Array([n]), to)));
      await waitFor(() => got.length === 4, 5000, "datagrams in");
      const port = (other.addr as Deno.NetAddr).port;
      for (const g of got) assert.deepEqual(g.from, { hostname: "::ffff:127.0.0.1", port });
      // And replies go back to that address.
      socket.nextSendBuffer()!.set([9]);
      socket.send(1, got[0].from);
      assert.deepEqual((await within(other.receive(), 5000, "reply"))[0], new Uint8Array([9]));
    } finally {
      other.close();
      await socket.close();
    }
  },
});

Deno.test({
  name: "linux hybrid socket: bind errors name the bad value; closing twice and without start",
  ignore,
  async fn() {
    assert.throws(
      () => LinuxHybridSocket.bind({ ...LOOPBACK, sendBuffers: 1 }),
      (e: unknown) =>
        e instanceof NetworkError && e.code === "ERR_INVALID_CONFIG" &&
        e.message.includes("sendBuffers") && e.message.includes("got 1"),
    );
    assert.throws(
      () => LinuxHybridSocket.bind({ hostname: "256.1.1.1", port: 0 }),
      (e: unknown) =>
        e instanceof NetworkError && e.code === "ERR_INVALID_ADDRESS" &&
        e.message.includes("256.1.1.1"),
    );
    const first = LinuxHybridSocket.bind(LOOPBACK);
    assert.throws(
      () => LinuxHybridSocket.bind(first.localAddr),
      (e: unknown) => e instanceof NetworkError && e.code === "ERR_INVALID_ADDRESS",
    );
    await first.close();
    await first.close(); // idempotent
    await assert.rejects(
      first.sendCopy(new Uint8Array(1), first.localAddr),
      (e: unknown) => e instanceof NetworkError && e.code === "ERR_ENDPOINT_CLOSED",
    );
  },
});

Deno.test({
  name: "linux hybrid socket: the descriptor search needs exactly one matching UDP socket",
  ignore,
  fn() {
    const c = openLibc("test");
    const a = Deno.listenDatagram({ transport: "udp", ...LOOPBACK, reuseAddress: true });
    const port = (a.addr as Deno.NetAddr).port;
    try {
      assert.ok(findUdpDescriptor(c, { hostname: "127.0.0.1", port }) >= 0);
      const b = Deno.listenDatagram({
        transport: "udp",
        hostname: "127.0.0.1",
        port,
        reuseAddress: true,
      });
      try {
        assert.throws(
          () => findUdpDescriptor(c, { hostname: "127.0.0.1", port }),
          (e: unknown) =>
            e instanceof NetworkError && e.code === "ERR_INVALID_CONFIG" &&
            e.message.includes(`127.0.0.1:${port}`) && e.message.includes("2 UDP sockets"),
        );
      } finally {
        b.close();
      }
    } finally {
      a.close();
    }
    // The port is free now: nothing matches.
    assert.throws(
      () => findUdpDescriptor(c, { hostname: "127.0.0.1", port }),
      (e: unknown) =>
        e instanceof NetworkError && e.code === "ERR_INVALID_CONFIG" &&
        e.message.includes("no UDP socket"),
    );
    // A TCP listener on the same address and port is not a match.
    const tcp = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      assert.throws(() => findUdpDescriptor(c, { hostname: "127.0.0.1", port }), NetworkError);
    } finally {
      tcp.close();
    }
  },
});

Deno.test({
  name: "linux hybrid socket: endpoints use it by default; a DenoUdpSocket can be forced",
  ignore,
  async fn() {
    assert.ok(LinuxHybridSocket.usable()); // tests run with -A
    await using p = await pair({}, { socket: DenoUdpSocket.bind(LOOPBACK) });
    assert.ok(p.server.socket instanceof LinuxHybridSocket);
    assert.ok(p.client.socket instanceof DenoUdpSocket);
    const { conn, peer } = await connect(p);
    const serving = serveEcho(peer);
    const request = new TextEncoder().encode("mixed backends");
    assert.deepEqual(await echo(conn, request), request);
    await conn.close();
    await serving;
  },
});

Deno.test({
  name: "linux hybrid socket: without --allow-ffi an endpoint falls back to DenoUdpSocket",
  ignore,
  async fn() {
    const endpoint = new URL("../../src/quic/endpoint.ts", import.meta.url).href;
    const script = `
      import { QuicEndpoint } from ${JSON.stringify(endpoint)};
      const e = await QuicEndpoint.bind({ hostname: "127.0.0.1", port: 0 });
      console.log(e.socket.constructor.name);
      await e.close();
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        `--allow-ffi=${quicheAddonPath()}`,
        "-",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(script));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.equal(new TextDecoder().decode(stdout).trim(), "DenoUdpSocket");
  },
});

testEndpointsOn({
  label: "linux hybrid socket",
  bind: () => LinuxHybridSocket.bind(LOOPBACK),
  is: (socket) => socket instanceof LinuxHybridSocket,
  ignore,
});
