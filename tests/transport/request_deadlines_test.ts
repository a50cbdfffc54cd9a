/**
 * The serving side's deadlines over real QUIC: a request stream has `requestTimeoutMs` to
 * arrive and its answer `requestTimeoutMs` to be taken; either stalled, the stream is reset
 * with `STREAM_CANCELLED`, its slot is freed, and the connection stays.
 */

import { assert, assertEquals } from "../_assert.ts";
import { StreamResetError } from "../../src/errors.ts";
import { encodeRequest } from "../../src/transport/_frames.ts";
import { STREAM_CANCELLED } from "../../src/transport/peer_api.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { identity, node, within } from "./_util.ts";
import { rawPeer, writeRawFrame } from "./_raw_peer.ts";

const TIMEOUT_MS = 300;

/** Reads a stream until it fails (at most `maxReads` chunks); the error, or null at its end. */
async function readUntilFailed(stream: QuicStream, maxReads: number): Promise<unknown> {
  for (let i = 0; i < maxReads; i++) {
    try {
      if (await stream.read() === null) return null;
    } catch (e) {
      return e;
    }
  }
  throw new Error(`stream ${stream.id} still open after ${maxReads} reads`);
}

function assertCancelled(error: unknown): void {
  assert(error instanceof StreamResetError, `expected a reset, got ${error}`);
  assertEquals([error.code, error.errorCode], ["ERR_STREAM_RESET", STREAM_CANCELLED]);
}

Deno.test("request deadlines: a stalled request is reset with STREAM_CANCELLED after requestTimeoutMs; the next request is served", async () => {
  await using victim = await node(1, { pqEncryption: false, requestTimeoutMs: TIMEOUT_MS });
  victim.handle("/echo/1", (request) => request);
  await using raw = await rawPeer(victim, identity(2), false);
  const attacker = identity(2).peerId;
  const stalled = await Promise.all([0, 1, 2].map(() => raw.conn.openBidi()));
  for (const stream of stalled) {
    const frame = new Uint8Array(4 + 10); // announces 100 bytes, sends 10
    new DataView(frame.buffer).setUint32(0, 100);
    await stream.write(frame);
  }
  for (const stream of stalled) {
    assertCancelled(await within(readUntilFailed(stream, 10), 5000, "the reset"));
  }
  await within(
    (async () => {
      while (victim.getStats(attacker).openStreams > 0) {
        await new Promise((r) => setTimeout(r, 10));
      }
    })(),
    5000,
    "the stalled streams' slots are freed",
  );
  assertEquals(raw.conn.closedError, undefined);
  const stream = await raw.conn.openBidi();
  await writeRawFrame(
    stream,
    encodeRequest(new TextEncoder().encode("/echo/1"), new Uint8Array([7])),
  );
  await stream.close();
  const answer = await within(stream.readAll(1024), 5000, "the answer");
  assertEquals(answer.at(-1), 7);
});

Deno.test("request deadlines: an answer the requester does not take is reset with STREAM_CANCELLED after requestTimeoutMs", async () => {
  const responseBytes = 40 * 1024 * 1024; // more than the requester's receive windows
  await using victim = await node(1, {
    pqEncryption: false,
    requestTimeoutMs: TIMEOUT_MS,
    maxMessageBytes: responseBytes,
  });
  victim.handle("/big/1", () => new Uint8Array(responseBytes));
  await using raw = await rawPeer(victim, identity(2), false);
  const attacker = identity(2).peerId;
  const stream = await raw.conn.openBidi();
  await writeRawFrame(stream, encodeRequest(new TextEncoder().encode("/big/1"), new Uint8Array(1)));
  await stream.close();
  // The requester reads nothing until the victim gave up on the answer.
  await within(
    (async () => {
      while (victim.getStats(attacker).openStreams > 0) {
        await new Promise((r) => setTimeout(r, 10));
      }
    })(),
    5000,
    "the answer times out",
  );
  assertCancelled(await within(readUntilFailed(stream, responseBytes / 1024), 5000, "the reset"));
  assertEquals(raw.conn.closedError, undefined);
});
