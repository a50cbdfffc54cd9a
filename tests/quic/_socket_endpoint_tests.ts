/**
 * The QUIC-level tests every datagram socket backend passes: a pair of endpoints on two sockets
 * of one kind echoes 16 MiB, serves 1,000 request streams, and closes while the peer sends.
 *
 * @module
 */

import assert from "node:assert/strict";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { DatagramSocket } from "../../src/quic/udp_socket.ts";
import { connect, echo, pair, randomBytes, serveEcho, sha256Hex, within } from "./_util.ts";

/** A socket backend under test: its name in test names, how to bind and recognise one. */
export interface SocketKind {
  label: string;
  bind: () => DatagramSocket;
  is: (socket: DatagramSocket) => boolean;
  ignore: boolean;
}

/** Registers the QUIC endpoint tests on sockets of `kind`. */
export function testEndpointsOn(kind: SocketKind): void {
  const { label, ignore } = kind;
  const bindPair = () => pair({ socket: kind.bind() }, { socket: kind.bind() });

  Deno.test({
    name: `${label}: a QUIC endpoint pair echoes 16 MiB intact`,
    ignore,
    async fn() {
      await using p = await bindPair();
      assert.ok(kind.is(p.server.socket));
      const { conn, peer } = await connect(p);
      const serving = serveEcho(peer);
      const data = randomBytes(16 * 1024 * 1024);
      const back = await within(echo(conn, data), 15000, "16 MiB echo");
      assert.equal(back.byteLength, data.byteLength);
      assert.equal(await sha256Hex(back), await sha256Hex(data));
      assert.equal(p.client.stats().sendErrors, 0);
      assert.equal(p.server.stats().sendErrors, 0);
      await conn.close();
      await serving;
    },
  });

  Deno.test({
    name: `${label}: 1,000 request/response streams, 50 in flight`,
    ignore,
    async fn() {
      await using p = await bindPair();
      const { conn, peer } = await connect(p);
      const serving = serveEcho(peer);
      let next = 0;
      await within(
        Promise.all(Array.from({ length: 50 }, async () => {
          while (next < 1000) {
            const n = next++;
            const request = new TextEncoder().encode(`request ${n} `.repeat(1 + (n % 20)));
            assert.deepEqual(await echo(conn, request), request);
          }
        })),
        15000,
        "1,000 requests",
      );
      assert.equal(p.client.stats().sendErrors, 0);
      assert.equal(p.server.stats().sendErrors, 0);
      await conn.close();
      await serving;
    },
  });

  Deno.test({
    name: `${label}: an endpoint closes while its peer still sends`,
    ignore,
    async fn() {
      const server = await QuicEndpoint.bind({ socket: kind.bind() });
      const client = await QuicEndpoint.bind({ socket: kind.bind() });
      try {
        const accepted = server.accept();
        const conn = await client.connect(server.localAddr);
        const peer = await within(accepted, 5000, "accept");
        const serving = serveEcho(peer);
        const stream = await conn.openBidi();
        const writing = (async () => {
          for (let i = 0; i < 64; i++) await stream.write(new Uint8Array(65536));
        })().catch(() => {});
        await server.close(); // sends CONNECTION_CLOSE from the queue, then closes the socket
        const closed = await within(conn.closed, 5000, "client sees the close");
        assert.equal(closed.errorCode, 0);
        await writing;
        await serving;
      } finally {
        await client.close();
        await server.close();
      }
    },
  });
}
