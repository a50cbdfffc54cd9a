/**
 * The admission gate, bans and peer scores inside `QuicTransport`, over real QUIC on loopback.
 */

import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { ConnectionClosedError, NetworkError } from "../../src/errors.ts";
import { APP_ERROR_BANNED, APP_ERROR_NOT_ALLOWED } from "../../src/pool/limits.ts";
import type { PeerBannedDetail } from "../../src/transport/events.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { addr, identity, nextEvent, node } from "./_util.ts";
import { openRawLane, rawPeer, writeRawFrame } from "./_raw_peer.ts";
import { startUdpRelay } from "./_udp_relay.ts";

async function gated(
  i: number,
  options: Partial<ConstructorParameters<typeof QuicTransport>[0]>,
): Promise<QuicTransport> {
  const transport = new QuicTransport({
    identity: identity(i),
    config: { listenAddr: "127.0.0.1", quicPort: 0 },
    ...options,
  });
  await transport.bindAndListen();
  return transport;
}

Deno.test("admission: a committee allowlist admits its members only, in both directions", async () => {
  const committee = [identity(0).peerId, identity(1).peerId.toString()];
  await using a = await gated(0, { allowedPeers: committee });
  await using b = await node(1);
  await using outsider = await node(2);
  let connected = 0;
  a.addEventListener("peer:connected", () => connected++);
  const failed = nextEvent(a, "connection:failed");
  const refused = await assertRejects(
    () => outsider.connectPeer(addr(a)),
    ConnectionClosedError,
  );
  assertEquals(refused.errorCode, APP_ERROR_NOT_ALLOWED);
  assertEquals(((await failed).detail.error as NetworkError).code, "ERR_PEER_NOT_ALLOWED");
  // A dial of a known outsider is refused before any packet.
  const early = await assertRejects(
    () => a.connectPeer(addr(outsider), { expectedPeerId: outsider.peerId }),
    NetworkError,
  );
  assertEquals(early.code, "ERR_PEER_NOT_ALLOWED");
  // An outsider found by address alone is refused after its handshake; it hears why.
  const gone = nextEvent(outsider, "peer:disconnected");
  const late = await assertRejects(() => a.connectPeer(addr(outsider)), NetworkError);
  assertEquals(late.code, "ERR_PEER_NOT_ALLOWED");
  assertEquals(
    ((await gone).detail.error as ConnectionClosedError).errorCode,
    APP_ERROR_NOT_ALLOWED,
  );
  assert((await b.connectPeer(addr(a))).equals(a.peerId));
  assertEquals(a.peers().map((p) => p.peerId.toString()), [b.peerId.toString()]);
  assertEquals(connected, 1);
});

Deno.test("admission: a gate callback sees the peer id, address and direction", async () => {
  const seen: string[] = [];
  await using a = await gated(0, {
    gate: ({ peerId, address, direction }) => {
      seen.push(`${direction} ${address.hostname}`);
      return !peerId.equals(identity(2).peerId);
    },
  });
  await using b = await node(1);
  await using c = await node(2);
  await b.connectPeer(addr(a));
  const refused = await assertRejects(() => c.connectPeer(addr(a)), ConnectionClosedError);
  assertEquals(refused.errorCode, APP_ERROR_NOT_ALLOWED);
  assertEquals(seen, ["inbound 127.0.0.1", "inbound 127.0.0.1"]);
  assertEquals(a.peers().length, 1);
});

Deno.test("admission: a ban closes the peer's connection, refuses it until lifted, and is listed", async () => {
  await using a = await node(0);
  await using b = await node(1);
  await b.connectPeer(addr(a));
  const gone = nextEvent(b, "peer:disconnected");
  const bannedEvent = nextEvent(a, "peer:banned");
  const info = a.ban(b.peerId, 60_000, "equivocation");
  assertEquals([info.peerId, info.reason], [b.peerId.toString(), "equivocation"]);
  assert(info.expiresAt !== null && Math.abs(info.expiresAt - (Date.now() + 60_000)) < 5000);
  assertEquals((await bannedEvent).detail.automatic, false);
  assertEquals(((await gone).detail.error as ConnectionClosedError).errorCode, APP_ERROR_BANNED);
  const refused = await assertRejects(() => b.connectPeer(addr(a)), ConnectionClosedError);
  assertEquals(refused.errorCode, APP_ERROR_BANNED);
  const early = await assertRejects(
    () => a.connectPeer(addr(b), { expectedPeerId: b.peerId }),
    NetworkError,
  );
  assertEquals(early.code, "ERR_PEER_BANNED");
  assertEquals(JSON.parse(JSON.stringify(a.bans())), [info]);
  assert(a.unban(b.peerId));
  assert((await b.connectPeer(addr(a))).equals(a.peerId));
});

Deno.test("admission: malformed frames earn an automatic ban on the third connection", async () => {
  await using b = await node(1, { pqEncryption: false });
  let banned: PeerBannedDetail | undefined;
  b.addEventListener("peer:banned", (e) => banned = e.detail);
  for (let round = 1; round <= 3; round++) {
    await using raw = await rawPeer(b, identity(3), false);
    const dropped = nextEvent(b, "peer:disconnected");
    await writeRawFrame((await openRawLane(raw, 0)).stream, new Uint8Array([9, 1, 0]));
    await dropped;
    assertEquals(banned === undefined, round < 3, `round ${round}`);
  }
  assertEquals([banned!.automatic, banned!.reason], [true, "score: malformed-frame"]);
  assertEquals(b.bans().map((e) => e.peerId), [identity(3).peerId.toString()]);
  const refused = await assertRejects(() => rawPeer(b, identity(3), false), ConnectionClosedError);
  assertEquals(refused.errorCode, APP_ERROR_BANNED);
});

Deno.test("admission: a dial given up after its open frame went out does not block the next one", async () => {
  // A gives up its dial (here by abort) just as B admits it, and the path dies, so B never
  // hears A's close: B holds a connection A has forgotten. A's next dial, its only one,
  // replaces it; before, B refused it as a duplicate until that connection's idle timeout.
  const giveUp = new AbortController();
  let cut: PromiseLike<void> | undefined;
  await using b = await gated(1, {
    gate: ({ direction }) => {
      if (direction === "inbound" && cut === undefined) {
        cut = relay[Symbol.asyncDispose]();
        giveUp.abort(new Error("given up in the test"));
      }
      return true;
    },
  });
  await using relay = startUdpRelay(b.localAddr);
  await using a = await node(0, { handshakeTimeoutMs: 5000 });
  const atB: string[] = [];
  b.addEventListener("peer:connected", (e) => atB.push(`connected ${e.detail.address.port}`));
  b.addEventListener("peer:disconnected", (e) => atB.push(`lost ${e.detail.address.port}`));
  await assertRejects(
    () => a.connectPeer(`127.0.0.1:${relay.port}`, { signal: giveUp.signal }),
    Error,
    "aborted",
  );
  await cut;
  assertEquals(a.peers(), []);
  assertEquals(b.peers().map((p) => p.addresses), [[`127.0.0.1:${relay.targetSidePort}`]]);
  assert((await a.connectPeer(addr(b))).equals(b.peerId));
  const port = a.localAddr.port;
  assertEquals(b.peers().map((p) => p.addresses), [[`127.0.0.1:${port}`]]);
  assertEquals(atB, [
    `connected ${relay.targetSidePort}`,
    `lost ${relay.targetSidePort}`,
    `connected ${port}`,
  ]);
  assert(await a.ping(b.peerId) >= 0);
});
