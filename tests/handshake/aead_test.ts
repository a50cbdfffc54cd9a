import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { type Aead, defaultAead, libcryptoAead, nodeAead } from "../../src/handshake/_aead.ts";
import { FrameCipher } from "../../src/handshake/mod.ts";

const KEY = new Uint8Array(32).map((_, i) => i);
const NONCE = new Uint8Array(12).fill(9);
const libcrypto = libcryptoAead();
const libcryptoExpected = Deno.build.os === "linux" && (() => {
  try {
    Deno.dlopen("libcrypto.so.3", {}).close();
    return true;
  } catch {
    return false;
  }
})();

function seal(aead: Aead, data: Uint8Array, pieceBytes: number, aad?: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.byteLength + 16);
  const frame = aead.start(KEY, NONCE, true);
  if (aad !== undefined) frame.aad(aad, data.byteLength);
  for (let at = 0; at < data.byteLength; at += pieceBytes) {
    frame.update(data.subarray(at, at + pieceBytes), out.subarray(at));
  }
  frame.seal(out.subarray(data.byteLength));
  return out;
}

function openInPlace(aead: Aead, sealed: Uint8Array, pieceBytes: number, aad?: Uint8Array) {
  const length = sealed.byteLength - 16;
  const frame = aead.start(KEY, NONCE, false);
  if (aad !== undefined) frame.aad(aad, length);
  for (let at = 0; at < length; at += pieceBytes) {
    const piece = sealed.subarray(at, Math.min(length, at + pieceBytes));
    frame.update(piece, piece);
  }
  return frame.open(sealed.subarray(length));
}

Deno.test("with unrestricted --allow-ffi on Linux, frames go through libcrypto", () => {
  if (!libcryptoExpected) return; // no libcrypto.so.3 here: node:crypto is the only backend
  assertEquals(libcrypto?.name, "libcrypto");
  assertEquals(defaultAead(), libcrypto);
});

Deno.test("libcrypto and node:crypto seal the same bytes and open each other's frames", () => {
  if (libcrypto === undefined) return;
  const data = new Uint8Array(300_000).map((_, i) => (i * 7) & 255);
  const aad = new Uint8Array([4, 5, 6]);
  for (const size of [0, 1, 15, 16, 17, 1350, 65_536, 300_000]) {
    const plaintext = data.subarray(0, size);
    for (const pieceBytes of [1, 1000, 65_536, 300_000]) {
      if (pieceBytes === 1 && size > 2000) continue;
      const a = seal(nodeAead, plaintext, pieceBytes, aad);
      const b = seal(libcrypto, plaintext, 300_000 - pieceBytes + 1, aad);
      assertEquals(b, a, `${size} bytes`);
      const [byNode, byLibcrypto] = [a.slice(), b.slice()];
      assert(openInPlace(nodeAead, byLibcrypto, pieceBytes, aad));
      assert(openInPlace(libcrypto, byNode, pieceBytes, aad));
      assertEquals(byNode.subarray(0, size), plaintext);
      assertEquals(byLibcrypto.subarray(0, size), plaintext);
    }
  }
});

Deno.test("frames under one key agree with node:crypto in turn, overlapping and after an abandoned one", () => {
  for (const aead of libcrypto === undefined ? [nodeAead] : [nodeAead, libcrypto]) {
    const sealing = aead.forKey(KEY, true);
    const opening = aead.forKey(KEY, false);
    const nonceOf = (n: number) => new Uint8Array(12).fill(n);
    const expected = (n: number, data: Uint8Array) => {
      const out = new Uint8Array(data.byteLength + 16);
      const frame = nodeAead.start(KEY, nonceOf(n), true);
      frame.update(data, out);
      frame.seal(out.subarray(data.byteLength));
      return out;
    };
    const data = new Uint8Array(200).map((_, i) => i);
    // In turn, each with its nonce; a failed open leaves the next one sound.
    for (const n of [4, 5, 6]) {
      const out = new Uint8Array(216);
      const frame = sealing.start(nonceOf(n));
      frame.update(data, out);
      frame.seal(out.subarray(200));
      assertEquals(out, expected(n, data), `${aead.name}: frame ${n} in turn`);
      const tampered = out.slice();
      tampered[0] ^= 1;
      const bad = opening.start(nonceOf(n));
      bad.update(tampered.subarray(0, 200), tampered);
      assert(!bad.open(tampered.subarray(200)), `${aead.name}: tampered frame ${n}`);
      const good = opening.start(nonceOf(n));
      good.update(out.subarray(0, 200), out);
      assert(good.open(out.subarray(200)), `${aead.name}: frame ${n}`);
      assertEquals(out.subarray(0, 200), data);
    }
    // Two frames open at once, ended in the other order.
    const [first, second] = [sealing.start(nonceOf(2)), sealing.start(nonceOf(3))];
    const [a, b] = [new Uint8Array(216), new Uint8Array(216)];
    first.update(data, a);
    second.update(data, b);
    second.seal(b.subarray(200));
    first.seal(a.subarray(200));
    assertEquals(a, expected(2, data), `${aead.name}: the first of two open frames`);
    assertEquals(b, expected(3, data), `${aead.name}: the second of two open frames`);
    // An abandoned frame holds its context for good: later frames do without it.
    sealing.start(nonceOf(7)).update(data, new Uint8Array(200));
    const out = new Uint8Array(216);
    const after = sealing.start(nonceOf(8));
    after.update(data, out);
    after.seal(out.subarray(200));
    assertEquals(out, expected(8, data), `${aead.name}: a frame after an abandoned one`);
  }
});

Deno.test("one-off frames under other keys agree with node:crypto on reused contexts", () => {
  if (libcrypto === undefined) return;
  // Each ended one-off frame leaves its context for the next, which takes only a key and a
  // nonce: the key, direction and tag must all be the new frame's, also after a failed open.
  const plaintext = new Uint8Array(200).map((_, i) => i);
  for (let round = 0; round < 24; round++) {
    const key = new Uint8Array(32).fill(round);
    const nonce = new Uint8Array(12).fill(round + 100);
    const sealWith = (aead: Aead) => {
      const out = new Uint8Array(plaintext.byteLength + 16);
      const frame = aead.start(key, nonce, true);
      frame.update(plaintext, out);
      frame.seal(out.subarray(plaintext.byteLength));
      return out;
    };
    const expected = sealWith(nodeAead);
    assertEquals(sealWith(libcrypto), expected, `round ${round}`);
    const openWith = (sealed: Uint8Array, tamper: boolean) => {
      const copy = sealed.slice();
      if (tamper) copy[round % copy.byteLength] ^= 1;
      const frame = libcrypto.start(key, nonce, false);
      const body = copy.subarray(0, plaintext.byteLength);
      frame.update(body, body);
      return frame.open(copy.subarray(plaintext.byteLength)) ? body : undefined;
    };
    assertEquals(openWith(expected, true), undefined, `round ${round}: tampered`);
    assertEquals(openWith(expected, false), plaintext, `round ${round}`);
  }
});

Deno.test("both backends refuse a tampered frame, a wrong tag length and other additional data", () => {
  for (const aead of libcrypto === undefined ? [nodeAead] : [nodeAead, libcrypto]) {
    const sealed = seal(aead, new Uint8Array(100).fill(1), 64, new Uint8Array([1]));
    for (const at of [0, 99, 100, 115]) {
      const copy = sealed.slice();
      copy[at] ^= 0x80;
      assertEquals(openInPlace(aead, copy, 64, new Uint8Array([1])), false, `${aead.name} ${at}`);
    }
    assertEquals(openInPlace(aead, sealed.slice(), 64, new Uint8Array([2])), false);
    const frame = aead.start(KEY, NONCE, false);
    frame.update(sealed.slice(0, 100), new Uint8Array(100));
    assertEquals(frame.open(sealed.subarray(100, 115)), false, `${aead.name}: a 15-byte tag`);
    assert(openInPlace(aead, sealed.slice(), 64, new Uint8Array([1])));
  }
});

Deno.test("a sealer writes into the caller's buffer and refuses one that is too short", async () => {
  const cipher = await FrameCipher.create({ send: KEY, recv: KEY.toReversed() });
  const whole = await (await FrameCipher.create({ send: KEY, recv: KEY.toReversed() }))
    .seal(new Uint8Array(40).fill(5));
  const out = new Uint8Array(64);
  const sealer = cipher.sealer(40);
  assertThrows(() => sealer.update(new Uint8Array(20), new Uint8Array(19)), RangeError, "into 19");
  const first = sealer.update(new Uint8Array(20).fill(5), out);
  assertEquals([first.buffer === out.buffer, first.byteOffset, first.byteLength], [true, 0, 20]);
  sealer.update(new Uint8Array(20).fill(5), out.subarray(20));
  assertThrows(() => sealer.final(new Uint8Array(15)), RangeError, "into 15");
  const tag = sealer.final(out.subarray(40));
  assertEquals(tag.byteOffset, 40);
  assertEquals(out.subarray(0, 56), whole);
});

Deno.test("without unrestricted --allow-ffi, frames use node:crypto", async () => {
  const code = `import { defaultAead } from ${
    JSON.stringify(import.meta.resolve("../../src/handshake/_aead.ts"))
  };\nconsole.log(defaultAead().name);`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "--allow-env", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(new TextDecoder().decode(out.stdout).trim(), "node:crypto", stderr);
});

Deno.test("libcrypto backend: an output or tag buffer too short is refused before native code runs", () => {
  const aead = libcryptoAead();
  if (aead === undefined) return; // not loadable here: the node:crypto path has no native writes
  const key = new Uint8Array(32);
  const nonce = new Uint8Array(12);
  const sealing = aead.start(key, nonce, true);
  assertThrows(() => sealing.update(new Uint8Array(100), new Uint8Array(99)), RangeError, "99");
  assertThrows(() => sealing.seal(new Uint8Array(15)), RangeError, "15");
  const opening = aead.start(key, nonce, false);
  assertThrows(() => opening.update(new Uint8Array(64), new Uint8Array(1)), RangeError, "64");
  assertEquals(opening.open(new Uint8Array(16)), false);
});
