import assert from "node:assert/strict";
import { BinaryHeap, earlier, type Scheduled } from "./_binary_heap.ts";
import { Prng } from "./_prng.ts";

Deno.test("BinaryHeap pops 1,000 seeded random numbers in ascending order", () => {
  const prng = new Prng(1);
  const heap = new BinaryHeap<number>((a, b) => a < b);
  const pushed = Array.from({ length: 1000 }, () => prng.int(0, 99));
  for (const n of pushed) heap.push(n);
  assert.equal(heap.size, 1000);
  const popped = Array.from({ length: 1000 }, () => heap.pop());
  assert.deepEqual(popped, pushed.toSorted((a, b) => a - b));
  assert.equal(heap.pop(), undefined);
  assert.equal(heap.peek(), undefined);
});

Deno.test("BinaryHeap with earlier: same-time events in the order they were scheduled", () => {
  const prng = new Prng(2);
  const heap = new BinaryHeap<Scheduled>(earlier);
  for (let order = 0; order < 200; order++) heap.push({ at: prng.int(0, 9), order });
  const popped: Scheduled[] = [];
  while (heap.size > 0) popped.push(heap.pop()!);
  assert.deepEqual(popped, popped.toSorted((a, b) => a.at - b.at || a.order - b.order));
});

Deno.test("BinaryHeap.retain keeps the accepted items in order; count counts them", () => {
  const heap = new BinaryHeap<number>((a, b) => a < b);
  for (const n of [9, 4, 7, 1, 8, 2, 6, 3, 5, 0]) heap.push(n);
  const even = (n: number) => n % 2 === 0;
  assert.equal(heap.count(even), 5);
  heap.retain(even);
  assert.equal(heap.peek(), 0);
  assert.deepEqual(Array.from({ length: heap.size }, () => heap.pop()), [0, 2, 4, 6, 8]);
});
