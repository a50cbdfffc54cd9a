/**
 * Identity-handshake resumption (docs/handshake.md, "Resumption") through `QuicTransport`, over
 * real QUIC on loopback: a reconnect to a node's run resumes on both ends, a restarted node is
 * met with the full handshake.
 */

import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { NetworkError } from "../../src/errors.ts";
import type { QuicTransport } from "../../src/transport/transport.ts";
import type { PeerId } from "../../src/identity/peer_id.ts";
import { QuicConnection } from "../../src/quic/connection.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { addr, nextEvent, node, within } from "./_util.ts";

/** Sends one vertex each way and checks that each arrives from the right peer, intact. */
async function exchange(a: QuicTransport, b: QuicTransport, tag: number): Promise<void> {
  const onB = nextMessage(b, a.peerId);
  const onA = nextMessage(a, b.peerId);
  await within(a.send(b.peerId, { type: "vertex", data: Uint8Array.of(tag, 1) }), 5000, "a->b");
  await within(b.send(a.peerId, { type: "vertex", data: Uint8Array.of(tag, 2) }), 5000, "b->a");
  assertEquals(await within(onB, 5000, "b receives"), Uint8Array.of(tag, 1));
  assertEquals(await within(onA, 5000, "a receives"), Uint8Array.of(tag, 2));
}

async function nextMessage(t: QuicTransport, from: PeerId): Promise<Uint8Array> {
  for await (const { from: sender, message } of t.messages()) {
    assert(sender.equals(from), `a message from ${sender}, expected ${from}`);
    assert(message.type === "vertex", `a ${message.type}, expected a vertex`);
    return message.data;
  }
  throw new Error("the message stream ended");
}

/** Disconnects `a` from `b` and waits until `b` has seen it too. */
async function disconnect(a: QuicTransport, b: QuicTransport): Promise<void> {
  const gone = nextEvent(b, "peer:disconnected", (e) => e.detail.peerId.equals(a.peerId));
  await a.disconnectPeer(b.peerId);
  await gone;
}

const resumedCount = (...ts: QuicTransport[]) => ts.map((t) => t.stats().handshakesResumed);

/** Runs `fn`, recording for each stream a listener accepts whether it began as 0-RTT data. */
async function recordEarlyStreams(fn: () => Promise<unknown>): Promise<boolean[]> {
  const original = QuicConnection.prototype.acceptBidi;
  const early: boolean[] = [];
  QuicConnection.prototype.acceptBidi = async function (this: QuicConnection) {
    const stream: QuicStream = await original.call(this);
    early.push(stream.early);
    return stream;
  };
  try {
    await fn();
  } finally {
    QuicConnection.prototype.acceptBidi = original;
  }
  return early;
}

Deno.test("resumption: a reconnect to the same run resumes on both ends and carries messages", async () => {
  await using a = await node(0);
  await using b = await node(1);
  assert((await a.connectPeer(addr(b))).equals(b.peerId));
  assertEquals(resumedCount(a, b), [0, 0], "the first connection is a full handshake");
  await exchange(a, b, 1);
  await disconnect(a, b);

  const connected = nextEvent(b, "peer:connected", (e) => e.detail.peerId.equals(a.peerId));
  assert((await a.connectPeer(addr(b))).equals(b.peerId));
  assertEquals((await connected).detail.direction, "inbound");
  assertEquals(resumedCount(a, b), [1, 1], "both ends resumed the second connection");
  assertEquals([a.peers().length, b.peers().length], [1, 1]);
  await exchange(a, b, 2);
  await disconnect(a, b);

  // The other direction has its own ticket: b dialing a resumes too.
  assert((await b.connectPeer(addr(a))).equals(a.peerId));
  assertEquals(resumedCount(a, b), [2, 2], "the reverse dial resumed on both ends");
  await exchange(a, b, 3);
});

Deno.test("resumption: a reconnect sends its resuming ClientHello as 0-RTT data; a first dial does not", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const first = await recordEarlyStreams(() => a.connectPeer(addr(b)));
  assertEquals(first, [false], "no TLS session yet: the ClientHello waits for the handshake");
  await exchange(a, b, 1);
  await disconnect(a, b);
  const again = await recordEarlyStreams(() => a.connectPeer(addr(b)));
  assertEquals(again, [true], "the handshake stream began in 0-RTT");
  assertEquals(resumedCount(a, b), [1, 1]);
  await exchange(a, b, 2);
});

/**
 * Node 1 meets `a` (which keeps its TLS session and tickets) and closes; returns its port and
 * id once `a` has seen it go.
 */
async function metAndGone(a: QuicTransport): Promise<{ port: number; peerId: PeerId }> {
  const b = await node(1);
  const met = { port: b.localAddr.port, peerId: b.peerId };
  try {
    await a.connectPeer(addr(b));
    await exchange(a, b, 1);
  } finally {
    const gone = nextEvent(a, "peer:disconnected", (e) => e.detail.peerId.equals(b.peerId));
    await b.close();
    await gone;
  }
  return met;
}

Deno.test("resumption: a restarted listener (same identity) is met with the full handshake", async () => {
  await using a = await node(0);
  const { port } = await metAndGone(a);
  // The ticket a holds names b's old certificate; the new run on the same port has another
  // certificate and no tickets.
  await using again = await node(1, { quicPort: port });
  assertEquals(again.localAddr.port, port);
  assert((await a.connectPeer(addr(again))).equals(again.peerId));
  assertEquals(resumedCount(a, again), [0, 0], "no resumption with a new run of b");
  await exchange(a, again, 2);
  await disconnect(a, again);
  // And the run that just met a resumes the next time.
  await a.connectPeer(addr(again));
  assertEquals(resumedCount(a, again), [1, 1]);
  await exchange(a, again, 3);
});

Deno.test("resumption: another node at the address of a resumed TLS session: the early dial fails with a typed error, the next one connects", async () => {
  await using a = await node(0);
  const { port, peerId: b } = await metAndGone(a);
  // a holds b's TLS session and a ticket for b's run: its resuming ClientHello goes out in
  // 0-RTT, addressed to b; c, another node on b's port, answers HelloRetry and TLS shows c.
  await using c = await node(2, { quicPort: port });
  const e = await assertRejects(() => a.connectPeer(addr(c)), NetworkError, "Another node");
  assertEquals(e.code, "ERR_HANDSHAKE_FAILED");
  assert(e.message.includes(c.peerId.toString()) && e.message.includes(b.toString()));
  assert((await a.connectPeer(addr(c))).equals(c.peerId), "the next dial meets c");
  await exchange(a, c, 2);
});

Deno.test("resumption: simultaneous resuming dials end with one working connection on both sides", async () => {
  await using a = await node(0);
  await using b = await node(1);
  await a.connectPeer(addr(b));
  for (let round = 0; round < 3; round++) {
    await disconnect(a, b);
    const [toB, toA] = await within(
      Promise.all([a.connectPeer(addr(b)), b.connectPeer(addr(a))]),
      10_000,
      `round ${round}: both dials`,
    );
    assert(toB.equals(b.peerId) && toA.equals(a.peerId));
    assertEquals([a.peers().length, b.peers().length], [1, 1], `round ${round}`);
    assertEquals(a.peers()[0].direction === "outbound", b.peers()[0].direction === "inbound");
    await exchange(a, b, round);
    // Which dials resume depends on the interleaving (a resumed session replaces both ends'
    // tickets), but the first ClientHello a listener reads in round 0 finds its ticket.
    if (round === 0) {
      const [onA, onB] = resumedCount(a, b);
      assert(onA + onB >= 1, `a resumption in round 0: ${onA} + ${onB}`);
    }
  }
});
