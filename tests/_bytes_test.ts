import { assertEquals } from "./_assert.ts";
import { equalBytes, toHex } from "../src/_bytes.ts";

Deno.test("toHex: two lowercase digits per byte, in order", () => {
  assertEquals(toHex(new Uint8Array()), "");
  assertEquals(toHex(new Uint8Array([0, 1, 15, 16, 160, 255])), "00010f10a0ff");
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assertEquals(toHex(all), Array.from(all, (b) => b.toString(16).padStart(2, "0")).join(""));
});

Deno.test("equalBytes: short and long strings, views at any offset, a difference anywhere", () => {
  // Short ones are compared in JavaScript, long ones by the runtime: both paths, and views into
  // larger buffers (a certificate inside a received message) at odd offsets.
  for (const length of [0, 1, 63, 64, 65, 7000]) {
    const a = Uint8Array.from({ length }, (_, i) => (i * 7 + 3) & 0xff);
    const backing = new Uint8Array(length + 5);
    backing.set(a, 3);
    const view = backing.subarray(3, 3 + length);
    assertEquals(equalBytes(a, view), true, `equal, ${length} bytes`);
    assertEquals(equalBytes(view, a.slice()), true, `equal copies, ${length} bytes`);
    for (const at of length === 0 ? [] : [0, length >> 1, length - 1]) {
      const other = a.slice();
      other[at] ^= 0x01;
      assertEquals(equalBytes(a, other), false, `${length} bytes, differing at ${at}`);
      assertEquals(equalBytes(other, view), false, `${length} bytes, differing at ${at}`);
    }
    assertEquals(equalBytes(a, backing.subarray(3, 4 + length)), false, `${length} + 1 bytes`);
  }
});
