import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { NetworkError } from "../../src/errors.ts";
import { Identity, PeerId } from "../../src/identity/mod.ts";

const identity = Identity.fromSeeds({
  ed25519Seed: new Uint8Array(32).fill(9),
  mlDsa65Seed: new Uint8Array(32).fill(8),
});

Deno.test("PeerId round-trips through its string and binary forms", () => {
  const id = identity.peerId;
  const text = id.toString();
  assertEquals(text.length, 52);
  assert(/^[a-z2-7]{52}$/.test(text));
  assert(PeerId.parse(text).equals(id));
  assert(PeerId.fromBytes(id.toBytes()).equals(id));
  assertEquals(JSON.stringify(id), JSON.stringify(text));
});

Deno.test("PeerId is SHA-256 over the domain prefix and the encoded public keys", async () => {
  const prefix = new TextEncoder().encode("cretoai-network/peer-id/v1\0");
  const encoded = identity.publicIdentity.encode();
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new Uint8Array([...prefix, ...encoded])),
  );
  assertEquals(identity.peerId.toBytes(), digest);
});

Deno.test("PeerId differs when either public key differs", () => {
  const otherEd = Identity.fromSeeds({
    ed25519Seed: new Uint8Array(32).fill(10),
    mlDsa65Seed: new Uint8Array(32).fill(8),
  });
  const otherDsa = Identity.fromSeeds({
    ed25519Seed: new Uint8Array(32).fill(9),
    mlDsa65Seed: new Uint8Array(32).fill(11),
  });
  assert(!otherEd.peerId.equals(identity.peerId));
  assert(!otherDsa.peerId.equals(identity.peerId));
});

Deno.test("PeerId.parse refuses bad strings with ERR_INVALID_PEER_ID and the value seen", () => {
  const good = identity.peerId.toString();
  const cases: [string, string][] = [
    ["", "expected 52 characters, got 0"],
    [good.slice(1), "expected 52 characters, got 51"],
    [good + "a", "expected 52 characters, got 53"],
    [good.toUpperCase(), "is not in a-z2-7"],
    [good.slice(0, 10) + "1" + good.slice(11), '"1" at index 10'],
    // The last character carries one bit of the hash and four zero bits; "b" sets one of those.
    [good.slice(0, 51) + (good[51] === "a" ? "b" : "r"), "canonical"],
  ];
  for (const [text, why] of cases) {
    const err = assertThrows(() => PeerId.parse(text), NetworkError, why);
    assertEquals(err.code, "ERR_INVALID_PEER_ID");
    assert(err.message.includes(JSON.stringify(text)), err.message);
  }
});

Deno.test("PeerId.fromBytes refuses a wrong length", () => {
  const err = assertThrows(() => PeerId.fromBytes(new Uint8Array(31)), NetworkError, "31 bytes");
  assertEquals(err.code, "ERR_INVALID_PEER_ID");
});
