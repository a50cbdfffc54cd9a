/**
 * Bans through the node: `ban`/`unban`/`bans` over the transport's ban list, written to the
 * peer store in the data directory, and in force again after a restart.
 */
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { ConnectionClosedError } from "../../src/errors.ts";
import { APP_ERROR_BANNED } from "../../src/pool/limits.ts";
import { PeerStore } from "../../src/node/peer_store.ts";
import { addressOf, loopbackNode, nextNodeEvent } from "./_util.ts";

const noServices = { enableDht: false, enableNatTraversal: false };

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "node_bans_test_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

Deno.test("NetworkNode: a ban outlives a restart with the same data directory; unban lifts it for good", async () => {
  await using dir = await tempDir();
  await using mallory = await loopbackNode({ config: noServices });
  const options = { dataDir: dir.path, config: noServices };
  {
    await using node = await loopbackNode(options);
    await mallory.connectPeer(addressOf(node));
    const banned = nextNodeEvent(node, "peer:banned");
    const info = node.ban(mallory.peerId, 3_600_000, "equivocation");
    assertEquals((await banned).detail.automatic, false);
    assertEquals(node.bans(), [info]);
  }
  {
    await using node = await loopbackNode(options);
    assertEquals(
      node.bans().map((b) => [b.peerId, b.reason]),
      [[mallory.peerId.toString(), "equivocation"]],
    );
    const refused = await assertRejects(
      () => mallory.connectPeer(addressOf(node)),
      ConnectionClosedError,
    );
    assertEquals(refused.errorCode, APP_ERROR_BANNED, "still refused after the restart");
    assert(node.unban(mallory.peerId));
    assert((await mallory.connectPeer(addressOf(node))).equals(node.peerId));
  }
  await using node = await loopbackNode(options);
  assertEquals(node.bans(), [], "the unban was written too");
});

Deno.test("NetworkNode: bans that ended while the node was down are dropped at start", async () => {
  await using dir = await tempDir();
  await using mallory = await loopbackNode({ config: noServices });
  {
    await using store = await PeerStore.open({ path: `${dir.path}/peers.kv` });
    const id = mallory.peerId.toString();
    await store.putBan({ peerId: id, reason: "old", expiresAt: Date.now() - 1 });
    await store.putBan({ peerId: "not a peer id", reason: "bad", expiresAt: null });
  }
  {
    await using node = await loopbackNode({ dataDir: dir.path, config: noServices });
    assertEquals(node.bans(), []);
    assert((await mallory.connectPeer(addressOf(node))).equals(node.peerId));
  }
  await using store = await PeerStore.open({ path: `${dir.path}/peers.kv` });
  assertEquals(store.bans(), [], "the ended and the unusable ban are gone from the file");
});
