import { assertEquals, assertRejects } from "../_assert.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { FrameCipher, HandshakeDialer, HandshakeListener } from "../../src/handshake/mod.ts";
import { hex, pairOptions, run } from "./_util.ts";

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
  // Python `cryptography`: AESGCM(bytes([1]*32).encrypt(bytes(4) + c.to_bytes(8, "big"), b"hello", aad)
  const { a } = await pair();
  assertEquals(hex(await a.seal(text("hello"))), "d750f4b01ad351ab21bdff24b8dae64e9272dd9b18");
  assertEquals(hex(await a.seal(text("hello"))), "d3bffcebb3a252dcb785438e0b2dedede5fd0d2527");
  const { a: fresh } = await pair();
  assertEquals(
    hex(await fresh.seal(text("hello"), text("hdr"))),
    "d750f4b01a659c2510172f6b06cd4206624ff0617b",
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
  // Python `cryptography`: AESGCM(bytes([1]*32)).encrypt(sid.to_bytes(7, "big") +
  // c.to_bytes(5, "big"), b"hello", None)
  const { a, b } = await pair();
  const s5 = a.forStream(5);
  await s5.seal(text("x"));
  assertEquals(hex(await s5.seal(text("hello"))), "d7e1dd17a5141868f342cf51bc1854df89828022d0");
  assertEquals(
    hex(await a.forStream(2 ** 53 - 1).seal(text("hello"))),
    "218e6c99e4544930d88c7c96370ba682263a6c2ce0",
  );
  // Stream 0 is the plain cipher's nonce layout.
  assertEquals(
    hex(await a.forStream(0).seal(text("hello"))),
    "d750f4b01ad351ab21bdff24b8dae64e9272dd9b18",
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

Deno.test("small frames (node:crypto) and large ones (WebCrypto) are one AES-256-GCM: either opens the other's", async () => {
  for (const size of [0, 1, 4095, 4096, 4097, 65536]) {
    const { a, b } = await pair();
    const plain = new Uint8Array(size).map((_, i) => i * 7);
    const sealed = await a.seal(plain, text("hdr"));
    // Opened by plain WebCrypto with the documented nonce (stream 0, counter 0).
    const key = await crypto.subtle.importKey("raw", K1, "AES-GCM", false, ["decrypt"]);
    const web = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: new Uint8Array(12), additionalData: text("hdr") },
      key,
      new Uint8Array(sealed),
    );
    assertEquals(new Uint8Array(web), plain, `size ${size}`);
    assertEquals(await b.open(sealed, text("hdr")), plain, `size ${size}`);
    // Tampering is caught on both paths, and the opener stays failed.
    const next = await a.seal(plain);
    next[next.byteLength - 1] ^= 1;
    await assertRejects(() => b.open(next), NetworkError, "authentication failed");
    const after = await a.seal(plain);
    await assertRejects(() => b.open(after), NetworkError, "an earlier frame failed");
  }
});
