/**
 * STUN Binding client (RFC 8489) that sends and receives through a node's
 * {@link RawDatagramPort}, so the mapping it learns is the one the node's QUIC socket has.
 * Retransmits over UDP with a doubling RTO, fails over across servers, and supports the
 * RFC 5780 CHANGE-REQUEST, OTHER-ADDRESS and RESPONSE-ORIGIN attributes that NAT behaviour
 * discovery needs.
 *
 * @module
 */

import { InvalidConfigError, NetworkError } from "../errors.ts";
import type { RawDatagramPort, UdpAddress } from "../quic/datagram_port.ts";
import {
  BINDING_ERROR,
  BINDING_SUCCESS,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeBindingRequest,
  looksLikeStun,
  transactionKey,
} from "./_stun_codec.ts";
import { formatAddress, requireServerAddress } from "./_address.ts";
import { transaction } from "./_retransmit.ts";
import { type Clock, systemClock } from "../clock.ts";
import { requireInteger, requirePositiveFinite } from "../_validate.ts";

/**
 * Retransmission parameters of a STUN transaction over UDP (RFC 8489 section 6.2.1).
 */
export interface StunRetransmitOptions {
  /**
   * Initial retransmission timeout in milliseconds; doubled after every send.
   *
   * RFC 8489 recommends 500 ms on the Internet. The default is scaled down for a LAN and for
   * tests; pass {@link RFC8489_RETRANSMIT} for Internet servers.
   *
   * @default {100}
   */
  rto?: number;
  /**
   * How many requests are sent in total, the first one included (RFC 8489 `Rc`).
   *
   * @default {5}
   */
  rc?: number;
  /**
   * After the last request, how many RTOs (the initial RTO, as in RFC 8489) to wait for an
   * answer before the transaction fails (RFC 8489 `Rm`).
   *
   * @default {8}
   */
  rm?: number;
}

/**
 * The retransmission values RFC 8489 recommends for the Internet: RTO 500 ms, Rc 7, Rm 16
 * (requests at 0, 500, 1500, 3500, 7500, 15500, 31500 ms; failure at 39500 ms).
 *
 * @example
 * ```ts
 * import { RFC8489_RETRANSMIT, stunRetransmitSchedule } from "@cretoai/network/nat";
 *
 * const { giveUpAt } = stunRetransmitSchedule(RFC8489_RETRANSMIT);
 * console.assert(giveUpAt === 39_500);
 * ```
 */
export const RFC8489_RETRANSMIT: Readonly<Required<StunRetransmitOptions>> = Object.freeze({
  rto: 500,
  rc: 7,
  rm: 16,
});

/** When a STUN transaction sends, and when it gives up, in ms after it starts. */
export interface StunRetransmitSchedule {
  /** Send times of the `rc` requests, the first at 0. */
  sendAt: number[];
  /** The time after which the transaction fails without an answer. */
  giveUpAt: number;
}

/**
 * Computes the RFC 8489 retransmission schedule: requests at 0, RTO, 3 RTO, 7 RTO, ... (the
 * interval doubles), `rc` requests in all, then failure `rm` initial RTOs after the last one.
 *
 * @example
 * ```ts
 * import { stunRetransmitSchedule } from "@cretoai/network/nat";
 *
 * const s = stunRetransmitSchedule({ rto: 100, rc: 4, rm: 2 });
 * console.assert(s.sendAt.join() === "0,100,300,700" && s.giveUpAt === 900);
 * ```
 *
 * @param options The RTO, `rc` and `rm`; defaults as in {@link StunRetransmitOptions}.
 * @returns The send times and the give-up time, in ms from the start.
 * @throws {InvalidConfigError} If `rto` is not a positive finite number, or `rc`/`rm` not a
 * positive integer.
 */
export function stunRetransmitSchedule(
  options: StunRetransmitOptions = {},
): StunRetransmitSchedule {
  const { rto = 100, rc = 5, rm = 8 } = options;
  requirePositiveFinite("rto", rto);
  requireInteger("rc", rc, 1, 32);
  requireInteger("rm", rm, 1);
  const sendAt: number[] = [];
  let at = 0;
  let interval = rto;
  for (let i = 0; i < rc; i++) {
    sendAt.push(at);
    at += interval;
    interval *= 2;
  }
  return { sendAt, giveUpAt: sendAt[rc - 1] + rm * rto };
}

/** Options of a {@link StunClient}. */
export interface StunClientOptions extends StunRetransmitOptions {
  /**
   * Clock and timers; injectable so tests run on virtual time.
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/** Options of one {@link StunClient.binding} call. */
export interface StunBindingOptions extends StunRetransmitOptions {
  /**
   * Ask the server to answer from its other IP address (RFC 5780 CHANGE-REQUEST).
   *
   * @default {false}
   */
  changeIp?: boolean;
  /**
   * Ask the server to answer from its other port (RFC 5780 CHANGE-REQUEST).
   *
   * @default {false}
   */
  changePort?: boolean;
  /**
   * Aborts the call; with a `TimeoutError` reason (`AbortSignal.timeout`) the call fails with
   * `ERR_TIMEOUT`, otherwise with `ERR_ABORTED`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** What a STUN server answered to a Binding request. */
export interface StunBindingResult {
  /** The reflexive transport address: XOR-MAPPED-ADDRESS (MAPPED-ADDRESS from old servers). */
  mapped: UdpAddress;
  /** The server the request was sent to (from the list given). */
  server: UdpAddress;
  /** The source address of the response datagram. */
  from: UdpAddress;
  /** RFC 5780 RESPONSE-ORIGIN, when the server sent it. */
  responseOrigin?: UdpAddress;
  /** RFC 5780 OTHER-ADDRESS (the server's alternate IP and port), when the server sent it. */
  otherAddress?: UdpAddress;
  /** Milliseconds from the first request to the response. */
  rtt: number;
  /** How many requests were sent in this transaction. */
  requests: number;
}

/**
 * A STUN server answered with a Binding error response (for example 420 when it does not
 * know CHANGE-REQUEST).
 *
 * @example
 * ```ts
 * import { StunErrorResponse } from "@cretoai/network/nat";
 *
 * const e = new StunErrorResponse({ hostname: "192.0.2.1", port: 3478 }, 420, "Unknown Attribute");
 * console.assert(e.code === "ERR_STUN" && e.errorCode === 420);
 * ```
 */
export class StunErrorResponse extends NetworkError {
  /** The server that answered. */
  readonly server: UdpAddress;
  /** The STUN error code, 300-699. */
  readonly errorCode: number;
  /** The reason phrase the server sent. */
  readonly reason: string;

  /**
   * Creates the error from the response's ERROR-CODE.
   *
   * @param server The server that answered.
   * @param errorCode The STUN error code from ERROR-CODE.
   * @param reason The reason phrase from ERROR-CODE.
   */
  constructor(server: UdpAddress, errorCode: number, reason: string) {
    super(
      "ERR_STUN",
      `STUN server ${formatAddress(server)} answered Binding with error ${errorCode}` +
        (reason ? ` (${JSON.stringify(reason)})` : ""),
    );
    this.server = server;
    this.errorCode = errorCode;
    this.reason = reason;
  }
}

interface Pending {
  onMessage(message: DecodedStunMessage, from: UdpAddress): void;
  fail(error: NetworkError): void;
}

/**
 * STUN Binding client on a node's raw datagram port. It registers itself as a raw handler
 * on construction and consumes only the responses to its own transactions.
 *
 * @example Learning the public address of the node's socket
 * ```ts ignore
 * import { StunClient } from "@cretoai/network/nat";
 * import type { RawDatagramPort } from "@cretoai/network";
 *
 * declare const port: RawDatagramPort;
 * using client = new StunClient(port);
 * const res = await client.binding([
 *   { hostname: "192.0.2.1", port: 3478 },
 *   { hostname: "198.51.100.7", port: 3478 },
 * ]);
 * console.log(res.mapped, "seen by", res.server);
 * ```
 */
export class StunClient implements Disposable {
  readonly #port: RawDatagramPort;
  readonly #clock: Clock;
  readonly #retransmit: Required<StunRetransmitOptions>;
  readonly #pending = new Map<string, Pending>();
  readonly #removeHandler: () => void;
  #closed = false;

  /**
   * Creates a client and registers it on the port.
   *
   * @param port The node's raw datagram port (or a test port).
   * @param options Default retransmission values and the clock.
   * @throws {InvalidConfigError} If a retransmission value is invalid.
   */
  constructor(port: RawDatagramPort, options: StunClientOptions = {}) {
    const { rto = 100, rc = 5, rm = 8, clock = systemClock } = options;
    stunRetransmitSchedule({ rto, rc, rm });
    this.#port = port;
    this.#clock = clock;
    this.#retransmit = { rto, rc, rm };
    this.#removeHandler = port.addRawHandler((data, from) => this.handleDatagram(data, from));
  }

  /** The bound address of the port the client sends from. */
  get localAddr(): UdpAddress {
    return this.#port.localAddr;
  }

  /** How many transactions are waiting for an answer. */
  get pendingTransactions(): number {
    return this.#pending.size;
  }

  /**
   * Sends a Binding request and resolves with the server's answer. Given a list, tries the
   * servers one after another: a server that does not answer within its transaction
   * (see {@link stunRetransmitSchedule}), answers with an error, or cannot be sent to, is
   * skipped.
   *
   * @example
   * ```ts ignore
   * const res = await client.binding({ hostname: "10.200.0.1", port: 3478 }, { changePort: true });
   * ```
   *
   * @param servers One server or servers in order of preference; IP literals, not names.
   * @param options CHANGE-REQUEST flags, retransmission values, abort signal.
   * @returns The first answer.
   * @throws {InvalidAddressError} If a server is not an IP literal with a port 1-65535.
   * @throws {NetworkError} `ERR_TIMEOUT` if no server answered; `ERR_STUN` (a
   * {@link StunErrorResponse} for one server) if the servers answered with errors or could
   * not be sent to; `ERR_ABORTED`/`ERR_TIMEOUT` if the signal fired; `ERR_ENDPOINT_CLOSED`
   * if the client was closed.
   */
  async binding(
    servers: UdpAddress | readonly UdpAddress[],
    options: StunBindingOptions = {},
  ): Promise<StunBindingResult> {
    const list: readonly UdpAddress[] = "hostname" in servers ? [servers] : servers;
    if (list.length === 0) throw new InvalidConfigError("servers", "a non-empty list", []);
    for (const s of list) requireServerAddress(s, "STUN");
    const {
      changeIp = false,
      changePort = false,
      signal,
      rto = this.#retransmit.rto,
      rc = this.#retransmit.rc,
      rm = this.#retransmit.rm,
    } = options;
    const schedule = stunRetransmitSchedule({ rto, rc, rm });
    const failures: NetworkError[] = [];
    for (const server of list) {
      try {
        return await this.#transaction(
          server,
          { ip: changeIp, port: changePort },
          schedule,
          signal,
        );
      } catch (e) {
        if (!(e instanceof NetworkError) || e.code === "ERR_ABORTED") throw e;
        if (e.code === "ERR_ENDPOINT_CLOSED" || signal?.aborted) throw e;
        failures.push(e);
      }
    }
    if (list.length === 1) throw failures[0];
    const allTimedOut = failures.every((f) => f.code === "ERR_TIMEOUT");
    throw new NetworkError(
      allTimedOut ? "ERR_TIMEOUT" : "ERR_STUN",
      `No STUN server answered a Binding request: ${failures.map((f) => f.message).join("; ")}`,
      { cause: new AggregateError(failures) },
    );
  }

  /**
   * Offers a datagram to the client. Registered on the port by the constructor; public so a
   * transport that demultiplexes itself can call it.
   *
   * @param data The datagram; only read during the call.
   * @param from Its source address.
   * @returns `true` if it was the response to one of this client's open transactions;
   * `false` for anything else (QUIC, garbage, other STUN traffic), which is left to other
   * handlers.
   */
  handleDatagram(data: Uint8Array, from: UdpAddress): boolean {
    if (this.#pending.size === 0 || !looksLikeStun(data)) return false;
    const pending = this.#pending.get(transactionKey(data.subarray(8, 20)));
    if (pending === undefined) return false;
    const message = decodeStunMessage(data);
    if (message === undefined) return false;
    if (message.type !== BINDING_SUCCESS && message.type !== BINDING_ERROR) return false;
    pending.onMessage(message, { hostname: from.hostname, port: from.port });
    return true;
  }

  /**
   * Removes the client from the port and fails open transactions with `ERR_ENDPOINT_CLOSED`.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#removeHandler();
    // Copied first: failing a transaction removes it from the map.
    for (const p of [...this.#pending.values()]) {
      p.fail(
        new NetworkError("ERR_ENDPOINT_CLOSED", "STUN client closed while a transaction was open"),
      );
    }
  }

  /** Same as {@link StunClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #transaction(
    server: UdpAddress,
    change: { ip: boolean; port: boolean },
    schedule: StunRetransmitSchedule,
    signal: AbortSignal | undefined,
  ): Promise<StunBindingResult> {
    if (this.#closed) {
      return Promise.reject(
        new NetworkError("ERR_ENDPOINT_CLOSED", "STUN client is closed: cannot send a request"),
      );
    }
    const id = crypto.getRandomValues(new Uint8Array(12));
    const key = transactionKey(id);
    const packet = encodeBindingRequest(id, change);
    const clock = this.#clock;
    const start = clock.now();
    let sent = 0;
    return transaction<StunBindingResult>(clock, schedule, signal, {
      open: (settle) => {
        this.#pending.set(key, {
          onMessage: (message, from) => {
            if (message.type === BINDING_ERROR) {
              settle.reject(
                new StunErrorResponse(
                  server,
                  message.error?.code ?? 0,
                  message.error?.reason ?? "",
                ),
              );
              return;
            }
            const mapped = message.xorMappedAddress ?? message.mappedAddress;
            if (mapped === undefined) {
              settle.reject(
                new NetworkError(
                  "ERR_STUN",
                  `STUN server ${formatAddress(server)} answered Binding without ` +
                    `XOR-MAPPED-ADDRESS or MAPPED-ADDRESS`,
                ),
              );
              return;
            }
            const result: StunBindingResult = {
              mapped,
              server,
              from,
              rtt: clock.now() - start,
              requests: sent,
            };
            if (message.responseOrigin) result.responseOrigin = message.responseOrigin;
            if (message.otherAddress) result.otherAddress = message.otherAddress;
            settle.resolve(result);
          },
          fail: settle.reject,
        });
        return () => this.#pending.delete(key);
      },
      send: (attempt) => {
        sent = attempt;
        return this.#port.sendRaw(packet, server);
      },
      sendError: (e) =>
        new NetworkError(
          "ERR_STUN",
          `Cannot send a Binding request to ${formatAddress(server)}: ${String(e)}`,
          { cause: e },
        ),
      timeoutError: () =>
        new NetworkError(
          "ERR_TIMEOUT",
          `STUN server ${formatAddress(server)} did not answer ${sent} Binding requests ` +
            `within ${schedule.giveUpAt} ms`,
        ),
      what: "STUN Binding",
    });
  }
}
