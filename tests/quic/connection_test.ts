import assert from "node:assert/strict";
import { ConnectionClosedError, NetworkError } from "../../src/errors.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { type DatagramSocket, DenoUdpSocket } from "../../src/quic/udp_socket.ts";
import {
  connect,
  delay,
  isPending,
  pair,
  randomBytes,
  roundTrip,
  serveEcho,
  within,
} from "./_util.ts";

Deno.test("connection: 1,000 concurrent bidi streams all open at once, each echoed", async () => {
  const count = 1000;
  await using p = await pair({ maxStreamsBidi: count }, { maxStreamsBidi: count });
  const { conn, peer } = await connect(p);
  // The server echoes nothing until all 1,000 streams are open at the same time.
  const serving = (async () => {
    const streams: QuicStream[] = [];
    for (let i = 0; i < count; i++) streams.push(await peer.acceptBidi());
    await Promise.all(streams.map(async (s) => await s.write(await s.readAll(), true)));
    return streams.length;
  })();
  const results = await within(
    Promise.all(Array.from({ length: count }, async (_, i) => {
      const stream = await conn.openBidi();
      const sent = randomBytes(64 + (i % 512));
      await stream.write(sent, true);
      const got = await stream.readAll();
      assert.deepEqual(got, sent, `stream ${stream.id}`);
      return stream.id;
    })),
    20_000,
    "1,000 echoes",
  );
  assert.equal(new Set(results).size, count);
  assert.equal(await serving, count);
  await conn.close();
  await peer.closed;
});

Deno.test("connection: a peer's stream that comes before the lower ids is accepted all the same", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const text = new TextDecoder();
  // Ids go up by open order, but only the second stream carries anything: the receiver finds
  // it with a scan of quiche's readable streams (its next expected id has nothing yet).
  const first = await conn.openBidi();
  const second = await conn.openBidi();
  assert.ok(second.id > first.id);
  await second.write(new TextEncoder().encode("second"), true);
  const early = await within(peer.acceptBidi(), 2000, "the stream that came first");
  assert.equal(early.id, second.id);
  assert.equal(text.decode(await early.readAll()), "second");
  await first.write(new TextEncoder().encode("first"), true);
  const late = await within(peer.acceptBidi(), 2000, "the stream with the lower id");
  assert.equal(late.id, first.id);
  assert.equal(text.decode(await late.readAll()), "first");
  await conn.close();
  await peer.closed;
});

Deno.test("connection: opening more streams than the peer allows waits for credit", async () => {
  const limit = 4;
  await using p = await pair({ maxStreamsBidi: limit });
  const { conn, peer } = await connect(p);
  const open: QuicStream[] = [];
  for (let i = 0; i < limit; i++) open.push(await conn.openBidi());
  const extra = [conn.openBidi(), conn.openBidi()];
  // The peer sees the first four, and a round trip on one of them passes: the extra opens
  // still wait (they neither resolve nor throw).
  const remote: QuicStream[] = [];
  await open[0].write(new Uint8Array([1]));
  remote.push(await peer.acceptBidi());
  assert.deepEqual(await remote[0].read(), new Uint8Array([1]));
  await remote[0].write(new Uint8Array([2]));
  assert.deepEqual(await open[0].read(), new Uint8Array([2]));
  assert.ok(await isPending(extra[0]), "fifth open waits");
  assert.ok(await isPending(extra[1]), "sixth open waits");

  // Finishing two streams both ways returns two credits.
  for (const [i, s] of open.slice(0, 2).entries()) {
    await s.write(new Uint8Array([3]), true);
    const r = i === 0 ? remote[0] : await peer.acceptBidi();
    await r.readAll();
    await r.write(new Uint8Array([4]), true);
    await s.readAll();
  }
  const [fifth, sixth] = await within(Promise.all(extra), 5000, "opens after credit");
  assert.ok(fifth.id > open[limit - 1].id && sixth.id > fifth.id);
  await fifth.write(new Uint8Array([5]), true);
  // Streams 8 and 12 never carried data, so the peer has not seen them: the fifth is next.
  const later = await within(peer.acceptBidi(), 5000, "accept the fifth");
  assert.equal(later.id, fifth.id);
  assert.deepEqual(await later.readAll(), new Uint8Array([5]));
  await conn.close();
});

Deno.test("connection: a waiting open fails when the connection closes", async () => {
  await using p = await pair({ maxStreamsBidi: 1, maxStreamsUni: 0 });
  const { conn, peer } = await connect(p);
  await conn.openBidi();
  const waiting = conn.openBidi().catch((e) => e);
  const waitingUni = conn.openUni().catch((e) => e);
  assert.ok(await isPending(waiting));
  await conn.close({ code: 1, reason: "give up" });
  for (const err of [await waiting, await waitingUni]) {
    assert.ok(err instanceof ConnectionClosedError, String(err));
    assert.equal(err.errorCode, 1);
  }
  assert.equal((await peer.closed).reason, "give up");
});

Deno.test("connection: a resumed connection delivers 0-RTT early data", async () => {
  await using p = await pair();
  const first = await connect(p);
  assert.equal(first.conn.isResumed, false);
  assert.equal(first.peer.isResumed, false);
  // A round trip after the handshake lets the session ticket arrive.
  const serving = serveEcho(first.peer);
  await roundTrip(first.conn);
  await first.conn.close();
  await serving;

  const accepted = p.server.accept();
  const started = performance.now();
  const conn = await p.client.connect(p.server.localAddr, { earlyData: true });
  assert.equal(conn.isInEarlyData, true, "connect resolved in 0-RTT");
  assert.equal(conn.isEstablished, false, "before the handshake completed");
  const stream = await conn.openBidi();
  const sent = new TextEncoder().encode("early hello");
  await stream.write(sent, true);
  const peer = await within(accepted, 5000, "accept");
  const incoming = await within(peer.acceptBidi(), 5000, "accept stream");
  assert.equal(incoming.early, true, "stream arrived as early data");
  assert.deepEqual(await incoming.readAll(), sent);
  await incoming.write(new Uint8Array([1]), true);
  assert.deepEqual(await stream.readAll(), new Uint8Array([1]));
  await conn.established;
  assert.equal(peer.isResumed, true);
  assert.equal(conn.isResumed, true);
  assert.ok(performance.now() - started < 5000);
  // Bounded: a resumed connection whose CONNECTION_CLOSE is never sent would otherwise hold
  // both sides until the 30 s idle timeout.
  await within(conn.close(), 5000, "close of the resumed connection");
  assert.equal((await within(peer.closed, 5000, "peer hears the close")).errorCode, 0);
});

Deno.test("connection: a connect handed over in 0-RTT still times out when the handshake never completes", async () => {
  await using p = await pair();
  const first = await connect(p);
  const serving = serveEcho(first.peer);
  await roundTrip(first.conn); // the session ticket arrives
  await first.conn.close();
  await serving;
  // The server goes away: the client's cached session makes it try 0-RTT, unanswered.
  const gone = p.server.localAddr;
  await p.server.close();
  const started = performance.now();
  const conn = await p.client.connect(gone, { earlyData: true, timeoutMs: 300 });
  assert.equal(conn.isInEarlyData, true, "connect resolved in 0-RTT");
  const err = await within(conn.established.catch((e) => e), 5000, "the connect timeout");
  assert.ok(err instanceof NetworkError, String(err));
  assert.equal(err.code, "ERR_CONNECT_TIMEOUT");
  assert.ok(performance.now() - started < 3000, "closed by the connect timeout, not the idle one");
  await within(conn.closed, 5000, "the connection closes");
});

Deno.test("connection: earlyData without a cached session waits for the handshake", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p, { earlyData: true });
  assert.equal(conn.isEstablished, true);
  assert.equal(conn.isResumed, false);
  const serving = serveEcho(peer);
  await roundTrip(conn);
  await conn.close();
  await serving;
});

Deno.test("connection: the idle timeout closes a silent connection", async () => {
  const idle = { idleTimeoutMs: 300, keepAliveIntervalMs: 0 };
  await using p = await pair(idle, idle);
  const { conn, peer } = await connect(p);
  const started = performance.now();
  const [mine, theirs] = await within(Promise.all([conn.closed, peer.closed]), 5000, "idle");
  const elapsed = performance.now() - started;
  for (const why of [mine, theirs]) {
    assert.ok(why instanceof ConnectionClosedError);
    assert.equal(why.code, "ERR_CONNECTION_CLOSED");
    assert.match(why.message, /idle/);
  }
  assert.ok(elapsed >= 250 && elapsed < 3000, `closed after ${elapsed} ms`);
  assert.equal(conn.closedError, mine);
  assert.equal(p.client.stats().openConnections, 0);
  assert.equal(p.server.stats().openConnections, 0);
  const err = await conn.openBidi().catch((e) => e);
  assert.ok(err instanceof ConnectionClosedError);
});

Deno.test("connection: keep-alive holds a connection open past the idle timeout", async () => {
  await using p = await pair(
    { idleTimeoutMs: 500, keepAliveIntervalMs: 0 },
    { idleTimeoutMs: 500, keepAliveIntervalMs: 100 },
  );
  const { conn, peer } = await connect(p);
  const serving = serveEcho(peer);
  // Nothing is sent by the application for 2.4 idle timeouts.
  const outcome = await Promise.race([
    conn.closed.then((why) => `closed: ${why.message}`),
    peer.closed.then((why) => `peer closed: ${why.message}`),
    delay(1200).then(() => "alive"),
  ]);
  assert.equal(outcome, "alive");
  await roundTrip(conn);
  assert.ok(conn.stats().packetsSent >= 6, `packets sent: ${conn.stats().packetsSent}`);
  await conn.close();
  await serving;
});

Deno.test("connection: graceful close delivers code and reason to the peer", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const pendingAccept = peer.acceptBidi().catch((e) => e);
  const stream = await conn.openBidi();
  const pendingRead = stream.read().catch((e) => e);
  await conn.close({ code: 42, reason: "shutting down" });
  const why = await within(peer.closed, 5000, "peer closed");
  assert.ok(why instanceof ConnectionClosedError);
  assert.equal(why.isApp, true);
  assert.equal(why.errorCode, 42);
  assert.equal(why.reason, "shutting down");
  assert.match(why.message, /closed by peer .*code 42.*"shutting down"/);
  const local = await conn.closed;
  assert.equal(local.errorCode, 42);
  assert.match(local.message, /closed locally/);
  assert.ok((await pendingAccept) instanceof ConnectionClosedError);
  assert.ok((await pendingRead) instanceof ConnectionClosedError);
  // Closing again does nothing and resolves.
  await conn.close({ code: 7 });
  assert.equal((await conn.closed).errorCode, 42);
});

Deno.test("connection: close() resolves once the endpoint forgot the connection, even when both sides close at once", async () => {
  await using p = await pair();
  for (let i = 0; i < 10; i++) {
    const { conn, peer } = await connect(p);
    // At once, before the client's handshake is confirmed: its close waits for the server's
    // next packet, which can be the server's CONNECTION_CLOSE. That settles `closed` at once,
    // but the client's own close still goes out and answers the server's packets until its
    // closing period ends.
    await Promise.all([conn.close({ code: 1 }), peer.close({ code: 2 })]);
    assert.equal(p.client.stats().openConnections, 0, `try ${i + 1}: the client still routes it`);
    assert.equal(p.server.stats().openConnections, 0, `try ${i + 1}: the server still routes it`);
  }
});

Deno.test("connection: peers see each other's certificates and stats", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const serving = serveEcho(peer);
  await roundTrip(conn, 10_000);
  assert.deepEqual(conn.peerCertificates()[0], p.server.certificate.der);
  assert.deepEqual(peer.peerCertificates()[0], p.client.certificate.der);
  assert.deepEqual(conn.localCertificate, p.client.certificate.der);
  assert.equal(peer.remoteAddr.port, p.client.localAddr.port);
  assert.equal(conn.remoteAddr.port, p.server.localAddr.port);
  const stats = conn.stats();
  assert.ok(stats.bytesSent > 10_000 && stats.bytesReceived > 10_000, JSON.stringify(stats));
  assert.ok(
    Number.isInteger(stats.rttMs) && stats.rttMs >= 0 && stats.rttMs < 1000,
    JSON.stringify(stats),
  );
  await conn.close();
  await serving;
});

Deno.test("connection: both sides time the handshake's round trip", async () => {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  for (const side of [conn, peer]) {
    const ms = side.handshakeRttMs;
    assert.ok(ms !== undefined && ms > 0 && ms < 5000, `${side.isServer}: ${ms}`);
  }
  await conn.close();
});

/** A socket that counts the datagrams it sends. */
function countingSocket(inner: DatagramSocket): DatagramSocket & { sent: number } {
  return {
    sent: 0,
    localAddr: inner.localAddr,
    sendBufferSize: inner.sendBufferSize,
    start: (receiver, onBatchEnd) => inner.start(receiver, onBatchEnd),
    nextSendBuffer: () => inner.nextSendBuffer(),
    send(length, to) {
      this.sent++;
      inner.send(length, to);
    },
    sendCopy: (data, to) => inner.sendCopy(data, to),
    get onWritable() {
      return inner.onWritable;
    },
    set onWritable(callback) {
      inner.onWritable = callback;
    },
    get sendErrors() {
      return inner.sendErrors;
    },
    close: () => inner.close(),
  };
}

Deno.test("connection: a client's first write leaves with its TLS Finished, or the Finished alone", async () => {
  const socket = countingSocket(DenoUdpSocket.bind({ hostname: "127.0.0.1", port: 0 }));
  await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1", socket });
  // Without a write, the Finished leaves at the end of the turn: the server completes. This
  // first connection also validates the client's address (no Retry later) and leaves a session.
  const accepted = server.accept();
  const idle = await client.connect(server.localAddr);
  assert.ok((await within(accepted, 5000, "the first accept")).isEstablished);
  await idle.close();

  const payload = randomBytes(100);
  const serving = server.accept().then(async (peer) => await (await peer.acceptBidi()).readAll());
  serving.catch(() => {}); // awaited below; a failed assertion before closes the server
  const beforeConnect = socket.sent;
  const conn = await client.connect(server.localAddr);
  // One Initial so far (the server's flight leaves in one sendmmsg and is read in one batch):
  // the Finished waits for what the application writes in this turn, and leaves with it.
  assert.equal(socket.sent - beforeConnect, 1, "datagrams sent until the handshake completed");
  const stream = await conn.openBidi();
  await stream.write(payload, true);
  assert.equal(socket.sent - beforeConnect, 2, "datagrams sent once the stream data left");
  assert.deepEqual(await within(serving, 5000, "the stream"), payload);
  await conn.close();
});

Deno.test("connection: a full accept backlog refuses new connections", async () => {
  await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1", acceptBacklog: 1 });
  await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const first = await client.connect(server.localAddr);
  const second = await client.connect(server.localAddr);
  const why = await within(second.closed, 5000, "refused");
  assert.equal(why.errorCode, 0x2);
  assert.equal(server.stats().connectionsRefused, 1);
  const peer = await server.accept();
  assert.equal(peer.remoteAddr.port, client.localAddr.port);
  await first.close();
});

Deno.test("connection: 0-RTT data refused by a restarted peer is sent again after the handshake", async () => {
  await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const first = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const { port } = first.localAddr;
  try {
    const accepted = first.accept();
    const conn = await client.connect(first.localAddr);
    const serving = serveEcho(await accepted);
    await roundTrip(conn); // the session ticket arrives
    await conn.close();
    await serving;
  } finally {
    await first.close();
  }
  // Same address, new endpoint: new keys, so the cached session cannot be resumed.
  await using second = await QuicEndpoint.bind({ hostname: "127.0.0.1", port });
  const accepted = second.accept();
  const conn = await client.connect(second.localAddr, { earlyData: true });
  assert.equal(conn.isInEarlyData, true, "the client tries 0-RTT");
  const stream = await conn.openBidi();
  await stream.write(new TextEncoder().encode("hello again"), true);
  const peer = await within(accepted, 5000, "accept");
  const serving = serveEcho(peer);
  const echoed = await within(stream.readAll(), 5000, "echo");
  assert.equal(new TextDecoder().decode(echoed), "hello again");
  assert.equal(conn.isResumed, false);
  assert.equal(peer.isResumed, false);
  await conn.close();
  await serving;
});
