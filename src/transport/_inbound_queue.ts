/**
 * The bounded queue behind `messages()`: readers of peer streams wait here when it is full,
 * which stops them reading, so QUIC flow control pushes back on the senders.
 *
 * @module
 */

interface Entry<T> {
  value: T;
  size: number;
}

interface Pusher<T> extends Entry<T> {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** A FIFO bounded by item count and bytes; an item larger than the byte bound fits when empty. */
export class InboundQueue<T> {
  readonly #maxItems: number;
  readonly #maxBytes: number;
  #items: Entry<T>[] = [];
  #head = 0;
  #bytes = 0;
  #pushers: Pusher<T>[] = [];
  #pullers: ((value: T | undefined) => void)[] = [];
  #closed = false;

  constructor(maxItems: number, maxBytes: number) {
    this.#maxItems = maxItems;
    this.#maxBytes = maxBytes;
  }

  /** Items held now. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Adds an item if it fits now (and nobody waits before it); returns whether it did. */
  tryPush(value: T, size: number): boolean {
    if (this.#closed) return false;
    if (this.#pushers.length > 0 || !this.#fits(size)) return false;
    this.#add({ value, size });
    return true;
  }

  /** Waits until the item fits, then adds it; rejects with `closedError` once closed. */
  push(value: T, size: number, closedError: () => Error): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.tryPush(value, size)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#pushers.push({ value, size, resolve, reject: () => reject(closedError()) });
    });
  }

  /** The next item; `undefined` once the queue is closed and empty. */
  pull(): Promise<T | undefined> {
    const entry = this.#take();
    if (entry !== undefined) return Promise.resolve(entry.value);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#pullers.push(resolve));
  }

  /** Ends the queue: waiting readers get `undefined` once it is empty, waiting pushes fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pusher of this.#pushers.splice(0)) pusher.reject(new Error("closed"));
    for (const puller of this.#pullers.splice(0)) puller(undefined);
  }

  #fits(size: number): boolean {
    if (this.length === 0) return true;
    return this.length < this.#maxItems && this.#bytes + size <= this.#maxBytes;
  }

  #add(entry: Entry<T>): void {
    const puller = this.#pullers.shift();
    if (puller !== undefined) {
      puller(entry.value);
      return;
    }
    this.#items.push(entry);
    this.#bytes += entry.size;
  }

  #take(): Entry<T> | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const entry = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    this.#bytes -= entry.size;
    while (this.#pushers.length > 0 && this.#fits(this.#pushers[0].size)) {
      const pusher = this.#pushers.shift()!;
      this.#add(pusher);
      pusher.resolve();
    }
    return entry;
  }
}
