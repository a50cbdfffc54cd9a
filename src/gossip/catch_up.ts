/**
 * `CatchUpService`: request/response helpers for a node that missed messages (it was
 * offline, or joined late): fetch items by id from a peer in bounded batches, and ask a peer
 * for its latest round (after Sui's `fetch_blocks` / `get_latest_rounds` and Narwhal's
 * `fetch_certificates`). Each peer gets a request quota, so catching-up peers cannot turn a
 * node into a free download server.
 *
 * ```
 * fetch request    version u8 (=1) | count u16 | count x (id: length u16 | UTF-8)
 * fetch response   version u8 | status u8 | count u16 | count x (id | length u32 | data)
 * latest request   version u8
 * latest response  version u8 | status u8 | round u64
 * status           0 ok, 1 over the peer's quota
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { ByteReader, ByteWriter, utf8Length } from "../_bytes.ts";
import { type Clock, systemClock } from "../clock.ts";
import { describe, InvalidConfigError, NetworkError } from "../errors.ts";
import type { PeerId } from "../identity/peer_id.ts";
import { TokenBucket } from "../pool/token_bucket.ts";
import type { TransportEventMap } from "../transport/events.ts";
import type { QuicTransport, RequestOptions } from "../transport/transport.ts";
import { requireInteger, requirePositiveFinite } from "../_validate.ts";

const log = getLogger(["cretoai", "gossip", "catch-up"]);

/** Protocol id of item fetches. */
export const CATCH_UP_FETCH_PROTOCOL = "/cretoai/catch-up/fetch/1";
/** Protocol id of latest-round queries. */
export const CATCH_UP_LATEST_PROTOCOL = "/cretoai/catch-up/latest/1";
/** Longest item id, in UTF-8 bytes. */
export const MAX_ITEM_ID_BYTES = 128;

const VERSION = 1;
const STATUS_OK = 0;
const STATUS_OVER_QUOTA = 1;

/** Where a {@linkcode CatchUpService} finds what peers ask for. */
export interface CatchUpStore {
  /**
   * The bytes of an item, or `undefined` when this node does not have it.
   *
   * @param id The item's id.
   */
  get(id: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** The latest round this node has (for example the highest DAG round with a vertex). */
  latestRound(): number | Promise<number>;
}

/** Options of {@linkcode CatchUpService}. */
export interface CatchUpServiceOptions {
  /** The transport to serve and ask on. */
  transport: QuicTransport;
  /** The items this node serves. */
  store: CatchUpStore;
  /**
   * Most ids in one fetch request; `fetch` splits longer lists into batches.
   * @default {64}
   */
  maxBatchIds?: number;
  /**
   * Most item bytes in one response (but always the first item found); items beyond it
   * are left out, and the asker asks again.
   * @default {the transport's maxMessageBytes minus 64 KiB, at least 64 KiB}
   */
  maxBatchBytes?: number;
  /**
   * Requests per second each peer may make; more are answered "over quota".
   * @default {20}
   */
  requestsPerSecond?: number;
  /**
   * Requests a peer may make at once after a pause.
   * @default {40}
   */
  requestBurst?: number;
  /**
   * Time source of the quotas.
   * @default {systemClock}
   */
  clock?: Clock;
}

/**
 * Serves this node's items to peers and fetches missing ones from peers.
 *
 * @example A late node fetches two vertices and the latest round from a peer
 * ```ts
 * import { CatchUpService, Identity, QuicTransport } from "@cretoai/network";
 *
 * const config = { listenAddr: "127.0.0.1", quicPort: 0 };
 * await using a = new QuicTransport({ identity: Identity.generate(), config });
 * await using b = new QuicTransport({ identity: Identity.generate(), config });
 * await a.bindAndListen();
 * const { port } = await b.bindAndListen();
 * const items = new Map([["v1", new Uint8Array([1])], ["v2", new Uint8Array([2])]]);
 * const store = { get: (id: string) => items.get(id), latestRound: () => 7 };
 * await using server = new CatchUpService({ transport: b, store });
 * await using client = new CatchUpService({
 *   transport: a,
 *   store: { get: () => undefined, latestRound: () => 0 },
 * });
 * await server.start();
 * await client.start();
 * const peer = await a.connectPeer(`127.0.0.1:${port}`);
 * const found = await client.fetch(peer, ["v1", "v2", "v3"]);
 * console.assert(found.size === 2 && found.get("v2")?.[0] === 2);
 * console.assert(await client.latestRound(peer) === 7);
 * ```
 */
export class CatchUpService implements AsyncDisposable {
  readonly #transport: QuicTransport;
  readonly #store: CatchUpStore;
  readonly #maxBatchIds: number;
  readonly #maxBatchBytes: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  /** One quota bucket per connected peer that asked; dropped when it disconnects. */
  #quotas = new Map<string, TokenBucket>();
  #removers: (() => void)[] = [];
  #started = false;
  #closed = false;

  readonly #onDisconnected = (e: TransportEventMap["peer:disconnected"]) => {
    this.#quotas.delete(e.detail.peerId.toString());
  };

  /**
   * Creates the service; it serves nothing until {@linkcode CatchUpService.start}.
   *
   * @example
   * ```ts
   * import { CatchUpService, Identity, QuicTransport } from "@cretoai/network";
   *
   * await using transport = new QuicTransport({ identity: Identity.generate() });
   * const store = { get: () => undefined, latestRound: () => 0 };
   * await using catchUp = new CatchUpService({ transport, store, maxBatchIds: 16 });
   * ```
   *
   * @param options Transport, store, batch sizes and quotas.
   * @throws {InvalidConfigError} naming the field, the rule and the value, for a bad option.
   */
  constructor(options: CatchUpServiceOptions) {
    const {
      transport,
      store,
      maxBatchIds = 64,
      maxBatchBytes = Math.max(64 * 1024, (transport?.config.maxMessageBytes ?? 0) - 64 * 1024),
      requestsPerSecond = 20,
      requestBurst = 40,
      clock = systemClock,
    } = options ?? {};
    if (transport === undefined || typeof transport.request !== "function") {
      throw new InvalidConfigError("transport", "a QuicTransport", transport);
    }
    if (typeof store?.get !== "function" || typeof store?.latestRound !== "function") {
      throw new InvalidConfigError("store", "an object with get() and latestRound()", store);
    }
    requireInteger("maxBatchIds", maxBatchIds, 1, 0xffff);
    requireInteger("maxBatchBytes", maxBatchBytes, 1);
    requirePositiveFinite("requestsPerSecond", requestsPerSecond);
    requireInteger("requestBurst", requestBurst, 1);
    this.#transport = transport;
    this.#store = store;
    this.#maxBatchIds = maxBatchIds;
    this.#maxBatchBytes = maxBatchBytes;
    this.#rate = requestsPerSecond;
    this.#burst = requestBurst;
    this.#clock = clock;
  }

  /**
   * Starts serving fetches and latest-round queries. Idempotent.
   *
   * @example
   * ```ts ignore
   * await catchUp.start();
   * ```
   *
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` after close.
   */
  start(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new NetworkError("ERR_ENDPOINT_CLOSED", "Cannot start: the catch-up service is closed"),
      );
    }
    if (this.#started) return Promise.resolve();
    this.#started = true;
    this.#transport.addEventListener("peer:disconnected", this.#onDisconnected);
    this.#removers.push(
      this.#transport.handle(
        CATCH_UP_FETCH_PROTOCOL,
        (request, { peerId }) => this.#serveFetch(peerId, request),
      ),
      this.#transport.handle(
        CATCH_UP_LATEST_PROTOCOL,
        (request, { peerId }) => this.#serveLatest(peerId, request),
      ),
    );
    return Promise.resolve();
  }

  /**
   * Fetches items by id from a peer, in batches of at most `maxBatchIds`, one batch after
   * another. Ids the peer does not have are missing from the result; so are items the peer
   * left out of a full response (ask again).
   *
   * @example
   * ```ts ignore
   * const parents = await catchUp.fetch(peer, missingIds, { timeoutMs: 5000 });
   * ```
   *
   * @param peer A connected peer.
   * @param ids Item ids, each 1 to 128 UTF-8 bytes; duplicates are asked once.
   * @param options Abort signal and per-request timeout.
   * @returns The items found, by id.
   * @throws {TypeError} for a bad id.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` when the peer refuses for its quota;
   * `ERR_MALFORMED_FRAME` for a response that does not decode; the transport's request
   * errors (`ERR_UNKNOWN_PEER`, `ERR_UNKNOWN_PROTOCOL`, `ERR_TIMEOUT`, ...).
   */
  async fetch(
    peer: PeerId | string,
    ids: readonly string[],
    options: RequestOptions = {},
  ): Promise<Map<string, Uint8Array>> {
    const wanted = [...new Set(ids)];
    for (const id of wanted) checkItemId(id);
    const found = new Map<string, Uint8Array>();
    for (let at = 0; at < wanted.length; at += this.#maxBatchIds) {
      const batch = wanted.slice(at, at + this.#maxBatchIds);
      const w = new ByteWriter().u8(VERSION).u16(batch.length);
      for (const id of batch) w.string16(id);
      const response = await this.#transport.request(
        peer,
        CATCH_UP_FETCH_PROTOCOL,
        w.finish(),
        options,
      );
      const r = responseReader(response, "catch-up fetch response", peer);
      const count = r.u16("count");
      const asked = new Set(batch);
      for (let i = 0; i < count; i++) {
        const id = r.string16("id", MAX_ITEM_ID_BYTES);
        const data = r.vec32("data");
        if (asked.has(id)) found.set(id, data);
      }
      r.end();
    }
    return found;
  }

  /**
   * Asks a peer for its latest round.
   *
   * @example
   * ```ts ignore
   * const rounds = await Promise.all(peers.map((p) => catchUp.latestRound(p)));
   * ```
   *
   * @param peer A connected peer.
   * @param options Abort signal and timeout.
   * @returns The round the peer reported.
   * @throws {NetworkError} as for {@linkcode CatchUpService.fetch}.
   */
  async latestRound(peer: PeerId | string, options: RequestOptions = {}): Promise<number> {
    const response = await this.#transport.request(
      peer,
      CATCH_UP_LATEST_PROTOCOL,
      new Uint8Array([VERSION]),
      options,
    );
    const r = responseReader(response, "catch-up latest response", peer);
    const round = r.u64("round");
    r.end();
    return round;
  }

  /**
   * Stops serving (requests in progress finish). The transport stays open. Idempotent.
   *
   * @example
   * ```ts ignore
   * await catchUp.close();
   * ```
   */
  close(): Promise<void> {
    this.#closed = true;
    for (const remove of this.#removers.splice(0)) remove();
    this.#transport.removeEventListener("peer:disconnected", this.#onDisconnected);
    this.#quotas.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode CatchUpService.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Takes one request from the peer's quota; false when it is used up. */
  #withinQuota(peerId: PeerId): boolean {
    const key = peerId.toString();
    let bucket = this.#quotas.get(key);
    if (bucket === undefined) {
      bucket = new TokenBucket({ rate: this.#rate, burst: this.#burst, clock: this.#clock });
      this.#quotas.set(key, bucket);
    }
    if (bucket.tryTake(1)) return true;
    log.info("Peer {peer} is over its catch-up quota", { peer: key });
    return false;
  }

  async #serveFetch(peerId: PeerId, request: Uint8Array): Promise<Uint8Array> {
    const r = new ByteReader(request, "catch-up fetch request", malformed);
    if (r.u8("version") !== VERSION) r.fail("unsupported version");
    const count = r.u16("count");
    if (count > this.#maxBatchIds) {
      r.fail(`asks for ${count} ids: at most ${this.#maxBatchIds} per request`);
    }
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(r.string16("id", MAX_ITEM_ID_BYTES));
    r.end();
    if (!this.#withinQuota(peerId)) return new Uint8Array([VERSION, STATUS_OVER_QUOTA]);
    const items: [string, Uint8Array][] = [];
    let bytes = 0;
    for (const id of new Set(ids)) {
      const data = await this.#store.get(id);
      if (!(data instanceof Uint8Array)) continue;
      // The first item goes even above the budget, or a large one could never be fetched.
      if (items.length > 0 && bytes + data.byteLength > this.#maxBatchBytes) break;
      bytes += data.byteLength;
      items.push([id, data]);
    }
    const w = new ByteWriter().u8(VERSION).u8(STATUS_OK).u16(items.length);
    for (const [id, data] of items) w.string16(id).vec32(data);
    return w.finish();
  }

  async #serveLatest(peerId: PeerId, request: Uint8Array): Promise<Uint8Array> {
    if (request.byteLength !== 1 || request[0] !== VERSION) {
      throw malformed(`Malformed catch-up latest request of ${request.byteLength} bytes`);
    }
    if (!this.#withinQuota(peerId)) return new Uint8Array([VERSION, STATUS_OVER_QUOTA]);
    const round = await this.#store.latestRound();
    if (!Number.isSafeInteger(round) || round < 0) {
      throw new TypeError(`latestRound() must give a non-negative integer: got ${describe(round)}`);
    }
    return new ByteWriter().u8(VERSION).u8(STATUS_OK).u64(round).finish();
  }
}

function malformed(message: string): NetworkError {
  return new NetworkError("ERR_MALFORMED_FRAME", message);
}

function checkItemId(id: unknown): void {
  const size = typeof id === "string" ? utf8Length(id) : -1;
  if (size < 1 || size > MAX_ITEM_ID_BYTES) {
    throw new TypeError(
      `Invalid item id: must be a string of 1 to ${MAX_ITEM_ID_BYTES} UTF-8 bytes: current ` +
        `value is ${describe(id)}`,
    );
  }
}

/** Reads a response's version and status; throws for over-quota. */
function responseReader(response: Uint8Array, what: string, peer: PeerId | string): ByteReader {
  const r = new ByteReader(response, what, malformed);
  if (r.u8("version") !== VERSION) r.fail("unsupported version");
  const status = r.u8("status");
  if (status === STATUS_OVER_QUOTA) {
    throw new NetworkError(
      "ERR_LIMIT_EXCEEDED",
      `Peer ${peer} refused the request: over its catch-up quota`,
    );
  }
  if (status !== STATUS_OK) r.fail(`unknown status ${status}`);
  return r;
}
