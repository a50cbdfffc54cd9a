/**
 * GossipService over real QUIC transports on loopback.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { addr, node, within } from "../transport/_util.ts";
import { VirtualClock } from "../_virtual_clock.ts";
import {
  type GossipMessage,
  GossipService,
  type GossipServiceOptions,
  type GossipServicePenaltyReason,
  NetworkError,
  type PeerId,
  type QuicTransport,
} from "../../mod.ts";

interface Cluster {
  transports: QuicTransport[];
  services: GossipService[];
  penalties: { by: number; peerId: PeerId; reason: GossipServicePenaltyReason }[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** `n` nodes in a line (0-1-2-...), each with a started GossipService. */
async function line(
  n: number,
  options: Partial<GossipServiceOptions> = {},
): Promise<Cluster> {
  const transports: QuicTransport[] = [];
  const services: GossipService[] = [];
  const penalties: Cluster["penalties"] = [];
  const cluster = {
    transports,
    services,
    penalties,
    async [Symbol.asyncDispose]() {
      for (const s of services) await s.close();
      for (const t of transports) await t.close();
    },
  };
  try {
    for (let i = 0; i < n; i++) {
      const transport = await node(i);
      transports.push(transport);
      const service = new GossipService({
        transport,
        penalize: (peerId, reason) => penalties.push({ by: i, peerId, reason }),
        ...options,
      });
      services.push(service);
      await service.start();
    }
    for (let i = 0; i + 1 < n; i++) await transports[i].connectPeer(addr(transports[i + 1]));
  } catch (e) {
    await cluster[Symbol.asyncDispose]();
    throw e;
  }
  return cluster;
}

async function first(sub: AsyncIterable<GossipMessage>): Promise<GossipMessage> {
  for await (const message of sub) return message;
  throw new Error("subscription ended");
}

Deno.test("GossipService: a message crosses a line of three nodes, once, validated on the way", async () => {
  await using c = await line(3);
  const seen: string[] = [];
  const subs = c.services.map((s, i) =>
    s.subscribe("vertices", {
      validate: ({ id }) => {
        seen.push(`${i}:${id}`);
        return "accept";
      },
    })
  );
  await within(c.services[1].whenMeshed("vertices", 2), 10_000, "mesh of the middle node");
  const data = new TextEncoder().encode("vertex 1");
  const id = await c.services[0].publish("vertices", data);
  const [atOne, atTwo] = await within(
    Promise.all([first(subs[1]), first(subs[2])]),
    10_000,
    "delivery",
  );
  assertEquals([atOne.id, atTwo.id], [id, id]);
  assert(atOne.from.equals(c.transports[0].peerId));
  assert(atTwo.from.equals(c.transports[1].peerId), "node 2 hears it from node 1");
  assertEquals(atTwo.data, data);
  assertEquals(seen.sort(), [`1:${id}`, `2:${id}`]);
  // The same bytes again: nothing new anywhere.
  assertEquals(await c.services[0].publish("vertices", data), id);
  assertEquals(c.services[2].stats().delivered, 1);
});

Deno.test("GossipService: a rejected message stops at the validator and penalizes its sender", async () => {
  await using c = await line(3);
  c.services[0].subscribe("t");
  const rejected = new Promise<string>((resolve) =>
    c.services[1].addEventListener("gossip:rejected", (e) => resolve(e.detail.id))
  );
  c.services[1].subscribe("t", { validate: async () => await Promise.resolve("reject") });
  const far = c.services[2].subscribe("t");
  await within(c.services[1].whenMeshed("t", 2), 10_000, "mesh");
  const id = await c.services[0].publish("t", new Uint8Array([6, 6, 6]));
  assertEquals(await within(rejected, 10_000, "rejection"), id);
  assertEquals(c.penalties.map((p) => [p.by, p.peerId.toString(), p.reason]), [
    [1, c.transports[0].peerId.toString(), "invalid-message"],
  ]);
  // A later message does reach node 2, so the rejected one would have by now.
  const ok = await c.services[1].publish("t", new Uint8Array([1]));
  assertEquals((await within(first(far), 10_000, "delivery")).id, ok);
  assertEquals(c.services[2].stats().delivered, 1);
});

Deno.test("GossipService: consensus topics travel as consensus messages, bulk as vertex messages", async () => {
  await using c = await line(2, { readMessages: false });
  const [a, b] = c.services;
  a.subscribe("votes", { priority: "consensus" });
  a.subscribe("blobs", { priority: "bulk" });
  const votes = b.subscribe("votes", { priority: "consensus" });
  b.subscribe("blobs");
  // b's transport messages go through this loop, which records their types.
  const types = new Map<string, Set<string>>();
  const reading = (async () => {
    for await (const { from, message } of c.transports[1].messages()) {
      const data = (message as { data?: Uint8Array }).data;
      const kind = data?.[3] === 1 ? "message" : "control";
      if (!types.has(kind)) types.set(kind, new Set());
      types.get(kind)!.add(message.type);
      b.receive(from, message);
    }
  })();
  // a reads b's frames the same way.
  (async () => {
    for await (const { from, message } of c.transports[0].messages()) a.receive(from, message);
  })();
  await within(a.whenMeshed("votes", 1), 10_000, "mesh");
  await within(a.whenMeshed("blobs", 1), 10_000, "mesh");
  const both = new Promise<void>((resolve) => {
    let n = 0;
    b.addEventListener("gossip:message", () => ++n === 2 && resolve());
  });
  await a.publish("blobs", new Uint8Array(100));
  const id = await a.publish("votes", new Uint8Array([1]));
  assertEquals((await within(first(votes), 10_000, "vote")).id, id);
  await within(both, 10_000, "both delivered");
  assertEquals([...types.get("message")!].sort(), ["consensus", "vertex"]);
  await c[Symbol.asyncDispose]();
  await reading;
});

Deno.test("GossipService: a malformed gossip frame penalizes its sender; other messages are left alone", async () => {
  await using c = await line(2, { readMessages: false });
  const [a, b] = [c.transports[0], c.services[1]];
  const from = a.peerId;
  assert(!b.receive(from, { type: "vertex", data: new Uint8Array([1, 2, 3, 4]) }));
  assert(!b.receive(from, { type: "ping", timestamp: 1 }));
  assertEquals(c.penalties, []);
  assert(b.receive(from, { type: "vertex", data: new Uint8Array([71, 83, 1, 99]) }));
  assertEquals(c.penalties.map((p) => [p.by, p.reason]), [[1, "malformed-frame"]]);
});

Deno.test("GossipService: bad arguments are refused with typed errors", async () => {
  await using transport = await node(0, { maxMessageBytes: 1024 });
  await using gossip = new GossipService({ transport });
  await gossip.start();
  gossip.subscribe("t");
  assertThrows(() => gossip.subscribe("t"), TypeError, "already subscribed");
  assertThrows(() => gossip.subscribe(""), TypeError, "Invalid topic");
  const e = await assertRejects(
    () => gossip.publish("t", new Uint8Array(1024)),
    NetworkError,
    "exceeds maxMessageBytes (1024)",
  );
  assertEquals(e.code, "ERR_MESSAGE_TOO_LARGE");
  assertThrows(
    () => new GossipService({ transport, maxInFlightPerPeer: 0 }),
    Error,
    "'maxInFlightPerPeer'",
  );
  await gossip.close();
  await assertRejects(() => gossip.publish("t", new Uint8Array(1)), NetworkError, "closed");
});

Deno.test("GossipService: a validator past its deadline counts as ignore, on the service's clock", async () => {
  const clock = new VirtualClock();
  await using c = await line(3, { clock, router: { validationTimeoutMs: 5000 } });
  c.services[0].subscribe("t");
  let validating: () => void = () => {};
  const started = new Promise<void>((resolve) => validating = resolve);
  c.services[1].subscribe("t", {
    validate: () => {
      validating();
      return new Promise(() => {}); // never decides
    },
  });
  c.services[2].subscribe("t");
  await within(c.services[1].whenMeshed("t", 2), 10_000, "mesh");
  await c.services[0].publish("t", new Uint8Array([1]));
  await within(started, 10_000, "validation started");
  assertEquals(c.services[1].stats().validationTimeouts, 0);
  await clock.advance(5000);
  assertEquals(c.services[1].stats().validationTimeouts, 1);
  assertEquals(c.services[1].stats().delivered, 0);
  assertEquals(c.services[2].stats().delivered + c.services[2].stats().duplicates, 0);
});

Deno.test("GossipService: a peer that disconnects leaves the mesh; the rest still gossip", async () => {
  await using c = await line(3);
  const subs = c.services.map((s) => s.subscribe("t"));
  await within(c.services[1].whenMeshed("t", 2), 10_000, "mesh");
  await c.transports[1].disconnectPeer(c.transports[2].peerId);
  assertEquals(c.services[1].mesh("t").map(String), [c.transports[0].peerId.toString()]);
  const id = await c.services[0].publish("t", new Uint8Array([2]));
  assertEquals((await within(first(subs[1]), 10_000, "delivery")).id, id);
});
