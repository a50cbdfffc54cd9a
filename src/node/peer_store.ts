/**
 * `PeerStore`: the peers a node has seen (ids, addresses, how they were found), kept in Deno KV
 * under the node's data directory so that a restarted node finds them again, or in memory.
 *
 * @module
 */

import { InvalidConfigError, NetworkError } from "../errors.ts";
import { requireInteger } from "../_validate.ts";
import type { PeerSource } from "./events.ts";

/** A peer as the store keeps it. */
export interface StoredPeer {
  /** The peer's id, as a string. */
  peerId: string;
  /** `HOST:PORT` addresses it was reached at, most recent first. */
  addresses: string[];
  /** When the node last connected to it, wall-clock milliseconds. */
  lastSeenMs: number;
  /** How the node first learned of it. */
  foundBy: PeerSource;
}

/** Options of {@linkcode PeerStore.open}. */
export interface PeerStoreOptions {
  /**
   * The Deno KV database file; `undefined` keeps the peers in memory only. Opening a file needs
   * Deno KV (`--unstable-kv`, or `"unstable": ["kv"]` in deno.json) and read and write
   * permission for it.
   *
   * @default {undefined}
   */
  path?: string;
  /**
   * Peers kept; beyond it the one seen longest ago is forgotten.
   *
   * @default {1000}
   */
  maxPeers?: number;
  /**
   * Addresses kept per peer.
   *
   * @default {4}
   */
  maxAddressesPerPeer?: number;
}

/** A store that cannot be opened, read or written: the message names the file and why. */
export class PeerStoreError extends NetworkError {
  /** The database file. */
  readonly path: string;

  /**
   * Creates the error.
   *
   * @example
   * ```ts
   * import { PeerStoreError } from "@cretoai/network";
   *
   * const error = new PeerStoreError("data/peers.kv", "file is not a database");
   * console.assert(error.code === "ERR_PEER_STORE");
   * ```
   *
   * @param path The database file.
   * @param reason What went wrong.
   * @param options The underlying error as `cause`.
   */
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super("ERR_PEER_STORE", `Peer store ${JSON.stringify(path)}: ${reason}`, options);
    this.name = "PeerStoreError";
    this.path = path;
  }
}

/** The part of `Deno.Kv` the store uses, so the module type-checks without `--unstable-kv`. */
interface Kv {
  get(key: readonly string[]): Promise<{ value: unknown }>;
  set(key: readonly string[], value: unknown): Promise<unknown>;
  delete(key: readonly string[]): Promise<void>;
  list(
    selector: { prefix: readonly string[] },
  ): AsyncIterable<{ key: readonly unknown[]; value: unknown }>;
  close(): void;
}

/** Key prefix of the peers; other prefixes (bans, later) share the database. */
const PEERS = "peers";
const SOURCES: readonly PeerSource[] = [
  "bootstrap",
  "dht",
  "mdns",
  "peer-store",
  "inbound",
  "application",
];

/**
 * The peers a node has seen. All of them are held in memory; with a `path` every change is
 * also written to Deno KV, and {@linkcode PeerStore.open} reads them back.
 *
 * @example Peers survive closing and opening the store again
 * ```ts
 * import { PeerStore } from "@cretoai/network";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/peers.kv`;
 * {
 *   await using store = await PeerStore.open({ path });
 *   await store.put({ peerId: "p1", addresses: ["192.0.2.1:9001"], lastSeenMs: 1, foundBy: "dht" });
 * }
 * await using store = await PeerStore.open({ path });
 * console.assert(store.list()[0].addresses[0] === "192.0.2.1:9001");
 * ```
 */
export class PeerStore implements AsyncDisposable {
  /** The database file, or `undefined` for a store in memory. */
  readonly path: string | undefined;
  readonly #kv: Kv | undefined;
  readonly #peers = new Map<string, StoredPeer>();
  readonly #maxPeers: number;
  readonly #maxAddresses: number;
  #closed = false;

  private constructor(
    path: string | undefined,
    kv: Kv | undefined,
    maxPeers: number,
    maxAddresses: number,
  ) {
    this.path = path;
    this.#kv = kv;
    this.#maxPeers = maxPeers;
    this.#maxAddresses = maxAddresses;
  }

  /**
   * Opens the store and reads the peers it holds. Entries that are not well-formed peers are
   * deleted; at most `maxPeers` are read.
   *
   * @example A store in memory
   * ```ts
   * import { PeerStore } from "@cretoai/network";
   *
   * await using store = await PeerStore.open();
   * console.assert(store.path === undefined && store.list().length === 0);
   * ```
   *
   * @param options The file and the bounds.
   * @returns The open store.
   * @throws {InvalidConfigError} for a bad option.
   * @throws {PeerStoreError} when the file cannot be opened or read (no Deno KV, no
   *   permission, not a database).
   */
  static async open(options: PeerStoreOptions = {}): Promise<PeerStore> {
    const { path, maxPeers = 1000, maxAddressesPerPeer = 4 } = options;
    if (path !== undefined && (typeof path !== "string" || path === "")) {
      throw new InvalidConfigError("path", "a file path, or undefined for memory", path);
    }
    requireInteger("maxPeers", maxPeers, 1, 1_000_000);
    requireInteger("maxAddressesPerPeer", maxAddressesPerPeer, 1, 64);
    if (path === undefined) {
      return new PeerStore(undefined, undefined, maxPeers, maxAddressesPerPeer);
    }
    const openKv = (Deno as unknown as { openKv?: (path: string) => Promise<Kv> }).openKv;
    if (typeof openKv !== "function") {
      throw new PeerStoreError(path, "Deno KV is not available: run with --unstable-kv");
    }
    let kv: Kv;
    try {
      kv = await openKv(path);
    } catch (e) {
      throw new PeerStoreError(path, `cannot open: ${(e as Error).message}`, { cause: e });
    }
    const store = new PeerStore(path, kv, maxPeers, maxAddressesPerPeer);
    try {
      await store.#load(kv);
    } catch (e) {
      kv.close();
      throw new PeerStoreError(path, `cannot read: ${(e as Error).message}`, { cause: e });
    }
    return store;
  }

  /** The number of peers held. */
  get size(): number {
    return this.#peers.size;
  }

  /**
   * The peers held, most recently seen first.
   *
   * @returns Copies of the entries.
   */
  list(): StoredPeer[] {
    return [...this.#peers.values()]
      .sort((a, b) => b.lastSeenMs - a.lastSeenMs)
      .map((p) => ({ ...p, addresses: [...p.addresses] }));
  }

  /**
   * Records a peer: its addresses go first, before the ones known (up to
   * `maxAddressesPerPeer`); a known peer keeps how it was first found.
   *
   * @example
   * ```ts
   * import { PeerStore } from "@cretoai/network";
   *
   * await using store = await PeerStore.open();
   * await store.put({ peerId: "p", addresses: ["192.0.2.1:1"], lastSeenMs: 1, foundBy: "dht" });
   * await store.put({ peerId: "p", addresses: ["192.0.2.2:1"], lastSeenMs: 2, foundBy: "inbound" });
   * const [peer] = store.list();
   * console.assert(peer.foundBy === "dht" && peer.addresses.join() === "192.0.2.2:1,192.0.2.1:1");
   * ```
   *
   * @param peer The peer.
   * @throws {PeerStoreError} when the write fails (the peer stays held in memory).
   */
  async put(peer: StoredPeer): Promise<void> {
    this.#checkOpen();
    const known = this.#peers.get(peer.peerId);
    const entry: StoredPeer = {
      peerId: peer.peerId,
      addresses: [...new Set([...peer.addresses, ...(known?.addresses ?? [])])]
        .slice(0, this.#maxAddresses),
      lastSeenMs: Math.max(peer.lastSeenMs, known?.lastSeenMs ?? 0),
      foundBy: known?.foundBy ?? peer.foundBy,
    };
    this.#peers.delete(peer.peerId); // re-inserted last: Map order is insertion order
    this.#peers.set(peer.peerId, entry);
    const evicted: string[] = [];
    while (this.#peers.size > this.#maxPeers) {
      const oldest = this.list().at(-1)!.peerId;
      this.#peers.delete(oldest);
      evicted.push(oldest);
    }
    await this.#write(async (kv) => {
      await kv.set([PEERS, entry.peerId], entry);
      for (const id of evicted) await kv.delete([PEERS, id]);
    });
  }

  /**
   * Forgets a peer.
   *
   * @param peerId The peer.
   * @returns Whether it was held.
   * @throws {PeerStoreError} when the write fails.
   */
  async delete(peerId: string): Promise<boolean> {
    this.#checkOpen();
    const had = this.#peers.delete(peerId);
    if (had) await this.#write((kv) => kv.delete([PEERS, peerId]));
    return had;
  }

  /**
   * Closes the database; the store cannot be used afterwards. Idempotent.
   *
   * @example
   * ```ts ignore
   * await store.close();
   * ```
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#kv?.close();
    }
    return Promise.resolve();
  }

  /** Same as {@linkcode PeerStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #load(kv: Kv): Promise<void> {
    const bad: (readonly unknown[])[] = [];
    for await (const { key, value } of kv.list({ prefix: [PEERS] })) {
      const peer = parsePeer(key[1], value);
      if (peer === undefined) bad.push(key);
      else if (this.#peers.size < this.#maxPeers) this.#peers.set(peer.peerId, peer);
    }
    for (const key of bad) await kv.delete(key as string[]);
  }

  async #write(write: (kv: Kv) => Promise<unknown>): Promise<void> {
    if (this.#kv === undefined) return;
    try {
      await write(this.#kv);
    } catch (e) {
      throw new PeerStoreError(this.path!, `cannot write: ${(e as Error).message}`, { cause: e });
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new PeerStoreError(this.path ?? ":memory:", "the store is closed");
  }
}

/** The peer stored under `id`, or `undefined` when the value is not a well-formed one. */
function parsePeer(id: unknown, value: unknown): StoredPeer | undefined {
  if (typeof id !== "string" || typeof value !== "object" || value === null) return undefined;
  const { peerId, addresses, lastSeenMs, foundBy } = value as Record<string, unknown>;
  if (
    peerId !== id || !Array.isArray(addresses) ||
    !addresses.every((a) => typeof a === "string") || typeof lastSeenMs !== "number" ||
    !SOURCES.includes(foundBy as PeerSource)
  ) {
    return undefined;
  }
  return { peerId, addresses: addresses as string[], lastSeenMs, foundBy: foundBy as PeerSource };
}
