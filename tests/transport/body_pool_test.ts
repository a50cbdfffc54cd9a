import { assert, assertEquals } from "../_assert.ts";
import { BodyPool } from "../../src/transport/_body_pool.ts";

Deno.test("body pool: a given-back buffer serves the next body of up to its size, within the bound", () => {
  const pool = new BodyPool(3 * 1024 * 1024);
  const first = pool.take(1024 * 1024);
  first.fill(1);
  pool.give(first);
  assertEquals(pool.bytes, 1024 * 1024);
  // Too small a body for that buffer (it would waste over half): a new one.
  assert(pool.take(100_000).buffer !== first.buffer);
  const again = pool.take(1000 * 1024);
  assert(again.buffer === first.buffer && again.byteLength === 1000 * 1024);
  assertEquals(pool.bytes, 0);
  // Beyond the bound a buffer is freed (detached) instead of kept.
  const bodies = [1, 2, 3, 4].map(() => pool.take(1024 * 1024));
  for (const body of bodies) pool.give(body);
  assertEquals(pool.bytes, 3 * 1024 * 1024);
  assertEquals(bodies[3].byteLength, 0);
});
