import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { concatBytes } from "../../src/_bytes.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { FrameCipher, HandshakeDialer, HandshakeListener } from "../../src/handshake/mod.ts";
import { toHex } from "../../src/_bytes.ts";
import { pairOptions, run } from "./_util.ts";

const K1 = new Uint8Array(32).fill(1);
const K2 = new Uint8Array(32).fill(2);
const text = (s: string) => new TextEncoder().encode(s);

async function pair() {
  return {
    a: await FrameCipher.create({ send: K1, recv: K2 }),
    b: await FrameCipher.create({ send: K2, recv: K1 }),
  };
}

Deno.test("frames use counter nonces from 0: known answers", async () => {
  // Python `cryptography`: ChaCha20Poly1305(bytes([1]*32)).encrypt(bytes(4) +
  // c.to_bytes(8, "big"), b"hello", aad)
  const { a } = await pair();
  assertEquals(toHex(await a.seal(text("hello"))), "694221bd81cbdbe78c5515888c4bc8dba56811a14f");
  assertEquals(toHex(await a.seal(text("hello"))), "7d3dec44c6d48665e2df9b810bf36d359578f4cef0");
  const { a: fresh } = await pair();
  assertEquals(
    toHex(await fresh.seal(text("hello"), text("hdr"))),
    "694221bd813a1d7dbb693d89d524d9371f79aaf40e",
  );
  assertEquals(a.sentFrames, 2);
});

Deno.test("frames round-trip in order, in both directions, with session keys", async () => {
  const o = pairOptions(true);
  const r = await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  const d = await FrameCipher.create(r.dialer.keys!);
  const l = await FrameCipher.create(r.listener.keys!);
  const sizes = [0, 1, 256, 65536];
  const sealed = await Promise.all(sizes.map((n) => d.seal(new Uint8Array(n).fill(n & 0xff))));
  const opened = await Promise.all(sealed.map((f) => l.open(f)));
  assertEquals(opened.map((p) => p.byteLength), sizes);
  assertEquals(opened[2], new Uint8Array(256).fill(0));
  assertEquals(await d.open(await l.seal(text("back"))), text("back"));
  assertEquals([l.receivedFrames, l.sentFrames, d.receivedFrames], [4, 1, 1]);
});

Deno.test("tampered frames fail with ERR_DECRYPT, and the opener stays failed", async () => {
  for (const at of [0, 4, 20]) {
    const { a, b } = await pair();
    const frame = await a.seal(new Uint8Array(5));
    frame[at] ^= 0x80;
    const err = await assertRejects(() => b.open(frame), NetworkError, "authentication failed");
    assertEquals(err.code, "ERR_DECRYPT");
    const next = await a.seal(text("later"));
    await assertRejects(() => b.open(next), NetworkError, "an earlier frame failed");
  }
});

Deno.test("replayed, reordered and dropped frames fail with ERR_DECRYPT", async () => {
  {
    const { a, b } = await pair();
    const f0 = await a.seal(text("zero"));
    assertEquals(await b.open(f0), text("zero"));
    await assertRejects(() => b.open(f0), NetworkError, "Cannot open frame 1");
  }
  {
    const { a, b } = await pair();
    await a.seal(text("zero"));
    const f1 = await a.seal(text("one"));
    await assertRejects(() => b.open(f1), NetworkError, "Cannot open frame 0");
  }
});

Deno.test("truncated frames and wrong AAD fail with ERR_DECRYPT", async () => {
  {
    const { a, b } = await pair();
    const frame = await a.seal(text("hello"));
    const err = await assertRejects(
      () => b.open(frame.subarray(0, 15)),
      NetworkError,
      "at least 16 bytes (the tag): current value is 15 bytes",
    );
    assertEquals(err.code, "ERR_DECRYPT");
  }
  {
    const { a, b } = await pair();
    const frame = await a.seal(text("hello"));
    await assertRejects(
      () => b.open(frame.subarray(0, frame.byteLength - 1)),
      NetworkError,
      "authentication",
    );
  }
  {
    const { a, b } = await pair();
    const frame = await a.seal(text("hello"), text("stream 4"));
    await assertRejects(() => b.open(frame, text("stream 8")), NetworkError, "authentication");
  }
});

Deno.test("bad keys are refused", async () => {
  const e = await assertRejects(
    () => FrameCipher.create({ send: new Uint8Array(16), recv: K2 }),
    NetworkError,
    "Invalid send key: must be 32 bytes: current value is 16 bytes",
  );
  assertEquals(e.code, "ERR_INVALID_KEY");
  await assertRejects(
    () => FrameCipher.create({ send: K1, recv: K1 }),
    InvalidConfigError,
    "'keys'",
  );
});

Deno.test("forStream puts the stream id in the nonce: known answers, shared key budget", async () => {
  // Python `cryptography`: ChaCha20Poly1305(bytes([1]*32)).encrypt(sid.to_bytes(7, "big") +
  // c.to_bytes(5, "big"), b"hello", None)
  const { a, b } = await pair();
  const s5 = a.forStream(5);
  await s5.seal(text("x"));
  assertEquals(toHex(await s5.seal(text("hello"))), "8a2674010a6413ac89633ec0307778abdde50b42df");
  assertEquals(
    toHex(await a.forStream(2 ** 53 - 1).seal(text("hello"))),
    "8cc88cca6853081c39ad6179f6742ab1eceabca791",
  );
  // Stream 0 is the plain cipher's nonce layout.
  assertEquals(
    toHex(await a.forStream(0).seal(text("hello"))),
    "694221bd81cbdbe78c5515888c4bc8dba56811a14f",
  );
  // A frame sealed for one stream does not open on another.
  const frame = await a.forStream(8).seal(text("hi"));
  await assertRejects(() => b.forStream(12).open(frame), NetworkError, "authentication failed");
  assertEquals(new TextDecoder().decode(await b.forStream(8).open(frame)), "hi");
  for (const bad of [-1, 1.5, 2 ** 53, NaN]) {
    try {
      a.forStream(bad);
      throw new Error(`forStream(${bad}) must throw`);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
    }
  }
});

Deno.test("frames are RFC 8439 ChaCha20-Poly1305: @noble/ciphers opens them, at every size", async () => {
  for (const size of [0, 1, 4095, 65536, 65537, 200_000]) {
    const { a, b } = await pair();
    const plain = new Uint8Array(size).map((_, i) => i * 7);
    const sealed = await a.seal(plain, text("hdr"));
    // An independent implementation with the documented nonce (stream 0, counter 0).
    assertEquals(chacha20poly1305(K1, new Uint8Array(12), text("hdr")).decrypt(sealed), plain);
    assertEquals(await b.open(sealed, text("hdr")), plain, `size ${size}`);
    // And the other way round.
    const theirs = chacha20poly1305(K2, new Uint8Array(12)).encrypt(plain);
    assertEquals(await a.open(theirs), plain, `size ${size}`);
    // Tampering is caught at every size, and the opener stays failed.
    const next = await a.seal(plain);
    next[next.byteLength - 1] ^= 1;
    await assertRejects(() => b.open(next), NetworkError, "authentication failed");
    const after = await a.seal(plain);
    await assertRejects(() => b.open(after), NetworkError, "an earlier frame failed");
  }
});

Deno.test("open leaves the frame as it was", async () => {
  const { a, b } = await pair();
  const sealed = await a.seal(new Uint8Array(70_000).fill(5));
  const copy = sealed.slice();
  assertEquals(await b.open(sealed), new Uint8Array(70_000).fill(5));
  assertEquals(sealed, copy);
});

Deno.test("sealer and opener: a frame in pieces of any size is the frame sealed whole", async () => {
  const size = 200_000;
  const data = new Uint8Array(size).map((_, i) => i * 13);
  const whole = await (await pair()).a.seal(data);
  for (const pieceBytes of [1_000, 65_536, 100_000, size]) {
    const { a, b } = await pair();
    const sealer = a.sealer(size);
    const parts: Uint8Array[] = [];
    for (let at = 0; at < size; at += pieceBytes) {
      parts.push(sealer.update(data.subarray(at, at + pieceBytes)));
    }
    parts.push(sealer.final());
    const frame = concatBytes(parts);
    assertEquals(frame, whole, `pieces of ${pieceBytes}`);
    // Opened in place, in pieces that do not line up with the sealer's.
    const opener = b.opener(frame.byteLength);
    for (let at = 0; at < size; at += pieceBytes + 7) {
      opener.update(frame.subarray(at, Math.min(size, at + pieceBytes + 7)));
    }
    opener.final(frame.subarray(size));
    assertEquals(frame.subarray(0, size), data);
    assertEquals([a.sentFrames, b.receivedFrames], [1, 1]);
  }
});

Deno.test("sealer and opener: more or fewer bytes than announced are refused", async () => {
  const { a, b } = await pair();
  const sealer = a.sealer(4);
  assertThrows(() => sealer.update(new Uint8Array(5)), RangeError, "4 of its 4 bytes are left");
  sealer.update(new Uint8Array(3));
  assertThrows(() => sealer.final(), RangeError, "1 of its 4 bytes were not sealed");
  sealer.update(new Uint8Array(1));
  const tag = sealer.final();
  assertEquals(tag.byteLength, 16);
  assertThrows(() => sealer.final(), RangeError, "already ended");
  for (const bad of [-1, 1.5, 2 ** 32, NaN]) {
    assertThrows(() => a.sealer(bad), RangeError, "'plaintextBytes'");
    assertThrows(() => b.opener(bad), RangeError, "'sealedBytes'");
  }
  const opener = b.opener(20);
  assertThrows(() => opener.update(new Uint8Array(5)), RangeError, "4 of its 4 ciphertext");
  assertThrows(() => opener.final(tag), RangeError, "4 of its 4 ciphertext bytes are missing");
});

Deno.test("opener: a tampered piece or tag fails at final with ERR_DECRYPT and poisons the cipher", async () => {
  for (const at of [0, 99_999, 100_015]) {
    const { a, b } = await pair();
    const frame = await a.seal(new Uint8Array(100_000));
    frame[at] ^= 1;
    const opener = b.opener(frame.byteLength);
    opener.update(frame.subarray(0, 100_000));
    const err = assertThrows(
      () => opener.final(frame.subarray(100_000)),
      NetworkError,
      "authentication failed",
    );
    assertEquals(err.code, "ERR_DECRYPT");
    assertThrows(() => b.opener(16), NetworkError, "an earlier frame failed");
  }
  {
    const { b } = await pair();
    const err = assertThrows(() => b.opener(15), NetworkError, "current value is 15 bytes");
    assertEquals(err.code, "ERR_DECRYPT");
    assertThrows(() => b.opener(16), NetworkError, "an earlier frame failed");
  }
});
