/**
 * Inputs the fuzz campaigns found, each kept as a regression test with its hex as found.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { decodeControl } from "../../src/transport/_frames.ts";
import { fromHex } from "./_mutate.ts";

Deno.test("fuzz finding: an ack count above 2^53 - 1 is refused, not read as another number", () => {
  // transport/control, seed 0x170008: high word 0x023f0001 made the count lose its low bits,
  // so decoding and encoding again gave other bytes.
  for (const hex of ["0102023f00010000000005", "01021202db010000000005"]) {
    assert.throws(
      () => decodeControl(fromHex(hex)),
      (e) => e instanceof NetworkError && e.code === "ERR_MALFORMED_FRAME",
    );
  }
  const largest = decodeControl(fromHex("010200001fffffffffffff"));
  assert.deepEqual(largest, { type: "ack", lane: 0, count: Number.MAX_SAFE_INTEGER });
});
