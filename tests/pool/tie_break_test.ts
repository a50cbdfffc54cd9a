import assert from "node:assert/strict";
import { keepOutbound } from "../../src/pool/tie_break.ts";

Deno.test("keepOutbound: both sides agree to keep the same connection", () => {
  const ids = ["12D3KooWA", "12D3KooWB", "12D3KooWa", "z", "Z", "", "12D3KooWA1", "é", "e"];
  for (const a of ids) {
    for (const b of ids) {
      if (a === b) continue;
      // a keeps its outbound (a->b) exactly when b keeps its inbound (a->b).
      assert.equal(keepOutbound(a, b), !keepOutbound(b, a), `${a} vs ${b}`);
    }
  }
});

Deno.test("keepOutbound keeps the connection dialed by the smaller id", () => {
  assert.equal(keepOutbound("12D3KooWA", "12D3KooWB"), true);
  assert.equal(keepOutbound("12D3KooWB", "12D3KooWA"), false);
  // Code-unit order, not locale order: "Z" (0x5a) sorts before "a" (0x61).
  assert.equal(keepOutbound("Z", "a"), true);
});

Deno.test("keepOutbound refuses a connection to oneself", () => {
  assert.throws(() => keepOutbound("me", "me"), RangeError);
});
