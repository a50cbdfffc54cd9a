/** Issue 4's list for `QuicTransport`, over real QUIC on loopback. */

import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import {
  ConnectionClosedError,
  InvalidAddressError,
  InvalidConfigError,
  NetworkError,
  StreamResetError,
} from "../../src/errors.ts";
import { Identity } from "../../src/identity/identity.ts";
import { APP_ERROR_EVICTED, APP_ERROR_MESSAGE_TOO_LARGE } from "../../src/pool/limits.ts";
import { decodeMessage, encodeMessage, type NetworkMessage } from "../../src/transport/codec.ts";
import { decodeLaneFrame, decodeLaneHeader, encodeControl } from "../../src/transport/_frames.ts";
import { FrameReader, FrameWriter } from "../../src/transport/_framed_stream.ts";
import type { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { APP_ERROR_PROTOCOL } from "../../src/transport/close_codes.ts";
import { addr, identity, nextEvent, node, stillPending, within } from "./_util.ts";
import { openRawLane, type RawPeer, rawPeer, writeRawFrame } from "./_raw_peer.ts";

Deno.test("transport: creation, peer id, localAddr only after bind", async () => {
  await using t = new QuicTransport({ identity: identity(0) });
  assert(t.peerId.equals(identity(0).peerId));
  assertEquals(t.config.quicPort, 9001);
  const e = assertThrows(() => t.localAddr, NetworkError, "bindAndListen() first");
  assertEquals(e.code, "ERR_ENDPOINT_CLOSED");
  await assertRejects(() => t.connectPeer("127.0.0.1:1"), NetworkError, "bindAndListen");
});

Deno.test("transport: bind and listen on a free port; idempotent; closed afterwards", async () => {
  const t = await node(0);
  const first = await t.bindAndListen();
  assertEquals(first.hostname, "127.0.0.1");
  assert(first.port > 0);
  assertEquals(await t.bindAndListen(), first);
  assertEquals(t.localAddr.port, first.port);
  await t.close();
  await t.close();
  await assertRejects(() => t.bindAndListen(), NetworkError, "closed");
});

Deno.test("transport: peer connection, events on both sides, dial dedupe", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const onA = nextEvent(a, "peer:connected");
  const onB = nextEvent(b, "peer:connected");
  const [r1, r2] = await Promise.all([a.connectPeer(addr(b)), a.connectPeer(addr(b))]);
  assert(r1.equals(b.peerId) && r2.equals(b.peerId));
  assertEquals((await onA).detail.direction, "outbound");
  assertEquals((await onB).detail.direction, "inbound");
  assert((await a.connectPeer(addr(b))).equals(b.peerId)); // already connected: no new dial
  assert((await a.connectPeer(addr(b), { expectedPeerId: b.peerId.toString() })).equals(b.peerId));
  assertEquals(a.peers().length, 1);
  assertEquals(b.peers().length, 1);
  const [info] = a.peers();
  assertEquals(info.addresses, [addr(b)]);
  assertEquals(info.direction, "outbound");
});

Deno.test("transport: simultaneous dials end with one connection on both sides", async () => {
  // Several rounds with fresh nodes: the tie-break must hold whichever dial lands first.
  for (let round = 0; round < 3; round++) {
    await using a = await node(0);
    await using b = await node(1);
    const [toB, toA] = await Promise.all([a.connectPeer(addr(b)), b.connectPeer(addr(a))]);
    assert(toB.equals(b.peerId) && toA.equals(a.peerId));
    // Messages both ways prove the surviving connection works on both ends.
    await within(a.send(toB, { type: "vertex", data: new Uint8Array([1]) }), 5000, "a->b");
    await within(b.send(toA, { type: "vertex", data: new Uint8Array([2]) }), 5000, "b->a");
    assertEquals([a.peers().length, b.peers().length], [1, 1], `round ${round}`);
    assertEquals(a.peers()[0].direction === "outbound", b.peers()[0].direction === "inbound");
  }
});

Deno.test("transport: every message type is sent and received, in order per class", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const remote = await a.connectPeer(addr(b));
  const sent: NetworkMessage[] = [
    { type: "vertex", data: new Uint8Array(200_000).fill(7) },
    { type: "consensus", data: new Uint8Array([1]) },
    { type: "consensus", data: new Uint8Array([2]) },
    { type: "ping", timestamp: 123.5 },
    { type: "pong", timestamp: 124 },
    { type: "unknown", code: 99, data: new Uint8Array([3]) },
    { type: "vertex", data: new Uint8Array([4]) },
  ];
  await Promise.all(sent.map((m) => a.send(remote, m)));
  const got: NetworkMessage[] = [];
  for await (const { from, message } of b.messages()) {
    assert(from.equals(a.peerId));
    got.push(message);
    if (got.length === sent.length) break;
  }
  const byClass = (ms: NetworkMessage[], type: string) => ms.filter((m) => m.type === type);
  for (const type of ["vertex", "consensus", "ping", "pong", "unknown"]) {
    assertEquals(byClass(got, type), byClass(sent, type), type);
  }
});

Deno.test("transport: large messages are copied when send() returns; the caller may reuse its bytes", async () => {
  for (const pqEncryption of [true, false]) {
    await using a = await node(0, { pqEncryption });
    await using b = await node(1, { pqEncryption });
    const remote = await a.connectPeer(addr(b));
    // Sizes around the 64 KiB chunks the copy is made of; both sides send, so that
    // acknowledgements ride ahead of some of the messages.
    const sizes = [65_535, 65_536, 65_537, 131_070, 200_003, (1 << 20) + 5];
    const pattern = (n: number, seed: number) =>
      new Uint8Array(n).map((_, i) => (i * 31 + seed * 7 + (i >> 16)) & 255);
    const buffers = sizes.map((n, i) => pattern(n, i));
    const expected = buffers.map((buffer) => buffer.slice());
    const sends = buffers.map((data) => {
      const sent = a.send(remote, { type: "vertex", data });
      data.fill(0xee); // the caller's bytes change at once
      return sent;
    });
    const answers = [1, 2, 3].map((n) =>
      b.send(a.peerId, { type: "consensus", data: pattern(n, n) })
    );
    const got: Uint8Array[] = [];
    for await (const { message } of b.messages()) {
      if (message.type === "vertex") got.push(message.data);
      if (got.length === sizes.length) break;
    }
    await Promise.all([...sends, ...answers]);
    assertEquals(got.map((d) => d.byteLength), sizes, `pqEncryption ${pqEncryption}`);
    got.forEach((data, i) => assertEquals(data, expected[i], `message ${i}, pq ${pqEncryption}`));
  }
});

Deno.test("transport: acknowledgements ride on answers, and come alone when the answers stop", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const remote = await a.connectPeer(addr(b));
  // b answers a's consensus messages on every lane (the answers carry b's acknowledgements),
  // then stops answering: a's later sends must still be acknowledged, on the control stream.
  const answered = 60;
  const serving = (async () => {
    let seen = 0;
    for await (const { from } of b.messages()) {
      if (++seen <= answered) {
        const lane = (["consensus", "vertex", "other"] as const)[seen % 3];
        const answer: NetworkMessage = lane === "other"
          ? { type: "ping", timestamp: seen }
          : { type: lane, data: new Uint8Array([seen]) };
        b.send(from, answer).catch(() => {});
      }
      if (seen === answered + 20) return;
    }
  })();
  const inbox = a.messages();
  const one = { type: "consensus", data: new Uint8Array([1]) } as const;
  for (let i = 0; i < answered; i++) {
    const [, reply] = await within(
      Promise.all([a.send(remote, one), inbox.next()]),
      10_000,
      `${i}`,
    );
    assert(!reply.done);
  }
  for (let i = 0; i < 20; i++) await within(a.send(remote, one), 10_000, `unanswered ${i}`);
  await within(serving, 10_000, "b read all");
  assertEquals(a.getStats(remote).messagesSent, answered + 20);
  assertEquals(b.getStats(a.peerId).messagesSent, answered);
});

Deno.test("transport: broadcast reports each peer", async () => {
  await using hub = await node(0);
  await using b = await node(1);
  await using c = await node(2);
  await hub.connectPeer(addr(b));
  await hub.connectPeer(addr(c));
  const results = await hub.broadcast({ type: "consensus", data: new Uint8Array([5]) });
  assertEquals(results.length, 2);
  assert(results.every((r) => r.ok));
  for (const t of [b, c]) {
    assertEquals((await t.messages().next()).value?.message.type, "consensus");
  }
  const tooBig = await hub.broadcast({
    type: "vertex",
    data: new Uint8Array(hub.config.maxMessageBytes + 1),
  });
  assert(tooBig.every((r) => !r.ok && (r.error as NetworkError).code === "ERR_MESSAGE_TOO_LARGE"));
});

Deno.test("transport: statistics count messages, bytes and ping latency", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const remote = await a.connectPeer(addr(b));
  for (let i = 0; i < 10; i++) await a.send(remote, { type: "vertex", data: new Uint8Array(100) });
  for (let i = 0; i < 5; i++) assert((await a.ping(remote)) > 0);
  const s = a.getStats(remote);
  assertEquals(s.messagesSent, 10);
  assertEquals(s.bytesSent, 10 * (4 + 2 + 100 + 16));
  assert(s.avgLatencyMs > 0 && s.p50LatencyMs > 0 && s.p50LatencyMs <= s.p99LatencyMs);
  assert(s.connectedAt <= s.lastSeen && s.lastSeen <= Date.now());
  const r = b.getStats(a.peerId);
  assertEquals([r.messagesReceived, r.bytesReceived], [10, 10 * (4 + 2 + 100 + 16)]);
  assertEquals(a.peers()[0].stats.messagesSent, 10);
});

Deno.test("transport: both peers have a latency sample once connected: the handshake's round trip", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const remote = await a.connectPeer(addr(b));
  // No ping was answered yet: the samples are the QUIC handshake's round trips.
  for (const stats of [a.getStats(remote), b.getStats(a.peerId)]) {
    assert(stats.avgLatencyMs > 0 && stats.avgLatencyMs < 5000, JSON.stringify(stats));
    assertEquals(stats.p50LatencyMs, stats.p99LatencyMs);
  }
});

Deno.test("transport: disconnectPeer closes both sides; the peer becomes unknown", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const remote = await a.connectPeer(addr(b));
  const onB = nextEvent(b, "peer:disconnected");
  await a.disconnectPeer(remote);
  // Resolved once the QUIC connection drained: it sends nothing more (a NAT lab's flush of
  // the mappings relies on that).
  assertEquals((a.datagramPort as QuicEndpoint).stats().openConnections, 0);
  const event = await onB;
  assert(event.detail.peerId.equals(a.peerId));
  assertEquals((event.detail.error as ConnectionClosedError).errorCode, 0);
  assertEquals([a.peers().length, b.peers().length], [0, 0]);
  const e = await assertRejects(() => a.send(remote, { type: "ping", timestamp: 1 }), NetworkError);
  assertEquals(e.code, "ERR_UNKNOWN_PEER");
  await a.disconnectPeer(remote); // not connected: ignored
});

Deno.test("transport: a node with 20 peers exchanges messages with each", async () => {
  // All spokes dial from 127.0.0.1, above the default of 8 inbound connections per IP.
  await using hub = await node(0, { maxInboundPerIp: 20 });
  const spokes: QuicTransport[] = [];
  try {
    for (let i = 1; i <= 20; i++) spokes.push(await node(i));
    await Promise.all(spokes.map((s) => s.connectPeer(addr(hub))));
    assertEquals(hub.peers().length, 20);
    const results = await hub.broadcast({ type: "consensus", data: new Uint8Array([9]) });
    assert(results.length === 20 && results.every((r) => r.ok));
    await Promise.all(spokes.map(async (s) => {
      assertEquals((await s.messages().next()).value?.message.type, "consensus");
      await s.send(hub.peerId, { type: "vertex", data: s.peerId.toBytes() });
    }));
    const from = new Set<string>();
    for await (const { from: peer } of hub.messages()) {
      from.add(peer.toString());
      if (from.size === 20) break;
    }
    assertEquals(from.size, 20);
  } finally {
    await Promise.all(spokes.map((s) => s.close()));
  }
});

Deno.test("transport: invalid addresses are refused with InvalidAddressError", async () => {
  await using a = await node(0);
  for (
    const bad of ["nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "example.com:9001"]
  ) {
    await assertRejects(() => a.connectPeer(bad), InvalidAddressError);
  }
  await assertRejects(() => a.connectPeer({ hostname: "1.2.3", port: 1 }), InvalidAddressError);
  await assertRejects(() => a.connectPeer(addr(a)), InvalidAddressError, "own address");
});

Deno.test("transport: unknown and invalid peer ids", async () => {
  await using a = await node(0);
  const stranger = identity(5).peerId;
  const msg: NetworkMessage = { type: "vertex", data: new Uint8Array(1) };
  for (
    const op of [
      () => a.send(stranger, msg),
      () => a.ping(stranger),
      () => a.request(stranger, "/x", new Uint8Array()),
      () => Promise.resolve().then(() => a.getStats(stranger)),
    ]
  ) {
    assertEquals((await assertRejects(op, NetworkError)).code, "ERR_UNKNOWN_PEER");
  }
  const e = await assertRejects(() => a.send("not-a-peer-id", msg), NetworkError);
  assertEquals(e.code, "ERR_INVALID_PEER_ID");
});

Deno.test("transport: oversized messages fail with a typed error; the connection stays up", async () => {
  await using a = await node(0, { maxMessageBytes: 1024 });
  await using b = await node(1, { maxMessageBytes: 4096 });
  const remote = await a.connectPeer(addr(b));
  const e = await assertRejects(
    () => a.send(remote, { type: "vertex", data: new Uint8Array(1025) }),
    NetworkError,
    "1025 bytes",
  );
  assertEquals(e.code, "ERR_MESSAGE_TOO_LARGE");
  await a.send(remote, { type: "vertex", data: new Uint8Array(1024) });
  assertEquals((await b.messages().next()).value?.message.type, "vertex");
  assertEquals(a.peers().length, 1);
  // The receiver enforces its own limit: a peer sending more is disconnected.
  const dropped = nextEvent(b, "peer:disconnected");
  const closed = await assertRejects(
    () => b.send(a.peerId, { type: "vertex", data: new Uint8Array(2000) }),
    ConnectionClosedError,
  );
  assertEquals(closed.errorCode, APP_ERROR_MESSAGE_TOO_LARGE);
  await dropped;
  // Counted once, by the receiver whose limit it broke; the sender's refusal is no violation.
  assertEquals(a.stats().limitViolations.messageBytes, 1);
  assertEquals(b.stats().limitViolations.messageBytes, 0);
});

Deno.test("transport: a lane's stream opens with its first message, named by its header, once", async () => {
  await using b = await node(1, { pqEncryption: false });
  await using raw = await rawPeer(b, identity(3), false);
  const peer = identity(3).peerId;
  const sends = [
    b.send(peer, { type: "vertex", data: new Uint8Array([1]) }),
    b.send(peer, { type: "consensus", data: new Uint8Array([2]) }),
    b.send(peer, { type: "vertex", data: new Uint8Array([3]) }),
  ];
  for (const send of sends) send.catch(() => {});
  const lanes = new Map<number, NetworkMessage[]>();
  for (let i = 0; i < 2; i++) {
    const stream = await within(raw.conn.acceptUni(), 5000, "a lane stream");
    const reader = new FrameReader(stream, undefined, 1024);
    const lane = decodeLaneHeader((await reader.next())!);
    const messages = [];
    while (messages.length < (lane === 1 ? 2 : 1)) {
      messages.push(decodeMessage(decodeLaneFrame((await reader.next())!).message));
    }
    lanes.set(lane, messages);
  }
  assertEquals(lanes.get(0), [{ type: "consensus", data: new Uint8Array([2]) }]);
  assertEquals(lanes.get(1), [
    { type: "vertex", data: new Uint8Array([1]) },
    { type: "vertex", data: new Uint8Array([3]) },
  ]);
  const control = new FrameWriter(raw.session.control, undefined);
  await control.write(encodeControl({ type: "ack", lane: 1, count: 2 }));
  await control.write(encodeControl({ type: "ack", lane: 0, count: 1 }));
  await within(Promise.all(sends), 5000, "the sends are acknowledged");
  // The second vertex took the lane's stream: two lanes used, two streams.
  assertEquals(raw.conn.remoteStreamsOpened, 2);
});

Deno.test("transport: malformed frames from a raw peer close that connection only", async () => {
  await using b = await node(1, { pqEncryption: false });
  await using c = await node(2, { pqEncryption: false });
  const good = await c.connectPeer(addr(b));
  await using raw = await rawPeer(b, identity(3), false);
  const dropped = nextEvent(b, "peer:disconnected");
  const { stream: lane } = await openRawLane(raw, 0);
  await writeRawFrame(lane, new Uint8Array([9, 1, 0])); // message version 9
  const event = await dropped;
  assert(event.detail.peerId.equals(identity(3).peerId));
  assertEquals((event.detail.error as NetworkError).code, "ERR_MALFORMED_FRAME");
  const closed = await within(raw.conn.closed, 5000, "raw peer closed");
  assertEquals([closed.isApp, closed.errorCode], [true, APP_ERROR_PROTOCOL]);
  // The other peer is unaffected.
  await c.send(good, { type: "consensus", data: new Uint8Array([1]) });
  assertEquals((await b.messages().next()).value?.from.equals(c.peerId), true);
  assertEquals(b.peers().map((p) => p.peerId.toString()), [c.peerId.toString()]);
});

Deno.test("transport: a malformed control frame, lane header or an extra stream closes with a code", async () => {
  await using b = await node(1, { pqEncryption: false });
  const attacks = {
    "control": (raw: RawPeer) => writeRawFrame(raw.session.control, new Uint8Array([1, 2, 0])), // ack of 3 bytes
    "fourth stream": async (raw: RawPeer) => {
      for (let lane = 0; lane < 3; lane++) await openRawLane(raw, lane);
      await writeRawFrame(await raw.conn.openUni(), new Uint8Array([1, 0]));
    },
    "second stream for a lane": async (raw: RawPeer) => {
      await openRawLane(raw, 1);
      await openRawLane(raw, 1);
    },
    "unknown lane": (raw: RawPeer) => openRawLane(raw, 3),
    "no lane header": async (raw: RawPeer) =>
      await writeRawFrame(await raw.conn.openUni(), encodeMessage({ type: "ping", timestamp: 1 })),
  };
  // A peer id each: three malformed frames would ban one.
  for (const [i, [attack, move]] of Object.entries(attacks).entries()) {
    await using raw = await rawPeer(b, identity(3 + i), false);
    const dropped = nextEvent(b, "peer:disconnected");
    await move(raw);
    const event = await dropped;
    assertEquals((event.detail.error as NetworkError).code, "ERR_MALFORMED_FRAME", attack);
    const closed = await within(raw.conn.closed, 5000, attack);
    assertEquals(closed.errorCode, APP_ERROR_PROTOCOL, attack);
  }
});

Deno.test("transport: backpressure: with messages() unread, sends stay pending, then drain in order", async () => {
  await using a = await node(0);
  await using b = await node(1, { inboundQueueLength: 4 });
  const remote = await a.connectPeer(addr(b));
  const total = 64;
  const size = 256 * 1024; // 16 MiB in all: more than the stream's 4 MiB flow-control window
  const sends = Array.from(
    { length: total },
    (_, i) => a.send(remote, { type: "vertex", data: new Uint8Array(size).fill(i) }),
  );
  for (const s of sends) s.catch(() => {});
  await within(Promise.all(sends.slice(0, 4)), 10_000, "the first four fill the queue");
  assert(await stillPending(sends[total - 1], 300), "the last send must wait for the reader");
  const stats = b.getStats(a.peerId);
  assert(stats.bytesReceived < 6 * 1024 * 1024, `receiver read ${stats.bytesReceived} bytes`);
  let i = 0;
  for await (const { message } of b.messages()) {
    assert(
      message.type === "vertex" && message.data[0] === i % 256 && message.data.length === size,
    );
    if (++i === total) break;
  }
  await within(Promise.all(sends), 10_000, "all sends resolve once read");
  assertEquals(a.getStats(remote).messagesSent, total);
});

Deno.test("transport: a connection dying mid-message rejects the send with ConnectionClosedError", async () => {
  await using a = await node(0);
  const b = await node(1);
  try {
    const remote = await a.connectPeer(addr(b));
    const sending = a.send(remote, { type: "vertex", data: new Uint8Array(8 * 1024 * 1024) });
    await b.close();
    await assertRejects(() => sending, ConnectionClosedError);
  } finally {
    await b.close();
  }
});

Deno.test("transport: requests: response, unknown protocol, handler failure, timeout, abort", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const remote = await a.connectPeer(addr(b));
  b.handle("/echo/1", (request, { peerId, protocolId }) => {
    assert(peerId.equals(a.peerId) && protocolId === "/echo/1");
    return request;
  });
  b.handle("/fail/1", () => {
    throw new Error("handler bug");
  });
  let release = () => {};
  b.handle("/slow/1", () => new Promise<Uint8Array>((r) => release = () => r(new Uint8Array())));
  assertEquals([...await a.request(remote, "/echo/1", new Uint8Array([1, 2]))], [1, 2]);
  const big = new Uint8Array(1024 * 1024).fill(3);
  assertEquals((await a.request(remote, "/echo/1", big)).byteLength, big.byteLength);
  const unknown = await assertRejects(
    () => a.request(remote, "/nope/1", new Uint8Array()),
    NetworkError,
    "/nope/1",
  );
  assertEquals(unknown.code, "ERR_UNKNOWN_PROTOCOL");
  await assertRejects(() => a.request(remote, "/fail/1", new Uint8Array()), StreamResetError);
  const slow = await assertRejects(
    () => a.request(remote, "/slow/1", new Uint8Array(), { timeoutMs: 100 }),
    NetworkError,
  );
  assertEquals(slow.code, "ERR_TIMEOUT");
  // Beyond setTimeout's 2^31-1 ms the timer would fire at once.
  await assertRejects(
    () => a.request(remote, "/slow/1", new Uint8Array(), { timeoutMs: 2 ** 31 }),
    InvalidConfigError,
    "timeoutMs",
  );
  release();
  const controller = new AbortController();
  const pending = a.request(remote, "/slow/1", new Uint8Array(), { signal: controller.signal });
  controller.abort();
  assertEquals((await assertRejects(() => pending, NetworkError)).code, "ERR_ABORTED");
  release();
  assertThrows(() => b.handle("", () => new Uint8Array()), TypeError, "protocolId");
  assertEquals(a.peers().length, 1);
});

Deno.test("transport: a full pool evicts the least recently used unprotected peer", async () => {
  await using hub = await node(0, { maxConnections: 2 });
  await using p1 = await node(1);
  await using p2 = await node(2);
  await using p3 = await node(3);
  hub.protect(p1.peerId, "validator");
  await p1.connectPeer(addr(hub));
  await p2.connectPeer(addr(hub));
  const evicted = nextEvent(p2, "peer:disconnected");
  await p3.connectPeer(addr(hub));
  assertEquals((await evicted).detail.error instanceof ConnectionClosedError, true);
  assertEquals(
    ((await evicted).detail.error as ConnectionClosedError).errorCode,
    APP_ERROR_EVICTED,
  );
  const left = hub.peers().map((p) => p.peerId.toString()).sort();
  assertEquals(left, [p1.peerId.toString(), p3.peerId.toString()].sort());
  assertEquals(hub.stats().evicted, 1);
  assert(hub.unprotect(p1.peerId, "validator"));
});

Deno.test("transport: close ends messages() and is idempotent; using after close fails", async () => {
  const a = await node(0);
  const iterator = a.messages();
  const next = iterator.next();
  await a.close();
  assertEquals((await next).done, true);
  await a.close();
  const e = await assertRejects(() => a.connectPeer("127.0.0.1:9"), NetworkError);
  assertEquals(e.code, "ERR_ENDPOINT_CLOSED");
  assert(Identity.generate() instanceof Identity);
});
