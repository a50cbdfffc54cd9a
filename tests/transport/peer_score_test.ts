import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { BanList } from "../../src/transport/ban_list.ts";
import { PeerScore } from "../../src/transport/peer_score.ts";
import { VirtualClock } from "../_virtual_clock.ts";

Deno.test("PeerScore: penalties add up to a ban; the decay forgives rare accidents", async () => {
  const clock = new VirtualClock();
  const scores = new PeerScore({ clock });
  assertEquals(scores.penalize("m", "malformed-frame"), { penalty: 40, ban: false });
  assertEquals(scores.penalize("m", "malformed-frame"), { penalty: 80, ban: false });
  assertEquals(scores.penalize("m", "decrypt-failure"), { penalty: 120, ban: true });
  // A ban resets the score: after it ends, the peer starts over.
  assertEquals(scores.penalty("m"), 0);
  // One malformed frame every half-life never reaches 100: 40, 60, 70, 75, ... -> 80.
  for (let i = 0; i < 50; i++) {
    assert(!scores.penalize("honest", "malformed-frame").ban, `round ${i}`);
    await clock.advance(600_000);
  }
  assert(Math.abs(scores.penalty("honest") - 40) < 1e-9);
  // Rejected gossip: two in a row are no ban, the third is (the router's graylist threshold).
  for (let i = 0; i < 2; i++) assert(!scores.penalize("g", "rejected-gossip").ban);
  assert(scores.penalize("g", "rejected-gossip").ban);
});

Deno.test("PeerScore: the table is bounded; options are validated", () => {
  const scores = new PeerScore({ maxPeers: 3, clock: new VirtualClock() });
  for (const peer of ["a", "b", "c", "d"]) scores.penalize(peer, "bad-dht-record");
  assertEquals(scores.size, 3);
  assertEquals(scores.penalty("a"), 0); // the oldest was forgotten
  assertEquals(scores.penalty("d"), 12);
  assertThrows(() => new PeerScore({ halfLifeMs: 0 }), InvalidConfigError, "halfLifeMs");
  assertThrows(
    () => new PeerScore({ penalties: { "malformed-frame": -1 } }),
    InvalidConfigError,
    "penalties.malformed-frame",
  );
  assertThrows(
    () => new PeerScore({ penalties: { nonsense: 1 } as never }),
    InvalidConfigError,
    "penalties.nonsense",
  );
});

Deno.test("BanList: bans expire on the clock, are plain data, and are bounded", async () => {
  const clock = new VirtualClock(1000);
  const bans = new BanList({ clock, maxBans: 2 });
  assertEquals(bans.ban("a", 500, "spam"), { peerId: "a", reason: "spam", expiresAt: 1500 });
  bans.ban("b", Infinity, "x".repeat(300));
  assertEquals(bans.get("b")?.reason.length, 200);
  assertEquals(JSON.parse(JSON.stringify(bans.list()[0])), {
    peerId: "a",
    reason: "spam",
    expiresAt: 1500,
  });
  // Full: the ban that ends soonest gives way.
  bans.ban("c", 10_000, "flood");
  assertEquals(bans.list().map((e) => e.peerId), ["b", "c"]);
  await clock.advance(10_000);
  assertEquals(bans.list().map((e) => e.peerId), ["b"]);
  assert(bans.unban("b") && !bans.unban("b"));
  assertThrows(() => bans.ban("d", 0, "r"), InvalidConfigError, "durationMs");
  assertThrows(() => bans.ban("d", NaN, "r"), InvalidConfigError, "durationMs");
});
