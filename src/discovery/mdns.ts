/**
 * Local peer discovery with multicast DNS (RFC 6762) and DNS-SD (RFC 6763), interoperable with
 * Avahi and Bonjour: the node announces `_cretoai._udp.local` with its peer id in TXT, answers
 * queries, browses for other nodes and reports them as events until their records expire.
 *
 * The service only finds addresses; connecting is the transport's job.
 *
 * @module
 */

import dgram from "node:dgram";
// @ts-types="npm:@types/multicast-dns@7.2.4"
import makeMdns from "multicast-dns";
import { InvalidConfigError, NetworkError } from "../errors.ts";
import { PeerId } from "../identity/peer_id.ts";
import { requireInteger } from "../_validate.ts";
import { scheduleTimeout } from "../_timer.ts";
import { type MdnsPeer, PeerTable, type PeerTableEvent } from "./mdns_peers.ts";
import { zeroMdnsStats } from "./_mdns_stats.ts";
import {
  answerQuery,
  buildAnnouncement,
  estimateSize,
  isUsableIpv4,
  isValidLabel,
  isValidVersion,
  type LocalService,
  MAX_RECORD_TTL_S,
  MDNS_SERVICE_TYPE,
  type OutgoingRecord,
  type OutgoingResponse,
  parseResponse,
  questionsAbout,
  type RecordLimits,
  sameSubnet,
} from "./mdns_records.ts";

export type { MdnsPeer, MdnsPeerAddress } from "./mdns_peers.ts";
export { MDNS_SERVICE_TYPE } from "./mdns_records.ts";

/** Options of {@linkcode MdnsDiscovery}. */
export interface MdnsDiscoveryOptions {
  /** Our peer id, announced as TXT `peer=`. Announcements carrying it are ignored. */
  peerId: string;
  /** UDP port of our QUIC endpoint, announced in the SRV record (1-65535). */
  port: number;
  /**
   * Protocol version, announced as TXT `v=`: 1-16 of `0-9 A-Z a-z . + -`.
   *
   * @default {"1"}
   */
  version?: string;
  /**
   * DNS-SD instance label: 1-63 UTF-8 bytes, no dots.
   *
   * @default {`cretoai-${peerId}`, or a hash of the peer id when that is not a valid label}
   */
  instance?: string;
  /**
   * Host name the SRV record points at; must end in `.local`.
   *
   * @default {"cretoai-<16 hex digits of a hash of peerId>.local"}
   */
  hostname?: string;
  /**
   * Network interfaces to use, by name (`"eth0"`) or IPv4 address. Names need
   * `--allow-sys=networkInterfaces`. With that permission the interfaces' subnets are known:
   * one-shot (unicast) queries are answered only from a source in one, and announced addresses
   * in one are kept; without it, one-shot queries go unanswered and only the address a peer
   * sends from is kept.
   *
   * @default {every interface with a non-loopback IPv4 address}
   */
  interfaces?: string[];
  /**
   * IPv4 addresses announced as A records.
   *
   * @default {the addresses of the chosen interfaces}
   */
  addresses?: string[];
  /**
   * Time to live of our records, in seconds (1-86400). Peers forget us this long after our last
   * answer.
   *
   * @default {120}
   */
  ttlSecs?: number;
  /**
   * Milliseconds between browse queries after the first two (at start and one second later).
   *
   * @default {60000}
   */
  browseIntervalMs?: number;
  /**
   * Largest mDNS packet in bytes, received or sent; larger received packets are dropped.
   *
   * @default {9000}
   */
  maxPacketBytes?: number;
  /**
   * Largest TXT record in bytes; larger ones are dropped.
   *
   * @default {1300}
   */
  maxRecordSize?: number;
  /**
   * Most resource records in a received packet; packets with more are dropped.
   *
   * @default {64}
   */
  maxRecords?: number;
  /**
   * Most peers remembered; further new peers are dropped until some expire.
   *
   * @default {256}
   */
  maxPeers?: number;
  /**
   * Decides whether a received TXT `peer=` value is a peer id. Also applied to `peerId`.
   *
   * @default {the project's peer id format: `PeerId.parse` accepts it (52 base32 characters)}
   */
  isValidPeerId?: (peerId: string) => boolean;
}

/** Counters of a running {@linkcode MdnsDiscovery}. */
export interface MdnsStats {
  /** Packets received (every socket, before any check). */
  received: number;
  /** Packets sent. */
  sent: number;
  /** Queries we answered. */
  answered: number;
  /** Packets and records dropped: the sum of `droppedBy`. */
  dropped: number;
  /** Drops by reason. */
  droppedBy: {
    /** Packets that did not decode as DNS. */
    malformed: number;
    /** Packets larger than `maxPacketBytes`. */
    oversized: number;
    /** Records that broke a rule (port, TXT, address, size) and packets with too many records. */
    invalid: number;
    /** New peers refused because `maxPeers` were known. */
    overflow: number;
  };
  /** Announcements of our own peer id that we heard back. */
  ownIgnored: number;
  /** Instances heard without SRV, TXT or address and not known before. */
  incomplete: number;
  /** Peers known now. */
  peers: number;
}

/** Payloads of the events of {@linkcode MdnsDiscovery}. */
export interface MdnsDiscoveryEventMap {
  /** A peer was found, or its addresses, port, version or instance changed. */
  discovered: MdnsPeer;
  /** A peer said goodbye or its records expired. */
  expired: { peerId: string };
  /** A socket failed after start; the service keeps running on the others. */
  error: NetworkError;
}

/** One event as yielded by {@linkcode MdnsDiscovery.events}. */
export type MdnsDiscoveryEvent = PeerTableEvent;

const MDNS_PORT = 5353;
/** RFC 6762 section 6: a record is multicast at most once a second per interface. */
const MIN_MULTICAST_INTERVAL_MS = 1000;
/** Copies of one datagram heard on several sockets arrive together; this window merges them. */
const DUPLICATE_WINDOW_MS = 100;
/** Bounds close(): a goodbye that cannot be sent within this time is abandoned. */
const CLOSE_SEND_TIMEOUT_MS = 1000;
/**
 * Most questions in a received packet; packets with more are dropped before decoding. A
 * browser asks a few; hundreds only serve to make a decoder or a responder work.
 */
const MAX_QUESTIONS = 16;
const DNS_HEADER_BYTES = 12;
/** Most datagrams remembered for merging copies heard on several sockets. */
const MAX_RECENT = 1024;

interface Link {
  address: string;
  socket: dgram.Socket;
  mdns: makeMdns.MulticastDNS;
  lastMulticast: Map<string, number>;
}

/** Node's typings (pulled in by node:dgram) and Deno's disagree on the timer id type. */
type Timer = ReturnType<typeof setTimeout>;

type Listener<K extends keyof MdnsDiscoveryEventMap> = (event: MdnsDiscoveryEventMap[K]) => void;

/**
 * Announces this node on the local link with mDNS and reports other nodes found there.
 *
 * Needs `--allow-net` (UDP port 5353, multicast group 224.0.0.251) and, when interfaces are
 * chosen by name or by default, `--allow-sys=networkInterfaces`.
 *
 * @example Finding peers on the LAN
 * ```ts ignore
 * import { Identity } from "@cretoai/network";
 * import { MdnsDiscovery } from "@cretoai/network/discovery";
 *
 * const identity = Identity.generate();
 * const mdns = new MdnsDiscovery({ peerId: identity.peerId.toString(), port: 9001 });
 * mdns.on("discovered", (peer) => console.log("found", peer.peerId, peer.addresses));
 * mdns.on("expired", ({ peerId }) => console.log("gone", peerId));
 * await mdns.start();
 * // ...
 * await mdns.close(); // sends a goodbye, closes the sockets, clears the timers
 * ```
 */
export class MdnsDiscovery {
  readonly #opts: Required<Omit<MdnsDiscoveryOptions, "interfaces" | "addresses" | "hostname">>;
  readonly #interfaces: string[] | undefined;
  readonly #addresses: string[] | undefined;
  readonly #hostname: string;
  readonly #limits: RecordLimits;
  readonly #table: PeerTable;
  readonly #listeners: { [K in keyof MdnsDiscoveryEventMap]: Set<Listener<K>> } = {
    discovered: new Set(),
    expired: new Set(),
    error: new Set(),
  };
  readonly #iterators = new Set<(e: MdnsDiscoveryEvent | null) => void>();
  #service: LocalService | undefined;
  #links: Link[] = [];
  /** The subnets of our interfaces, where known: a source in one is on the link. */
  #subnets: { address: string; prefixLength: number }[] = [];
  #state: "new" | "starting" | "running" | "closed" = "new";
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Cancel functions of the armed timers. */
  #timers = new Set<() => void>();
  #cancelExpiry: (() => void) | undefined;
  #expiryAt = Infinity;
  #lastBrowse = -Infinity;
  #recent = new Map<string, number>();
  /** The raw datagram being decoded, set when it passed the screening before the library's decoder. */
  #current: { link: Link; handled: boolean } | undefined;
  #stats: MdnsStats = zeroMdnsStats();

  /**
   * Validates the options; nothing is sent until {@linkcode MdnsDiscovery.start}.
   *
   * @example
   * ```ts
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001, interfaces: ["10.0.0.5"] });
   * console.assert(mdns.stats().peers === 0);
   * ```
   *
   * @param options What to announce and how; see {@linkcode MdnsDiscoveryOptions}.
   * @throws {InvalidConfigError} When an option breaks its rule; the message names it.
   */
  constructor(options: MdnsDiscoveryOptions) {
    const {
      peerId,
      port,
      version = "1",
      isValidPeerId = isPeerId,
      instance,
      hostname,
      interfaces,
      addresses,
      ttlSecs: ttl = 120,
      browseIntervalMs = 60_000,
      maxPacketBytes = 9000,
      maxRecordSize = 1300,
      maxRecords = 64,
      maxPeers = 256,
    } = options;
    if (typeof peerId !== "string" || !isValidPeerId(peerId)) {
      throw new InvalidConfigError("peerId", "a valid peer id", peerId);
    }
    requireInteger("port", port, 1, 65535);
    if (!isValidVersion(version)) {
      throw new InvalidConfigError("version", "1-16 of 0-9 A-Z a-z . + -", version);
    }
    const hash = hash64(peerId);
    const inst = instance ??
      (isValidLabel(`cretoai-${peerId}`) ? `cretoai-${peerId}` : `cretoai-${hash}`);
    if (!isValidLabel(inst)) {
      throw new InvalidConfigError("instance", "1-63 UTF-8 bytes without dots", inst);
    }
    const host = hostname ?? `cretoai-${hash}.local`;
    if (!/^([A-Za-z0-9-]{1,63}\.)+local\.?$/i.test(host)) {
      throw new InvalidConfigError("hostname", "labels of A-Z a-z 0-9 - ending in .local", host);
    }
    if (interfaces !== undefined && (!Array.isArray(interfaces) || interfaces.length === 0)) {
      throw new InvalidConfigError(
        "interfaces",
        "a non-empty array of names or IPv4 addresses",
        interfaces,
      );
    }
    if (
      addresses !== undefined &&
      (!Array.isArray(addresses) || addresses.length === 0 || !addresses.every(isUsableIpv4))
    ) {
      throw new InvalidConfigError(
        "addresses",
        "a non-empty array of unicast IPv4 addresses",
        addresses,
      );
    }
    requireInteger("ttlSecs", ttl, 1, MAX_RECORD_TTL_S);
    requireInteger("browseIntervalMs", browseIntervalMs, 1000, 86_400_000);
    requireInteger("maxPacketBytes", maxPacketBytes, 512, 65_507);
    requireInteger("maxRecordSize", maxRecordSize, 64, 65_535);
    requireInteger("maxRecords", maxRecords, 4, 10_000);
    requireInteger("maxPeers", maxPeers, 1, 1_000_000);

    this.#opts = {
      peerId,
      port,
      version,
      isValidPeerId,
      instance: inst,
      ttlSecs: ttl,
      browseIntervalMs,
      maxPacketBytes,
      maxRecordSize,
      maxRecords,
      maxPeers,
    };
    this.#interfaces = interfaces;
    this.#addresses = addresses;
    this.#hostname = host.replace(/\.$/, "");
    this.#limits = { maxRecordSize, maxRecords, isValidPeerId };
    this.#table = new PeerTable({ ownPeerId: peerId, maxPeers });
  }

  /**
   * Opens one multicast socket per interface, announces the node and starts browsing.
   *
   * @example
   * ```ts ignore
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001, interfaces: ["eth0"] });
   * await mdns.start();
   * await mdns.close();
   * ```
   *
   * @returns Resolves once the sockets are bound and the first announcement and query are sent.
   * @throws {InvalidConfigError} When an interface is unknown or has no IPv4 address, or the
   * announcement would not fit in `maxPacketBytes`.
   * @throws {NetworkError} `ERR_MDNS` when net access to `0.0.0.0:5353` or `224.0.0.251:5353` is
   * not granted, a socket cannot be bound, the interfaces cannot be listed, or the service was
   * started or closed before.
   */
  start(): Promise<void> {
    if (this.#state !== "new" || this.#closing !== undefined) {
      const state = this.#closing !== undefined ? "closed" : this.#state;
      return Promise.reject(
        new NetworkError("ERR_MDNS", `Cannot start mDNS discovery: it is ${state}`),
      );
    }
    this.#state = "starting";
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    try {
      requireNetPermission();
      const linkAddresses = resolveInterfaces(this.#interfaces);
      this.#subnets = subnetsOf(linkAddresses);
      this.#service = {
        instance: this.#opts.instance,
        hostname: this.#hostname,
        port: this.#opts.port,
        peerId: this.#opts.peerId,
        version: this.#opts.version,
        addresses: this.#addresses ?? linkAddresses,
      };
      const size = estimateSize(buildAnnouncement(this.#service, this.#opts.ttlSecs));
      if (size > this.#opts.maxPacketBytes) {
        throw new InvalidConfigError(
          "maxPacketBytes",
          `at least the announcement's ${size} bytes`,
          this.#opts.maxPacketBytes,
        );
      }
      for (const address of linkAddresses) this.#links.push(await this.#openLink(address));
    } catch (e) {
      await this.#shutdown(false);
      throw e;
    }
    this.#state = "running";
    await Promise.all([this.#announce(), this.#browse()]);
    // RFC 6762 section 8.3: announce at least twice, one second apart; the querier side
    // likewise asks again after a second (section 5.2) to catch answers lost at start.
    this.#after(1000, () => {
      this.#announce();
      this.#browse();
      this.#scheduleBrowse();
    });
  }

  /**
   * Sends a goodbye (our records with TTL 0), closes the sockets and clears the timers. Safe to
   * call more than once; later calls wait for the first.
   *
   * @example
   * ```ts
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001 });
   * await mdns.close(); // never started: nothing to send
   * ```
   *
   * @returns Resolves when every socket is closed.
   */
  close(): Promise<void> {
    // A start in progress finishes first, so the sockets it is opening are closed too.
    this.#closing ??= (this.#starting ?? Promise.resolve()).then(
      () => this.#shutdown(true),
      () => {},
    );
    return this.#closing;
  }

  /**
   * Closes the service, for `await using`.
   *
   * @example
   * ```ts
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * {
   *   await using mdns = new MdnsDiscovery({ peerId: PEER, port: 9001 });
   * }
   * ```
   *
   * @returns Resolves when closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Registers a listener for one kind of event.
   *
   * @example
   * ```ts
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001 });
   * const off = mdns.on("discovered", (peer) => console.log(peer.peerId, peer.addresses));
   * off();
   * ```
   *
   * @param type `"discovered"`, `"expired"` or `"error"`.
   * @param listener Called with the event's payload; exceptions it throws are swallowed.
   * @returns A function that removes the listener.
   */
  on<K extends keyof MdnsDiscoveryEventMap>(
    type: K,
    listener: (event: MdnsDiscoveryEventMap[K]) => void,
  ): () => void {
    const set = this.#listeners[type] as Set<Listener<K>>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Yields `discovered` and `expired` events from now until the service closes.
   *
   * @example
   * ```ts ignore
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001 });
   * await mdns.start();
   * for await (const event of mdns.events()) {
   *   if (event.type === "discovered") console.log(event.peer.addresses);
   * }
   * ```
   *
   * @returns An async iterator; breaking out of the loop unsubscribes it.
   */
  events(): AsyncIterableIterator<MdnsDiscoveryEvent> {
    const queue: MdnsDiscoveryEvent[] = [];
    let wake: (() => void) | undefined;
    let done = this.#state === "closed";
    const push = (e: MdnsDiscoveryEvent | null) => {
      if (e === null) done = true;
      else queue.push(e);
      wake?.();
    };
    this.#iterators.add(push);
    const iterators = this.#iterators;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next(): Promise<IteratorResult<MdnsDiscoveryEvent>> {
        while (queue.length === 0 && !done) {
          await new Promise<void>((resolve) => wake = resolve);
          wake = undefined;
        }
        const value = queue.shift();
        if (value !== undefined) return { value, done: false };
        iterators.delete(push);
        return { value: undefined, done: true };
      },
      return(): Promise<IteratorResult<MdnsDiscoveryEvent>> {
        done = true;
        iterators.delete(push);
        wake?.();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /**
   * The peers known now.
   *
   * @example
   * ```ts
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001 });
   * console.assert(mdns.peers().length === 0);
   * ```
   *
   * @returns One snapshot per peer.
   */
  peers(): MdnsPeer[] {
    return this.#table.peers();
  }

  /**
   * Counters of traffic and drops.
   *
   * @example
   * ```ts
   * import { MdnsDiscovery } from "@cretoai/network/discovery";
   *
   * const PEER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
   * const mdns = new MdnsDiscovery({ peerId: PEER, port: 9001 });
   * console.assert(mdns.stats().dropped === 0);
   * ```
   *
   * @returns A copy of the counters.
   */
  stats(): MdnsStats {
    const s = this.#stats;
    return { ...s, droppedBy: { ...s.droppedBy }, peers: this.#table.size };
  }

  async #openLink(address: string): Promise<Link> {
    const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
    const link: Link = {
      address,
      socket,
      mdns: undefined as unknown as makeMdns.MulticastDNS,
      lastMulticast: new Map(),
    };
    // The library decodes every datagram the socket emits; each is screened first, and one that
    // is too large or claims too many records never reaches the decoder.
    const emit = socket.emit;
    socket.emit = function (this: dgram.Socket, event: string | symbol, ...args: unknown[]) {
      if (event === "message" && !screen(args[0] as Uint8Array, args[1] as dgram.RemoteInfo)) {
        return false;
      }
      return Reflect.apply(emit, this, [event, ...args]);
    } as typeof socket.emit;
    const screen = (msg: Uint8Array, rinfo: dgram.RemoteInfo) => this.#onRaw(link, msg, rinfo);
    // `interface` makes the library join the group and send on this address; `bind` keeps it
    // from binding to the address itself, where multicast would not be received.
    link.mdns = makeMdns({ socket, interface: address, bind: "0.0.0.0", port: MDNS_PORT });
    socket.on("message", () => this.#afterRaw());
    link.mdns.on(
      "packet",
      (packet: makeMdns.FullPacket, rinfo: dgram.RemoteInfo) => this.#onPacket(link, packet, rinfo),
    );
    // Decode failures are counted in #afterRaw; other warnings are transient socket errors.
    link.mdns.on("warning", () => {});
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        link.mdns.destroy();
        reject(
          new NetworkError(
            "ERR_MDNS",
            `Cannot open the mDNS socket on ${address}:${MDNS_PORT}: ${err.message}`,
            { cause: err },
          ),
        );
      };
      link.mdns.once("error", onError);
      link.mdns.once("ready", () => {
        link.mdns.off("error", onError);
        link.mdns.on("error", (err: Error) => {
          this.#emit(
            "error",
            new NetworkError("ERR_MDNS", `mDNS socket on ${address} failed: ${err.message}`, {
              cause: err,
            }),
          );
        });
        resolve();
      });
    });
    return link;
  }

  /** Counts a raw datagram; returns whether the library may decode it. */
  #onRaw(link: Link, msg: Uint8Array, rinfo: dgram.RemoteInfo): boolean {
    this.#stats.received++;
    let duplicate = false;
    if (this.#links.length > 1) {
      // Linux delivers a multicast datagram to every socket bound to the port, so each of our
      // per-interface sockets hears it; handle it once.
      const now = Date.now();
      const key = `${rinfo.address}:${rinfo.port}:${msg.byteLength}:${hash64(msg)}`;
      const seen = this.#recent.get(key);
      duplicate = seen !== undefined && now - seen < DUPLICATE_WINDOW_MS;
      if (!duplicate) this.#recent.set(key, now);
      if (this.#recent.size > 256) {
        for (const [k, t] of this.#recent) {
          if (now - t >= DUPLICATE_WINDOW_MS) this.#recent.delete(k);
        }
        // A flood of distinct datagrams within one window: the oldest go first.
        for (const k of this.#recent.keys()) {
          if (this.#recent.size <= MAX_RECENT) break;
          this.#recent.delete(k);
        }
      }
    }
    if (duplicate) return false;
    if (msg.byteLength > this.#opts.maxPacketBytes) {
      this.#drop("oversized");
      return false;
    }
    if (msg.byteLength >= DNS_HEADER_BYTES) {
      const view = new DataView(msg.buffer, msg.byteOffset, DNS_HEADER_BYTES);
      const questions = view.getUint16(4);
      const records = view.getUint16(6) + view.getUint16(8) + view.getUint16(10);
      if (questions > MAX_QUESTIONS || records > this.#opts.maxRecords) {
        this.#drop("invalid");
        return false;
      }
    }
    this.#current = { link, handled: false };
    return true;
  }

  #afterRaw(): void {
    const cur = this.#current;
    this.#current = undefined;
    if (cur !== undefined && !cur.handled) this.#drop("malformed");
  }

  #onPacket(link: Link, packet: makeMdns.FullPacket, rinfo: dgram.RemoteInfo): void {
    const cur = this.#current;
    if (cur === undefined || cur.link !== link || cur.handled) return;
    cur.handled = true;
    if (this.#state !== "running") return;
    try {
      if (packet.type === "query") this.#onQuery(packet, rinfo);
      else if (packet.type === "response") this.#onResponse(packet, rinfo);
    } catch {
      // The checks above should make this unreachable; a hostile packet must still not crash us.
      this.#drop("malformed");
    }
  }

  #onQuery(packet: makeMdns.FullPacket, rinfo: dgram.RemoteInfo): void {
    const service = this.#service!;
    const oneShot = rinfo.port !== MDNS_PORT;
    // A unicast reply goes wherever the source says: only to a source on our link (RFC 6762
    // section 11), so nobody off the link can aim our answers at a third party.
    if (oneShot && !this.#onLink(rinfo.address)) return;
    const res = answerQuery(packet, service, this.#opts.ttlSecs);
    if (res === null) return;
    this.#stats.answered++;
    if (oneShot) {
      // A one-shot querier (RFC 6762 section 6.7) listens on its own port for a unicast reply
      // that repeats its id and the questions answered.
      const link = this.#links[0];
      this.#send(link, {
        ...res,
        id: packet.id,
        questions: questionsAbout(packet, service) as typeof packet.questions,
      }, {
        port: rinfo.port,
        address: rinfo.address,
      });
      return;
    }
    for (const link of this.#links) {
      const now = Date.now();
      const answers = res.answers.filter((r) =>
        now - (link.lastMulticast.get(recordKey(r)) ?? -Infinity) >= MIN_MULTICAST_INTERVAL_MS
      );
      if (answers.length === 0) continue;
      this.#multicast(link, { answers, additionals: res.additionals });
    }
  }

  #onResponse(packet: makeMdns.FullPacket, rinfo: dgram.RemoteInfo): void {
    const parsed = parseResponse(packet, this.#limits);
    for (let i = 0; i < parsed.rejected.length; i++) this.#drop("invalid");
    // Peers are dialed at the addresses they announce: only at ones with a basis, the sender's
    // own address or one on our link, never at any address a packet names.
    for (const [name, host] of parsed.hosts) {
      host.addresses = host.addresses.filter((a) => a === rinfo.address || this.#onLink(a));
      if (host.addresses.length === 0) parsed.hosts.delete(name);
    }
    const r = this.#table.observe(parsed, Date.now());
    this.#stats.ownIgnored += r.own;
    this.#stats.incomplete += r.incomplete;
    for (let i = 0; i < r.overflow; i++) this.#drop("overflow");
    this.#dispatch(r.events);
    this.#armExpiry();
  }

  #onExpiryTimer(): void {
    this.#cancelExpiry = undefined;
    this.#expiryAt = Infinity;
    const now = Date.now();
    const { events, refresh } = this.#table.poll(now);
    this.#dispatch(events);
    if (refresh && now - this.#lastBrowse >= MIN_MULTICAST_INTERVAL_MS) this.#browse();
    this.#armExpiry();
  }

  #armExpiry(): void {
    if (this.#state !== "running") return;
    const next = this.#table.nextDeadline();
    if (next === undefined || next >= this.#expiryAt) return;
    this.#cancelExpiry?.();
    this.#expiryAt = next;
    this.#cancelExpiry = this.#after(Math.max(0, next - Date.now()), () => this.#onExpiryTimer());
  }

  #scheduleBrowse(): void {
    this.#after(this.#opts.browseIntervalMs, () => {
      this.#browse();
      this.#scheduleBrowse();
    });
  }

  #announce(): Promise<void> {
    const res = buildAnnouncement(this.#service!, this.#opts.ttlSecs);
    return Promise.all(this.#links.map((l) => this.#multicast(l, res))).then(() => {});
  }

  #browse(): Promise<void> {
    this.#lastBrowse = Date.now();
    const query = { questions: [{ name: MDNS_SERVICE_TYPE, type: "PTR" as const }] };
    return Promise.all(this.#links.map((link) =>
      new Promise<void>((resolve) => {
        link.mdns.query(query, (err) => {
          if (!err) this.#stats.sent++;
          resolve();
        });
      })
    )).then(() => {});
  }

  #multicast(link: Link, res: OutgoingResponse): Promise<void> {
    const now = Date.now();
    for (const r of res.answers) link.lastMulticast.set(recordKey(r), now);
    return this.#send(link, res);
  }

  #send(
    link: Link,
    res: OutgoingResponse & { id?: number; questions?: makeMdns.FullPacket["questions"] },
    to?: { port: number; address: string },
  ): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (err: Error | null) => {
        if (!err) this.#stats.sent++;
        resolve();
      };
      // Our record objects are shaped as dns-packet expects; its types only differ in the TXT
      // data union, which includes our string arrays.
      const packet = res as makeMdns.ResponseOutgoingPacket;
      if (to === undefined) link.mdns.respond(packet, done);
      else link.mdns.respond(packet, to, done);
    });
  }

  async #shutdown(goodbye: boolean): Promise<void> {
    const wasRunning = this.#state === "running";
    this.#state = "closed";
    for (const cancel of this.#timers) cancel();
    this.#timers.clear();
    this.#cancelExpiry = undefined;
    if (goodbye && wasRunning && this.#service !== undefined) {
      const bye = buildAnnouncement(this.#service, 0);
      let timer: Timer | undefined;
      await Promise.race([
        Promise.all(this.#links.map((l) => this.#send(l, bye))),
        new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_SEND_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
    }
    await Promise.all(
      this.#links.map((l) => new Promise<void>((resolve) => l.mdns.destroy(() => resolve()))),
    );
    this.#links = [];
    for (const push of this.#iterators) push(null);
    this.#iterators.clear();
  }

  /** Arms a timer that runs `fn` while the service runs; returns its cancel function. */
  #after(ms: number, fn: () => void): () => void {
    const cancelTimer = scheduleTimeout(() => {
      this.#timers.delete(cancel);
      if (this.#state === "running") fn();
    }, ms);
    const cancel = () => {
      cancelTimer();
      this.#timers.delete(cancel);
    };
    this.#timers.add(cancel);
    return cancel;
  }

  #dispatch(events: PeerTableEvent[]): void {
    for (const e of events) {
      if (e.type === "discovered") this.#emit("discovered", e.peer);
      else this.#emit("expired", { peerId: e.peerId });
      for (const push of this.#iterators) push(e);
    }
  }

  #emit<K extends keyof MdnsDiscoveryEventMap>(type: K, payload: MdnsDiscoveryEventMap[K]): void {
    for (const listener of this.#listeners[type] as Set<Listener<K>>) {
      try {
        listener(payload);
      } catch {
        // A failing listener must not stop the others or the receive path.
      }
    }
  }

  #onLink(address: string): boolean {
    return this.#subnets.some((s) => sameSubnet(address, s.address, s.prefixLength));
  }

  #drop(reason: keyof MdnsStats["droppedBy"]): void {
    this.#stats.dropped++;
    this.#stats.droppedBy[reason]++;
  }
}

/**
 * Deno's node:dgram reports a missing net permission by throwing from a later tick, where no
 * caller can catch it and the process dies; asking first turns it into a rejected start().
 */
function requireNetPermission(): void {
  for (const host of [`0.0.0.0:${MDNS_PORT}`, `224.0.0.251:${MDNS_PORT}`]) {
    if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
      throw new NetworkError(
        "ERR_MDNS",
        `Cannot start mDNS discovery: it needs net access to ${host} ` +
          `(--allow-net, or --allow-net=0.0.0.0:${MDNS_PORT},224.0.0.251:${MDNS_PORT} besides the node's own hosts)`,
      );
    }
  }
}

/** The IPv4 addresses to open sockets on, one per interface. */
function resolveInterfaces(requested: string[] | undefined): string[] {
  const needLookup = requested === undefined || requested.some((i) => !isUsableIpv4(i));
  let all: Deno.NetworkInterfaceInfo[] = [];
  try {
    if (needLookup) all = Deno.networkInterfaces().filter((i) => i.family === "IPv4");
  } catch (e) {
    throw new NetworkError(
      "ERR_MDNS",
      `Cannot list network interfaces to choose from ${JSON.stringify(requested ?? "all")} ` +
        `(choosing by name or by default needs --allow-sys=networkInterfaces): ${e}`,
      { cause: e },
    );
  }
  if (requested === undefined) {
    const byName = new Map<string, string>();
    for (const i of all) {
      if (!i.address.startsWith("127.") && !byName.has(i.name)) byName.set(i.name, i.address);
    }
    if (byName.size === 0) {
      throw new NetworkError(
        "ERR_MDNS",
        `Cannot choose an interface for mDNS: no IPv4 interface other than loopback among ${
          JSON.stringify(all.map((i) => i.name))
        }; pass 'interfaces'`,
      );
    }
    return [...byName.values()];
  }
  const out = new Set<string>();
  for (const name of requested) {
    if (isUsableIpv4(name)) {
      out.add(name);
      continue;
    }
    const found = all.find((i) => i.name === name);
    if (found === undefined) {
      throw new InvalidConfigError(
        "interfaces",
        `names of interfaces with an IPv4 address (have ${JSON.stringify(all.map((i) => i.name))})`,
        name,
      );
    }
    out.add(found.address);
  }
  return [...out];
}

/**
 * The subnet of each address, from the interface list when `--allow-sys=networkInterfaces` is
 * granted; without it none is known, and only a sender's own address counts as on the link.
 */
function subnetsOf(addresses: string[]): { address: string; prefixLength: number }[] {
  if (Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" }).state !== "granted") {
    return [];
  }
  const out: { address: string; prefixLength: number }[] = [];
  for (const i of Deno.networkInterfaces()) {
    const prefixLength = Number(i.cidr.split("/")[1]);
    if (i.family === "IPv4" && addresses.includes(i.address) && prefixLength >= 8) {
      out.push({ address: i.address, prefixLength });
    }
  }
  return out;
}

function isPeerId(text: string): boolean {
  try {
    PeerId.parse(text);
    return true;
  } catch {
    return false;
  }
}

function recordKey(r: OutgoingRecord): string {
  return `${r.type} ${r.name.toLowerCase()}`;
}

/**
 * Two 32-bit FNV-1a hashes with different offsets, as 16 hex digits: short stable names and
 * duplicate keys, not security.
 */
function hash64(input: string | Uint8Array): string {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i], 0x01000193);
    b = Math.imul(b ^ bytes[i], 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}
