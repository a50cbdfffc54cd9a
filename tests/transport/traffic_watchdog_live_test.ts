/**
 * The traffic watchdog over real QUIC on loopback (issue 17 item 7): an authenticated peer
 * that makes the node receive packets without application data is closed with
 * APP_ERROR_TRAFFIC_WATCHDOG; a peer that sends as much useful data is not. The watchdog's
 * 10 s intervals run on a virtual clock; the packets are real.
 */

import { assert, assertEquals } from "../_assert.ts";
import { ConnectionClosedError } from "../../src/errors.ts";
import { APP_ERROR_TRAFFIC_WATCHDOG } from "../../src/pool/limits.ts";
import { quicheOf } from "../../src/quic/connection.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { VirtualClock } from "../_virtual_clock.ts";
import { rawPeer } from "./_raw_peer.ts";
import { addr, identity, node, within } from "./_util.ts";

const INTERVAL_MS = 10_000;
/** Beyond the watchdog's 256 KiB allowance of overhead per interval. */
const OVERHEAD_PER_INTERVAL = 400 * 1024;

async function watchedNode(clock: VirtualClock): Promise<QuicTransport> {
  const transport = new QuicTransport({
    identity: identity(1),
    config: { listenAddr: "127.0.0.1", quicPort: 0, pqEncryption: false },
    clock,
  });
  await transport.bindAndListen();
  return transport;
}

Deno.test("watchdog live: a peer flooding packets without data is closed with 0x17 after three intervals", async () => {
  const clock = new VirtualClock();
  await using victim = await watchedNode(clock);
  await using raw = await rawPeer(victim, identity(2), false);
  const quiche = quicheOf(raw.conn);
  await clock.advance(INTERVAL_MS); // the baseline sample
  const deadline = performance.now() + 20_000;
  for (let interval = 1; interval <= 3 && raw.conn.closedError === undefined; interval++) {
    // PING-only packets: acknowledged, counted by quiche, no application data.
    const target = raw.conn.stats().bytesSent + OVERHEAD_PER_INTERVAL;
    while (raw.conn.stats().bytesSent < target && performance.now() < deadline) {
      for (let i = 0; i < 32; i++) {
        quiche.sendAckEliciting();
        raw.conn.flush();
      }
      await new Promise((r) => setTimeout(r, 0));
    }
    assert(performance.now() < deadline, "the flood took too long");
    await clock.advance(INTERVAL_MS);
  }
  const closed = await within(raw.conn.closed, 5000, "the victim closes the flooder");
  assert(closed instanceof ConnectionClosedError);
  assertEquals(closed.errorCode, APP_ERROR_TRAFFIC_WATCHDOG);
  assertEquals(victim.stats().watchdogClosed, 1);
});

Deno.test("watchdog live: a peer sending as many bytes of messages stays connected", async () => {
  const clock = new VirtualClock();
  await using victim = await watchedNode(clock);
  await using honest = await node(2, { pqEncryption: false });
  const draining = (async () => {
    for await (const _ of victim.messages());
  })();
  const remote = await honest.connectPeer(addr(victim));
  await clock.advance(INTERVAL_MS);
  for (let interval = 1; interval <= 4; interval++) {
    for (let i = 0; i < 8; i++) {
      await honest.send(remote, { type: "vertex", data: new Uint8Array(64 * 1024) });
    }
    await clock.advance(INTERVAL_MS);
  }
  assertEquals(victim.stats().watchdogClosed, 0);
  assertEquals(victim.peers().length, 1);
  await victim.close();
  await draining;
});
