/**
 * Malformed DHT requests count against the sender's peer score: enough of them ban it.
 */

import { assertEquals, assertRejects } from "../../_assert.ts";
import { ConnectionClosedError } from "../../../src/errors.ts";
import { APP_ERROR_BANNED } from "../../../src/pool/limits.ts";
import { DHT_PROTOCOL_ID, QuicDhtRpc } from "../../../src/discovery/dht/quic_rpc.ts";
import type { DhtRpcHandler } from "../../../src/discovery/dht/rpc.ts";
import type { PeerBannedDetail } from "../../../src/transport/events.ts";
import { addr, nextEvent, node } from "../../transport/_util.ts";

Deno.test("dht over QUIC: a peer sending malformed requests is banned on the ninth (12 points each)", async () => {
  await using victim = await node(0);
  await using attacker = await node(1);
  const rpc = new QuicDhtRpc(victim);
  // Malformed bytes fail to decode before any handler method runs.
  const stop = rpc.serve({} as DhtRpcHandler);
  try {
    const remote = await attacker.connectPeer(addr(victim));
    const banned = nextEvent(victim, "peer:banned");
    const request = (i: number) =>
      // A find-node request whose key is cut short.
      attacker.request(remote, DHT_PROTOCOL_ID, new Uint8Array([1, 2, i]));
    for (let i = 0; i < 8; i++) await request(i); // answered with an error reply
    const refused = await assertRejects(() => request(8), ConnectionClosedError);
    assertEquals(refused.errorCode, APP_ERROR_BANNED);
    const detail: PeerBannedDetail = (await banned).detail;
    assertEquals([detail.peerId.toString(), detail.reason, detail.automatic], [
      attacker.peerId.toString(),
      "score: bad-dht-record",
      true,
    ]);
  } finally {
    stop();
  }
});
