import { assert, assertEquals, assertThrows } from "../_assert.ts";
import {
  decodeGossipFrame,
  encodeGossipFrame,
  type GossipFrame,
  gossipFrameBytes,
  isGossipFrame,
  MAX_FRAME_IDS,
} from "../../src/gossip/mod.ts";
import { NetworkError } from "../../mod.ts";

const id = (n: number) => n.toString(16).padStart(2, "0").repeat(32);

const FRAMES: GossipFrame[] = [
  { kind: "message", topic: "vertices", data: new Uint8Array([1, 2, 3]), hops: 4 },
  { kind: "message", topic: "ä∑😀", data: new Uint8Array(), hops: 255 },
  { kind: "ihave", topic: "t", ids: [id(1), id(2)] },
  { kind: "iwant", ids: [id(3)] },
  { kind: "idontwant", ids: [] },
  { kind: "graft", topic: "t" },
  { kind: "prune", topic: "t" },
  { kind: "subscribe", topic: "x".repeat(256) },
  { kind: "unsubscribe", topic: "t" },
  { kind: "choke", topic: "t" },
  { kind: "unchoke", topic: "t" },
];

Deno.test("gossip codec: every kind survives a round trip; sizes are predicted", () => {
  for (const frame of FRAMES) {
    const bytes = encodeGossipFrame(frame);
    assert(isGossipFrame(bytes));
    assertEquals(decodeGossipFrame(bytes), frame);
    assertEquals(gossipFrameBytes(frame), bytes.byteLength, frame.kind);
  }
});

Deno.test("gossip codec: bad input is refused with ERR_MALFORMED_FRAME naming what was wrong", () => {
  const good = encodeGossipFrame({ kind: "ihave", topic: "t", ids: [id(1)] });
  const cases: [Uint8Array, string][] = [
    [new Uint8Array([71, 83]), "at least 4 bytes"],
    [new Uint8Array([1, 2, 3, 4]), "Not a gossip frame"],
    [new Uint8Array([71, 83, 2, 1]), "version 2"],
    [new Uint8Array([71, 83, 1, 42]), "Unknown gossip frame kind 42"],
    [good.subarray(0, good.byteLength - 1), "truncated in 'id'"],
    [new Uint8Array([...good, 0]), "trailing"],
    [new Uint8Array([71, 83, 1, 5, 0, 0]), "'topic' is empty"],
    [new Uint8Array([71, 83, 1, 5, 1, 1, ...new Uint8Array(257)]), "at most 256 bytes"],
    [new Uint8Array([71, 83, 1, 5, 0, 1, 0xff]), "not UTF-8"],
    [new Uint8Array([71, 83, 1, 3, 0xff, 0xff]), `at most ${MAX_FRAME_IDS} ids`],
    [new Uint8Array([71, 83, 1, 1, 0, 1, 116]), "truncated in 'hops'"],
  ];
  for (const [bytes, message] of cases) {
    const e = assertThrows(() => decodeGossipFrame(bytes), NetworkError, message);
    assertEquals(e.code, "ERR_MALFORMED_FRAME");
  }
});

Deno.test("gossip codec: frames that cannot be encoded are refused with TypeError", () => {
  assertThrows(
    () => encodeGossipFrame({ kind: "nope" } as unknown as GossipFrame),
    TypeError,
    '"nope"',
  );
  assertThrows(() => encodeGossipFrame({ kind: "graft", topic: "" }), TypeError, "Invalid topic");
  assertThrows(
    () => encodeGossipFrame({ kind: "message", topic: "t", data: new Uint8Array(), hops: 256 }),
    TypeError,
    "'hops'",
  );
  assertThrows(() => encodeGossipFrame({ kind: "iwant", ids: ["xyz"] }), TypeError, '"xyz"');
  assertThrows(
    () => encodeGossipFrame({ kind: "iwant", ids: Array(MAX_FRAME_IDS + 1).fill(id(1)) }),
    TypeError,
    "at most 5000 ids",
  );
});
