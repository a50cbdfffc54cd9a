import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { Prng } from "./_simulator.ts";
import {
  type GossipFrame,
  gossipMessageId,
  GossipRouter,
  type GossipRouterEvent,
  type GossipRouterOptions,
} from "../../src/gossip/mod.ts";
import { InvalidConfigError } from "../../mod.ts";

/** Routers named by peer id, wired to each other; frames move only in `pump`. */
class Net {
  routers = new Map<string, GossipRouter>();
  events = new Map<string, GossipRouterEvent[]>();
  sent: { from: string; to: string; frame: GossipFrame }[] = [];
  now = 0;
  prng = new Prng(1);

  add(name: string, options: GossipRouterOptions = {}): GossipRouter {
    const router = new GossipRouter({ random: () => this.prng.next(), ...options });
    this.routers.set(name, router);
    this.events.set(name, []);
    return router;
  }

  link(a: string, b: string): void {
    this.routers.get(a)!.addPeer(b);
    this.routers.get(b)!.addPeer(a);
  }

  /** Delivers queued frames until none is left; `drop` decides which to lose. */
  pump(drop: (from: string, to: string, frame: GossipFrame) => boolean = () => false): void {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      for (const [name, router] of this.routers) {
        this.events.get(name)!.push(...router.takeEvents());
        for (const peer of router.queuedPeers()) {
          for (let out; (out = router.takeFrame(peer)) !== undefined;) {
            moved = true;
            this.sent.push({ from: name, to: peer, frame: out.frame });
            if (!drop(name, peer, out.frame)) {
              this.routers.get(peer)?.handleFrame(name, out.frame, this.now);
            }
          }
        }
      }
      if (!moved) return;
    }
    throw new Error("frames still moving after 100 rounds");
  }

  take(name: string, type: GossipRouterEvent["type"]): GossipRouterEvent[] {
    const all = this.events.get(name)!;
    const picked = all.filter((e) => e.type === type);
    this.events.set(name, all.filter((e) => e.type !== type));
    return picked;
  }

  /** Accepts every message waiting for validation, repeatedly, until none waits. */
  acceptAll(): void {
    for (let round = 0; round < 100; round++) {
      this.pump();
      let any = false;
      for (const [name, router] of this.routers) {
        for (const e of this.take(name, "validate")) {
          if (e.type === "validate") any = router.validated(e.id, "accept", this.now) || any;
        }
      }
      if (!any) return;
    }
  }
}

const data = (n: number) => new Uint8Array([n, n, n]);

Deno.test("GossipRouter: a message travels a line of four nodes once, validated at each hop", () => {
  const net = new Net();
  for (const n of ["a", "b", "c", "d"]) net.add(n).subscribe("t");
  net.link("a", "b");
  net.link("b", "c");
  net.link("c", "d");
  net.pump();
  assertEquals(net.routers.get("b")!.mesh("t").sort(), ["a", "c"]);
  const id = net.routers.get("a")!.publish("t", data(1), 0);
  assertEquals(id, gossipMessageId("t", data(1)));
  net.acceptAll();
  for (const [n, hops] of [["b", 1], ["c", 2], ["d", 3]] as const) {
    const delivered = net.take(n, "deliver");
    assertEquals(delivered.length, 1, `${n} delivers once`);
    assert(delivered[0].type === "deliver" && delivered[0].id === id && delivered[0].hops === hops);
  }
  assertEquals(net.take("a", "deliver").length, 0, "no delivery of one's own message");
  // Publishing the same bytes again sends nothing.
  const before = net.sent.length;
  net.routers.get("a")!.publish("t", data(1), 0);
  net.pump();
  assertEquals(net.sent.length, before);
});

Deno.test("GossipRouter: nothing is forwarded before accept; ignore drops; reject penalizes and graylists", () => {
  const net = new Net();
  for (const n of ["a", "b", "c"]) net.add(n, { graylistRejects: 2 }).subscribe("t");
  net.link("a", "b");
  net.link("b", "c");
  net.pump();
  const a = net.routers.get("a")!, b = net.routers.get("b")!;
  const messagesTo = (to: string) =>
    net.sent.filter((s) => s.to === to && s.frame.kind === "message").length;

  const ignored = a.publish("t", data(1), 0);
  net.pump();
  assertEquals(messagesTo("c"), 0, "not forwarded while validation is pending");
  assert(b.validated(ignored, "ignore", 0));
  net.pump();
  assertEquals(messagesTo("c"), 0, "ignore does not forward");
  assertEquals(net.take("b", "penalize").length, 0, "ignore does not penalize");

  for (const n of [2, 3]) {
    const id = a.publish("t", data(n), 0);
    net.pump();
    assert(b.validated(id, "reject", 0));
  }
  net.pump();
  const penalties = net.take("b", "penalize");
  assertEquals(penalties.map((e) => e.type === "penalize" && e.peer), ["a", "a"]);
  assertEquals(messagesTo("c"), 0);
  assertEquals(b.mesh("t"), ["c"], "a graylisted peer leaves the mesh");
  a.publish("t", data(4), 0);
  net.pump();
  assertEquals(b.stats().graylistedFrames, 1, "its frames are dropped");
  assertEquals(b.stats().rejected, 2);
});

Deno.test("GossipRouter: a verdict not given before the deadline counts as ignore", () => {
  const net = new Net();
  for (const n of ["a", "b"]) net.add(n, { validationTimeoutMs: 500 }).subscribe("t");
  net.link("a", "b");
  net.pump();
  const b = net.routers.get("b")!;
  b.tick(0);
  const id = net.routers.get("a")!.publish("t", data(1), 0);
  net.pump();
  assertEquals(b.nextTickAt(), 500, "the deadline comes before the next heartbeat");
  b.tick(499);
  assertEquals(b.stats().validationTimeouts, 0);
  b.tick(500);
  assertEquals(b.stats().validationTimeouts, 1);
  assert(!b.validated(id, "accept", 600), "a late verdict is refused");
  assertEquals(b.takeEvents().filter((e) => e.type === "deliver").length, 0);
});

Deno.test("GossipRouter: the heartbeat keeps the mesh within D_lo..D_hi and repairs it", () => {
  const net = new Net();
  // A short prune backoff, so that the peers pruned at first may be grafted again.
  const options = { unchokedDegree: 12, pruneBackoffMs: 500 };
  const hub = net.add("hub", options);
  hub.subscribe("t");
  for (let i = 0; i < 20; i++) {
    net.add(`p${i}`, options).subscribe("t");
    net.link("hub", `p${i}`);
  }
  net.pump();
  // Every peer grafts the hub: its mesh overflows until its heartbeat prunes it to D.
  assert(hub.mesh("t").length > 12, `mesh ${hub.mesh("t").length}`);
  hub.tick(0);
  net.pump();
  assertEquals(hub.mesh("t").length, 6);
  for (const peer of hub.mesh("t").slice(0, 3)) hub.removePeer(peer);
  assertEquals(hub.mesh("t").length, 3);
  net.now = 1000;
  hub.tick(net.now);
  net.pump();
  const mesh = hub.mesh("t");
  assertEquals(mesh.length, 6, "grafted back up to D");
  for (const peer of mesh) {
    assert(net.routers.get(peer)!.mesh("t").includes("hub"), `${peer} has the hub in its mesh`);
  }
});

Deno.test("GossipRouter: ihave to peers outside the mesh, iwant brings a lost message", () => {
  const net = new Net();
  for (const n of ["a", "b"]) net.add(n).subscribe("t");
  net.link("a", "b");
  net.pump();
  const a = net.routers.get("a")!, b = net.routers.get("b")!;
  const id = a.publish("t", data(1), 0);
  net.pump((_from, _to, frame) => frame.kind === "message"); // the push is lost
  assertEquals(net.take("b", "validate").length, 0);
  // a's mesh holds b, so a heartbeat announces nothing to it; outside the mesh it would.
  b.handleFrame("a", { kind: "ihave", topic: "t", ids: [id] }, 0);
  net.pump();
  assertEquals(net.take("b", "validate").map((e) => e.type === "validate" && e.id), [id]);
  assertEquals(b.stats().iwantRequested, 1);
  // An id asked for is not asked for again within iwantTimeoutMs.
  b.handleFrame("a", { kind: "ihave", topic: "t", ids: [id, "00".repeat(32)] }, 10);
  assertEquals(b.stats().iwantRequested, 2);
});

Deno.test("GossipRouter: the heartbeat announces recent ids to subscribed peers outside the mesh", () => {
  const net = new Net();
  const a = net.add("a", { meshDegree: 1, meshDegreeLow: 1, meshDegreeHigh: 1 });
  a.subscribe("t");
  for (const n of ["b", "c"]) {
    net.add(n, { meshDegree: 1, meshDegreeLow: 1, meshDegreeHigh: 1 }).subscribe("t");
    net.link("a", n);
  }
  net.pump();
  const id = a.publish("t", data(1), 0);
  net.acceptAll();
  net.sent = [];
  a.tick(0);
  net.pump();
  const outside = ["b", "c"].find((p) => !a.mesh("t").includes(p))!;
  const ihaves = net.sent.filter((s) => s.frame.kind === "ihave" && s.from === "a");
  assertEquals(ihaves.map((s) => s.to), [outside]);
  assert(ihaves[0].frame.kind === "ihave" && ihaves[0].frame.ids[0] === id);
});

Deno.test("GossipRouter: idontwant, and a copy from a peer, keep the message from going there", () => {
  const net = new Net();
  for (const n of ["a", "b", "c"]) net.add(n, { idontwantMinBytes: 2 }).subscribe("t");
  net.link("a", "b");
  net.link("b", "c");
  net.link("a", "c");
  net.pump();
  const b = net.routers.get("b")!;
  const id = gossipMessageId("t", data(1));
  b.handleFrame("c", { kind: "idontwant", ids: [id] }, 0);
  b.handleFrame("a", { kind: "message", topic: "t", data: data(1), hops: 1 }, 0);
  net.sent = [];
  b.validated(id, "accept", 0);
  net.pump();
  assertEquals(
    net.sent.filter((s) => s.from === "b" && s.frame.kind === "message").length,
    0,
    "a is the source, c does not want it",
  );
  const c = net.routers.get("c")!;
  c.handleFrame("a", { kind: "message", topic: "t", data: data(2), hops: 1 }, 0);
  const sent = c.queuedPeers().flatMap((p) => {
    const frames = [];
    for (let out; (out = c.takeFrame(p)) !== undefined;) frames.push({ p, kind: out.frame.kind });
    return frames;
  });
  assertEquals(sent, [{ p: "b", kind: "idontwant" }], "announced before validation");
});

Deno.test("GossipRouter: a choked mesh peer gets ihave instead of the message past fullPushHops", () => {
  const net = new Net();
  const options = {
    unchokedDegree: 1,
    fullPushHops: 0,
    deepPushMeanHops: Infinity,
    floodPublish: false,
  };
  for (const n of ["a", "b", "c"]) net.add(n, options).subscribe("t");
  net.link("a", "b");
  net.link("a", "c");
  net.pump();
  // a keeps one unchoked mesh peer: the other joined choked and sends a ihave instead.
  const chokes = net.sent.filter((s) => s.frame.kind === "choke" && s.from === "a");
  assertEquals(chokes.length, 1);
  const choked = chokes[0].to;
  const unchoked = choked === "b" ? "c" : "b";
  net.sent = [];
  const fromChoked = net.routers.get(choked)!.publish("t", data(1), 0);
  net.routers.get(unchoked)!.publish("t", data(2), 0);
  net.pump();
  const toA = net.sent.filter((s) => s.to === "a").map((s) => [s.from, s.frame.kind]);
  // The choked peer's message comes only in answer to a's iwant.
  assertEquals(toA.filter(([from]) => from === unchoked), [[unchoked, "message"]]);
  assertEquals(toA.filter(([from]) => from === choked), [[choked, "ihave"], [choked, "message"]]);
  assertEquals(
    net.sent.filter((s) => s.from === "a" && s.frame.kind === "iwant").map((s) => s.to),
    [choked],
    "a asks for what it lacks",
  );
  assert(net.take("a", "validate").some((e) => e.type === "validate" && e.id === fromChoked));
});

/** A router subscribed to "t" with peers that subscribe to it too, its outbox drained. */
function routerWithPeers(options: GossipRouterOptions, peers: string[]): GossipRouter {
  const router = new GossipRouter({ random: () => 0.5, ...options });
  for (const peer of peers) {
    router.addPeer(peer);
    router.handleFrame(peer, { kind: "subscribe", topic: "t" }, 0);
  }
  router.subscribe("t");
  drain(router, peers);
  return router;
}

/** Takes every queued frame, as [peer, kind] pairs. */
function drain(router: GossipRouter, peers: string[]): [string, string][] {
  const sent: [string, string][] = [];
  for (const peer of peers) {
    for (let out; (out = router.takeFrame(peer)) !== undefined;) sent.push([peer, out.frame.kind]);
  }
  return sent;
}

/** Feeds a message that came over `hops` links, accepts it, and returns what it sent. */
function relay(
  router: GossipRouter,
  peers: string[],
  from: string,
  n: number,
  hops: number,
): [string, string][] {
  router.handleFrame(from, { kind: "message", topic: "t", data: data(n), hops }, 0);
  router.validated(gossipMessageId("t", data(n)), "accept", 0);
  return drain(router, peers);
}

Deno.test("GossipRouter: a message's first floodHops links go to every subscribed peer, then to the mesh", () => {
  const peers = ["a", "p1", "p2", "p3", "p4"];
  const mesh = { meshDegree: 2, meshDegreeLow: 1, deepPushMeanHops: Infinity };
  const flooding = routerWithPeers({ ...mesh, floodHops: 2 }, peers);
  assertEquals(flooding.mesh("t").length, 2);
  // From the publisher a (1 link), it leaves over the second link: to everyone but a.
  assertEquals(relay(flooding, peers, "a", 1, 1).map(([to]) => to), ["p1", "p2", "p3", "p4"]);
  // Over the third link, only the mesh (but its sender) gets it.
  const third = relay(flooding, peers, "a", 2, 2).map(([to]) => to);
  assertEquals(third, flooding.mesh("t").filter((peer) => peer !== "a"));
  const meshOnly = routerWithPeers({ ...mesh, floodHops: 1 }, peers);
  assertEquals(
    relay(meshOnly, peers, "a", 1, 1).map(([to]) => to),
    meshOnly.mesh("t").filter((peer) => peer !== "a"),
  );
});

Deno.test("GossipRouter: a node pushes one link deeper while its messages came over more than deepPushMeanHops links", () => {
  const peers = ["p1", "p2"];
  const router = routerWithPeers(
    { fullPushHops: 4, deepPushMeanHops: 2, floodHops: 0, floodPublish: false },
    peers,
  );
  assertEquals(router.mesh("t").sort(), peers);
  router.handleFrame("p2", { kind: "choke", topic: "t" }, 0);
  // A deep network: a message of 4 links goes on over a 5th in full, even to p2 that choked.
  assertEquals(relay(router, peers, "p1", 1, 4), [["p2", "message"]]);
  // Ten messages of 1 link bring the mean (starting at one message of 3 links) below 2.
  for (let n = 2; n < 12; n++) relay(router, peers, "p1", n, 1);
  assertEquals(relay(router, peers, "p1", 12, 4), [["p2", "ihave"]], "p2 choked: ihave");
  // The unchoked p1 still gets messages in full past fullPushHops.
  assertEquals(relay(router, peers, "p2", 13, 4), [["p1", "message"]]);
});

Deno.test("GossipRouter: consensus frames leave first; a full outbox drops its oldest frame", () => {
  const router = new GossipRouter({ maxQueuedFrames: 2 });
  router.subscribe("bulk", "bulk");
  router.subscribe("votes", "consensus");
  router.addPeer("p");
  const kinds = [];
  for (let out; (out = router.takeFrame("p")) !== undefined;) kinds.push(out.frame);
  assertEquals(kinds.map((f) => "topic" in f && f.topic), ["votes", "bulk"]);
  router.handleFrame("p", { kind: "subscribe", topic: "bulk" }, 0);
  router.handleFrame("p", { kind: "subscribe", topic: "votes" }, 0);
  while (router.takeFrame("p") !== undefined);
  for (let i = 1; i <= 3; i++) router.publish("bulk", data(i), 0);
  router.publish("votes", data(9), 0);
  const order = [];
  for (let out; (out = router.takeFrame("p")) !== undefined;) {
    if (out.frame.kind === "message") order.push([out.priority, out.frame.data[0]]);
  }
  assertEquals(order, [["consensus", 9], ["bulk", 2], ["bulk", 3]]);
  assertEquals(router.stats().outboxDrops, 1);
});

Deno.test("GossipRouter: a full validation queue drops new messages, which can come again later", () => {
  const router = new GossipRouter({ maxPendingValidations: 1 });
  router.subscribe("t");
  router.addPeer("p");
  router.handleFrame("p", { kind: "message", topic: "t", data: data(1), hops: 1 }, 0);
  router.handleFrame("p", { kind: "message", topic: "t", data: data(2), hops: 1 }, 0);
  assertEquals(router.takeEvents().length, 1);
  assertEquals(router.stats().validationQueueDrops, 1);
  router.validated(gossipMessageId("t", data(1)), "accept", 0);
  router.handleFrame("p", { kind: "message", topic: "t", data: data(2), hops: 1 }, 0);
  assertEquals(router.takeEvents().map((e) => e.type), ["deliver", "validate"]);
});

Deno.test("GossipRouter: a peer subscribing to too many topics is penalized", () => {
  const router = new GossipRouter({ maxPeerTopics: 2 });
  router.addPeer("p");
  for (const topic of ["a", "b", "c"]) router.handleFrame("p", { kind: "subscribe", topic }, 0);
  assertEquals(router.takeEvents(), [{ type: "penalize", peer: "p", reason: "too-many-topics" }]);
  assertEquals(router.subscribers("c"), []);
});

Deno.test("GossipRouter: bad options are refused with the field and the value", () => {
  assertThrows(() => new GossipRouter({ meshDegree: 0 }), InvalidConfigError, "'meshDegree'");
  assertThrows(
    () => new GossipRouter({ meshDegreeLow: 7 }),
    InvalidConfigError,
    "'meshDegreeLow' must be an integer from 1 to 6: current value is 7",
  );
  assertThrows(() => new GossipRouter({ heartbeatMs: -1 }), InvalidConfigError, "-1");
  assertThrows(() => new GossipRouter({ floodHops: -1 }), InvalidConfigError, "'floodHops'");
  assertThrows(
    () => new GossipRouter({ deepPushMeanHops: null as unknown as number }),
    InvalidConfigError,
    "'deepPushMeanHops'",
  );
  assertThrows(() => new GossipRouter().subscribe(""), TypeError, "Invalid topic");
});
