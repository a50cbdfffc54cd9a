/**
 * A binary min-heap, and the order of scheduled events (by time, then by insertion) that the
 * simulators' event queues keep in it.
 *
 * @module
 */

/** Something scheduled at a time; `order` breaks ties between events of the same time. */
export interface Scheduled {
  at: number;
  order: number;
}

/** Earlier time first; at the same time, the one scheduled first. */
export function earlier(a: Scheduled, b: Scheduled): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

/** A binary heap: `pop` returns the least item by `less`. */
export class BinaryHeap<T> {
  #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;

  /** @param less The order: `true` when `a` comes before `b`. */
  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
  }

  /** How many items it holds. */
  get size(): number {
    return this.#items.length;
  }

  /** The least item, left in place; `undefined` when empty. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds an item. */
  push(item: T): void {
    const h = this.#items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  /** Removes and returns the least item; `undefined` when empty. */
  pop(): T | undefined {
    const h = this.#items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0) {
      h[0] = last!;
      this.#siftDown(0);
    }
    return top;
  }

  /** Keeps only the items `keep` accepts. */
  retain(keep: (item: T) => boolean): void {
    this.#items = this.#items.filter(keep);
    for (let i = (this.#items.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  /** Counts the items `match` accepts. */
  count(match: (item: T) => boolean): number {
    let n = 0;
    for (const item of this.#items) if (match(item)) n++;
    return n;
  }

  #siftDown(i: number): void {
    const h = this.#items;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l], h[m])) m = l;
      if (r < h.length && this.#less(h[r], h[m])) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
}
