import assert from "node:assert/strict";
import { RetryTokens } from "../../src/quic/retry_token.ts";

const CLIENT = { hostname: "127.0.0.1", port: 5000 };
const ODCID = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const NOW = 1_700_000_000_000;

Deno.test("retry token: a fresh token returns the original destination id", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(CLIENT, ODCID, NOW);
  assert.equal(token.byteLength, 8 + 1 + ODCID.byteLength + 16);
  assert.deepEqual(tokens.validate(token, CLIENT, NOW), ODCID);
  assert.deepEqual(tokens.validate(token, { ...CLIENT }, NOW + 9_999), ODCID);
  // An empty and a 20-byte id both fit.
  for (const odcid of [new Uint8Array(0), new Uint8Array(20).fill(9)]) {
    assert.deepEqual(tokens.validate(tokens.mint(CLIENT, odcid, NOW), CLIENT, NOW), odcid);
  }
});

Deno.test("retry token: expires after its lifetime, and is not valid before it was minted", () => {
  const tokens = new RetryTokens({ lifetimeMs: 1000 });
  const token = tokens.mint(CLIENT, ODCID, NOW);
  assert.ok(tokens.validate(token, CLIENT, NOW + 1000) !== undefined, "valid at the edge");
  assert.equal(tokens.validate(token, CLIENT, NOW + 1001), undefined);
  assert.equal(tokens.validate(token, CLIENT, NOW - 1), undefined, "from the future");
});

Deno.test("retry token: bound to the client's address and port", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(CLIENT, ODCID, NOW);
  assert.equal(tokens.validate(token, { hostname: "127.0.0.2", port: 5000 }, NOW), undefined);
  assert.equal(tokens.validate(token, { hostname: "127.0.0.1", port: 5001 }, NOW), undefined);
  // The separator keeps "1.2.3.4" + "15" apart from "1.2.3.41" + "5".
  const a = tokens.mint({ hostname: "1.2.3.4", port: 15 }, ODCID, NOW);
  assert.equal(tokens.validate(a, { hostname: "1.2.3.41", port: 5 }, NOW), undefined);
});

Deno.test("retry token: any changed bit, truncation or extension is refused", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(CLIENT, ODCID, NOW);
  for (let i = 0; i < token.byteLength; i++) {
    for (const bit of [0x01, 0x80]) {
      const changed = token.slice();
      changed[i] ^= bit;
      assert.equal(tokens.validate(changed, CLIENT, NOW), undefined, `byte ${i} bit ${bit}`);
    }
  }
  for (let length = 0; length < token.byteLength; length++) {
    assert.equal(tokens.validate(token.slice(0, length), CLIENT, NOW), undefined);
  }
  const longer = new Uint8Array(token.byteLength + 1);
  longer.set(token);
  assert.equal(tokens.validate(longer, CLIENT, NOW), undefined);
  // A claimed id length above 20 is refused before any MAC work.
  const wide = token.slice();
  wide[8] = 200;
  assert.equal(tokens.validate(wide, CLIENT, NOW), undefined);
});

Deno.test("retry token: another key's token is refused; the same key accepts it", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const token = new RetryTokens({ key }).mint(CLIENT, ODCID, NOW);
  assert.equal(new RetryTokens().validate(token, CLIENT, NOW), undefined);
  assert.deepEqual(new RetryTokens({ key }).validate(token, CLIENT, NOW), ODCID);
});

Deno.test("retry token: validate works on a token inside a larger buffer", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(CLIENT, ODCID, NOW);
  const packet = new Uint8Array(token.byteLength + 7);
  packet.set(token, 3);
  assert.deepEqual(tokens.validate(packet.subarray(3, 3 + token.byteLength), CLIENT, NOW), ODCID);
});
