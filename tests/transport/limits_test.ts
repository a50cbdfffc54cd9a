/**
 * Issue 5's resource limits and idle collection inside `QuicTransport`, over real QUIC on
 * loopback: each limit closes the offender with its application error code and is counted.
 */

import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { ConnectionClosedError, InvalidConfigError, type NetworkError } from "../../src/errors.ts";
import {
  APP_ERROR_BUFFER_FULL,
  APP_ERROR_IDLE_TIMEOUT,
  APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP,
  APP_ERROR_TOO_MANY_PENDING_HANDSHAKES,
  APP_ERROR_TOO_MANY_STREAMS,
} from "../../src/pool/limits.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { NodeCredentials } from "../../src/handshake/node_credentials.ts";
import { resolveNetworkConfig } from "../../src/transport/config.ts";
import type { QuicTransport } from "../../src/transport/transport.ts";
import { addr, identity, nextEvent, node, within } from "./_util.ts";

function codeOf(error: Error): number | undefined {
  return error instanceof ConnectionClosedError ? error.errorCode : undefined;
}

function violations(t: QuicTransport): Record<string, number> {
  return { ...t.stats().limitViolations };
}

Deno.test("limits: inbound connections per IP: one more is closed with 0x11 and counted", async () => {
  // Loopback stands for a public address here: limitLoopback counts it.
  await using hub = await node(0, { maxInboundPerIp: 2, limitLoopback: true });
  await using p1 = await node(1);
  await using p2 = await node(2);
  await using p3 = await node(3);
  await p1.connectPeer(addr(hub));
  await p2.connectPeer(addr(hub));
  const refused = await assertRejects(() => p3.connectPeer(addr(hub)), ConnectionClosedError);
  assertEquals(refused.errorCode, APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP);
  assertEquals(hub.peers().length, 2);
  assertEquals(violations(hub).inboundPerIp, 1);
  // A closed connection frees its slot.
  const gone = nextEvent(hub, "peer:disconnected");
  await p1.disconnectPeer(hub.peerId);
  await gone;
  await within(
    (async () => {
      // The hub counts the slot free once QUIC's close completes on its side.
      for (;;) {
        try {
          return await p3.connectPeer(addr(hub));
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })(),
    5000,
    "p3 connects once a slot is free",
  );
  assertEquals(hub.peers().length, 2);
});

Deno.test("limits: pending handshakes: a raw QUIC client that started but never finishes its handshake holds the only slot", async () => {
  await using hub = await node(0, {
    maxPendingHandshakes: 1,
    handshakeTimeoutMs: 1500,
    silentHandshakeTimeoutMs: 60_000,
  });
  // With a valid identity binding in its certificate: one without is refused at once.
  const { certificate } = await NodeCredentials.create(identity(5));
  await using raw = await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
  const target = { hostname: "127.0.0.1", port: hub.localAddr.port };
  const first = await raw.connect(target);
  // Not silent: it opens the handshake stream, then stalls.
  await (await first.openBidi()).write(new Uint8Array([0]));
  // Accepted by the transport once its first packets arrive; wait for the count.
  await within(
    (async () => {
      while (hub.stats().pendingHandshakes < 1) await new Promise((r) => setTimeout(r, 10));
    })(),
    5000,
    "the first raw connection is counted",
  );
  const second = await raw.connect(target);
  const closed = await within(second.closed, 5000, "second raw connection closed");
  assertEquals([closed.isApp, closed.errorCode], [true, APP_ERROR_TOO_MANY_PENDING_HANDSHAKES]);
  assertEquals(violations(hub).pendingHandshakes, 1);
  // The first one times out (handshakeTimeoutMs) and frees the slot for a real peer.
  await within(first.closed, 5000, "first raw connection times out");
  await using peer = await node(1);
  assert((await peer.connectPeer(addr(hub))).equals(hub.peerId));
  assertEquals(hub.stats().pendingHandshakes, 0);
});

Deno.test("limits: concurrent request streams per peer: one more closes with 0x13", async () => {
  await using a = await node(0);
  await using b = await node(1, { maxStreamsPerPeer: 2 });
  const remote = await a.connectPeer(addr(b));
  const releases: (() => void)[] = [];
  b.handle(
    "/hang/1",
    () => new Promise<Uint8Array>((r) => releases.push(() => r(new Uint8Array()))),
  );
  const dropped = nextEvent(b, "peer:disconnected");
  const requests = [0, 1, 2].map(() => a.request(remote, "/hang/1", new Uint8Array([1])));
  for (const r of requests) r.catch(() => {});
  const event = await dropped;
  const error = event.detail.error as NetworkError;
  assertEquals(error.code, "ERR_LIMIT_EXCEEDED");
  assert(error.message.includes("streamsPerPeer"), error.message);
  for (const r of requests) {
    assertEquals(
      codeOf(await assertRejects(() => r, ConnectionClosedError)),
      APP_ERROR_TOO_MANY_STREAMS,
    );
  }
  assertEquals(violations(b).streamsPerPeer, 1);
  for (const release of releases) release();
});

Deno.test("limits: streams under the limit: finished requests free their slot", async () => {
  await using a = await node(0);
  await using b = await node(1, { maxStreamsPerPeer: 2 });
  const remote = await a.connectPeer(addr(b));
  b.handle("/echo/1", (request) => request);
  for (let i = 0; i < 20; i++) {
    await Promise.all([0, 1].map(() => a.request(remote, "/echo/1", new Uint8Array([i]))));
  }
  assertEquals(violations(b).streamsPerPeer, 0);
  assertEquals(b.getStats(a.peerId).openStreams, 0);
  assertEquals(b.peers().length, 1);
});

Deno.test("limits: buffered bytes per peer: unread messages above the limit close with 0x15", async () => {
  await using a = await node(0);
  await using b = await node(1, { maxMessageBytes: 1000, maxBufferedBytesPerPeer: 3000 });
  const remote = await a.connectPeer(addr(b));
  // Three fit (3000 bytes unread); the fourth would be 4000.
  for (let i = 0; i < 3; i++) await a.send(remote, { type: "vertex", data: new Uint8Array(1000) });
  assertEquals(b.getStats(a.peerId).bufferedBytes, 3000);
  const dropped = nextEvent(b, "peer:disconnected");
  const fourth = await assertRejects(
    () => a.send(remote, { type: "vertex", data: new Uint8Array(1000) }),
    ConnectionClosedError,
  );
  assertEquals(fourth.errorCode, APP_ERROR_BUFFER_FULL);
  assertEquals(((await dropped).detail.error as NetworkError).code, "ERR_LIMIT_EXCEEDED");
  assertEquals(violations(b).bufferedBytesPerPeer, 1);
  // What was accepted before the close is still delivered.
  let n = 0;
  for await (const { from } of b.messages()) {
    assert(from.equals(a.peerId));
    if (++n === 3) break;
  }
});

Deno.test("limits: taking messages frees a peer's buffer: a long stream of reads never trips it", async () => {
  await using a = await node(0);
  await using b = await node(1, { maxMessageBytes: 1000, maxBufferedBytesPerPeer: 3000 });
  const remote = await a.connectPeer(addr(b));
  const reading = (async () => {
    let n = 0;
    for await (const _ of b.messages()) if (++n === 100) break;
    return n;
  })();
  for (let i = 0; i < 100; i++) {
    await a.send(remote, { type: "vertex", data: new Uint8Array(1000) });
  }
  assertEquals(await within(reading, 10_000, "100 messages read"), 100);
  assertEquals(violations(b).bufferedBytesPerPeer, 0);
  const stats = b.getStats(a.peerId);
  assertEquals(stats.bufferedBytes, 0);
  assert(stats.receiveBytesPerSecond > 0, `receive rate ${stats.receiveBytesPerSecond}`);
  assert(a.getStats(remote).sendBytesPerSecond > 0);
  assert(a.stats().sendBytesPerSecond > 0 && b.stats().receiveBytesPerSecond > 0);
});

Deno.test("limits: idle: a connection without messages closes with 0x18; messages keep it, pings do not", async () => {
  const config = { idleTimeoutMs: 600, keepAliveIntervalSecs: 0.15 };
  await using a = await node(0, config);
  await using b = await node(1, config);
  const remote = await a.connectPeer(addr(b));
  // 1.2 s of messages every 150 ms: twice the idle timeout, and the connection stays.
  for (let i = 0; i < 8; i++) {
    await a.send(remote, { type: "consensus", data: new Uint8Array([i]) });
    await new Promise((r) => setTimeout(r, 150));
  }
  assertEquals(a.peers().length, 1);
  const dropped = nextEvent(a, "peer:disconnected", () => true, 5000);
  const started = performance.now();
  const error = (await dropped).detail.error;
  const waited = performance.now() - started;
  assertEquals(codeOf(error), APP_ERROR_IDLE_TIMEOUT);
  assert(waited < 3000, `closed after ${waited} ms`);
  await within(
    (async () => {
      while (b.peers().length > 0) await new Promise((r) => setTimeout(r, 10));
    })(),
    5000,
    "b drops the peer too",
  );
  assertEquals(a.stats().idleClosed + b.stats().idleClosed >= 1, true);
});

Deno.test("limits: idle: protected peers are never closed for idleness", async () => {
  await using hub = await node(0, { idleTimeoutMs: 500, keepAliveIntervalSecs: 0.1 });
  // The spokes' own idle timeout is long, so only the hub's decides.
  const spoke = { idleTimeoutMs: 60_000, keepAliveIntervalSecs: 0.1 };
  await using validator = await node(1, spoke);
  await using other = await node(2, spoke);
  hub.protect(validator.peerId, "validator");
  await validator.connectPeer(addr(hub));
  await other.connectPeer(addr(hub));
  const dropped = await nextEvent(other, "peer:disconnected", () => true, 5000);
  assertEquals(codeOf(dropped.detail.error), APP_ERROR_IDLE_TIMEOUT);
  await new Promise((r) => setTimeout(r, 1000)); // two more idle periods
  assertEquals(hub.peers().map((p) => p.peerId.toString()), [validator.peerId.toString()]);
  assertEquals(hub.stats().idleClosed, 1);
  // Unprotected, the validator idles out too.
  const gone = nextEvent(validator, "peer:disconnected", () => true, 5000);
  assert(hub.unprotect(validator.peerId, "validator"));
  assertEquals(codeOf((await gone).detail.error), APP_ERROR_IDLE_TIMEOUT);
  assertEquals(hub.stats().idleClosed, 2);
});

Deno.test("limits: limit options are validated naming field, rule and value", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ maxInboundPerIp: 0 }, "maxInboundPerIp"],
    [{ maxPendingHandshakes: 1.5 }, "maxPendingHandshakes"],
    [{ maxStreamsPerPeer: -1 }, "maxStreamsPerPeer"],
    [{ maxMessageBytes: 2048, maxBufferedBytesPerPeer: 1024 }, "maxBufferedBytesPerPeer"],
    [{ maxPeerBandwidthBps: 0 }, "maxPeerBandwidthBps"],
  ];
  for (const [config, field] of cases) {
    let error: unknown;
    try {
      resolveNetworkConfig(config);
    } catch (e) {
      error = e;
    }
    assert(error instanceof InvalidConfigError, `${field}: ${error}`);
    assertEquals(error.field, field);
    assert(error.message.includes("current value is"), error.message);
  }
  const c = resolveNetworkConfig({ maxMessageBytes: 32 * 1024 * 1024 });
  assertEquals(
    [c.maxInboundPerIp, c.maxPendingHandshakes, c.maxStreamsPerPeer, c.maxPeerBandwidthBps],
    [8, 64, 256, Infinity],
  );
  assertEquals(c.maxBufferedBytesPerPeer, 32 * 1024 * 1024);
  assertEquals(resolveNetworkConfig({ maxInboundPerIp: Infinity }).maxInboundPerIp, Infinity);
});
