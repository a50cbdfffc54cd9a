import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { decodeMessage, encodeMessage } from "../../src/transport/codec.ts";
import {
  decodeControl,
  decodeLaneFrame,
  decodeLaneHeader,
  encodeAckedMessage,
  encodeControl,
  encodeLaneHeader,
  hashId,
  MAX_LANE_ACKS_BYTES,
} from "../../src/transport/_frames.ts";

const message = encodeMessage({ type: "consensus", data: new Uint8Array([1, 2, 3]) });

Deno.test("frames: a lane header names lanes 0 to 2 and refuses anything else", () => {
  for (const lane of [0, 1, 2]) assert.equal(decodeLaneHeader(encodeLaneHeader(lane)), lane);
  const cases: [string, Uint8Array, RegExp][] = [
    ["lane 3", Uint8Array.of(1, 3), /2-byte header .*got 2 bytes \[1, 3\]/],
    ["version 2", Uint8Array.of(2, 0), /got 2 bytes \[2, 0\]/],
    ["empty", new Uint8Array(0), /got 0 bytes \[\]/],
    ["a message instead", message, /got 5 bytes \[1, 2, 1, 2\]/],
  ];
  for (const [name, body, pattern] of cases) {
    assert.throws(() => decodeLaneHeader(body), (e) => {
      assert.ok(e instanceof NetworkError, name);
      assert.equal(e.code, "ERR_MALFORMED_FRAME", name);
      assert.match(e.message, pattern, name);
      return true;
    });
  }
});

Deno.test("frames: a lane frame without acknowledgements is the message body itself", () => {
  const frame = decodeLaneFrame(message);
  assert.deepEqual(frame.acks, []);
  assert.equal(frame.message, message);
});

Deno.test("frames: acknowledgements ride ahead of a message and come back out", () => {
  const acks = [{ lane: 0, count: 1 }, { lane: 1, count: 2 ** 40 + 5 }, {
    lane: 2,
    count: Number.MAX_SAFE_INTEGER,
  }];
  const body = encodeAckedMessage(acks, message);
  assert.equal(body.byteLength, message.byteLength + MAX_LANE_ACKS_BYTES);
  const frame = decodeLaneFrame(body);
  assert.deepEqual(frame.acks, acks);
  assert.deepEqual(
    decodeMessage(frame.message),
    { type: "consensus", data: new Uint8Array([1, 2, 3]) },
  );
  // The same 9-byte layout as the ack control frame.
  const control = encodeControl({ type: "ack", ...acks[1] });
  assert.deepEqual(body.subarray(11, 20), control.subarray(2));
  assert.deepEqual(decodeControl(control), { type: "ack", ...acks[1] });
});

Deno.test("frames: a lane frame with a bad acknowledgement block is ERR_MALFORMED_FRAME", () => {
  const good = encodeAckedMessage([{ lane: 0, count: 7 }], message);
  const cases: [string, Uint8Array, RegExp][] = [
    ["no acknowledgements", Uint8Array.of(0xac, 0, ...message), /announces 0 acknowledgements/],
    ["four", Uint8Array.of(0xac, 4, ...new Uint8Array(36), ...message), /announces 4/],
    ["truncated", good.subarray(0, 8), /of 8 bytes announces 1/],
    ["only the tag", Uint8Array.of(0xac), /of 1 bytes/],
  ];
  const huge = good.slice();
  huge[3] = 0x00;
  huge[4] = 0x20; // high word 2^21: the count is above 2^53 - 1
  cases.push(["count above 2^53 - 1", huge, /above 2\^53 - 1 \(high word 2097152\)/]);
  for (const [name, body, pattern] of cases) {
    assert.throws(() => decodeLaneFrame(body), (e) => {
      assert.ok(e instanceof NetworkError, name);
      assert.equal(e.code, "ERR_MALFORMED_FRAME", name);
      assert.match(e.message, pattern, name);
      return true;
    });
  }
});

Deno.test("frames: open and ready carry incarnations, a move's lineage and generation, a first dial's last lineage, a dial's number", () => {
  const frames = [
    { type: "ready", incarnation: 2n ** 64n - 1n },
    { type: "open", replace: false, generation: 0, incarnation: 0n },
    {
      type: "open",
      replace: false,
      generation: 0,
      incarnation: 123_456_789n << 16n,
      lastHeld: "00ff00ff00ff00ff",
    },
    {
      type: "open",
      replace: true,
      generation: 2 ** 32 - 1,
      incarnation: 5n,
      lineage: "0123456789abcdef",
    },
    // This version numbers its dials; an earlier one's frames (above) still decode.
    { type: "open", replace: false, generation: 0, incarnation: 1n, dial: 7, alone: true },
    {
      type: "open",
      replace: false,
      generation: 0,
      incarnation: 1n,
      lastHeld: "00ff00ff00ff00ff",
      dial: Number.MAX_SAFE_INTEGER,
    },
    {
      type: "open",
      replace: true,
      generation: 1,
      incarnation: 5n,
      lineage: "0123456789abcdef",
      dial: 1,
    },
  ] as const;
  const sizes = [10, 11, 19, 23, 19, 27, 31];
  frames.forEach((frame, i) => {
    const body = encodeControl(frame);
    assert.equal(body.byteLength, sizes[i], frame.type);
    assert.deepEqual(decodeControl(body), frame);
  });
  assert.equal(hashId(new Uint8Array(32).fill(0xab)), "abababababababab");
  assert.throws(
    () => encodeControl({ ...frames[3], lineage: "XYZ" }),
    /16 lowercase hex digits: it is "XYZ"/,
  );
});

Deno.test("frames: open and ready of another length or with unknown flags are ERR_MALFORMED_FRAME", () => {
  const open = encodeControl({ type: "open", replace: false, generation: 0, incarnation: 1n });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "ready without incarnation",
      Uint8Array.of(1, 1),
      /ready control frame must be 10 bytes: it has 2/,
    ],
    [
      "open of version 1 (3 bytes)",
      Uint8Array.of(1, 5, 0),
      /open control frame must be 11 bytes: it has 3/,
    ],
    [
      "both flags",
      Uint8Array.of(...open.subarray(0, 2), 3, ...open.subarray(3)),
      /unknown flags 3/,
    ],
    ["flag 16", Uint8Array.of(...open.subarray(0, 2), 16, ...open.subarray(3)), /unknown flags 16/],
    [
      "alone without a dial number",
      Uint8Array.of(...open.subarray(0, 2), 8, ...open.subarray(3)),
      /unknown flags 8/,
    ],
    [
      "a move alone",
      Uint8Array.of(...open.subarray(0, 2), 13, ...open.subarray(3), ...new Uint8Array(20)),
      /unknown flags 13/,
    ],
    [
      "dial number cut",
      Uint8Array.of(...open.subarray(0, 2), 4, ...open.subarray(3)),
      /open control frame must be 19 bytes: it has 11/,
    ],
    [
      "dial number of 2^53",
      Uint8Array.of(...open.subarray(0, 2), 4, ...open.subarray(3), 0, 0x20, 0, 0, 0, 0, 0, 0),
      /dial number 9007199254740992 is not below 2\^53/,
    ],
    [
      "last held cut",
      Uint8Array.of(...open.subarray(0, 2), 2, ...open.subarray(3)),
      /must be 19 bytes: it has 11/,
    ],
    [
      "move cut",
      Uint8Array.of(1, 5, 1, 0, 0, 0, 0),
      /replacing open control frame must be 23 bytes: it has 7/,
    ],
  ];
  for (const [name, body, pattern] of cases) {
    assert.throws(() => decodeControl(body), (e) => {
      assert.ok(e instanceof NetworkError, name);
      assert.equal(e.code, "ERR_MALFORMED_FRAME", name);
      assert.match(e.message, pattern, name);
      return true;
    });
  }
});
