import { assertEquals } from "./_assert.ts";
import { toHex } from "../src/_bytes.ts";

Deno.test("toHex: two lowercase digits per byte, in order", () => {
  assertEquals(toHex(new Uint8Array()), "");
  assertEquals(toHex(new Uint8Array([0, 1, 15, 16, 160, 255])), "00010f10a0ff");
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assertEquals(toHex(all), Array.from(all, (b) => b.toString(16).padStart(2, "0")).join(""));
});
