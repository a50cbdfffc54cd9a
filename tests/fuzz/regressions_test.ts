/**
 * Inputs the fuzz campaigns found, each kept as a regression test with its hex as found.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { generateCertificate } from "../../src/quic/certificate.ts";
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

Deno.test("fuzz finding: a certificate above ~100 KiB is encoded to PEM, not a stack overflow", async () => {
  // certificate_fuzz_test, a 160 KiB binding: `generateCertificate` spread the whole DER into
  // one `String.fromCharCode` call and threw RangeError (maximum call stack size exceeded).
  const value = new Uint8Array(160 * 1024).fill(0xa5);
  const { der, certPem } = await generateCertificate({
    extensions: [{ oid: Uint8Array.of(0x2a, 0x03, 0x04), value }],
  });
  const base64 = new TextDecoder().decode(certPem).split("\n").filter((l) => !l.startsWith("-"));
  assert.ok(base64.every((line) => line.length <= 64));
  assert.deepEqual(Uint8Array.from(atob(base64.join("")), (c) => c.charCodeAt(0)), der);
});
