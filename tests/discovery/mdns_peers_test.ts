/**
 * Peer table bookkeeping on an injected clock: discovery, updates, goodbyes, expiry and refresh
 * deadlines, limits. Time is a number the test moves; nothing sleeps.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PeerTable } from "../../src/discovery/mdns_peers.ts";
import {
  buildAnnouncement,
  type LocalService,
  parseResponse,
  type RecordLimits,
} from "../../src/discovery/mdns_records.ts";

const LIMITS: RecordLimits = { maxRecordSize: 1300, maxRecords: 64, isValidPeerId: () => true };

function service(n: number, over: Partial<LocalService> = {}): LocalService {
  return {
    instance: `node-${n}`,
    hostname: `host-${n}.local`,
    port: 9000 + n,
    peerId: `peer${n}`,
    version: "1",
    addresses: [`10.0.0.${n}`],
    ...over,
  };
}

const announce = (svc: LocalService, ttl = 120) =>
  parseResponse(buildAnnouncement(svc, ttl), LIMITS);

Deno.test("a complete announcement discovers a peer once; repeats only refresh it", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  const r = table.observe(announce(service(1)), 0);
  assert.deepEqual(r, {
    events: [{
      type: "discovered",
      peer: {
        peerId: "peer1",
        addresses: [{ hostname: "10.0.0.1", port: 9001 }],
        instance: "node-1",
        version: "1",
      },
    }],
    own: 0,
    incomplete: 0,
    overflow: 0,
  });
  assert.deepEqual(table.observe(announce(service(1)), 50_000).events, [], "same data: no event");
  assert.equal(table.size, 1);
  // The repeat at 50 s moved expiry to 170 s.
  assert.deepEqual(table.poll(169_999).events, []);
  assert.deepEqual(table.poll(170_000).events, [{ type: "expired", peerId: "peer1" }]);
  assert.equal(table.size, 0);
});

Deno.test("expiry and refresh deadlines follow the shortest TTL, as RFC 6762 section 5.2 asks", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  table.observe(announce(service(1), 100), 1000);
  assert.equal(table.nextDeadline(), 1000 + 80_000, "first refresh at 80% of the TTL");
  assert.deepEqual(table.poll(80_999), { events: [], refresh: false });
  assert.deepEqual(table.poll(81_000), { events: [], refresh: true });
  assert.equal(table.nextDeadline(), 1000 + 90_000, "second refresh at 90%");
  assert.deepEqual(table.poll(91_000), { events: [], refresh: true });
  assert.equal(table.nextDeadline(), 101_000, "then expiry");
  assert.deepEqual(table.poll(100_999), { events: [], refresh: false });
  assert.deepEqual(table.poll(101_000).events, [{ type: "expired", peerId: "peer1" }]);
  assert.equal(table.nextDeadline(), undefined);
});

Deno.test("a late refresh that skips a stage still asks once, and an answer resets the stages", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  table.observe(announce(service(1), 100), 0);
  assert.deepEqual(table.poll(95_000), { events: [], refresh: true });
  assert.deepEqual(table.poll(96_000), { events: [], refresh: false });
  table.observe(announce(service(1), 100), 97_000);
  assert.equal(table.nextDeadline(), 97_000 + 80_000);
});

Deno.test("a goodbye expires the peer at once; a goodbye for an unknown instance is ignored", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  table.observe(announce(service(1)), 0);
  assert.deepEqual(table.observe(announce(service(2), 0), 10).events, []);
  assert.deepEqual(table.observe(announce(service(1), 0), 10).events, [
    { type: "expired", peerId: "peer1" },
  ]);
  assert.equal(table.size, 0);
});

Deno.test("our own peer id is counted and ignored, even with a different instance name", () => {
  const table = new PeerTable({ ownPeerId: "peer1", maxPeers: 8 });
  const r = table.observe(announce(service(1, { instance: "renamed" })), 0);
  assert.deepEqual([r.events, r.own], [[], 1]);
  assert.deepEqual(table.observe(announce(service(1), 0), 1).events, [], "own goodbye too");
});

Deno.test("changed port, addresses or version re-emit discovered; partial updates merge", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  table.observe(announce(service(1)), 0);
  const moved = table.observe(announce(service(1, { port: 7000, addresses: ["10.0.0.9"] })), 1);
  assert.deepEqual(moved.events.map((e) => e.type === "discovered" && e.peer.addresses), [
    [{ hostname: "10.0.0.9", port: 7000 }],
  ]);

  // A TXT-only packet (for example an answer to a TXT query) changes the version.
  const txtOnly = parseResponse({
    answers: [{
      name: "node-1._cretoai._udp.local",
      type: "TXT",
      ttl: 120,
      data: ["peer=peer1", "v=2"],
    }],
  }, LIMITS);
  const v2 = table.observe(txtOnly, 2);
  assert.equal(v2.events.length, 1);
  assert.equal(v2.events[0].type === "discovered" && v2.events[0].peer.version, "2");
  assert.equal(table.peers()[0].addresses[0].port, 7000, "SRV data kept");

  // An A-only packet for the peer's host replaces its addresses.
  const aOnly = parseResponse({
    answers: [{ name: "host-1.local", type: "A", ttl: 120, data: "10.0.0.10" }],
  }, LIMITS);
  const readdressed = table.observe(aOnly, 3);
  assert.deepEqual(readdressed.events.map((e) => e.type === "discovered" && e.peer.addresses), [
    [{ hostname: "10.0.0.10", port: 7000 }],
  ]);
  // Each record type keeps its own TTL: the A refresh at 3 ms does not extend SRV (seen at 1 ms).
  assert.deepEqual(table.poll(120_000).events, []);
  assert.deepEqual(table.poll(120_001).events, [{ type: "expired", peerId: "peer1" }]);
});

Deno.test("unknown instances without SRV, TXT or addresses are counted as incomplete", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  const full = buildAnnouncement(service(1), 120).answers;
  const without = (type: string) =>
    parseResponse({ answers: full.filter((r) => r.type !== type) }, LIMITS);
  for (const type of ["SRV", "TXT", "A"]) {
    const r = table.observe(without(type), 0);
    assert.deepEqual([r.events, r.incomplete], [[], 1], `without ${type}`);
  }
  assert.equal(table.size, 0);
});

Deno.test("a new peer id under a known instance expires the old peer first", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  table.observe(announce(service(1)), 0);
  const r = table.observe(announce(service(1, { peerId: "other" })), 1);
  assert.deepEqual(r.events.map((e) => e.type), ["expired", "discovered"]);
  assert.deepEqual(table.peers().map((p) => p.peerId), ["other"]);
});

Deno.test("a known peer id under a new instance moves, without an expiry", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 1 });
  table.observe(announce(service(1)), 0);
  const r = table.observe(announce(service(1, { instance: "node-1b" })), 1);
  assert.deepEqual(r.events.map((e) => e.type), ["discovered"]);
  assert.equal(r.overflow, 0, "moving does not count against maxPeers");
  assert.deepEqual(table.peers().map((p) => p.instance), ["node-1b"]);
});

Deno.test("beyond maxPeers new peers are refused and counted, until one expires", () => {
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 2 });
  table.observe(announce(service(1), 10), 0);
  table.observe(announce(service(2), 100), 0);
  const r = table.observe(announce(service(3)), 0);
  assert.deepEqual([r.events, r.overflow], [[], 1]);
  table.poll(10_000);
  assert.equal(table.observe(announce(service(3)), 10_000).events.length, 1);
  assert.deepEqual(table.clear().map((e) => e.type === "expired" && e.peerId).sort(), [
    "peer2",
    "peer3",
  ]);
});

Deno.test("a TXT-only record naming another peer under a known instance takes nothing of the old peer", () => {
  // Found by fuzzing: the new peer's entry was built without SRV, and the expiry deadline then
  // threw a TypeError from the mDNS timer, outside any try.
  const table = new PeerTable({ ownPeerId: "me", maxPeers: 8 });
  table.observe(announce(service(1)), 0);
  const txtOnly = parseResponse({
    answers: [{
      name: "node-1._cretoai._udp.local",
      type: "TXT",
      ttl: 120,
      data: ["peer=intruder", "v=1"],
    }],
  }, LIMITS);
  const r = table.observe(txtOnly, 1000);
  assert.deepEqual([r.events, r.incomplete], [[], 1], "incomplete for the new peer id");
  assert.deepEqual(table.peers().map((p) => p.peerId), ["peer1"], "the announced peer stays");
  assert.equal(table.nextDeadline(), 96_000, "deadlines still computable");
  assert.deepEqual(table.poll(96_000), { events: [], refresh: true });
  assert.deepEqual(table.poll(120_000).events, [{ type: "expired", peerId: "peer1" }]);

  // With its own SRV and address the other peer id replaces the old one as before.
  const full = buildAnnouncement(service(1, { peerId: "intruder" }), 120).answers;
  const replaced = table.observe(
    parseResponse({ answers: full.filter((rec) => rec.type !== "PTR") }, LIMITS),
    121_000,
  );
  assert.deepEqual(replaced.events.map((e) => e.type), ["discovered"]);
  assert.equal(table.nextDeadline(), 121_000 + 96_000);
});
