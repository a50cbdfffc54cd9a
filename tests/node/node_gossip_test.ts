/**
 * `node.gossip` over real QUIC: the node's message loop hands gossip frames to the service
 * and yields every other message from `node.messages()`; the service's penalties feed the
 * transport's peer score, so a peer whose gossip keeps being rejected is banned.
 */
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { stillPending, within } from "../transport/_util.ts";
import { ConnectionClosedError, InvalidConfigError } from "../../src/errors.ts";
import { APP_ERROR_BANNED } from "../../src/pool/limits.ts";
import { addressOf, loopbackNode, nextNodeEvent } from "./_util.ts";

const TOPIC = "vertices";
const noServices = { enableDht: false, enableNatTraversal: false };

Deno.test("node.gossip: topics between nodes; node.messages() yields every other message, in order", async () => {
  await using a = await loopbackNode({ config: noServices });
  await using b = await loopbackNode({ config: noServices });
  const sub = b.gossip!.subscribe(TOPIC);
  a.gossip!.subscribe(TOPIC);
  await a.connectPeer(addressOf(b));
  await within(a.gossip!.whenMeshed(TOPIC, 1), 10_000, "mesh");
  // Application messages and gossip interleaved on the same connection.
  const count = 200;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    await a.send(b.peerId, { type: i % 2 ? "vertex" : "consensus", data: new Uint8Array([i]) });
    if (i % 10 === 0) ids.push(await a.gossip!.publish(TOPIC, new Uint8Array([1, i])));
  }
  const received: number[] = [];
  for await (const { from, message } of b.messages()) {
    assert(from.equals(a.peerId));
    assert(message.type === "vertex" || message.type === "consensus");
    received.push(message.data[0]);
    if (received.length === count) break;
  }
  assertEquals(received, Array.from({ length: count }, (_, i) => i), "all, in order, no gossip");
  const delivered: string[] = [];
  for await (const message of sub) {
    delivered.push(message.id);
    if (delivered.length === ids.length) break;
  }
  assertEquals(delivered.sort(), ids.sort());
  assertEquals(b.gossip!.stats().delivered, ids.length);
});

Deno.test("node.gossip: while node.messages() is not read, senders wait; nothing is lost", async () => {
  const config = { ...noServices, inboundQueueLength: 4 };
  await using a = await loopbackNode({ config });
  await using b = await loopbackNode({ config });
  await a.connectPeer(addressOf(b));
  const count = 40;
  const sends = Array.from(
    { length: count },
    (_, i) => a.send(b.peerId, { type: "consensus", data: new Uint8Array([i]) }),
  );
  for (const send of sends) send.catch(() => {});
  // At most 4 in the node's inbox and 4 in the transport's queue: the last send waits.
  assert(await stillPending(sends[count - 1], 300), "the last send must wait for the reader");
  const received: number[] = [];
  for await (const { message } of b.messages()) {
    if (message.type === "consensus") received.push(message.data[0]);
    if (received.length === count) break;
  }
  await Promise.all(sends);
  assertEquals(received, Array.from({ length: count }, (_, i) => i));
});

Deno.test("node.gossip: off with gossip: false; node.messages() reads the transport then", async () => {
  await using a = await loopbackNode({ gossip: false, config: noServices });
  await using b = await loopbackNode({ gossip: false, config: noServices });
  assertEquals([a.gossip, b.gossip], [undefined, undefined]);
  await a.connectPeer(addressOf(b));
  await a.send(b.peerId, { type: "consensus", data: new Uint8Array([9]) });
  const { value } = await b.messages().next();
  assertEquals(value?.message, { type: "consensus", data: new Uint8Array([9]) });
  await assertRejects(
    () => loopbackNode({ gossip: 1 as unknown as false }),
    InvalidConfigError,
    "'gossip'",
  );
});

Deno.test("node.gossip: close ends subscriptions and a messages() iterator waiting for the next message", async () => {
  const a = await loopbackNode({ config: noServices });
  await using b = await loopbackNode({ config: noServices });
  const sub = a.gossip!.subscribe(TOPIC);
  await b.connectPeer(addressOf(a));
  await b.send(a.peerId, { type: "consensus", data: new Uint8Array([1]) });
  const iterator = a.messages();
  assertEquals((await iterator.next()).value?.message.type, "consensus");
  const next = iterator.next();
  await a.close();
  assertEquals((await next).done, true);
  assertEquals((await sub[Symbol.asyncIterator]().next()).done, true);
});

Deno.test("node.gossip: three rejected messages from a peer ban it (peer score), also after it redials", async () => {
  await using victim = await loopbackNode({ config: noServices });
  await using mallory = await loopbackNode({ config: noServices });
  victim.gossip!.subscribe(TOPIC, {
    validate: ({ data }) => data[0] === 0xff ? "reject" : "accept",
  });
  mallory.gossip!.subscribe(TOPIC);
  await mallory.connectPeer(addressOf(victim));
  await within(mallory.gossip!.whenMeshed(TOPIC, 1), 10_000, "mesh");
  const penalties: string[] = [];
  victim.gossip!.addEventListener("gossip:penalized", (e) => penalties.push(e.detail.reason));
  const banned = nextNodeEvent(victim, "peer:banned");
  const gone = nextNodeEvent(mallory, "peer:disconnected");
  for (let i = 0; i < 3; i++) await mallory.gossip!.publish(TOPIC, new Uint8Array([0xff, i]));
  const { detail } = await banned;
  assertEquals(
    [detail.peerId.toString(), detail.reason, detail.automatic],
    [mallory.peerId.toString(), "score: rejected-gossip", true],
  );
  assertEquals(penalties, ["invalid-message", "invalid-message", "invalid-message"]);
  assertEquals(victim.gossip!.stats().rejected, 3);
  assertEquals(((await gone).detail.error as ConnectionClosedError).errorCode, APP_ERROR_BANNED);
  assertEquals(victim.bans().map((b) => b.peerId), [mallory.peerId.toString()]);
  const refused = await assertRejects(
    () => mallory.connectPeer(addressOf(victim)),
    ConnectionClosedError,
  );
  assertEquals(refused.errorCode, APP_ERROR_BANNED);
});
