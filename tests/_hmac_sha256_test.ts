// The handshake's HMAC-SHA-256 and HKDF-SHA-256 against RFC 4231, RFC 5869 and @noble/hashes.
import { assertEquals, assertThrows } from "./_assert.ts";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { hkdfExpand, hkdfExtract, hmacKey, hmacSha256, hmacWith } from "../src/_hmac_sha256.ts";
import { sha256 as ourSha256 } from "../src/_sha256.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const text = (s: string) => new TextEncoder().encode(s);
const bytes = (n: number, value: number) => new Uint8Array(n).fill(value);

Deno.test("HMAC-SHA-256: RFC 4231 test cases 1, 2, 3, 4, 6 and 7", () => {
  const cases: [Uint8Array, Uint8Array, string][] = [
    [
      bytes(20, 0x0b),
      text("Hi There"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      text("Jefe"),
      text("what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    [
      bytes(20, 0xaa),
      bytes(50, 0xdd),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ],
    [
      hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
      bytes(50, 0xcd),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ],
    [
      bytes(131, 0xaa),
      text("Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
    [
      bytes(131, 0xaa),
      text(
        "This is a test using a larger than block-size key and a larger than block-size data. " +
          "The key needs to be hashed before being used by the HMAC algorithm.",
      ),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ],
  ];
  for (const [key, message, expected] of cases) {
    assertEquals(hmacSha256(key, message), hex(expected));
  }
});

Deno.test("HKDF-SHA-256: RFC 5869 test cases 1 to 3", () => {
  const cases = [
    {
      ikm: bytes(22, 0x0b),
      salt: hex("000102030405060708090a0b0c"),
      info: hex("f0f1f2f3f4f5f6f7f8f9"),
      length: 42,
      prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
      okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    },
    {
      ikm: Uint8Array.from({ length: 80 }, (_, i) => i),
      salt: Uint8Array.from({ length: 80 }, (_, i) => 0x60 + i),
      info: Uint8Array.from({ length: 80 }, (_, i) => 0xb0 + i),
      length: 82,
      prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
      okm:
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
    },
    {
      ikm: bytes(22, 0x0b),
      salt: new Uint8Array(0),
      info: new Uint8Array(0),
      length: 42,
      prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
      okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    },
  ];
  for (const c of cases) {
    const prk = hkdfExtract(c.salt, c.ikm);
    assertEquals(prk, hex(c.prk));
    assertEquals(hkdfExpand(prk, c.info, c.length), hex(c.okm));
    assertEquals(hkdfExpand(hmacKey(prk), c.info, c.length), hex(c.okm));
  }
});

Deno.test("HMAC and HKDF agree with @noble/hashes on seeded random inputs of every length class", () => {
  let seed = 0x2545f491;
  const random = (n: number) =>
    Uint8Array.from({ length: n }, () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed & 0xff;
    });
  for (let i = 0; i < 400; i++) {
    const key = random(i % 150);
    // Lengths around the block and padding boundaries, and multi-block messages.
    const message = random([0, 1, 31, 55, 56, 63, 64, 65, 119, 120, 200, 1200][i % 12] + (i % 3));
    assertEquals(hmacSha256(key, message), hmac(sha256, key, message), `case ${i}`);
    const split = Math.floor(message.byteLength / 3);
    assertEquals(
      hmacWith(hmacKey(key), message.subarray(0, split), message.subarray(split)),
      hmac(sha256, key, message),
      `case ${i}, in two parts`,
    );
    const length = [0, 1, 32, 33, 64, 96, 255][i % 7];
    assertEquals(hkdfExtract(key, message), extract(sha256, message, key), `extract ${i}`);
    assertEquals(
      hkdfExpand(key.byteLength === 0 ? random(32) : key, message, length).byteLength,
      length,
    );
    const prk = random(32);
    assertEquals(hkdfExpand(prk, message, length), expand(sha256, prk, message, length));
  }
});

Deno.test("HKDF-Expand refuses a length it cannot give", () => {
  for (const length of [-1, 8161, 1.5, NaN]) {
    assertThrows(() => hkdfExpand(new Uint8Array(32), new Uint8Array(0), length), RangeError);
  }
});

Deno.test("SHA-256 agrees with @noble/hashes at every padding boundary, in JavaScript and natively", () => {
  // 55/56 and 119/120: the length fits in the last block or needs one more; 512/513: the switch
  // from JavaScript to node:crypto.
  const lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 150, 511, 512, 513, 1024, 6900];
  for (const length of lengths) {
    const data = new Uint8Array(length).map((_, i) => (i * 131 + length) & 255);
    assertEquals(ourSha256(data), sha256(data), `${length} bytes`);
  }
  assertEquals(
    ourSha256(text("abc")),
    hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
  );
});
