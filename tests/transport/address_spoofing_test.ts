/**
 * A peer's address comes from packets quiche authenticated, never from a datagram that only
 * carries a live connection id. The client talks through a relay on loopback so the test can
 * read that id off the wire and hold the client's traffic back while it forges.
 *
 * @module
 */

import { assertEquals } from "../_assert.ts";
import { longHeaderDatagram, randomBytes, RawSocket, Relay } from "../quic/_util.ts";
import { node, within } from "./_util.ts";

/** Sends a datagram that the endpoint answers with Version Negotiation and waits for that answer. */
async function roundTripThroughSocket(from: RawSocket, to: { hostname: string; port: number }) {
  await from.send(
    longHeaderDatagram({ version: 0x1a2a3a4a, dcid: randomBytes(8), scid: randomBytes(8) }),
    to,
  );
  await from.receive(5000);
}

Deno.test("a forged datagram with a live connection id from another address does not move the peer", async () => {
  await using a = await node(0);
  await using b = await node(1);
  await using relay = new Relay(b.localAddr);
  await using attacker = new RawSocket();
  await a.connectPeer(`127.0.0.1:${relay.addr.port}`, { expectedPeerId: b.peerId });
  b.handle("/echo/1", (request) => request);
  await a.request(b.peerId, "/echo/1", new Uint8Array([1]));
  const seen = [`127.0.0.1:${relay.addr.port}`];
  assertEquals(b.peers().map((p) => p.addresses), [seen]);

  // The client's short-header packets start with the connection id b routes by.
  const shortHeader = relay.fromClient.findLast((d) => (d[0] & 0x80) === 0)!;
  const liveId = shortHeader.subarray(1, 21);
  relay.onClientDatagram = () => null; // no genuine packet may set the address back
  const forged = randomBytes(60);
  forged[0] = 0x40 | (forged[0] & 0x3f);
  forged.set(liveId, 1);
  await attacker.send(forged, b.localAddr);
  // b reads its socket in order: once it answered the next datagram, it handled the forged one.
  await roundTripThroughSocket(attacker, b.localAddr);
  assertEquals(b.peers().map((p) => p.addresses), [seen], "the forged source is not the peer's");

  relay.onClientDatagram = undefined;
  const echoed = await within(
    a.request(b.peerId, "/echo/1", new Uint8Array([2])),
    10_000,
    "a request after the forgery",
  );
  assertEquals(echoed, new Uint8Array([2]));
  assertEquals(b.peers().map((p) => p.addresses), [seen]);
});

Deno.test("a genuine change of the client's address (NAT rebinding) still moves the peer", async () => {
  await using a = await node(0);
  await using b = await node(1);
  await using relay = new Relay(b.localAddr);
  await a.connectPeer(`127.0.0.1:${relay.addr.port}`, { expectedPeerId: b.peerId });
  b.handle("/echo/1", (request) => request);
  await a.request(b.peerId, "/echo/1", new Uint8Array([1]));

  // From now on the client's packets reach b from another port, and b's answers come back.
  const rebound = new RawSocket();
  relay.onClientDatagram = (data) => {
    rebound.send(data, b.localAddr).catch(() => {});
    return null;
  };
  const back = (async () => {
    for (;;) {
      const [data] = await rebound.conn.receive();
      await relay.socket.send(data, relay.client!).catch(() => {});
    }
  })().catch(() => {}); // ends when the socket closes
  try {
    const echoed = await within(
      a.request(b.peerId, "/echo/1", new Uint8Array([2])),
      10_000,
      "a request after rebinding",
    );
    assertEquals(echoed, new Uint8Array([2]));
    assertEquals(b.peers().map((p) => p.addresses), [[`127.0.0.1:${rebound.addr.port}`]]);
  } finally {
    rebound.conn.close();
    await back;
  }
});
