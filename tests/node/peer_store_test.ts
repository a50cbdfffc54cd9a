import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { PeerStore, PeerStoreError, type StoredPeer } from "../../src/node/peer_store.ts";
import { createNode, NetworkNode } from "../../src/node/node.ts";
import { Identity } from "../../src/identity/identity.ts";
import { nextNodeEvent } from "./_util.ts";

const peer = (id: string, lastSeenMs: number, address = "192.0.2.1:9001"): StoredPeer => ({
  peerId: id,
  addresses: [address],
  lastSeenMs,
  foundBy: "dht",
});

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "peer_store_test_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

Deno.test("PeerStore keeps peers across close and open", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/peers.kv`;
  {
    await using store = await PeerStore.open({ path });
    await store.put(peer("a", 1));
    await store.put(peer("b", 2));
    await store.put({ ...peer("a", 3, "192.0.2.9:9001"), foundBy: "inbound" });
    assert(await store.delete("b"));
  }
  await using store = await PeerStore.open({ path });
  assertEquals(store.list(), [{
    peerId: "a",
    addresses: ["192.0.2.9:9001", "192.0.2.1:9001"],
    lastSeenMs: 3,
    foundBy: "dht",
  }]);
});

Deno.test("PeerStore is bounded: peers and addresses per peer", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/peers.kv`;
  {
    await using store = await PeerStore.open({ path, maxPeers: 3, maxAddressesPerPeer: 2 });
    for (let i = 0; i < 5; i++) await store.put(peer(`p${i}`, i));
    for (let port = 1; port <= 4; port++) await store.put(peer("p4", 10, `192.0.2.1:${port}`));
    assertEquals(store.list().map((p) => p.peerId), ["p4", "p3", "p2"], "oldest forgotten");
    assertEquals(store.list()[0].addresses, ["192.0.2.1:4", "192.0.2.1:3"]);
  }
  await using store = await PeerStore.open({ path });
  assertEquals(store.size, 3, "the forgotten ones are gone from the file too");
});

Deno.test("PeerStore skips and deletes entries that are not peers", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/peers.kv`;
  const kv = await Deno.openKv(path);
  await kv.set(["peers", "good"], peer("good", 1));
  await kv.set(["peers", "bad-shape"], { peerId: "bad-shape", addresses: "nope" });
  await kv.set(["peers", "wrong-id"], peer("other", 1));
  await kv.set(["peers", "bad-source"], { ...peer("bad-source", 1), foundBy: "rumour" });
  kv.close();
  {
    await using store = await PeerStore.open({ path });
    assertEquals(store.list().map((p) => p.peerId), ["good"]);
  }
  const check = await Deno.openKv(path);
  const left = [];
  for await (const e of check.list({ prefix: ["peers"] })) left.push(e.key[1]);
  check.close();
  assertEquals(left, ["good"]);
});

Deno.test("PeerStore: a file that is not a database is a PeerStoreError naming it", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/peers.kv`;
  await Deno.writeTextFile(path, "this is not SQLite ".repeat(100));
  const e = await assertRejects(() => PeerStore.open({ path }), PeerStoreError, path);
  assertEquals([e.code, e.path], ["ERR_PEER_STORE", path]);
  await assertRejects(() => PeerStore.open({ maxPeers: 0 }), InvalidConfigError, "'maxPeers'");
});

Deno.test("NetworkNode: an unreadable peer store is moved aside and the node starts afresh", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/peers.kv`, "garbage ".repeat(100));
  await using node = new NetworkNode({
    identity: Identity.generate(),
    dataDir: dir.path,
    config: { listenAddr: "127.0.0.1", quicPort: 0 },
  });
  const failed = nextNodeEvent(node, "service:failed");
  await node.start();
  const { detail } = await failed;
  assertEquals([detail.service, detail.running], ["peerStore", true]);
  assert(detail.error instanceof PeerStoreError, String(detail.error));
  assertEquals([node.peerStore?.size, node.peerStore?.path], [0, `${dir.path}/peers.kv`]);
  const names = [];
  for await (const entry of Deno.readDir(dir.path)) names.push(entry.name);
  assert(names.some((n) => n.startsWith("peers.kv.unreadable-")), names.join());
});

Deno.test("createNode: the identity lives in the data directory", async () => {
  await using dir = await tempDir();
  const config = { listenAddr: "127.0.0.1", quicPort: 0 };
  let first;
  {
    await using node = await createNode({ dataDir: `${dir.path}/sub`, config });
    first = node.peerId;
  }
  await using node = await createNode({ dataDir: `${dir.path}/sub`, config });
  assert(node.peerId.equals(first));
});

Deno.test("PeerStore keeps bans across close and open; ended and malformed ones are deleted", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/peers.kv`;
  const now = Date.now();
  const lasting = { peerId: "mallory", reason: "equivocation", expiresAt: now + 3_600_000 };
  const forever = { peerId: "eve", reason: "operator", expiresAt: null };
  {
    await using store = await PeerStore.open({ path });
    await store.putBan(lasting);
    await store.putBan(forever);
    await store.putBan({ peerId: "ended", reason: "spam", expiresAt: now - 1 });
    await store.putBan({ peerId: "lifted", reason: "mistake", expiresAt: null });
    assert(await store.deleteBan("lifted"));
    assert(!(await store.deleteBan("lifted")));
    assertEquals(store.bans(now).map((b) => b.peerId).sort(), ["eve", "mallory"], "ended: out");
  }
  const kv = await Deno.openKv(path);
  await kv.set(["bans", "bad-shape"], { peerId: "bad-shape", reason: 7, expiresAt: null });
  kv.close();
  {
    await using store = await PeerStore.open({ path });
    assertEquals(store.bans().sort((a, b) => a.peerId.localeCompare(b.peerId)), [forever, lasting]);
    assertEquals(store.list(), [], "bans are not peers");
  }
  const check = await Deno.openKv(path);
  const left = [];
  for await (const e of check.list({ prefix: ["bans"] })) left.push(e.key[1]);
  check.close();
  assertEquals(left.sort(), ["eve", "mallory"], "the ended and the malformed ban are deleted");
});

Deno.test("PeerStore: bans are bounded, the one ending soonest goes; a bad ban is refused", async () => {
  await using store = await PeerStore.open({ maxBans: 2 });
  await store.putBan({ peerId: "a", reason: "r", expiresAt: Date.now() + 10_000 });
  await store.putBan({ peerId: "b", reason: "r", expiresAt: null });
  await store.putBan({ peerId: "c", reason: "r", expiresAt: Date.now() + 60_000 });
  assertEquals(store.bans().map((b) => b.peerId).sort(), ["b", "c"]);
  await assertRejects(
    () => store.putBan({ peerId: "d", reason: "r", expiresAt: NaN }),
    InvalidConfigError,
    "'ban'",
  );
  await assertRejects(() => PeerStore.open({ maxBans: 0 }), InvalidConfigError, "'maxBans'");
});
