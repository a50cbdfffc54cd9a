/**
 * Handshake slots and rates (issue 17 item 2) over real QUIC on loopback: rates per address
 * and prefix, silent connections, and a local testnet's 50 nodes on one machine joining one
 * node with the default limits (issue 15 item 3).
 */

import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { ConnectionClosedError } from "../../src/errors.ts";
import { APP_ERROR_HANDSHAKE_RATE } from "../../src/pool/limits.ts";
import type { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { APP_ERROR_HANDSHAKE_TIMEOUT } from "../../src/transport/close_codes.ts";
import type { QuicTransport } from "../../src/transport/transport.ts";
import { addr, node, silentDialer, within } from "./_util.ts";

/** QUIC's transport error CONNECTION_REFUSED (RFC 9000 20.1). */
const CONNECTION_REFUSED = 0x2;

Deno.test("handshake limits: a burst from one address beyond its bucket is refused with 0x16", async () => {
  await using hub = await node(0, {
    limitLoopback: true,
    inboundHandshakeBurstPerIp: 2,
    inboundHandshakeRatePerIp: 0.001,
  });
  const spokes: QuicTransport[] = [];
  try {
    for (let i = 1; i <= 3; i++) spokes.push(await node(i));
    await spokes[0].connectPeer(addr(hub));
    await spokes[1].connectPeer(addr(hub));
    const refused = await assertRejects(
      () => spokes[2].connectPeer(addr(hub)),
      ConnectionClosedError,
    );
    assertEquals(refused.errorCode, APP_ERROR_HANDSHAKE_RATE);
    assertEquals(hub.stats().handshakesRateLimited, 1);
    assertEquals(hub.peers().length, 2);
  } finally {
    await Promise.all(spokes.map((s) => s.close()));
  }
});

Deno.test("handshake limits: told once with 0x16, a source over its rate is then refused before TLS", async () => {
  await using hub = await node(0, {
    limitLoopback: true,
    inboundHandshakeBurstPerIp: 1,
    inboundHandshakeRatePerIp: 0.01,
  });
  await using a = await node(1);
  await using b = await node(2);
  // Patient: the refusal must come as a close, not as a timeout.
  await using c = await node(3, { connectionTimeoutMs: 60_000, handshakeTimeoutMs: 60_000 });
  await a.connectPeer(addr(hub));
  const told = await assertRejects(() => b.connectPeer(addr(hub)), ConnectionClosedError);
  assertEquals(told.errorCode, APP_ERROR_HANDSHAKE_RATE);
  const endpoint = hub.datagramPort as QuicEndpoint;
  const accepted = endpoint.stats().connectionsAccepted;
  // 127.0.0.1 owes a token for 100 s: its next attempt costs no TLS and no connection state,
  // and is refused in a stateless Initial packet (a transport close: CONNECTION_REFUSED).
  const refused = await within(
    c.connectPeer(addr(hub)).then(() => undefined, (e: Error) => e),
    15_000,
    "the refused dial",
  );
  assert(refused instanceof ConnectionClosedError, String(refused));
  assertEquals([refused.isApp, refused.errorCode], [false, CONNECTION_REFUSED]);
  assert(refused.reason.startsWith("Too many new handshakes from 127.0.0.1"), refused.reason);
  assertEquals(endpoint.stats().connectionsAccepted, accepted);
  assertEquals(hub.stats().handshakesRateLimited >= 2, true);
  assertEquals(hub.peers().length, 1);
});

Deno.test("handshake limits: a silent connection is closed early, and gives its slot to a newcomer", async () => {
  await using hub = await node(0, { maxPendingHandshakes: 1, silentHandshakeTimeoutMs: 60_000 });
  await using raw = await silentDialer();
  const target = { hostname: "127.0.0.1", port: hub.localAddr.port };
  const silent = await raw.connect(target);
  await within(
    (async () => {
      while (hub.stats().pendingHandshakes < 1) await new Promise((r) => setTimeout(r, 10));
    })(),
    5000,
    "the silent connection holds the slot",
  );
  // A real peer arrives while the only slot is held by a silent connection: it gets in.
  await using peer = await node(1);
  assert((await peer.connectPeer(addr(hub))).equals(hub.peerId));
  const closed = await within(silent.closed, 5000, "the silent connection is closed");
  assertEquals([closed.isApp, closed.errorCode], [true, APP_ERROR_HANDSHAKE_TIMEOUT]);
  assertEquals(hub.stats().silentHandshakesClosed, 1);
  assertEquals(hub.stats().limitViolations.pendingHandshakes, 0);
});

Deno.test("handshake limits: silence past silentHandshakeTimeoutMs closes long before handshakeTimeoutMs", async () => {
  await using hub = await node(0, { silentHandshakeTimeoutMs: 200, handshakeTimeoutMs: 60_000 });
  await using raw = await silentDialer();
  const silent = await raw.connect({ hostname: "127.0.0.1", port: hub.localAddr.port });
  // Bounded by the test's own 10 s, far below the 60 s handshake timeout.
  const closed = await within(silent.closed, 10_000, "the silent connection is closed");
  assertEquals(closed.errorCode, APP_ERROR_HANDSHAKE_TIMEOUT);
  assertEquals(hub.stats().pendingHandshakes, 0);
});

Deno.test("handshake limits: 50 nodes on one machine join one node over loopback with the default limits", async () => {
  await using hub = await node(0);
  const spokes: QuicTransport[] = [];
  try {
    for (let i = 1; i <= 50; i++) spokes.push(await node(i));
    // All at once, as a testnet started by a script does.
    const joined = await within(
      Promise.allSettled(spokes.map((s) => s.connectPeer(addr(hub)))),
      120_000,
      "50 dials settle",
    );
    const failures = joined.filter((r) => r.status === "rejected");
    assertEquals(failures.map((r) => String((r as PromiseRejectedResult).reason)), []);
    assertEquals(hub.peers().length, 50);
    const stats = hub.stats();
    assertEquals([stats.handshakesRateLimited, stats.silentHandshakesClosed], [0, 0]);
    assertEquals(Object.values(stats.limitViolations).every((n) => n === 0), true);
    const results = await hub.broadcast({ type: "consensus", data: new Uint8Array([5]) });
    assertEquals(results.filter((r) => !r.ok).length, 0);
  } finally {
    await Promise.all(spokes.map((s) => s.close()));
  }
});
