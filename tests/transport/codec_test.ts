import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { NetworkError } from "../../src/errors.ts";
import {
  decodeMessage,
  encodeFrame,
  encodeMessage,
  encodeMessageParts,
  FrameDecoder,
  type NetworkMessage,
} from "../../src/transport/codec.ts";
import { concatBytes } from "../../src/_bytes.ts";

Deno.test("codec: every message type round-trips, with the documented bytes", () => {
  const messages: NetworkMessage[] = [
    { type: "vertex", data: new Uint8Array([1, 2, 3]) },
    { type: "consensus", data: new Uint8Array(0) },
    { type: "ping", timestamp: 1234.5 },
    { type: "pong", timestamp: -0.25 },
    { type: "unknown", code: 200, data: new Uint8Array([9]) },
    { type: "unknown", code: 0, data: new Uint8Array(0) },
  ];
  for (const m of messages) assertEquals(decodeMessage(encodeMessage(m)), m);
  assertEquals([...encodeMessage(messages[0])], [1, 1, 1, 2, 3]);
  assertEquals([...encodeMessage({ type: "ping", timestamp: 1 })], [
    1,
    3,
    63,
    240,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
});

Deno.test("codec: a type from a newer peer decodes as unknown, never a crash", () => {
  const m = decodeMessage(new Uint8Array([1, 77, 5, 6]));
  assertEquals(m, { type: "unknown", code: 77, data: new Uint8Array([5, 6]) });
});

Deno.test("codec: malformed bodies fail with ERR_MALFORMED_FRAME", () => {
  for (
    const body of [
      new Uint8Array(0),
      new Uint8Array([1]),
      new Uint8Array([2, 1, 0]), // another version
      new Uint8Array([1, 3, 0, 0]), // ping payload of 2 bytes
      new Uint8Array([1, 4, ...new Uint8Array(9)]),
    ]
  ) {
    const e = assertThrows(() => decodeMessage(body), NetworkError);
    assertEquals(e.code, "ERR_MALFORMED_FRAME");
  }
});

Deno.test("codec: bad messages are refused when encoding, naming the field and value", () => {
  const bad = [
    [{ type: "vertex", data: [1] }, "'data' must be a Uint8Array"],
    [{ type: "ping", timestamp: NaN }, "'timestamp' must be a finite number"],
    [{ type: "unknown", code: 2, data: new Uint8Array() }, "current value is 2"],
    [{ type: "handshake" }, 'current value is "handshake"'],
    [null, "current value is undefined"],
  ] as const;
  for (const [m, text] of bad) {
    assertThrows(() => encodeMessage(m as unknown as NetworkMessage), TypeError, text);
  }
});

Deno.test("codec: frames split and joined at any chunk boundary", () => {
  const bodies = [new Uint8Array([1]), new Uint8Array(0), new Uint8Array(300).fill(7)];
  const wire = new Uint8Array(bodies.reduce((n, b) => n + 4 + b.byteLength, 0));
  let at = 0;
  for (const b of bodies) {
    wire.set(encodeFrame(b), at);
    at += 4 + b.byteLength;
  }
  for (const step of [1, 3, 4, 5, 64, wire.byteLength]) {
    const decoder = new FrameDecoder(1000);
    const out: Uint8Array[] = [];
    for (let i = 0; i < wire.byteLength; i += step) {
      out.push(...decoder.push(wire.slice(i, i + step)));
    }
    assertEquals(out, bodies);
    assertEquals(decoder.buffered, 0);
    decoder.end();
  }
});

Deno.test("codec: oversized frames are refused from the header, truncated ones at the end", () => {
  const decoder = new FrameDecoder(10);
  const e = assertThrows(() => decoder.push(new Uint8Array([0, 0, 0, 11])), NetworkError);
  assertEquals(e.code, "ERR_MESSAGE_TOO_LARGE");
  assert(e.message.includes("11 bytes"));
  const truncated = new FrameDecoder(10);
  truncated.push(new Uint8Array([0, 0, 0, 5, 1, 2]));
  assertEquals(assertThrows(() => truncated.end(), NetworkError).code, "ERR_MALFORMED_FRAME");
  const header = new FrameDecoder(10);
  header.push(new Uint8Array([0, 0]));
  assertEquals(assertThrows(() => header.end(), NetworkError).code, "ERR_MALFORMED_FRAME");
});

Deno.test("codec: a large body is assembled in place, read into its room, and cleared", () => {
  const large = new Uint8Array(200_000).map((_, i) => i % 251);
  const small = new Uint8Array([4, 2]);
  const wire = new Uint8Array([...encodeFrame(large), ...encodeFrame(small)]);
  // In chunks of every size, the next frame's bytes sharing a chunk with the large body's end.
  for (const step of [1000, 65536, 150_000, wire.byteLength]) {
    const decoder = new FrameDecoder(1 << 20);
    const out: Uint8Array[] = [];
    for (let i = 0; i < wire.byteLength; i += step) {
      out.push(...decoder.push(wire.slice(i, i + step)));
    }
    assertEquals(out, [large, small]);
    decoder.end();
  }
  // A stream read straight into the room counts in place, in several reads.
  const decoder = new FrameDecoder(1 << 20);
  assertEquals(decoder.push(wire.slice(0, 10)), []);
  let room = decoder.room!;
  assertEquals(room.byteLength, large.byteLength - 6);
  room.set(large.subarray(6, 100_006));
  assertEquals(decoder.push(room.subarray(0, 100_000)), []);
  assertEquals(decoder.buffered, 100_006);
  room = decoder.room!;
  room.set(large.subarray(100_006));
  assertEquals(decoder.push(room), [large]);
  assertEquals(decoder.room, undefined);
  // Clearing drops a partial frame: the next header starts afresh.
  decoder.push(wire.slice(0, 70_000));
  assertEquals(decoder.pendingBodyBytes, large.byteLength);
  decoder.clear();
  assertEquals([decoder.buffered, decoder.pendingBodyBytes], [0, -1]);
  assertEquals(decoder.push(encodeFrame(small)), [small]);
  decoder.end();
});

Deno.test("codec: a frame pushed in consecutive views of one buffer is one view, kept as it came", () => {
  // A reader filling a chunk in place pushes each read as the next view of that buffer.
  const chunk = new Uint8Array(4 + 100_000);
  new DataView(chunk.buffer).setUint32(0, 100_000);
  chunk.fill(7, 4);
  const decoder = new FrameDecoder(1 << 20);
  assertEquals(decoder.push(chunk.subarray(0, 4)), []);
  for (const [from, to] of [[4, 1000], [1000, 50_000]]) {
    assertEquals(decoder.push(chunk.subarray(from, to)), []);
  }
  // Without a reader asking for room, a large frame holds what arrived, no body buffer.
  assertEquals(decoder.buffered, 49_996);
  const [body] = decoder.push(chunk.subarray(50_000));
  assertEquals(body.buffer, chunk.buffer);
  assertEquals([body.byteOffset, body.byteLength], [4, 100_000]);
});

Deno.test("codec: encodeMessageParts is encodeMessage's body, in the buffers `take` makes", () => {
  const take = () => new Uint8Array(16);
  for (const size of [0, 1, 13, 14, 15, 30, 31, 100]) {
    const message: NetworkMessage = {
      type: size % 2 === 0 ? "vertex" : "consensus",
      data: new Uint8Array(size).map((_, i) => i + 1),
    };
    const parts = encodeMessageParts(message, take);
    assertEquals(concatBytes(parts), encodeMessage(message), `${size} bytes`);
    assert(parts.every((part) => part.buffer.byteLength === 16 && part.byteLength > 0));
    assertEquals(parts.length, Math.max(1, Math.ceil((size + 2) / 16)));
  }
  const ping: NetworkMessage = { type: "ping", timestamp: 5 };
  assertEquals(encodeMessageParts(ping, take), [encodeMessage(ping)]);
  assertThrows(
    () => encodeMessageParts({ type: "vertex", data: "x" } as unknown as NetworkMessage, take),
    TypeError,
    "'data' must be a Uint8Array",
  );
});
