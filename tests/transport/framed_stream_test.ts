/**
 * Sealed frames over a real QUIC stream on loopback: large frames are sealed and written in
 * pieces and opened in place as they arrive, and the wire is the same as one frame sealed
 * whole; small and large frames keep their order (their nonces are taken in order).
 */

import { assertEquals, assertRejects } from "../_assert.ts";
import { NetworkError } from "../../src/errors.ts";
import { FrameCipher } from "../../src/handshake/frame_cipher.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { ByteBudget } from "../../src/transport/_byte_budget.ts";
import { FrameReader, FrameWriter, SEAL_OVERHEAD } from "../../src/transport/_framed_stream.ts";
import { connect, pair, randomBytes, within } from "../quic/_util.ts";

const K1 = new Uint8Array(32).fill(1);
const K2 = new Uint8Array(32).fill(2);
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Small, at the one-write limit, above it, at the decoder's own-buffer limit, large. */
const SIZES = [70_000, 5, 3 * 1024 * 1024 + 3, 16_384, 16_385, 0, 65_536, 65_537, 1 << 20, 3];

/**
 * A unidirectional stream on a fresh loopback connection: the writer's end, and the reader's
 * (the peer sees the stream once its first bytes arrive).
 */
async function uniStream(
  body: (out: QuicStream, accepted: () => Promise<QuicStream>) => Promise<void>,
): Promise<void> {
  await using p = await pair();
  const { conn, peer } = await connect(p);
  const out = await conn.openUni();
  await body(out, () => within(peer.acceptUni(), 5000, "accept the stream"));
}

function frames(): Uint8Array[] {
  return SIZES.map((size) => randomBytes(size));
}

Deno.test("sealed frames of every size arrive in order and whole over a QUIC stream", async () => {
  await uniStream(async (out, accepted) => {
    const sender = (await FrameCipher.create({ send: K1, recv: K2 })).forStream(out.id);
    const writer = new FrameWriter(out, sender);
    const sent = frames();
    const writes = sent.map((body, i) => writer.write(body, i === sent.length - 1));
    const input = await accepted();
    const receiver = (await FrameCipher.create({ send: K2, recv: K1 })).forStream(input.id);
    const reader = new FrameReader(input, receiver, MAX_BODY_BYTES);
    for (const [i, body] of sent.entries()) {
      assertEquals(await within(reader.next(), 10_000, `frame ${i}`), body, `frame ${i}`);
    }
    assertEquals(await reader.next(), null);
    await Promise.all(writes);
    assertEquals([sender.sentFrames, receiver.receivedFrames], [sent.length, sent.length]);
  });
});

Deno.test("a reader that waits for its budget (request streams) opens sealed frames of every size", async () => {
  await uniStream(async (out, accepted) => {
    const writer = new FrameWriter(out, await FrameCipher.create({ send: K1, recv: K2 }));
    const sent = frames();
    const writes = sent.map((body, i) => writer.write(body, i === sent.length - 1));
    // Room for the largest frame: the transport's budgets always hold one largest message.
    const budget = new ByteBudget(2 * MAX_BODY_BYTES);
    const reader = new FrameReader(
      await accepted(),
      await FrameCipher.create({ send: K2, recv: K1 }),
      MAX_BODY_BYTES,
      undefined,
      { budget, mode: "wait" },
    );
    for (const [i, body] of sent.entries()) {
      const got = await within(reader.next(), 10_000, `frame ${i}`);
      assertEquals(got, body, `frame ${i}`);
      // The caller charges what it keeps; this one keeps nothing.
      assertEquals(budget.used, 0, `after frame ${i}`);
    }
    assertEquals(await reader.next(), null);
    await Promise.all(writes);
  });
});

Deno.test("a large frame written in sealed pieces is on the wire what seal() makes of it whole", async () => {
  await uniStream(async (out, accepted) => {
    const writer = new FrameWriter(out, await FrameCipher.create({ send: K1, recv: K2 }));
    const sent = frames();
    const writes = sent.map((body) => writer.write(body));
    // Read without a cipher: the sealed bodies as they travel.
    const reader = new FrameReader(await accepted(), undefined, MAX_BODY_BYTES + SEAL_OVERHEAD);
    const sealer = await FrameCipher.create({ send: K1, recv: K2 });
    for (const [i, body] of sent.entries()) {
      const wire = await within(reader.next(), 10_000, `frame ${i}`);
      assertEquals(wire, await sealer.seal(body), `frame ${i} of ${body.byteLength} bytes`);
    }
    await Promise.all(writes);
  });
});

Deno.test("a large frame that fails authentication is refused with ERR_DECRYPT, and so is what follows", async () => {
  await uniStream(async (out, accepted) => {
    // Sealed under another key: every piece decrypts to garbage, the tag does not match.
    const writer = new FrameWriter(out, await FrameCipher.create({ send: K2, recv: K1 }));
    const writes = [writer.write(randomBytes(1 << 20)), writer.write(new Uint8Array(8))];
    const reader = new FrameReader(
      await accepted(),
      await FrameCipher.create({ send: K2, recv: K1 }),
      MAX_BODY_BYTES,
    );
    const error = await assertRejects(
      () => within(reader.next(), 10_000, "the forged frame"),
      NetworkError,
      "authentication failed",
    );
    assertEquals(error.code, "ERR_DECRYPT");
    await assertRejects(() => reader.next(), NetworkError, "an earlier frame failed");
    reader.close();
    // Nobody reads the rest: the connection's close settles what is still being written.
    for (const write of writes) write.catch(() => {});
  });
});

Deno.test("a waiting reader closed on a stalled frame frees its chunks, also the one a read is pending on", async () => {
  await uniStream(async (out, accepted) => {
    // A header announcing 200,000 bytes and 100,000 of them, then silence: the reader fills
    // one 64 KiB chunk and waits in a second one.
    const stalled = new Uint8Array(4 + 100_000);
    new DataView(stalled.buffer).setUint32(0, 200_000);
    await out.write(stalled);
    const stream = await accepted();
    const buffers: ArrayBuffer[] = [];
    let arrived = 0;
    const waiting = Promise.withResolvers<void>();
    const read = stream.read.bind(stream);
    stream.read = (into) => {
      buffers.push(into!.buffer as ArrayBuffer);
      if (arrived === stalled.byteLength) waiting.resolve(); // a read on the stalled rest
      return read(into).then((chunk) => {
        arrived += chunk?.byteLength ?? 0;
        return chunk;
      });
    };
    const budget = new ByteBudget(1 << 20);
    const reader = new FrameReader(stream, undefined, MAX_BODY_BYTES, undefined, {
      budget,
      mode: "wait",
    });
    const next = reader.next();
    await within(waiting.promise, 10_000, "everything sent arrived");
    // As the serving side cancels a stalled request: the reader closes, then the stream stops.
    reader.close();
    stream.stopSending(0);
    await assertRejects(() => next, NetworkError, "stopped locally");
    assertEquals(budget.used, 0);
    assertEquals(new Set(buffers).size, 3, "the header's chunk and two of the body");
    for (const buffer of buffers) assertEquals(buffer.detached, true);
  });
});

Deno.test("a frame written as parts arrives as their concatenation, sealed or not, parts unchanged", async () => {
  for (const sealed of [true, false]) {
    await uniStream(async (out, accepted) => {
      const sender = sealed ? await FrameCipher.create({ send: K1, recv: K2 }) : undefined;
      const writer = new FrameWriter(out, sender);
      // Empty parts, parts that straddle the 16 KiB one-write limit and the 64 KiB pieces.
      const shapes = [[0], [3, 0, 4], [16_000, 384], [16_000, 385], [65_535, 2, 70_000], [
        1 << 20,
        1,
      ]];
      const sent = shapes.map((sizes) => sizes.map((size) => randomBytes(size)));
      const kept = sent.map((parts) => parts.map((part) => part.slice()));
      const writes = sent.map((parts, i) => writer.write(parts, i === sent.length - 1));
      const receiver = sealed ? await FrameCipher.create({ send: K2, recv: K1 }) : undefined;
      const reader = new FrameReader(await accepted(), receiver, MAX_BODY_BYTES);
      for (const [i, parts] of kept.entries()) {
        const whole = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
        parts.reduce((at, p) => (whole.set(p, at), at + p.byteLength), 0);
        assertEquals(await within(reader.next(), 10_000, `frame ${i}`), whole, `frame ${i}`);
      }
      assertEquals(await reader.next(), null);
      await Promise.all(writes);
      assertEquals(sent, kept, "the writer changed a part");
    });
  }
});

Deno.test("bytes written before a frame go ahead of it, in the frame's own stream write when it is small", async () => {
  for (const sealed of [true, false]) {
    for (const size of [5, 70_000]) {
      await uniStream(async (out, accepted) => {
        const cipher = () => sealed ? FrameCipher.create({ send: K1, recv: K2 }) : undefined;
        const writes: number[] = [];
        const counted = {
          write(data: Uint8Array, fin?: boolean) {
            writes.push(data.byteLength);
            return out.write(data, fin);
          },
        } as unknown as QuicStream;
        // What the frame alone is on the wire, from a writer with the same keys.
        const alone: Uint8Array[] = [];
        const recorder = {
          write(data: Uint8Array) {
            alone.push(data.slice());
            return Promise.resolve();
          },
        } as unknown as QuicStream;
        const body = randomBytes(size);
        await new FrameWriter(recorder, await cipher()).write(body);
        const before = randomBytes(40);
        const written = new FrameWriter(counted, await cipher()).write(body, true, before);
        const wire = await within((await accepted()).readAll(), 10_000, "the stream");
        await written;
        const frame = alone.reduce((all, part) => new Uint8Array([...all, ...part]));
        assertEquals(wire, new Uint8Array([...before, ...frame]), `sealed ${sealed}, ${size} B`);
        if (size === 5) assertEquals(writes, [before.byteLength + frame.byteLength]);
        else assertEquals(writes[0], before.byteLength);
      });
    }
  }
});
