/**
 * TURN client (RFC 8656) on a node's {@link RawDatagramPort}: the allocation lives on the same
 * socket as QUIC, so a peer reaches the node through the relay with the node's own packets.
 * Allocate with long-term credentials, automatic Refresh of the allocation, its permissions and
 * its channel bindings, ChannelData for the data path and Send/Data indications as fallback.
 *
 * The timers are pure state (`_turn_state.ts`) and the messages pure functions
 * (`_turn_codec.ts`); this file is the thin layer that sends, receives and runs one timer.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { InvalidAddressError, InvalidConfigError, NetworkError } from "../errors.ts";
import type { RawDatagramPort, UdpAddress } from "../quic/datagram_port.ts";
import { formatAddress, isIpLiteral, sameAddress } from "./_address.ts";
import { transaction } from "./_retransmit.ts";
import { type Clock, systemClock } from "../clock.ts";
import {
  type DecodedStunMessage,
  decodeStunMessage,
  looksLikeStun,
  transactionKey,
} from "./_stun_codec.ts";
import {
  channelOf,
  channelPayload,
  DATA_INDICATION,
  encodeChannelData,
  encodeSendIndication,
  encodeTurnRequest,
  errorOf,
  integrityMatches,
  isChannelData,
  longTermKey,
  successOf,
  type TurnAuth,
  TurnMethod,
  type TurnRequestFields,
} from "./_turn_codec.ts";
import {
  CHANNEL_LIFETIME_MS,
  MAX_ALLOCATION_LIFETIME_S,
  PERMISSION_LIFETIME_MS,
  TurnAllocationState,
  type TurnTask,
} from "./_turn_state.ts";
import {
  type StunRetransmitOptions,
  type StunRetransmitSchedule,
  stunRetransmitSchedule,
} from "./stun_client.ts";

/** Codes of {@link TurnError}. */
export type TurnErrorCode = "ERR_TURN" | "ERR_TURN_AUTH" | "ERR_TURN_ALLOCATION_EXPIRED";

/**
 * A TURN operation failed: `ERR_TURN_AUTH` when the server refused the credentials,
 * `ERR_TURN_ALLOCATION_EXPIRED` when the allocation is gone, `ERR_TURN` for the rest (no
 * answer within the retransmission schedule, an error response, a send failure).
 *
 * @example
 * ```ts
 * import { TurnError } from "@cretoai/network";
 *
 * const e = new TurnError("ERR_TURN_AUTH", { hostname: "192.0.2.1", port: 3478 }, "rejected", 401);
 * console.assert(e.code === "ERR_TURN_AUTH" && e.errorCode === 401);
 * ```
 */
export class TurnError extends NetworkError {
  /** The TURN server. */
  readonly server: UdpAddress;
  /** The STUN error code of the server's answer, when it answered with one. */
  readonly errorCode: number | undefined;

  /**
   * Creates the error.
   *
   * @param code Which failure.
   * @param server The TURN server.
   * @param message What was wrong, and the value seen.
   * @param errorCode The STUN error code the server sent, if any.
   * @param options Standard error options, such as `cause`.
   */
  constructor(
    code: TurnErrorCode,
    server: UdpAddress,
    message: string,
    errorCode?: number,
    options?: ErrorOptions,
  ) {
    super(code, `TURN server ${formatAddress(server)}: ${message}`, options);
    this.server = server;
    this.errorCode = errorCode;
  }
}

/** Receives data a peer sent through the relay: ChannelData or a Data indication. */
export type TurnDataHandler = (data: Uint8Array, from: UdpAddress) => void;

/** Options of {@link TurnClient.allocate}. */
export interface TurnClientOptions extends StunRetransmitOptions {
  /** The TURN server: an IP literal and port. */
  server: UdpAddress;
  /** Long-term credential user name. */
  username: string;
  /** Long-term credential password. */
  password: string;
  /**
   * Allocation lifetime to ask for, in seconds; the server may grant another (it caps it at
   * its maximum, and may raise short ones to its default).
   *
   * @default {600}
   */
  lifetimeSecs?: number;
  /**
   * Delay from a permission grant to its refresh, in ms; below the 5 minutes a permission
   * lives.
   *
   * @default {240000}
   */
  permissionRefreshMs?: number;
  /**
   * Delay from a channel binding to its refresh, in ms; below the 10 minutes a binding lives.
   *
   * @default {540000}
   */
  channelRefreshMs?: number;
  /**
   * Clock and timers.
   *
   * @default {performance.now and setTimeout}
   */
  clock?: Clock;
  /**
   * Aborts the Allocate; with a `TimeoutError` reason (`AbortSignal.timeout`) it fails with
   * `ERR_TIMEOUT`, otherwise with `ERR_ABORTED`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

interface Pending {
  method: number;
  resolve(message: DecodedStunMessage, raw: Uint8Array): void;
  fail(error: NetworkError): void;
}

const METHOD_NAMES: Record<number, string> = {
  [TurnMethod.allocate]: "Allocate",
  [TurnMethod.refresh]: "Refresh",
  [TurnMethod.createPermission]: "CreatePermission",
  [TurnMethod.channelBind]: "ChannelBind",
};
const ALLOCATION_MISMATCH = 437;
const UNAUTHORIZED = 401;
const STALE_NONCE = 438;
/** New nonces accepted per request before giving up (a server that keeps calling it stale). */
const MAX_NONCE_RETRIES = 3;
/**
 * The client holding (or asking for) the allocation of each port on each server. A server
 * knows an allocation by its 5-tuple alone, so a 437 to an Allocate from a port none of whose
 * clients holds one there names an allocation nobody uses: one whose client crashed, or gave
 * up on it.
 */
const liveAllocations = new WeakMap<RawDatagramPort, Map<string, TurnClient>>();
const log = getLogger(["cretoai", "nat"]);
/** Waits before each Allocate after releasing a stale allocation: 3.5 s in all. */
const STALE_RELEASE_WAITS_MS = [500, 1000, 2000];

/**
 * A TURN allocation on a TURN server, reached from a node's raw datagram port. Created by
 * {@link TurnClient.allocate}; refreshes itself until {@link TurnClient.close}.
 *
 * @example Relaying data to a peer
 * ```ts ignore
 * import { TurnClient } from "@cretoai/network";
 * import type { RawDatagramPort } from "@cretoai/network";
 *
 * declare const port: RawDatagramPort; // for example a QuicEndpoint
 * await using turn = await TurnClient.allocate(port, {
 *   server: { hostname: "192.0.2.1", port: 3478 },
 *   username: "test",
 *   password: "secret",
 * });
 * console.log("peers reach us at", turn.relayedAddress);
 * const peer = { hostname: "198.51.100.7", port: 40000 };
 * await turn.bindChannel(peer);
 * turn.onData = (data, from) => console.log(data.byteLength, "bytes from", from);
 * await turn.send(new TextEncoder().encode("hello"), peer);
 * ```
 */
export class TurnClient implements AsyncDisposable {
  /**
   * Called with data a peer sent through the relay. The data is only valid during the call.
   * Datagrams unwrapped by a `RelaySocket` do not come here.
   */
  onData: TurnDataHandler | undefined = undefined;
  /** Called once when the allocation expired (a refresh failed until its lifetime ran out). */
  onExpired: ((error: TurnError) => void) | undefined = undefined;
  readonly #port: RawDatagramPort;
  readonly #server: UdpAddress;
  readonly #username: string;
  readonly #password: string;
  readonly #clock: Clock;
  readonly #schedule: StunRetransmitSchedule;
  readonly #requestedLifetime: number;
  readonly #state: TurnAllocationState;
  readonly #pending = new Map<string, Pending>();
  readonly #binding = new Map<string, Promise<number>>();
  readonly #removeHandler: () => void;
  #auth: TurnAuth | undefined;
  #relayed: UdpAddress | undefined;
  #mapped: UdpAddress | undefined;
  #lifetime = 0;
  #cancelTimer = () => {};
  #expired: TurnError | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(port: RawDatagramPort, options: Required<Omit<TurnClientOptions, "signal">>) {
    this.#port = port;
    this.#server = { hostname: options.server.hostname, port: options.server.port };
    this.#username = options.username;
    this.#password = options.password;
    this.#clock = options.clock;
    this.#schedule = stunRetransmitSchedule(options);
    this.#requestedLifetime = options.lifetimeSecs;
    this.#state = new TurnAllocationState(options);
    this.#removeHandler = port.addRawHandler((data, from) => this.handleDatagram(data, from));
  }

  /**
   * Allocates a relayed address on a TURN server: an unauthenticated Allocate, the server's
   * 401 with realm and nonce, then the Allocate with MESSAGE-INTEGRITY (retried with a fresh
   * nonce on 438). The client then refreshes the allocation until it is closed.
   *
   * A server keeps one allocation per 5-tuple, so a port holds at most one live allocation per
   * server. One the server still keeps for this port that no live client knows of (its client
   * crashed, or expired it after unanswered refreshes, or just released it: coturn frees a
   * released allocation up to a second later) answers the Allocate with 437 Allocation
   * Mismatch; it is released and the Allocate retried after 0.5, 1 and 2 s.
   *
   * @example
   * ```ts ignore
   * const turn = await TurnClient.allocate(endpoint, {
   *   server: { hostname: "10.200.0.1", port: 3478 },
   *   username: "test",
   *   password: "secret",
   *   lifetimeSecs: 600,
   * });
   * ```
   *
   * @param port The node's raw datagram port (a `QuicEndpoint`, or a test port).
   * @param options Server, credentials, lifetime, refresh delays, retransmission, clock.
   * @returns The client with its allocation.
   * @throws {InvalidAddressError} If the server is not an IP literal with a port 1-65535.
   * @throws {InvalidConfigError} If an option breaks its rule.
   * @throws {TurnError} `ERR_TURN_AUTH` if the server refused the credentials; `ERR_TURN` if
   * it did not answer within the retransmission schedule or answered with another error, or if
   * a live client on this port already holds an allocation on this server.
   * @throws {NetworkError} `ERR_TIMEOUT`/`ERR_ABORTED` if the signal fired.
   */
  static async allocate(port: RawDatagramPort, options: TurnClientOptions): Promise<TurnClient> {
    const {
      server,
      username,
      password,
      lifetimeSecs: lifetime = 600,
      permissionRefreshMs = 240_000,
      channelRefreshMs = 540_000,
      clock = systemClock,
      rto = 100,
      rc = 5,
      rm = 8,
      signal,
    } = options;
    if (!isIpLiteral(server?.hostname)) {
      throw new InvalidAddressError(
        String(server?.hostname),
        "a TURN server must be an IP literal",
      );
    }
    if (!(Number.isInteger(server.port) && server.port > 0 && server.port < 65536)) {
      throw new InvalidAddressError(formatAddress(server), "port must be an integer 1-65535");
    }
    if (typeof username !== "string" || username.length === 0) {
      throw new InvalidConfigError("username", "a non-empty string", username);
    }
    if (typeof password !== "string") {
      throw new InvalidConfigError("password", "a string", password);
    }
    if (!(Number.isInteger(lifetime) && lifetime > 0 && lifetime <= 0xffffffff)) {
      throw new InvalidConfigError(
        "lifetimeSecs",
        "a positive integer number of seconds",
        lifetime,
      );
    }
    if (!(permissionRefreshMs > 0 && permissionRefreshMs < PERMISSION_LIFETIME_MS)) {
      throw new InvalidConfigError(
        "permissionRefreshMs",
        `a number of ms in (0, ${PERMISSION_LIFETIME_MS})`,
        permissionRefreshMs,
      );
    }
    if (!(channelRefreshMs > 0 && channelRefreshMs < CHANNEL_LIFETIME_MS)) {
      throw new InvalidConfigError(
        "channelRefreshMs",
        `a number of ms in (0, ${CHANNEL_LIFETIME_MS})`,
        channelRefreshMs,
      );
    }
    const serverKey = formatAddress(server);
    let held = liveAllocations.get(port);
    if (held === undefined) liveAllocations.set(port, held = new Map());
    if (held.has(serverKey)) {
      throw new TurnError(
        "ERR_TURN",
        server,
        "this port already holds an allocation on this server, which keeps one per 5-tuple " +
          "(close that TurnClient first)",
      );
    }
    const client = new TurnClient(port, {
      server,
      username,
      password,
      lifetimeSecs: lifetime,
      permissionRefreshMs,
      channelRefreshMs,
      clock,
      rto,
      rc,
      rm,
    });
    // Held from the first request: a second allocate on this port and server meanwhile is
    // refused, not answered 437 and taken for a stale allocation.
    held.set(serverKey, client);
    try {
      const answer = await client.#allocate(lifetime, signal);
      if (answer.relayedAddress === undefined || answer.lifetime === undefined) {
        throw new TurnError(
          "ERR_TURN",
          client.#server,
          `Allocate success without XOR-RELAYED-ADDRESS or LIFETIME`,
        );
      }
      client.#relayed = answer.relayedAddress;
      client.#mapped = answer.xorMappedAddress ?? answer.mappedAddress;
      client.#granted(answer.lifetime);
    } catch (e) {
      client.#shutDown();
      throw e;
    }
    return client;
  }

  /** The TURN server. */
  get server(): UdpAddress {
    return this.#server;
  }

  /** The relayed transport address: where peers send to reach this node. */
  get relayedAddress(): UdpAddress {
    return this.#relayed!;
  }

  /** This node's address as the TURN server sees it (XOR-MAPPED-ADDRESS), when it was sent. */
  get mappedAddress(): UdpAddress | undefined {
    return this.#mapped;
  }

  /**
   * The lifetime the server granted last, in seconds; a grant above an hour counts as an hour
   * (the allocation is refreshed within it).
   */
  get lifetimeSecs(): number {
    return this.#lifetime;
  }

  /** When the allocation expires unless refreshed, on the client's clock (ms). */
  get expiresAt(): number {
    return this.#state.expiresAt ?? 0;
  }

  /** Whether the allocation expired (its refresh failed until its lifetime ran out). */
  get expired(): boolean {
    return this.#expired !== undefined;
  }

  /** How many requests are waiting for an answer. */
  get pendingTransactions(): number {
    return this.#pending.size;
  }

  /**
   * Installs permissions for peers' IPs (the port is ignored, RFC 8656 section 9), so the
   * server relays their datagrams to this node. Refreshed automatically until closed.
   *
   * @example
   * ```ts ignore
   * await turn.createPermission([{ hostname: "198.51.100.7", port: 40000 }]);
   * ```
   *
   * @param peers One peer or several (one request carries them all).
   * @returns Resolves when the server granted them.
   * @throws {InvalidAddressError} If a peer is not an IP literal with a port 1-65535.
   * @throws {TurnError} `ERR_TURN_ALLOCATION_EXPIRED` if the allocation is gone; `ERR_TURN`
   * (or `ERR_TURN_AUTH`) if the server refused or did not answer.
   */
  async createPermission(peers: UdpAddress | readonly UdpAddress[]): Promise<void> {
    const list: readonly UdpAddress[] = "hostname" in peers ? [peers] : peers;
    if (list.length === 0) throw new InvalidConfigError("peers", "a non-empty list", []);
    for (const p of list) checkPeer(p);
    await this.#request(TurnMethod.createPermission, { peers: list });
    const now = this.#clock.now();
    for (const p of list) this.#state.permitted(now, p.hostname);
    this.#arm();
  }

  /**
   * Binds a channel to a peer (which also installs the permission for its IP), so data to
   * and from it travels as ChannelData with a 4-byte header. Idempotent: a bound peer gets
   * its channel back at once. Refreshed automatically until closed.
   *
   * @example
   * ```ts ignore
   * const channel = await turn.bindChannel({ hostname: "198.51.100.7", port: 40000 });
   * console.assert(channel >= 0x4000 && channel <= 0x4fff);
   * ```
   *
   * @param peer The peer's address as the server sees it (its relayed or public address).
   * @returns The channel number, 0x4000-0x4FFF.
   * @throws {InvalidAddressError} If the peer is not an IP literal with a port 1-65535.
   * @throws {TurnError} `ERR_TURN_ALLOCATION_EXPIRED` if the allocation is gone; `ERR_TURN`
   * if the server refused, did not answer, or all channel numbers are taken.
   */
  bindChannel(peer: UdpAddress): Promise<number> {
    checkPeer(peer);
    const bound = this.#state.boundChannel(peer);
    if (bound !== undefined) return Promise.resolve(bound);
    const key = `${peer.hostname}|${peer.port}`;
    let binding = this.#binding.get(key);
    if (binding === undefined) {
      binding = this.#bind(peer).finally(() => this.#binding.delete(key));
      this.#binding.set(key, binding);
    }
    return binding;
  }

  /**
   * The channel bound to a peer, if any.
   *
   * @param peer The peer's address.
   * @returns The channel number, or `undefined`.
   */
  channelOf(peer: UdpAddress): number | undefined {
    return this.#state.boundChannel(peer);
  }

  /**
   * The peer bound to a channel, if any.
   *
   * @param channel A channel number.
   * @returns The peer's address, or `undefined`.
   */
  peerOfChannel(channel: number): UdpAddress | undefined {
    return this.#state.peerOf(channel);
  }

  /**
   * Sends data to a peer through the relay: as ChannelData when a channel is bound, else as a
   * Send indication (the peer's IP needs a permission, or the server drops it).
   *
   * @example
   * ```ts ignore
   * await turn.send(new Uint8Array([1, 2, 3]), { hostname: "198.51.100.7", port: 40000 });
   * ```
   *
   * @param data The payload; copied before the call returns.
   * @param peer The peer's address.
   * @returns Resolves once the port took the datagram.
   * @throws {TurnError} `ERR_TURN_ALLOCATION_EXPIRED` if the allocation is gone; `ERR_TURN`
   * if the port refused the datagram.
   * @throws {NetworkError} `ERR_ENDPOINT_CLOSED` if the client is closed.
   */
  async send(data: Uint8Array, peer: UdpAddress): Promise<void> {
    this.#checkUsable("send");
    const channel = this.#state.boundChannel(peer);
    const datagram = channel === undefined
      ? encodeSendIndication(peer, data)
      : encodeChannelData(channel, data);
    try {
      await this.#port.sendRaw(datagram, this.#server);
    } catch (e) {
      throw new TurnError(
        "ERR_TURN",
        this.#server,
        `cannot send ${data.byteLength} bytes for ${formatAddress(peer)}: ${String(e)}`,
        undefined,
        { cause: e },
      );
    }
  }

  /**
   * Refreshes the allocation now (the client also does so on its own before expiry).
   *
   * @param lifetime Seconds to ask for; 0 deletes the allocation.
   * @returns The lifetime the server granted, in seconds.
   * @throws {TurnError} `ERR_TURN_ALLOCATION_EXPIRED` if the allocation is gone; `ERR_TURN`
   * if the server refused or did not answer.
   */
  async refresh(lifetime: number = this.#requestedLifetime): Promise<number> {
    if (!(Number.isInteger(lifetime) && lifetime >= 0 && lifetime <= 0xffffffff)) {
      throw new InvalidConfigError("lifetime", "an integer number of seconds >= 0", lifetime);
    }
    const answer = await this.#request(TurnMethod.refresh, { lifetime });
    const granted = answer.lifetime ?? lifetime;
    if (lifetime > 0) this.#granted(granted);
    return granted;
  }

  /**
   * Offers a datagram to the client. Registered on the port by {@link allocate}; public so a
   * transport that demultiplexes itself can call it.
   *
   * @param data The datagram; only read during the call.
   * @param from Its source address.
   * @returns `true` if it came from the TURN server and was a response to an open request, a
   * Data indication or ChannelData; `false` for anything else, which is left to other handlers.
   */
  handleDatagram(data: Uint8Array, from: UdpAddress): boolean {
    if (!sameAddress(from, this.#server)) return false;
    if (isChannelData(data)) {
      const peer = this.#state.peerOf(channelOf(data));
      if (peer === undefined) return false;
      this.onData?.(channelPayload(data), peer);
      return true;
    }
    if (!looksLikeStun(data)) return false;
    const type = (data[0] << 8) | data[1];
    if (type === DATA_INDICATION) {
      const message = decodeStunMessage(data);
      if (message?.peerAddress === undefined || message.data === undefined) return false;
      this.onData?.(message.data, message.peerAddress);
      return true;
    }
    const pending = this.#pending.get(transactionKey(data.subarray(8, 20)));
    if (pending === undefined) return false;
    if (type !== successOf(pending.method) && type !== errorOf(pending.method)) return false;
    const message = decodeStunMessage(data);
    if (message === undefined) return false;
    pending.resolve(message, data);
    return true;
  }

  /**
   * Frees the allocation (Refresh with lifetime 0, waited for up to the retransmission
   * schedule; a failure is not reported, the server frees it at expiry anyway), stops every
   * timer and removes the client from the port. Idempotent.
   *
   * @returns Resolves when done.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#cancelTimer();
    if (!this.#closed && this.#expired === undefined && this.#relayed !== undefined) {
      await this.#request(TurnMethod.refresh, { lifetime: 0 }).catch(() => {});
    }
    this.#shutDown();
  }

  /** Same as {@link TurnClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * The Allocate. A 437 (Allocation Mismatch) means the server holds an allocation for this
   * 5-tuple that no client of this port knows of (`allocate` refuses a second live one): a
   * crashed client's, or one whose refreshes went unanswered while the server kept it. Its
   * traffic would come to this port anyway, and a socket cannot pick another 5-tuple: the
   * allocation is released (an authenticated Refresh of lifetime 0) and the Allocate tried
   * again. coturn frees a released allocation on its next one-second tick, so the retries wait
   * {@link STALE_RELEASE_WAITS_MS} first.
   */
  async #allocate(lifetime: number, signal?: AbortSignal): Promise<DecodedStunMessage> {
    const fields = { udp: true, lifetime };
    const mismatch = (e: unknown) => e instanceof TurnError && e.errorCode === ALLOCATION_MISMATCH;
    try {
      return await this.#request(TurnMethod.allocate, fields, signal);
    } catch (e) {
      if (!mismatch(e)) throw e;
      log.warn("TURN server {server} holds a stale allocation for this port: releasing it", {
        server: formatAddress(this.#server),
      });
      await this.#request(TurnMethod.refresh, { lifetime: 0 }, signal).catch((releaseError) => {
        throw new TurnError(
          "ERR_TURN",
          this.#server,
          `Allocate failed with 437 (a stale allocation on this port) and releasing it failed: ` +
            (releaseError as Error).message,
          ALLOCATION_MISMATCH,
          { cause: releaseError },
        );
      });
      for (let i = 0;; i++) {
        await this.#wait(STALE_RELEASE_WAITS_MS[i], signal);
        try {
          return await this.#request(TurnMethod.allocate, fields, signal);
        } catch (retryError) {
          if (!mismatch(retryError) || i + 1 === STALE_RELEASE_WAITS_MS.length) throw retryError;
        }
      }
    }
  }

  /** Waits on the client's clock; rejects with the signal's reason when it fires. */
  #wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const onAbort = () => {
        cancel();
        reject(signal!.reason);
      };
      const cancel = this.#clock.schedule(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #forgetAllocation(): void {
    const held = liveAllocations.get(this.#port);
    const key = formatAddress(this.#server);
    if (held?.get(key) === this) held.delete(key);
  }

  #shutDown(): void {
    this.#forgetAllocation();
    this.#closed = true;
    this.#cancelTimer();
    this.#removeHandler();
    for (const p of [...this.#pending.values()]) {
      p.fail(
        new NetworkError("ERR_ENDPOINT_CLOSED", "TURN client closed while a request was open"),
      );
    }
  }

  async #bind(peer: UdpAddress): Promise<number> {
    this.#checkUsable("bind a channel");
    const channel = this.#state.channelFor(peer);
    if (channel === undefined) {
      throw new TurnError("ERR_TURN", this.#server, "all 4096 channel numbers are bound");
    }
    await this.#request(TurnMethod.channelBind, { peers: [peer], channel });
    this.#state.bound(this.#clock.now(), peer, channel);
    this.#arm();
    return channel;
  }

  #granted(lifetime: number): void {
    this.#lifetime = Math.min(lifetime, MAX_ALLOCATION_LIFETIME_S);
    this.#state.allocated(this.#clock.now(), this.#lifetime);
    this.#arm();
  }

  /** Re-arms the one timer for the state's next deadline. */
  #arm(): void {
    this.#cancelTimer();
    this.#cancelTimer = () => {};
    if (this.#closed || this.#expired !== undefined) return;
    const at = this.#state.nextDeadline();
    if (at === undefined) return;
    this.#cancelTimer = this.#clock.schedule(
      () => this.#onTimer(),
      Math.max(0, at - this.#clock.now()),
    );
  }

  #onTimer(): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    if (this.#state.expired(now)) {
      this.#expire(`the allocation's lifetime of ${this.#lifetime} s ran out without a refresh`);
      return;
    }
    for (const task of this.#state.due(now)) this.#runTask(task);
    this.#arm();
  }

  #runTask(task: TurnTask): void {
    const done = task.kind === "allocation"
      ? this.refresh().then(() => {})
      : task.kind === "permission"
      // Permissions are per IP; the port of XOR-PEER-ADDRESS is ignored (RFC 8656 section 9).
      ? this.createPermission({ hostname: task.ip, port: 1 })
      : this.#request(TurnMethod.channelBind, { peers: [task.peer], channel: task.channel })
        .then(() => {
          this.#state.bound(this.#clock.now(), task.peer, task.channel);
          this.#arm();
        });
    done.catch((e: unknown) => {
      if (this.#closed || this.#expired !== undefined) return;
      if (e instanceof TurnError && e.code === "ERR_TURN_ALLOCATION_EXPIRED") return;
      this.#state.failed(this.#clock.now(), task);
      this.#arm();
    });
  }

  #expire(reason: string, errorCode?: number): TurnError {
    if (this.#expired !== undefined) return this.#expired;
    const error = new TurnError(
      "ERR_TURN_ALLOCATION_EXPIRED",
      this.#server,
      `allocation ${this.#relayed ? formatAddress(this.#relayed) : "(none)"} expired: ${reason}`,
      errorCode,
    );
    this.#expired = error;
    this.#forgetAllocation();
    this.#cancelTimer();
    this.onExpired?.(error);
    return error;
  }

  #checkUsable(what: string): void {
    if (this.#closed) {
      throw new NetworkError("ERR_ENDPOINT_CLOSED", `TURN client is closed: cannot ${what}`);
    }
    if (this.#expired !== undefined) throw this.#expired;
  }

  /**
   * One TURN request with its authentication dance: learns realm and nonce from a 401, takes
   * a new nonce from a 438, and maps the answer to a {@link TurnError}.
   */
  async #request(
    method: number,
    fields: TurnRequestFields,
    signal?: AbortSignal,
  ): Promise<DecodedStunMessage> {
    const name = METHOD_NAMES[method] ?? `method 0x${method.toString(16)}`;
    if (method !== TurnMethod.allocate) {
      // Refresh 0 on close is allowed while closing; anything else needs a live client.
      if (!(method === TurnMethod.refresh && fields.lifetime === 0)) this.#checkUsable(name);
    }
    // One 401 is expected per request (the first Allocate has no credentials yet; a server
    // may also answer 401 instead of 438 to an expired nonce); a second means wrong ones.
    let unauthorized = 0;
    for (let attempt = 0; attempt <= MAX_NONCE_RETRIES; attempt++) {
      const auth = this.#auth;
      const message = await this.#transaction(method, fields, name, auth, signal);
      if (message.type === successOf(method)) return message;
      const code = message.error?.code ?? 0;
      const reason = message.error?.reason ?? "";
      const realm = message.realm ?? auth?.realm;
      const retry = code === STALE_NONCE || (code === UNAUTHORIZED && unauthorized++ === 0);
      if (retry && message.nonce !== undefined && realm !== undefined) {
        this.#auth = {
          username: this.#username,
          realm,
          nonce: message.nonce.slice(),
          key: auth?.realm === realm
            ? auth.key
            : longTermKey(this.#username, realm, this.#password),
        };
        continue;
      }
      if (code === UNAUTHORIZED) {
        throw new TurnError(
          "ERR_TURN_AUTH",
          this.#server,
          `${name} refused the credentials of user ${JSON.stringify(this.#username)} in realm ` +
            `${JSON.stringify(this.#auth?.realm ?? message.realm ?? "")} (401 ${reason})`,
          code,
        );
      }
      if (code === ALLOCATION_MISMATCH && method !== TurnMethod.allocate) {
        throw this.#expire(`the server answered ${name} with 437 ${reason}`, code);
      }
      throw new TurnError("ERR_TURN", this.#server, `${name} failed with ${code} ${reason}`, code);
    }
    throw new TurnError(
      "ERR_TURN",
      this.#server,
      `${name} got a new nonce ${MAX_NONCE_RETRIES + 1} times in a row (438 Stale Nonce)`,
      STALE_NONCE,
    );
  }

  /** Sends one request on the retransmission schedule; resolves with the server's answer. */
  #transaction(
    method: number,
    fields: TurnRequestFields,
    name: string,
    auth: TurnAuth | undefined,
    signal: AbortSignal | undefined,
  ): Promise<DecodedStunMessage> {
    if (this.#closed) {
      return Promise.reject(
        new NetworkError("ERR_ENDPOINT_CLOSED", `TURN client is closed: cannot send ${name}`),
      );
    }
    const id = crypto.getRandomValues(new Uint8Array(12));
    const key = transactionKey(id);
    const packet = encodeTurnRequest(method, id, fields, auth);
    const server = this.#server;
    return transaction<DecodedStunMessage>(this.#clock, this.#schedule, signal, {
      what: `TURN ${name}`,
      open: (settle) => {
        this.#pending.set(key, {
          method,
          resolve: (message, raw) => {
            // An answer to an authenticated request must carry our MESSAGE-INTEGRITY; a forged
            // one is dropped and the retransmissions go on (RFC 8489 section 9.2.4).
            if (auth !== undefined && message.type === successOf(method)) {
              if (!integrityMatches(raw, auth.key)) return;
            }
            // Decoded again from a copy: the NONCE and DATA views must outlive the datagram.
            settle.resolve(decodeStunMessage(raw.slice())!);
          },
          fail: settle.reject,
        });
        return () => this.#pending.delete(key);
      },
      send: () => this.#port.sendRaw(packet, server),
      sendError: (e) =>
        new TurnError("ERR_TURN", server, `cannot send ${name}: ${String(e)}`, undefined, {
          cause: e,
        }),
      timeoutError: (sent) =>
        new TurnError(
          "ERR_TURN",
          server,
          `no answer to ${name}: ${sent} requests within ${this.#schedule.giveUpAt} ms`,
        ),
    });
  }
}

function checkPeer(peer: UdpAddress): void {
  if (!isIpLiteral(peer?.hostname)) {
    throw new InvalidAddressError(String(peer?.hostname), "a TURN peer must be an IP literal");
  }
  if (!(Number.isInteger(peer.port) && peer.port > 0 && peer.port < 65536)) {
    throw new InvalidAddressError(formatAddress(peer), "port must be an integer 1-65535");
  }
}
