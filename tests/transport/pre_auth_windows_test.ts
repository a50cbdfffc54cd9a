/**
 * Small QUIC flow-control windows before the identity handshake (issue 17 item 1), over real
 * QUIC on loopback: a connection that never authenticates gets quiche to take at most the
 * 1 MiB connection window, 256 KiB per stream, of data nobody reads; after the handshake
 * quiche grows the windows with use, up to the share of the per-peer budget that is its own.
 */

import { assert, assertEquals } from "../_assert.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { addr, node, silentDialer, within } from "./_util.ts";

const KiB = 1024;
const PIECE = 16 * KiB;

/** Writes pieces on `stream` one after another; `taken[i]` counts what quiche took. */
function writeUntilBlocked(stream: QuicStream, taken: number[], i: number): Promise<void> {
  return (async () => {
    for (let n = 0; n < 64; n++) { // 1 MiB per stream at most: more than any window here
      await stream.write(new Uint8Array(PIECE));
      taken[i] += PIECE;
    }
  })().catch(() => {});
}

/** Resolves once `read()` has not changed for `quietMs` (bounded by `maxMs`). */
async function settled(read: () => number, quietMs: number, maxMs: number): Promise<number> {
  const start = performance.now();
  let last = read();
  let since = performance.now();
  while (performance.now() - start < maxMs) {
    await new Promise((r) => setTimeout(r, 25));
    const now = read();
    if (now !== last) [last, since] = [now, performance.now()];
    else if (performance.now() - since >= quietMs) return now;
  }
  throw new Error(`still changing after ${maxMs} ms`);
}

Deno.test("pre-auth windows: an unauthenticated connection gets quiche to take 1 MiB, 256 KiB a stream", async () => {
  await using victim = await node(1);
  await using raw = await silentDialer();
  const conn = await raw.connect(addr(victim));
  // Unidirectional streams: the node reads only the first bidirectional one before the
  // identity handshake, so these are never read.
  const streams: QuicStream[] = [];
  const taken: number[] = [];
  const writers: Promise<void>[] = [];
  const open = async (count: number) => {
    for (let i = 0; i < count; i++) {
      streams.push(await conn.openUni());
      taken.push(0);
      writers.push(writeUntilBlocked(streams.at(-1)!, taken, taken.length - 1));
    }
    return await within(
      settled(() => taken.reduce((a, b) => a + b, 0), 500, 8000),
      10_000,
      "the writes stall on flow control",
    );
  };
  // Two streams: each stops at its 256 KiB window.
  await open(2);
  for (const t of taken) assert(t > 256 * KiB - PIECE && t <= 256 * KiB, `a stream took ${t}`);
  // Six more: the connection's 1 MiB window stops them all.
  const total = await open(6);
  console.log(
    `taken per stream: ${taken.map((t) => t / KiB).join(", ")} KiB; total ${total / KiB} KiB`,
  );
  for (const t of taken) assert(t <= 256 * KiB, `a stream took ${t} bytes`);
  assert(total <= 1024 * KiB, `the connection took ${total} bytes`);
  assert(total > 1024 * KiB - 8 * PIECE, `flow control, not something else, stopped at ${total}`);
  await conn.close();
  await Promise.all(writers);
});

Deno.test("pre-auth windows: after the handshake, messages far larger than the starting windows flow", async () => {
  await using victim = await node(1, { pqEncryption: false });
  await using sender = await node(2, { pqEncryption: false });
  const remote = await sender.connectPeer(addr(victim));
  const received = (async () => {
    let bytes = 0;
    for await (const { message } of victim.messages()) {
      bytes += (message as { data: Uint8Array }).data.byteLength;
      if (bytes >= 8 * 1024 * KiB) return bytes;
    }
    return bytes;
  })();
  // 8 MiB on one lane: more than the 256 KiB stream and 1 MiB connection windows it starts with.
  for (let i = 0; i < 8; i++) {
    await sender.send(remote, { type: "vertex", data: new Uint8Array(1024 * KiB) });
  }
  assertEquals(await within(received, 20_000, "8 MiB arrive"), 8 * 1024 * KiB);
});
