/**
 * CatchUpService over real QUIC transports on loopback.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { VirtualClock } from "../_virtual_clock.ts";
import { addr, node } from "../transport/_util.ts";
import { CATCH_UP_FETCH_PROTOCOL, CATCH_UP_LATEST_PROTOCOL } from "../../src/gossip/mod.ts";
import {
  CatchUpService,
  type CatchUpServiceOptions,
  InvalidConfigError,
  NetworkError,
  StreamResetError,
} from "../../mod.ts";

const items = new Map<string, Uint8Array>(
  Array.from({ length: 150 }, (_, i) => [`v${i}`, new Uint8Array(100).fill(i)]),
);
const store = { get: (id: string) => items.get(id), latestRound: () => 42 };
const empty = { get: () => undefined, latestRound: () => 0 };

async function pair(server: Partial<CatchUpServiceOptions> = {}) {
  const a = await node(0);
  const b = await node(1);
  const client = new CatchUpService({ transport: a, store: empty });
  const serving = new CatchUpService({ transport: b, store, ...server });
  await serving.start();
  const peer = await a.connectPeer(addr(b));
  return {
    a,
    client,
    peer,
    async [Symbol.asyncDispose]() {
      await client.close();
      await serving.close();
      await a.close();
      await b.close();
    },
  };
}

Deno.test("CatchUpService: fetches in batches of maxBatchIds; missing ids are absent", async () => {
  await using p = await pair({ maxBatchIds: 64 });
  const requests: number[] = [];
  // Count the requests the client makes.
  const ids = [...Array(150).keys()].map((i) => `v${i}`).concat(["nope", "v3"]);
  const original = p.a.request.bind(p.a);
  p.a.request = (peer, protocol, body, options) => {
    requests.push(body.byteLength);
    return original(peer, protocol, body, options);
  };
  const found = await p.client.fetch(p.peer, ids);
  assertEquals(found.size, 150);
  assertEquals(found.get("v149"), items.get("v149"));
  assert(!found.has("nope"));
  assertEquals(requests.length, 3, "151 distinct ids in batches of 64");
  assertEquals(await p.client.latestRound(p.peer), 42);
});

Deno.test("CatchUpService: a response holds at most maxBatchBytes of items (at least one)", async () => {
  await using p = await pair({ maxBatchBytes: 250 });
  const found = await p.client.fetch(p.peer, ["v1", "v2", "v3"]);
  assertEquals([...found.keys()], ["v1", "v2"]);
  const again = await p.client.fetch(p.peer, ["v3"]);
  assertEquals([...again.keys()], ["v3"]);
});

Deno.test("CatchUpService: a peer over its quota is refused with ERR_LIMIT_EXCEEDED until it refills", async () => {
  const clock = new VirtualClock();
  await using p = await pair({ requestsPerSecond: 1, requestBurst: 2, clock });
  await p.client.fetch(p.peer, ["v1"]);
  await p.client.latestRound(p.peer);
  const e = await assertRejects(
    () => p.client.fetch(p.peer, ["v1"]),
    NetworkError,
    "over its catch-up quota",
  );
  assertEquals(e.code, "ERR_LIMIT_EXCEEDED");
  await clock.advance(1000);
  assertEquals((await p.client.fetch(p.peer, ["v1"])).size, 1);
});

Deno.test("CatchUpService: malformed requests reset the stream; bad ids and options are refused", async () => {
  await using p = await pair({ maxBatchIds: 4 });
  for (
    const [protocol, body] of [
      [CATCH_UP_FETCH_PROTOCOL, new Uint8Array([1, 0, 5])], // count 5 > 4
      [CATCH_UP_FETCH_PROTOCOL, new Uint8Array([9, 0, 0])], // version
      [CATCH_UP_FETCH_PROTOCOL, new Uint8Array([1, 0, 1, 0, 9, 65])], // truncated id
      [CATCH_UP_LATEST_PROTOCOL, new Uint8Array([1, 2])],
    ] as const
  ) {
    await assertRejects(() => p.a.request(p.peer, protocol, body), StreamResetError);
  }
  await assertRejects(() => p.client.fetch(p.peer, [""]), TypeError, "Invalid item id");
  await assertRejects(() => p.client.fetch(p.peer, ["x".repeat(129)]), TypeError, "1 to 128");
  assertThrows(
    () => new CatchUpService({ transport: p.a, store: empty, maxBatchIds: 0 }),
    InvalidConfigError,
    "'maxBatchIds'",
  );
  assertThrows(
    () => new CatchUpService({ transport: p.a, store: {} as typeof empty }),
    InvalidConfigError,
    "'store'",
  );
});
