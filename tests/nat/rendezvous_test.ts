/**
 * Rendezvous messages: the size bound comes before any parsing, and sits above every valid
 * message.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import {
  decodeRendezvous,
  encodeRendezvous,
  MAX_ADDRESSES,
  MAX_RENDEZVOUS_BYTES,
} from "../../src/nat/_rendezvous.ts";

Deno.test("rendezvous: a body above the bound is refused by its size before JSON.parse", () => {
  const body = new TextEncoder().encode(
    `{"v":1,"t":"refused","reason":"${"x".repeat(16 * 1024 * 1024)}"}`,
  );
  const realParse = JSON.parse;
  let parsed = 0;
  JSON.parse = (...args: Parameters<typeof JSON.parse>) => {
    parsed++;
    return realParse(...args);
  };
  try {
    assert.throws(
      () => decodeRendezvous(body),
      (e: unknown) =>
        e instanceof NetworkError && e.code === "ERR_MALFORMED_FRAME" &&
        e.message.includes(`${body.byteLength} bytes, above ${MAX_RENDEZVOUS_BYTES}`),
    );
  } finally {
    JSON.parse = realParse;
  }
  assert.equal(parsed, 0, "never parsed");
});

Deno.test("rendezvous: the largest valid messages fit within the bound", () => {
  const widest = Array.from({ length: MAX_ADDRESSES }, (_, i) => ({
    hostname: `ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff${i}`,
    port: 65535,
  }));
  const longest = "\u0001".repeat(512); // escaped as \u0001: six bytes each
  const messages = [
    encodeRendezvous({ t: "refused", reason: longest }),
    encodeRendezvous({
      t: "sync",
      session: "ab".repeat(16),
      peer: longest,
      addresses: widest,
      nat: "Symmetric",
      startIn: -60_000,
      waitMs: 600_000,
    }),
  ];
  for (const bytes of messages) {
    assert.ok(bytes.byteLength <= MAX_RENDEZVOUS_BYTES, `${bytes.byteLength} bytes`);
    decodeRendezvous(bytes);
  }
});
