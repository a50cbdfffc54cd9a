/**
 * `PeerStore`: the peers a node has seen (ids, addresses, how they were found) and the peers it
 * banned, kept in Deno KV under the node's data directory so that a restarted node finds them
 * again, or in memory.
 *
 * @module
 */

import { InvalidConfigError, NetworkError } from "../errors.ts";
import { requireInteger } from "../_validate.ts";
import type { BanInfo } from "../transport/transport.ts";
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
  /**
   * Bans kept; beyond it the one that ends soonest is forgotten (as the transport's ban list
   * does).
   *
   * @default {10000}
   */
  maxBans?: number;
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

/** Key prefixes of the peers and of the bans, which share the database. */
const PEERS = "peers";
const BANS = "bans";
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
  readonly #bans = new Map<string, BanInfo>();
  readonly #maxPeers: number;
  readonly #maxAddresses: number;
  readonly #maxBans: number;
  #closed = false;

  private constructor(
    path: string | undefined,
    kv: Kv | undefined,
    maxPeers: number,
    maxAddresses: number,
    maxBans: number,
  ) {
    this.path = path;
    this.#kv = kv;
    this.#maxPeers = maxPeers;
    this.#maxAddresses = maxAddresses;
    this.#maxBans = maxBans;
  }

  /**
   * Opens the store and reads the peers and bans it holds. Entries that are not well-formed
   * peers or bans, and bans that have ended, are deleted; at most `maxPeers` peers and
   * `maxBans` bans are read.
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
    const { path, maxPeers = 1000, maxAddressesPerPeer = 4, maxBans = 10_000 } = options;
    if (path !== undefined && (typeof path !== "string" || path === "")) {
      throw new InvalidConfigError("path", "a file path, or undefined for memory", path);
    }
    requireInteger("maxPeers", maxPeers, 1, 1_000_000);
    requireInteger("maxAddressesPerPeer", maxAddressesPerPeer, 1, 64);
    requireInteger("maxBans", maxBans, 1, 1_000_000);
    if (path === undefined) {
      return new PeerStore(undefined, undefined, maxPeers, maxAddressesPerPeer, maxBans);
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
    const store = new PeerStore(path, kv, maxPeers, maxAddressesPerPeer, maxBans);
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
   * The bans held that have not ended, as the transport's `bans()` lists them: a node
   * re-applies them to its transport when it starts.
   *
   * @example
   * ```ts
   * import { PeerStore } from "@cretoai/network";
   *
   * await using store = await PeerStore.open();
   * await store.putBan({ peerId: "mallory", reason: "spam", expiresAt: Date.now() + 60_000 });
   * await store.putBan({ peerId: "old", reason: "spam", expiresAt: Date.now() - 1 });
   * console.assert(store.bans().map((b) => b.peerId).join() === "mallory");
   * ```
   *
   * @param nowMs Wall-clock milliseconds; bans that end by then are left out.
   * @returns Copies of the entries.
   */
  bans(nowMs: number = Date.now()): BanInfo[] {
    return [...this.#bans.values()]
      .filter((b) => b.expiresAt === null || b.expiresAt > nowMs)
      .map((b) => ({ ...b }));
  }

  /**
   * Records a ban, replacing the peer's earlier one. Beyond `maxBans` the ban that ends
   * soonest is forgotten.
   *
   * @example
   * ```ts
   * import { PeerStore } from "@cretoai/network";
   *
   * await using store = await PeerStore.open();
   * await store.putBan({ peerId: "mallory", reason: "equivocation", expiresAt: null });
   * console.assert(store.bans()[0].expiresAt === null);
   * ```
   *
   * @param ban The ban: `expiresAt` in wall-clock milliseconds, `null` for never.
   * @throws {PeerStoreError} when the write fails (the ban stays held in memory).
   */
  async putBan(ban: BanInfo): Promise<void> {
    this.#checkOpen();
    const entry = parseBan(ban.peerId, ban);
    if (entry === undefined) {
      throw new InvalidConfigError(
        "ban",
        "{ peerId, reason, expiresAt } with expiresAt a number or null",
        ban,
      );
    }
    this.#bans.delete(entry.peerId); // re-inserted last: Map order is insertion order
    this.#bans.set(entry.peerId, entry);
    const evicted: string[] = [];
    while (this.#bans.size > this.#maxBans) {
      const soonest = [...this.#bans.values()].reduce((a, b) => endOf(b) < endOf(a) ? b : a);
      this.#bans.delete(soonest.peerId);
      evicted.push(soonest.peerId);
    }
    await this.#write(async (kv) => {
      await kv.set([BANS, entry.peerId], entry);
      for (const id of evicted) await kv.delete([BANS, id]);
    });
  }

  /**
   * Forgets a peer's ban.
   *
   * @example
   * ```ts
   * import { PeerStore } from "@cretoai/network";
   *
   * await using store = await PeerStore.open();
   * await store.putBan({ peerId: "p", reason: "test", expiresAt: null });
   * console.assert(await store.deleteBan("p") && store.bans().length === 0);
   * ```
   *
   * @param peerId The peer.
   * @returns Whether a ban was held.
   * @throws {PeerStoreError} when the write fails.
   */
  async deleteBan(peerId: string): Promise<boolean> {
    this.#checkOpen();
    const had = this.#bans.delete(peerId);
    if (had) await this.#write((kv) => kv.delete([BANS, peerId]));
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
    const now = Date.now();
    for await (const { key, value } of kv.list({ prefix: [BANS] })) {
      const ban = parseBan(key[1], value);
      if (ban === undefined || endOf(ban) <= now) bad.push(key);
      else if (this.#bans.size < this.#maxBans) this.#bans.set(ban.peerId, ban);
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

/** The ban stored under `id`, or `undefined` when the value is not a well-formed one. */
function parseBan(id: unknown, value: unknown): BanInfo | undefined {
  if (typeof id !== "string" || typeof value !== "object" || value === null) return undefined;
  const { peerId, reason, expiresAt } = value as Record<string, unknown>;
  if (
    peerId !== id || typeof reason !== "string" ||
    !(expiresAt === null || (typeof expiresAt === "number" && Number.isFinite(expiresAt)))
  ) {
    return undefined;
  }
  return { peerId, reason, expiresAt };
}

/** When a ban ends, `Infinity` for never. */
function endOf(ban: BanInfo): number {
  return ban.expiresAt ?? Infinity;
}
