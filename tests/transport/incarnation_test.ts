import { assert } from "../_assert.ts";
import { newIncarnation } from "../../src/transport/_incarnation.ts";

Deno.test("incarnation: the start time in milliseconds above 16 random bits, strictly increasing within a process", () => {
  const before = BigInt(Date.now());
  const incarnations = Array.from({ length: 1000 }, () => newIncarnation());
  const after = BigInt(Date.now());
  for (let i = 1; i < incarnations.length; i++) {
    assert(incarnations[i] > incarnations[i - 1], `call ${i} did not increase`);
  }
  // 1,000 calls in one millisecond could carry the last past the clock by at most 1,000.
  assert(incarnations[0] >> 16n >= before && incarnations[0] >> 16n <= after);
  assert(incarnations.at(-1)! < ((after + 1n) << 16n) + 1000n);
  assert(incarnations.at(-1)! < 2n ** 64n);
});
