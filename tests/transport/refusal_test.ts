/**
 * A dialer the node refuses hears why, over real QUIC on loopback (issue 17): for each refusal
 * path (no identity binding, a banned peer id, the connection gate, and too many handshakes:
 * the rate, connections per address, handshake slots) the dial fails with the refusal's close
 * code, as a first dial and as a resumed one (a dialer that was connected before resumes its
 * TLS session; the limits then refuse it in 0-RTT, before the node's QUIC handshake completed,
 * where quiche 0.18 never sent the close). The dialers' timeouts are 60 s: a lost close fails
 * the test's own bound, not a timeout error.
 *
 * @module
 */

import { assert, assertEquals } from "../_assert.ts";
import { ConnectionClosedError, NetworkError } from "../../src/errors.ts";
import {
  APP_ERROR_BANNED,
  APP_ERROR_HANDSHAKE_RATE,
  APP_ERROR_NOT_ALLOWED,
  APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP,
  APP_ERROR_TOO_MANY_PENDING_HANDSHAKES,
} from "../../src/pool/limits.ts";
import { generateCertificate } from "../../src/quic/certificate.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import { APP_ERROR_HANDSHAKE_FAILED } from "../../src/transport/close_codes.ts";
import type { NetworkConfig } from "../../src/transport/config.ts";
import { type ConnectionGate, QuicTransport } from "../../src/transport/transport.ts";
import { addr, identity, nextEvent, node, silentDialer, within } from "./_util.ts";

/** Timeouts no refusal should come near. */
const PATIENT: NetworkConfig = { handshakeTimeoutMs: 60_000, connectionTimeoutMs: 60_000 };
/** How long a refused dial may take in these tests: far below the timeouts above. */
const HEARD_WITHIN_MS = 15_000;

/** A patient node on 127.0.0.1 whose gate is `gate`. */
async function gated(i: number, gate: ConnectionGate): Promise<QuicTransport> {
  const transport = new QuicTransport({
    identity: identity(i),
    config: { ...PATIENT, listenAddr: "127.0.0.1", quicPort: 0 },
    gate,
  });
  await transport.bindAndListen();
  return transport;
}

/** The close a dial ended with; fails when it connected or failed another way. */
async function refusal(dial: Promise<unknown>, what: string): Promise<ConnectionClosedError> {
  const outcome = await within(dial.then(() => undefined, (e: Error) => e), HEARD_WITHIN_MS, what);
  assert(outcome instanceof ConnectionClosedError, `${what}: ${outcome ?? "connected"}`);
  return outcome;
}

/**
 * A node's count of open QUIC connections once it reaches `expected` (closed ones drain for
 * three probe timeouts first; a dialer's TLS session is kept when its connection is gone).
 */
async function settledConnections(t: QuicTransport, expected: number): Promise<number> {
  const endpoint = t.datagramPort as QuicEndpoint;
  for (let i = 0; i < 200 && endpoint.stats().openConnections !== expected; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  return endpoint.stats().openConnections;
}

Deno.test("refusal: a certificate without an identity binding is refused with 0x21, every time", async () => {
  await using victim = await node(0, PATIENT);
  // As large as a node's certificate (6.8 KiB), so that the node's refusal in 0-RTT meets a
  // full congestion window, the case quiche 0.18 never sent the close in.
  const certificate = await generateCertificate({
    extensions: [{ oid: Uint8Array.of(0x2b, 0x06, 0x01, 0x04, 0x01), value: new Uint8Array(7000) }],
  });
  await using raw = await QuicEndpoint.bind({
    hostname: "127.0.0.1",
    certificate,
    idleTimeoutMs: 60_000,
  });
  const target = { hostname: "127.0.0.1", port: victim.localAddr.port };
  // A refused connection leaves no TLS session: the second dial is a full handshake again.
  for (const round of ["first", "second"]) {
    const closed = await refusal(
      raw.connect(target, { timeoutMs: 60_000 }).then((conn) =>
        conn.closed.then((e) => {
          throw e;
        })
      ),
      `${round} dial`,
    );
    assertEquals([closed.isApp, closed.errorCode], [true, APP_ERROR_HANDSHAKE_FAILED], round);
    assert(closed.reason.includes("binding"), `${round}: ${closed.reason}`);
  }
  assertEquals(victim.peers().length, 0);
  assertEquals(victim.stats().pendingHandshakes, 0);
  assertEquals(await settledConnections(victim, 0), 0);
});

Deno.test("refusal: a banned peer id is refused with 0x1c, first and resumed", async () => {
  await using a = await node(0, PATIENT);
  await using b = await node(1, PATIENT);
  await b.connectPeer(addr(a));
  const gone = nextEvent(b, "peer:disconnected");
  a.ban(b.peerId, 60_000, "equivocation");
  // b's connection is closed by the ban; its next dial resumes the TLS session.
  assertEquals(((await gone).detail.error as ConnectionClosedError).errorCode, APP_ERROR_BANNED);
  // Its TLS session is kept once the closed connection has drained.
  assertEquals(await settledConnections(b, 0), 0);
  const resumed = await refusal(b.connectPeer(addr(a)), "resumed dial");
  assertEquals([resumed.isApp, resumed.errorCode], [true, APP_ERROR_BANNED]);
  // The same identity from a new process: no session to resume.
  await using again = await node(1, PATIENT);
  const first = await refusal(again.connectPeer(addr(a)), "first dial");
  assertEquals([first.isApp, first.errorCode], [true, APP_ERROR_BANNED]);
  assertEquals(a.peers().length, 0);
  assertEquals(await settledConnections(a, 0), 0);
});

Deno.test("refusal: the connection gate's refusal is 0x1b, first and resumed", async () => {
  let open = true;
  await using a = await gated(0, () => open);
  await using c = await node(2, PATIENT);
  await c.connectPeer(addr(a));
  await c.disconnectPeer(a.peerId);
  assertEquals(await settledConnections(c, 0), 0);
  open = false;
  const resumed = await refusal(c.connectPeer(addr(a)), "resumed dial");
  assertEquals([resumed.isApp, resumed.errorCode], [true, APP_ERROR_NOT_ALLOWED]);
  await using fresh = await node(3, PATIENT);
  const first = await refusal(fresh.connectPeer(addr(a)), "first dial");
  assertEquals([first.isApp, first.errorCode], [true, APP_ERROR_NOT_ALLOWED]);
  assertEquals(a.peers().length, 0);
  assertEquals(await settledConnections(a, 0), 0);
});

Deno.test("refusal: a source over its handshake rate is refused with 0x16, first and resumed", async () => {
  // One handshake per address, then one per 1000 s; the node refuses at QUIC handshake time,
  // before any identity-handshake work.
  await using hub = await node(0, {
    ...PATIENT,
    limitLoopback: true,
    inboundHandshakeBurstPerIp: 1,
    inboundHandshakeRatePerIp: 0.001,
  });
  const dialers: QuicTransport[] = [];
  const dialer = async (i: number, hostname: string) => {
    const t = await node(i, { ...PATIENT, listenAddr: hostname });
    dialers.push(t);
    return t;
  };
  try {
    // 127.0.0.2 used its handshake, disconnected, and comes back with its TLS session.
    const returning = await dialer(1, "127.0.0.2");
    await returning.connectPeer(addr(hub));
    await returning.disconnectPeer(hub.peerId);
    assertEquals(await settledConnections(returning, 0), 0);
    const resumed = await refusal(returning.connectPeer(addr(hub)), "resumed dial");
    assertEquals([resumed.isApp, resumed.errorCode], [true, APP_ERROR_HANDSHAKE_RATE]);
    // 127.0.0.3's handshake is taken by another node: a second node there has no session.
    await (await dialer(2, "127.0.0.3")).connectPeer(addr(hub));
    const first = await refusal((await dialer(3, "127.0.0.3")).connectPeer(addr(hub)), "first");
    assertEquals([first.isApp, first.errorCode], [true, APP_ERROR_HANDSHAKE_RATE]);
    assert(first.reason.length > 0, "the close names the rate");
    assertEquals(hub.stats().handshakesRateLimited, 2);
    assertEquals(hub.peers().length, 1);
    assertEquals(await settledConnections(hub, 1), 1);
  } finally {
    await Promise.all(dialers.map((t) => t.close()));
  }
});

Deno.test("refusal: one connection too many from an address is refused with 0x11, first and resumed", async () => {
  await using hub = await node(0, { ...PATIENT, limitLoopback: true, maxInboundPerIp: 1 });
  const dialers: QuicTransport[] = [];
  const dialer = async (i: number) => {
    const t = await node(i, { ...PATIENT, listenAddr: "127.0.0.2" });
    dialers.push(t);
    return t;
  };
  try {
    // A node connects and leaves with a TLS session; another takes 127.0.0.2's one connection.
    const returning = await dialer(1);
    await returning.connectPeer(addr(hub));
    await returning.disconnectPeer(hub.peerId);
    assertEquals(await settledConnections(returning, 0), 0);
    assertEquals(await settledConnections(hub, 0), 0);
    await (await dialer(2)).connectPeer(addr(hub));
    const resumed = await refusal(returning.connectPeer(addr(hub)), "resumed dial");
    assertEquals(resumed.errorCode, APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP);
    // The refused connection counts until it has drained: with it, the endpoint's own bound
    // (twice the limit, half-open included) would refuse the next dial before TLS instead.
    assertEquals(await settledConnections(hub, 1), 1);
    const first = await refusal((await dialer(3)).connectPeer(addr(hub)), "first dial");
    assertEquals(first.errorCode, APP_ERROR_TOO_MANY_CONNECTIONS_FROM_IP);
    assertEquals(hub.peers().length, 1);
    assertEquals(await settledConnections(hub, 1), 1);
  } finally {
    await Promise.all(dialers.map((t) => t.close()));
  }
});

Deno.test("refusal: a full set of handshake slots refuses with 0x12, first and resumed", async () => {
  await using hub = await node(0, { ...PATIENT, maxPendingHandshakes: 1 });
  await using returning = await node(1, PATIENT);
  await returning.connectPeer(addr(hub));
  await returning.disconnectPeer(hub.peerId);
  assertEquals(await settledConnections(returning, 0), 0);
  // The only slot is held by a dialer that started its handshake (a stream, one byte) and
  // stalls: not silent, so it is not given up for a newcomer.
  await using staller = await silentDialer();
  const stalled = await staller.connect({ hostname: "127.0.0.1", port: hub.localAddr.port });
  await (await stalled.openBidi()).write(new Uint8Array([0]));
  for (let i = 0; i < 200 && hub.stats().pendingHandshakes < 1; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assertEquals(hub.stats().pendingHandshakes, 1);
  const resumed = await refusal(returning.connectPeer(addr(hub)), "resumed dial");
  assertEquals(resumed.errorCode, APP_ERROR_TOO_MANY_PENDING_HANDSHAKES);
  await using fresh = await node(2, PATIENT);
  const first = await refusal(fresh.connectPeer(addr(hub)), "first dial");
  assertEquals(first.errorCode, APP_ERROR_TOO_MANY_PENDING_HANDSHAKES);
  assertEquals(hub.peers().length, 0);
});

Deno.test("refusal: errors name the close, not a timeout", async () => {
  // The typed error a refused dialer gets carries the code and says who refused.
  await using a = await gated(0, () => false);
  await using b = await node(1, PATIENT);
  const refused = await refusal(b.connectPeer(addr(a)), "gated dial");
  assert(refused instanceof NetworkError);
  assertEquals(refused.code, "ERR_CONNECTION_CLOSED");
  assert(refused.message.includes(`code ${APP_ERROR_NOT_ALLOWED}`), refused.message);
});
