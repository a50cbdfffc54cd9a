/**
 * One budget of buffered bytes per peer (issue 17 item 1), attacked over real QUIC: a peer
 * opens every request stream it may and stalls a maximum-size frame on each.
 */

import { assert, assertEquals } from "../_assert.ts";
import { ConnectionClosedError } from "../../src/errors.ts";
import { APP_ERROR_BUFFER_FULL } from "../../src/pool/limits.ts";
import { FRAME_SLACK_BYTES } from "../../src/transport/_peer_connection.ts";
import {
  frameBudgetBytes,
  receiveWindowBytes,
  STREAM_STATE_BYTES,
} from "../../src/transport/_byte_budget.ts";
import { addr, identity, nextEvent, node, within } from "./_util.ts";
import { openRawLane, rawPeer } from "./_raw_peer.ts";

const MAX_MESSAGE = 256 * 1024;
const BUDGET = 1024 * 1024;
const MiB = 1024 * 1024;

Deno.test("budget: frames get the budget less quiche's window and the state of every stream", () => {
  // The abuse bench's victim: 16 MiB budget, 1 MiB messages, 256 request streams.
  assertEquals(receiveWindowBytes(16 * MiB), 2 * MiB);
  assertEquals(STREAM_STATE_BYTES, 16 * 1024);
  assertEquals(frameBudgetBytes(16 * MiB, MiB, 256), 16 * MiB - 2 * MiB - 256 * 16 * 1024);
  // Fewer streams leave more for frames.
  assertEquals(frameBudgetBytes(16 * MiB, MiB, 64), 16 * MiB - 2 * MiB - 64 * 16 * 1024);
});

Deno.test("budget: frames get the whole budget when the rest would not hold one largest message", () => {
  // The defaults: the budget is one 16 MiB message.
  assertEquals(frameBudgetBytes(16 * MiB, 16 * MiB, 256), 16 * MiB);
  // 1 MiB of window leaves nothing of a 1 MiB budget.
  assertEquals(frameBudgetBytes(BUDGET, MAX_MESSAGE, 256), BUDGET);
  // 13 MiB less 1.625 MiB of window and 4 MiB of streams is 7.375 MiB, below 10 MiB...
  assertEquals(frameBudgetBytes(13 * MiB, 10 * MiB, 256), 13 * MiB);
  // ...and with 64 streams (1 MiB) 10.375 MiB: the rest holds one message.
  assertEquals(frameBudgetBytes(13 * MiB, 10 * MiB, 64), 13 * MiB - 13 * MiB / 8 - 64 * 16 * 1024);
});

Deno.test("budget: unlimited streams count as the QUIC limit, an unlimited budget stays unlimited", () => {
  assertEquals(frameBudgetBytes(64 * MiB, MiB, Infinity), 64 * MiB - 8 * MiB - 1024 * 16 * 1024);
  assertEquals(frameBudgetBytes(Infinity, MiB, 256), Infinity);
  assertEquals(frameBudgetBytes(Infinity, MiB, Infinity), Infinity);
});

/** A frame header announcing `length` bytes, and the first `sent` of them. */
function stalledFrame(length: number, sent: number): Uint8Array {
  const frame = new Uint8Array(4 + sent);
  new DataView(frame.buffer).setUint32(0, length);
  return frame;
}

Deno.test("budget: every request stream stalled with a maximum-size frame holds at most the budget", async () => {
  await using victim = await node(1, {
    pqEncryption: false,
    maxMessageBytes: MAX_MESSAGE,
    maxBufferedBytesPerPeer: BUDGET,
    requestTimeoutMs: 3000,
  });
  victim.handle("/echo/1", (request) => request);
  await using raw = await rawPeer(victim, identity(3), false);
  const attacker = identity(3).peerId;
  const streams = victim.config.maxStreamsPerPeer;
  const largest = MAX_MESSAGE + 257; // protocol id and payload, as the request reader allows
  // What is left of the budget for frames after quiche's window and the streams' state.
  const limit = frameBudgetBytes(BUDGET, MAX_MESSAGE, streams) + FRAME_SLACK_BYTES;
  let maxHeld = 0;
  const sample = setInterval(() => {
    maxHeld = Math.max(maxHeld, victim.getStats(attacker).heldBytes);
  }, 5);
  try {
    for (let i = 0; i < streams; i++) {
      const stream = await raw.conn.openBidi();
      // A header announcing the largest frame and 1 KiB of it, then silence (more would
      // only wait in quiche: the connection's flow-control window is 1 MiB).
      await stream.write(stalledFrame(largest, 1024));
    }
    await within(
      (async () => {
        while (victim.getStats(attacker).openStreams < streams) {
          await new Promise((r) => setTimeout(r, 10));
        }
      })(),
      10_000,
      "the victim took every stream",
    );
    const held = victim.getStats(attacker).heldBytes;
    maxHeld = Math.max(maxHeld, held);
    console.log(
      `${streams} stalled streams of ${largest}-byte frames: held ${held} bytes, ` +
        `peak ${maxHeld}, frame budget ${limit} (without it: ${streams * largest})`,
    );
    assert(maxHeld <= limit, `held ${maxHeld}`);
    assert(held >= largest, "the first frames got their reservation");
    // Another peer is served meanwhile: the budget is per peer.
    await using honest = await node(2, { pqEncryption: false });
    const remote = await honest.connectPeer(addr(victim));
    assertEquals((await honest.request(remote, "/echo/1", new Uint8Array([7]))).join(), "7");
    // The serving timeout resets the stalled streams and gives the budget back.
    await within(
      (async () => {
        while (victim.getStats(attacker).openStreams > 0) {
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      15_000,
      "stalled streams time out",
    );
    assertEquals(victim.getStats(attacker).heldBytes, 0);
  } finally {
    clearInterval(sample);
  }
});

Deno.test("budget: stalled maximum-size frames on the lanes beyond the budget close with 0x15", async () => {
  await using victim = await node(1, {
    pqEncryption: false,
    maxMessageBytes: MAX_MESSAGE,
    maxBufferedBytesPerPeer: MAX_MESSAGE,
  });
  await using raw = await rawPeer(victim, identity(3), false);
  const dropped = nextEvent(victim, "peer:disconnected");
  const largest = MAX_MESSAGE + 2; // message header and payload
  for (let lane = 0; lane < 3; lane++) {
    await (await openRawLane(raw, lane)).stream.write(stalledFrame(largest, 1024));
  }
  const closed = await within(raw.conn.closed, 10_000, "the attacker is closed");
  assert(closed instanceof ConnectionClosedError);
  assertEquals(closed.errorCode, APP_ERROR_BUFFER_FULL);
  await dropped;
  assertEquals(victim.stats().limitViolations.bufferedBytesPerPeer, 1);
});
