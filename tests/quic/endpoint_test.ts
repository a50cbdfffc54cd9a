import assert from "node:assert/strict";
import { ConnectionClosedError, InvalidAddressError, NetworkError } from "../../src/errors.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { quicheOf } from "../../src/quic/connection.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import {
  longHeaderDatagram,
  pair,
  randomBytes,
  RawSocket,
  Relay,
  roundTrip,
  serveEcho,
  waitFor,
  within,
} from "./_util.ts";

const LOOPBACK = { hostname: "127.0.0.1" };

/** A port with nothing bound to it (bound and released at once). */
function freePort(): number {
  const probe = Deno.listenDatagram({ transport: "udp", ...LOOPBACK, port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

Deno.test("endpoint: two endpoints connect, exchange, and close cleanly", async () => {
  await using p = await pair();
  const accepted = p.server.accept();
  const conn = await p.client.connect(p.server.localAddr);
  const peer = await accepted;
  const serving = serveEcho(peer);
  assert.equal(conn.direction, "outbound");
  assert.equal(peer.direction, "inbound");
  assert.equal(conn.alpn, "cretoai/1");
  assert.equal(p.server.stats().connectionsAccepted, 1);
  assert.equal(p.client.stats().openConnections, 1);
  await roundTrip(conn);
  await conn.close();
  assert.equal((await peer.closed).errorCode, 0);
  await serving;
  assert.equal(p.client.stats().openConnections, 0);
  // The server drains for about 3 PTO after the peer's CONNECTION_CLOSE, as the client's close
  // waits about 3 PTO too: which one's timer fires first depends on each side's RTT samples.
  await waitFor(() => p.server.stats().openConnections === 0, 5000, "server drained");
  assert.deepEqual(p.server.connections(), []);
});

Deno.test("endpoint: accepts several dials from one endpoint, each working", async () => {
  await using p = await pair();
  const peers: Promise<void>[] = [];
  const accepting = (async () => {
    for (let i = 0; i < 8; i++) peers.push(serveEcho(await p.server.accept()));
  })();
  const conns = await Promise.all(
    Array.from({ length: 8 }, () => p.client.connect(p.server.localAddr)),
  );
  await accepting;
  await Promise.all(conns.map((c) => roundTrip(c)));
  assert.equal(p.server.stats().openConnections, 8);
  await Promise.all(conns.map((c) => c.close()));
  await Promise.all(peers);
});

Deno.test("endpoint: a new client's first Initial gets a stateless Retry", async () => {
  await using server = await QuicEndpoint.bind(LOOPBACK);
  await using raw = new RawSocket();
  const dcid = randomBytes(16);
  const scid = randomBytes(8);
  await raw.send(longHeaderDatagram({ dcid, scid }), server.localAddr);
  const [reply] = await raw.receive(2000);
  assert.equal(reply[0] & 0xf0, 0xf0, "long header, type Retry");
  assert.deepEqual(reply.subarray(1, 5), new Uint8Array([0, 0, 0, 1]));
  assert.equal(reply[5], scid.byteLength);
  assert.deepEqual(reply.subarray(6, 6 + scid.byteLength), scid, "sent to our source id");
  const stats = server.stats();
  assert.equal(stats.retriesSent, 1);
  assert.equal(stats.connectionsAccepted, 0, "no state for an unvalidated address");
  assert.equal(stats.openConnections, 0);

  // A real client goes through the retry too.
  await using client = await QuicEndpoint.bind(LOOPBACK);
  const accepted = server.accept();
  const conn = await client.connect(server.localAddr);
  await accepted;
  assert.equal(server.stats().retriesSent, 2);
  await conn.close();
});

Deno.test("endpoint: under load, an address that completed a handshake lately gets a Retry again", async () => {
  let busy = false;
  await using server = await QuicEndpoint.bind({ ...LOOPBACK, underLoad: () => busy });
  await using client = await QuicEndpoint.bind(LOOPBACK);
  for (const [load, retries] of [[false, 1], [false, 1], [true, 2]] as const) {
    busy = load;
    const accepted = server.accept();
    const conn = await client.connect(server.localAddr);
    await (await accepted).close();
    await conn.close();
    assert.equal(server.stats().retriesSent, retries, `under load: ${load}`);
  }
});

Deno.test("endpoint: a client the admit screen refuses is dropped before any TLS work", async () => {
  const screened: string[] = [];
  let open = false;
  await using server = await QuicEndpoint.bind({
    ...LOOPBACK,
    admit: (from) => {
      screened.push(from.hostname);
      return open;
    },
  });
  await using client = await QuicEndpoint.bind(LOOPBACK);
  const refused = await client.connect(server.localAddr, { timeoutMs: 600 }).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(refused instanceof NetworkError && refused.code === "ERR_CONNECT_TIMEOUT");
  const stats = server.stats();
  assert.ok(stats.connectionsRefused >= 1, "counted");
  assert.equal(stats.connectionsAccepted, 0, "no quiche connection, no TLS");
  assert.ok(stats.retriesSent >= 1, "the screen sees proven addresses only");
  assert.deepEqual([...new Set(screened)], ["127.0.0.1"]);
  open = true;
  const accepted = server.accept();
  const conn = await client.connect(server.localAddr);
  await (await accepted).close();
  await conn.close();
});

Deno.test("endpoint: addressValidation none accepts without a Retry", async () => {
  await using p = await pair({ addressValidation: "none" });
  const accepted = p.server.accept();
  const conn = await p.client.connect(p.server.localAddr);
  const peer = await accepted;
  const serving = serveEcho(peer);
  await roundTrip(conn);
  assert.equal(p.server.stats().retriesSent, 0);
  await conn.close();
  await serving;
});

Deno.test("endpoint: a forged retry token is refused and counted", async () => {
  await using server = await QuicEndpoint.bind(LOOPBACK);
  await using raw = new RawSocket();
  // A token of the right shape (time, id length 8, id, MAC) with a made-up MAC.
  const forged = new Uint8Array(9 + 8 + 16);
  new DataView(forged.buffer).setFloat64(0, Date.now());
  forged[8] = 8;
  forged.set(randomBytes(8 + 16), 9);
  for (const token of [forged, randomBytes(40), randomBytes(1)]) {
    await raw.send(
      longHeaderDatagram({ dcid: randomBytes(20), scid: randomBytes(8), token }),
      server.localAddr,
    );
  }
  await waitFor(() => server.stats().invalidTokens === 3, 2000, "invalid tokens counted");
  // Nothing answered them: the next datagram we get is the answer to this trigger.
  await raw.send(
    longHeaderDatagram({ version: 0x1a2a3a4a, dcid: randomBytes(8), scid: randomBytes(8) }),
    server.localAddr,
  );
  const [reply] = await raw.receive(2000);
  assert.deepEqual(reply.subarray(1, 5), new Uint8Array(4), "a version negotiation packet");
  assert.equal(server.stats().connectionsAccepted, 0);
  assert.equal(server.stats().openConnections, 0);
});

Deno.test("endpoint: a client whose token is changed in flight cannot connect", async () => {
  await using server = await QuicEndpoint.bind(LOOPBACK);
  await using client = await QuicEndpoint.bind(LOOPBACK);
  await using relay = new Relay(server.localAddr);
  relay.onClientDatagram = (data) => {
    const at = tokenOffset(data);
    if (at === undefined) return data;
    const changed = data.slice();
    changed[at] ^= 0x01;
    return changed;
  };
  const err = await client.connect(relay.addr, { timeoutMs: 500 }).then(
    () => assert.fail("connected with a changed token"),
    (e) => e,
  );
  assert.ok(err instanceof NetworkError);
  assert.equal(err.code, "ERR_CONNECT_TIMEOUT");
  const stats = server.stats();
  assert.ok(stats.retriesSent >= 1, `retries sent: ${stats.retriesSent}`);
  assert.ok(stats.invalidTokens >= 1, `invalid tokens: ${stats.invalidTokens}`);
  assert.equal(stats.connectionsAccepted, 0);
  assert.equal(client.stats().openConnections, 0);
});

/** Where the token of a client Initial with a non-empty token starts, else undefined. */
function tokenOffset(data: Uint8Array): number | undefined {
  if ((data[0] & 0xf0) !== 0xc0 || data.byteLength < 7) return undefined;
  let at = 6 + data[5];
  at += 1 + data[at];
  const prefix = data[at] >> 6;
  let length = data[at] & 0x3f;
  for (let i = 1; i < 1 << prefix; i++) length = length * 256 + data[at + i];
  at += 1 << prefix;
  return length > 0 ? at : undefined;
}

Deno.test("endpoint: an unsupported version gets a version negotiation packet", async () => {
  await using server = await QuicEndpoint.bind(LOOPBACK);
  await using raw = new RawSocket();
  const dcid = randomBytes(12);
  const scid = randomBytes(9);
  await raw.send(
    longHeaderDatagram({ version: 0x1a2a3a4a, dcid, scid, first: 0xc3 }),
    server.localAddr,
  );
  const [reply] = await raw.receive(2000);
  assert.ok((reply[0] & 0x80) !== 0, "long header");
  assert.deepEqual(reply.subarray(1, 5), new Uint8Array(4), "version 0");
  let at = 5;
  assert.deepEqual(reply.subarray(at + 1, at + 1 + reply[at]), scid, "dcid echoes our scid");
  at += 1 + reply[at];
  assert.deepEqual(reply.subarray(at + 1, at + 1 + reply[at]), dcid, "scid echoes our dcid");
  at += 1 + reply[at];
  const versions: number[] = [];
  const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  for (; at + 4 <= reply.byteLength; at += 4) versions.push(view.getUint32(at));
  assert.ok(versions.includes(1), `QUIC v1 offered: ${versions}`);
  assert.equal(server.stats().versionNegotiationsSent, 1);

  // Below the 1200-byte minimum nothing is sent back (no amplification): only dropped.
  const dropped = server.stats().datagramsDropped;
  await raw.send(
    longHeaderDatagram({ version: 0x1a2a3a4a, dcid, scid, size: 1199 }),
    server.localAddr,
  );
  await waitFor(() => server.stats().datagramsDropped === dropped + 1, 2000, "small one dropped");
  assert.equal(server.stats().versionNegotiationsSent, 1);
});

Deno.test("endpoint: random, truncated and wrong-version datagrams leave connections working", async () => {
  await using p = await pair();
  await using relay = new Relay(p.server.localAddr);
  await using raw = new RawSocket();
  const accepted = p.server.accept();
  const conn = await p.client.connect(relay.addr);
  const peer = await accepted;
  const serving = serveEcho(peer);
  await roundTrip(conn);

  const garbage: Uint8Array[] = [];
  const size = () => 1 + Math.floor(Math.random() * 1400);
  for (let i = 0; i < 32; i++) {
    const notQuic = randomBytes(size());
    notQuic[0] &= 0x3f; // below 0x40: not QUIC, and no raw handler takes it
    garbage.push(notQuic);
    const short = randomBytes(size());
    short[0] = 0x40 | (short[0] & 0x3f); // short header, unknown connection id
    garbage.push(short);
  }
  const initial = longHeaderDatagram({ dcid: randomBytes(20), scid: randomBytes(20) });
  for (let length = 1; length <= 64; length += 3) garbage.push(initial.slice(0, length));
  for (const version of [0, 2, 0xff00001d, 0x1a2a3a4a]) {
    garbage.push(
      longHeaderDatagram({ version, dcid: randomBytes(8), scid: randomBytes(8), size: 600 }),
    );
  }
  for (const first of [0xd0, 0xe0]) { // 0-RTT and Handshake packets of no connection
    garbage.push(longHeaderDatagram({ first, dcid: randomBytes(20), scid: randomBytes(20) }));
  }
  await sendAll(raw, garbage, p.server);
  await sendAll(raw, garbage, p.client);

  // Damaged, truncated and replayed copies of the live connection's own packets.
  const shortPackets = relay.fromClient.filter((d) => (d[0] & 0x80) === 0);
  assert.ok(shortPackets.length > 0, "the client sent short-header packets");
  const received = p.server.stats().datagramsReceived;
  let injected = 0;
  for (const packet of shortPackets.slice(-4)) {
    const damaged = packet.slice();
    damaged[damaged.byteLength - 1] ^= 0xff;
    for (const d of [damaged, packet.slice(0, 30), packet.slice(0, 21), packet]) {
      await relay.inject(d);
      injected++;
    }
  }
  await waitFor(
    () => p.server.stats().datagramsReceived >= received + injected,
    2000,
    "injected copies received",
  );

  await roundTrip(conn);
  await roundTrip(conn, 200_000);
  assert.equal(conn.closedError, undefined);
  assert.equal(peer.closedError, undefined);
  // A new connection still works too.
  const second = p.server.accept();
  const fresh = await p.client.connect(p.server.localAddr);
  const freshPeer = await second;
  const servingFresh = serveEcho(freshPeer);
  await roundTrip(fresh);
  await Promise.all([conn.close(), fresh.close()]);
  await Promise.all([serving, servingFresh]);
});

/**
 * Sends datagrams in small batches, each awaited at the endpoint, so that none is lost in
 * the socket's receive buffer; checks that every one was counted as dropped.
 */
async function sendAll(raw: RawSocket, datagrams: Uint8Array[], to: QuicEndpoint) {
  const before = to.stats();
  for (let i = 0; i < datagrams.length; i += 8) {
    const batch = datagrams.slice(i, i + 8);
    for (const d of batch) await raw.send(d, to.localAddr);
    await waitFor(
      () => to.stats().datagramsReceived >= before.datagramsReceived + i + batch.length,
      2000,
      "garbage received",
    );
  }
  const after = to.stats();
  assert.equal(after.datagramsDropped - before.datagramsDropped, datagrams.length);
  assert.equal(after.versionNegotiationsSent, before.versionNegotiationsSent);
  assert.equal(after.retriesSent, before.retriesSent);
  assert.equal(after.connectionsAccepted, before.connectionsAccepted);
}

Deno.test("endpoint: dialing a port where nobody listens rejects with ERR_CONNECT_TIMEOUT", async () => {
  await using client = await QuicEndpoint.bind(LOOPBACK);
  const timeoutMs = 300;
  const nobody: UdpAddress = { hostname: "127.0.0.1", port: freePort() };
  const started = performance.now();
  const err = await client.connect(nobody, { timeoutMs }).then(
    () => assert.fail("connected to nobody"),
    (e) => e,
  );
  const elapsed = performance.now() - started;
  assert.ok(err instanceof NetworkError, String(err));
  assert.equal(err.code, "ERR_CONNECT_TIMEOUT");
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${nobody.port}.*${timeoutMs} ms`));
  // Timers have millisecond granularity: allow 1 ms below the deadline.
  assert.ok(elapsed >= timeoutMs - 1, `rejected after ${elapsed} ms`);
  assert.ok(elapsed < timeoutMs + 1000, `rejected after ${elapsed} ms`);
  assert.equal(client.stats().openConnections, 0);
});

Deno.test("endpoint: the endpoint's connectionTimeoutMs is the default connect timeout", async () => {
  await using client = await QuicEndpoint.bind({ ...LOOPBACK, connectionTimeoutMs: 200 });
  const started = performance.now();
  const err = await client.connect({ hostname: "127.0.0.1", port: freePort() }).catch((e) => e);
  const elapsed = performance.now() - started;
  assert.equal(err.code, "ERR_CONNECT_TIMEOUT");
  assert.ok(elapsed >= 199 && elapsed < 1200, `rejected after ${elapsed} ms`);
});

Deno.test("endpoint: an inbound handshake that does not complete is closed after connectionTimeoutMs", async () => {
  await using server = await QuicEndpoint.bind({ ...LOOPBACK, connectionTimeoutMs: 300 });
  await using relay = new Relay(server.localAddr);
  // The server hears the client's Initial, then nothing: its handshake never completes.
  relay.onClientDatagram = (data) => server.stats().openConnections > 0 ? null : data;
  await using client = await QuicEndpoint.bind(LOOPBACK);
  const dial = client.connect(relay.addr, { timeoutMs: 5000 }).catch((e) => e);
  await waitFor(() => server.stats().openConnections === 1, 5000, "the server's connection");
  const opened = performance.now();
  await waitFor(() => server.stats().openConnections === 0, 5000, "the server's close");
  const lived = performance.now() - opened;
  assert.ok(lived >= 200, `closed ${lived} ms after it was seen`);
  assert.equal(server.stats().handshakesFailed, 1);
  await dial;
});

Deno.test("endpoint: connect is aborted by its signal", async () => {
  await using client = await QuicEndpoint.bind(LOOPBACK);
  const nobody = { hostname: "127.0.0.1", port: freePort() };
  const already = await client.connect(nobody, { signal: AbortSignal.abort() }).catch((e) => e);
  assert.equal(already.code, "ERR_ABORTED");
  const controller = new AbortController();
  const dialing = client.connect(nobody, { signal: controller.signal, timeoutMs: 10_000 });
  controller.abort(new Error("changed my mind"));
  const err = await dialing.catch((e) => e);
  assert.ok(err instanceof NetworkError);
  assert.equal(err.code, "ERR_ABORTED");
  assert.equal(client.stats().openConnections, 0);
});

Deno.test("endpoint: connect checks its arguments", async () => {
  await using client = await QuicEndpoint.bind(LOOPBACK);
  const bad = await client.connect("nonsense").catch((e) => e);
  assert.ok(bad instanceof InvalidAddressError);
  assert.match(bad.message, /"nonsense"/);
  const port = await client.connect({ hostname: "127.0.0.1", port: 0 }).catch((e) => e);
  assert.equal(port.code, "ERR_INVALID_ADDRESS");
  const timeout = await client.connect("127.0.0.1:9", { timeoutMs: 0 }).catch((e) => e);
  assert.equal(timeout.code, "ERR_INVALID_CONFIG");
  assert.match(timeout.message, /'timeoutMs'.*current value is 0/);
  assert.equal(client.stats().openConnections, 0);
});

Deno.test("endpoint: close tells peers, releases the port, and refuses further use", async () => {
  const server = await QuicEndpoint.bind(LOOPBACK);
  const { port } = server.localAddr;
  let client: QuicEndpoint | undefined;
  try {
    client = await QuicEndpoint.bind(LOOPBACK);
    const accepted = server.accept();
    const conn = await client.connect(server.localAddr);
    await accepted;
    const waiting = server.accept().catch((e) => e);
    await server.close();
    await server.close(); // idempotent
    const why = await within(conn.closed, 5000, "peer hears the close");
    assert.ok(why instanceof ConnectionClosedError);
    assert.equal(why.errorCode, 0);
    assert.equal(why.reason, "endpoint closing");
    const refused = await waiting;
    assert.equal(refused.code, "ERR_ENDPOINT_CLOSED");
    assert.equal((await server.accept().catch((e) => e)).code, "ERR_ENDPOINT_CLOSED");
    assert.equal(
      (await server.connect(client.localAddr).catch((e) => e)).code,
      "ERR_ENDPOINT_CLOSED",
    );
    assert.equal(
      (await server.sendRaw(new Uint8Array([1]), client.localAddr).catch((e) => e)).code,
      "ERR_ENDPOINT_CLOSED",
    );
  } finally {
    await server.close();
    await client?.close();
  }
  // The same port binds again at once.
  await using again = await QuicEndpoint.bind({ ...LOOPBACK, port });
  assert.equal(again.localAddr.port, port);
});

Deno.test("endpoint: binding a port in use fails with ERR_INVALID_ADDRESS", async () => {
  await using first = await QuicEndpoint.bind(LOOPBACK);
  const err = await QuicEndpoint.bind({ ...LOOPBACK, port: first.localAddr.port }).catch((e) => e);
  assert.ok(err instanceof NetworkError);
  assert.equal(err.code, "ERR_INVALID_ADDRESS");
  assert.ok(err.message.includes(String(first.localAddr.port)), err.message);
});

Deno.test("endpoint: non-QUIC datagrams go to raw handlers, and sendRaw uses the same socket", async () => {
  await using endpoint = await QuicEndpoint.bind(LOOPBACK);
  await using raw = new RawSocket();
  const seen: number[] = [];
  const remove = endpoint.addRawHandler((data, from) => {
    if (data[0] !== 0x01) return false;
    seen.push(data.byteLength);
    endpoint.sendRaw(new Uint8Array([0x02, data.byteLength]), from).catch(() => {});
    return true;
  });
  await raw.send(new Uint8Array([0x01, 9, 9]), endpoint.localAddr);
  const [reply, from] = await raw.receive(2000);
  assert.deepEqual(reply, new Uint8Array([0x02, 3]));
  assert.equal(from.port, endpoint.localAddr.port);
  assert.deepEqual(seen, [3]);
  assert.equal(endpoint.stats().datagramsDropped, 0);

  // Declined, then removed: both count as dropped.
  await raw.send(new Uint8Array([0x03]), endpoint.localAddr);
  await waitFor(() => endpoint.stats().datagramsDropped === 1, 2000, "declined one dropped");
  remove();
  await raw.send(new Uint8Array([0x01]), endpoint.localAddr);
  await waitFor(() => endpoint.stats().datagramsDropped === 2, 2000, "unhandled one dropped");
  assert.deepEqual(seen, [3]);
});

Deno.test("endpoint: closing both endpoints mid-transfer leaves no timers, ops or sockets", async () => {
  const server = await QuicEndpoint.bind({ ...LOOPBACK, keepAliveIntervalMs: 50 });
  const client = await QuicEndpoint.bind({ ...LOOPBACK, keepAliveIntervalMs: 50 });
  let outcomes: Promise<unknown>[] = [];
  try {
    const accepted = server.accept();
    const conn = await client.connect(server.localAddr);
    const peer = await within(accepted, 5000, "accept");
    const idle = client.connect(server.localAddr); // a second one, not accepted by anyone
    const stream = await conn.openBidi();
    const writing = stream.write(randomBytes(8 * 1024 * 1024), true).catch((e) => e);
    const incoming = await within(peer.acceptBidi(), 5000, "accept stream");
    assert.ok((await incoming.read()) !== null);
    const reading = incoming.read().catch((e) => e); // pending while the endpoints go away
    outcomes = [writing, reading, idle.catch((e) => e), conn.closed, peer.closed];
  } finally {
    await Promise.all([client.close(), server.close()]);
  }
  const [write, read] = await within(Promise.all(outcomes), 5000, "everything settles");
  assert.ok(write instanceof ConnectionClosedError, String(write));
  assert.ok(read instanceof ConnectionClosedError, String(read));
  // The sanitizers check at the end of the test that nothing is left running.
});

Deno.test("endpoint: an Initial whose id starts with a live connection's 6-byte route key does not take its route", async () => {
  // Without address validation an Initial is accepted at once; its destination id must not
  // take over the route of a live connection whose id starts with the same six bytes.
  await using p = await pair({ addressValidation: "none" });
  await using raw = new RawSocket();
  const accepted = p.server.accept();
  const conn = await p.client.connect(p.server.localAddr);
  const peer = await within(accepted, 5000, "accept");
  const serving = serveEcho(peer);
  await roundTrip(conn);

  const liveId = quicheOf(conn).destinationId(); // the server's id, which it routes by
  const dcid = randomBytes(20);
  dcid.set(liveId.subarray(0, 6));
  const before = p.server.stats();
  await raw.send(longHeaderDatagram({ dcid, scid: randomBytes(8) }), p.server.localAddr);
  await waitFor(
    () => p.server.stats().datagramsReceived > before.datagramsReceived,
    2000,
    "the Initial received",
  );
  assert.equal(p.server.stats().connectionsAccepted, before.connectionsAccepted, "no connection");
  await roundTrip(conn); // still routed to the live connection
  await conn.close();
  await serving;
});
