/**
 * Raw-datagram fuzzing of a live node: random bytes and seeded mutations of a real connection's
 * datagrams (Initial, Handshake and 1-RTT packets recorded by a relay) sent at a
 * `QuicTransport`'s socket from several loopback addresses. The node must stay up, keep serving
 * a legitimate peer, accept a new one, and keep its memory bounded.
 *
 * @module
 */

import { assert, assertEquals } from "../_assert.ts";
import { Prng } from "../_prng.ts";
import { addr, node, within } from "../transport/_util.ts";
import { recordingRelay, rssBytes, stillServes } from "./_live.ts";
import { mutate, randomInput } from "./_mutate.ts";

const DATAGRAMS = 6000;
const SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
/** RSS growth allowed over the flood: far below what unbounded state per datagram would take. */
const MAX_RSS_GROWTH_BYTES = 96 * 1024 * 1024;

Deno.test("fuzz: random and mutated datagrams at a live node's socket leave it serving peers", async () => {
  await using victim = await node(0);
  await using legit = await node(1);
  await legit.connectPeer(addr(victim));

  // A real connection through a recording relay: its datagrams are the seeds.
  const relay = recordingRelay(victim.localAddr.port);
  await using recorded = await node(2);
  await recorded.connectPeer(`127.0.0.1:${relay.port}`);
  await recorded.ping(victim.peerId);
  const seeds = [...relay.fromClient];
  assert(seeds.length >= 4, `only ${seeds.length} datagrams recorded`);

  const sockets = SOURCES.map((hostname) =>
    Deno.listenDatagram({ transport: "udp", hostname, port: 0 })
  );
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: victim.localAddr.port };
  const rng = new Prng(0x17_0008);
  const rssBefore = rssBytes();
  let sent = 0;
  try {
    for (let i = 0; i < DATAGRAMS; i++) {
      const datagram = rng.next() < 0.2
        ? randomInput(rng, 1500)
        : mutate(rng, rng.pick(seeds), seeds, 1500);
      if (datagram.byteLength === 0) continue;
      await sockets[i % sockets.length].send(datagram, to);
      sent++;
      // Let the node's receive loop run between bursts, as a real flood interleaves.
      if (i % 64 === 63) await new Promise((r) => setTimeout(r, 1));
    }
    const rssGrowth = rssBytes() - rssBefore;
    console.log(
      `sent ${sent} datagrams (${seeds.length} seeds); node RSS +${
        Math.round(rssGrowth / 1024)
      } KiB; peers ${victim.peers().length}; stats ${JSON.stringify(victim.stats())}`,
    );
    // Issue 17 (fix first): a datagram with a live connection id, unauthenticated, moves the
    // peer's address until real traffic arrives (harden-fix's test asserts the fix). Here: the
    // address seen after the flood, then that the peer's next real packets restore it.
    const addressOf = () =>
      victim.peers().find((p) => p.peerId.equals(recorded.peerId))?.addresses.join();
    console.log(`recorded peer after the flood: ${addressOf()} (real: ${relay.targetSidePort})`);
    await within(recorded.ping(victim.peerId), 5000, "ping of the recorded peer");
    assertEquals(addressOf(), `127.0.0.1:${relay.targetSidePort}`);

    await stillServes(victim, legit);
    // A new peer still gets in.
    await using late = await node(3);
    await within(late.connectPeer(addr(victim)), 10_000, "a new peer connects after the flood");
    assert(victim.peers().some((p) => p.peerId.equals(late.peerId)));
    assert(victim.peers().some((p) => p.peerId.equals(legit.peerId)));
    assert(rssGrowth < MAX_RSS_GROWTH_BYTES, `RSS grew by ${rssGrowth} bytes`);
    assertEquals(sent > DATAGRAMS * 0.9, true);
  } finally {
    for (const s of sockets) s.close();
    await relay[Symbol.asyncDispose]();
  }
});
