/**
 * The DHT's requests over QUIC: {@linkcode QuicDhtRpc} implements {@linkcode DhtRpc} with
 * `transport.request` (dialling the contact first when it is not connected) and serves a
 * {@linkcode DhtRpcHandler} with `transport.handle`, naming the transport-authenticated peer
 * as the sender.
 *
 * @module
 */

import { NetworkError } from "../../errors.ts";
import { formatAddress } from "../../quic/address.ts";
import type { QuicTransport } from "../../transport/transport.ts";
import type { TransportEventMap } from "../../transport/events.ts";
import type { RequestContext } from "../../transport/peer_api.ts";
import { requireInteger } from "../../_validate.ts";
import { MAX_TIMER_DELAY_MS } from "../../_timer.ts";
import { untilAborted } from "./_until_aborted.ts";
import { DhtRecordError, type DhtRecordErrorReason } from "./record_error.ts";
import { DhtProtocolError } from "./wire_error.ts";

/** Record refusals an honest peer can cause: not penalized. */
const HONEST_RECORD_ERRORS: ReadonlySet<DhtRecordErrorReason> = new Set([
  "stale",
  "expired",
  "ttl-too-long",
]);
import { type DhtContact, makeContact } from "./contact.ts";
import type { DhtKey } from "./key.ts";
import type { ProviderRecord, RecordLimits } from "./records.ts";
import type { DhtRpc, DhtRpcHandler, FindProvidersReply, GetPeerRecordReply } from "./rpc.ts";
import {
  decodeReply,
  decodeRequest,
  type DhtReply,
  type DhtRequest,
  encodeErrorReply,
  encodeReply,
  encodeRequest,
  type ResolvedWireLimits,
  resolveWireLimits,
} from "./_wire.ts";

/** The protocol id DHT requests travel under. */
export const DHT_PROTOCOL_ID = "/cretoai/kad/1";

/** Size limits of DHT messages, and of the records in them. */
export interface DhtWireLimits extends RecordLimits {
  /**
   * Most contacts in one reply.
   *
   * @default {64}
   */
  maxContacts?: number;
  /**
   * Most provider records in one reply.
   *
   * @default {64}
   */
  maxProviders?: number;
  /**
   * Largest reply, in bytes.
   *
   * @default {524288}
   */
  maxReplyBytes?: number;
}

/** Options of {@linkcode QuicDhtRpc}. */
export interface QuicDhtRpcOptions {
  /**
   * Time one request may take, dialling the contact included, in milliseconds.
   *
   * @default {5000}
   */
  timeoutMs?: number;
  /**
   * Size limits of records and messages.
   *
   * @default {{}}
   */
  limits?: DhtWireLimits;
}

/**
 * DHT requests over a {@linkcode QuicTransport}.
 *
 * @example Serving a DHT node and querying another
 * ```ts ignore
 * const rpc = new QuicDhtRpc(transport);
 * const node = new DhtNode({ id: transport.peerId.toString(), addresses, rpc, ...signing });
 * const stop = rpc.serve(node);
 * const closer = await rpc.findNode(contact, target);
 * stop();
 * rpc.close();
 * ```
 */
export class QuicDhtRpc implements DhtRpc {
  readonly #transport: QuicTransport;
  readonly #timeoutMs: number;
  readonly #limits: ResolvedWireLimits;
  /** Aborts every request in flight when the RPC closes. */
  readonly #closing = new AbortController();
  /** Where each connected peer was seen, the address a `from` contact carries. */
  readonly #seenAt = new Map<string, string>();
  readonly #onConnected = (e: TransportEventMap["peer:connected"]) => {
    this.#seenAt.set(e.detail.peerId.toString(), formatAddress(e.detail.address));
  };
  readonly #onDisconnected = (e: TransportEventMap["peer:disconnected"]) => {
    this.#seenAt.delete(e.detail.peerId.toString());
  };
  #unhandle: (() => void) | undefined;

  /**
   * Creates the RPC of a transport; requests can be sent at once, and served after
   * {@linkcode QuicDhtRpc.serve}.
   *
   * @param transport A bound transport.
   * @param options Timeout and limits.
   * @throws {InvalidConfigError} If `timeoutMs` is not an integer from 1 to 2^31-1.
   */
  constructor(transport: QuicTransport, options: QuicDhtRpcOptions = {}) {
    const { timeoutMs = 5000, limits = {} } = options;
    requireInteger("timeoutMs", timeoutMs, 1, MAX_TIMER_DELAY_MS);
    this.#transport = transport;
    this.#timeoutMs = timeoutMs;
    this.#limits = resolveWireLimits(limits);
    for (const p of transport.peers()) {
      if (p.addresses.length > 0) this.#seenAt.set(p.peerId.toString(), p.addresses[0]);
    }
    transport.addEventListener("peer:connected", this.#onConnected);
    transport.addEventListener("peer:disconnected", this.#onDisconnected);
  }

  /**
   * Answers DHT requests from other peers with `handler` (replacing an earlier one). The
   * sender is the peer the transport authenticated, with the address its connection comes
   * from. Undecodable requests and requests the handler refuses get an error reply.
   *
   * @example
   * ```ts ignore
   * const stop = rpc.serve(node);
   * ```
   *
   * @param handler Usually a `DhtNode`.
   * @returns A function that stops serving.
   */
  serve(handler: DhtRpcHandler): () => void {
    this.#unhandle?.();
    const unhandle = this.#transport.handle(
      DHT_PROTOCOL_ID,
      (bytes, context) => this.#answer(handler, bytes, context),
    );
    this.#unhandle = unhandle;
    return () => {
      unhandle();
      if (this.#unhandle === unhandle) this.#unhandle = undefined;
    };
  }

  /**
   * Stops serving, aborts the requests in flight and stops following the transport's
   * events. Idempotent.
   *
   * @example
   * ```ts ignore
   * rpc.close();
   * ```
   */
  close(): void {
    this.#unhandle?.();
    this.#unhandle = undefined;
    this.#transport.removeEventListener("peer:connected", this.#onConnected);
    this.#transport.removeEventListener("peer:disconnected", this.#onDisconnected);
    this.#closing.abort(new NetworkError("ERR_DHT", "The DHT RPC is closed"));
  }

  /** Sends PING. */
  async ping(to: DhtContact): Promise<void> {
    await this.#call(to, { type: "ping" });
  }

  /** Sends FIND_NODE. */
  async findNode(to: DhtContact, target: DhtKey): Promise<readonly DhtContact[]> {
    const reply = await this.#call(to, { type: "find-node", target });
    return reply.type === "find-node" ? reply.closer : [];
  }

  /** Sends GET_PEER_RECORD. */
  async getPeerRecord(to: DhtContact, peerId: string): Promise<GetPeerRecordReply> {
    const reply = await this.#call(to, { type: "get-peer-record", peerId });
    return reply.type === "get-peer-record" ? reply : { closer: [] };
  }

  /** Sends PUT_PEER_RECORD. */
  async putPeerRecord(to: DhtContact, record: Uint8Array): Promise<void> {
    await this.#call(to, { type: "put-peer-record", record });
  }

  /** Sends GET_PROVIDERS. */
  async findProviders(to: DhtContact, key: DhtKey): Promise<FindProvidersReply> {
    const reply = await this.#call(to, { type: "get-providers", key });
    return reply.type === "get-providers" ? reply : { providers: [], closer: [] };
  }

  /** Sends ADD_PROVIDER. */
  async addProvider(to: DhtContact, record: ProviderRecord): Promise<void> {
    await this.#call(to, { type: "add-provider", record });
  }

  async #call(to: DhtContact, request: DhtRequest): Promise<DhtReply> {
    // Once closed, a lookup still running must not dial anyone.
    if (this.#closing.signal.aborted) throw this.#closing.signal.reason;
    const bytes = encodeRequest(request, this.#limits);
    const call = new AbortController();
    const signal = call.signal;
    const timer = setTimeout(
      () =>
        call.abort(
          new NetworkError(
            "ERR_TIMEOUT",
            `DHT ${request.type} request to ${to.id} got no answer within ${this.#timeoutMs} ms`,
          ),
        ),
      this.#timeoutMs,
    );
    const closing = this.#closing.signal;
    const onClose = () => call.abort(closing.reason);
    if (closing.aborted) onClose();
    else closing.addEventListener("abort", onClose, { once: true });
    try {
      const started = performance.now();
      await this.#dial(to, signal);
      const timeoutMs = Math.max(1, Math.ceil(this.#timeoutMs - (performance.now() - started)));
      const reply = await this.#transport.request(to.id, DHT_PROTOCOL_ID, bytes, {
        signal,
        timeoutMs,
      });
      return decodeReply(reply, request.type, this.#limits);
    } catch (e) {
      // The transport reports an abort as ERR_ABORTED; the reason says timeout or close.
      throw signal.aborted ? signal.reason : e;
    } finally {
      clearTimeout(timer);
      closing.removeEventListener("abort", onClose);
    }
  }

  /** Connects to `to` at the first of its addresses that works, unless already connected. */
  async #dial(to: DhtContact, signal: AbortSignal): Promise<void> {
    if (this.#seenAt.has(to.id) || to.addresses.length === 0) return;
    let failure: unknown;
    for (const address of to.addresses) {
      // Concurrent dials of one address share one attempt, so this request's deadline only
      // stops its own wait, not the dial (bounded by the transport's own timeouts).
      const dial = this.#transport.connectPeer(address, { expectedPeerId: to.id });
      try {
        await untilAborted(dial, signal);
        return;
      } catch (e) {
        failure = e;
        if (signal.aborted) break;
      }
    }
    throw failure;
  }

  async #answer(
    handler: DhtRpcHandler,
    bytes: Uint8Array,
    context: RequestContext,
  ): Promise<Uint8Array> {
    try {
      const request = decodeRequest(bytes, this.#limits);
      const id = context.peerId.toString();
      const seenAt = this.#seenAt.get(id);
      const from = makeContact(id, seenAt === undefined ? [] : [seenAt]);
      return encodeReply(await dispatch(handler, from, request), this.#limits);
    } catch (e) {
      // Forged or malformed input counts against the sender; a stale or expired record, or a
      // newer version's request, can come from an honest peer.
      if (
        (e instanceof DhtProtocolError && (e.reason === "malformed" || e.reason === "too-large")) ||
        (e instanceof DhtRecordError && !HONEST_RECORD_ERRORS.has(e.reason))
      ) {
        this.#transport.penalize(context.peerId, "bad-dht-record");
      }
      return encodeErrorReply(bytes[1] ?? 0, e);
    }
  }
}

async function dispatch(
  handler: DhtRpcHandler,
  from: DhtContact,
  request: DhtRequest,
): Promise<DhtReply> {
  switch (request.type) {
    case "ping":
      handler.handlePing(from);
      return { type: "ping" };
    case "find-node":
      return { type: "find-node", closer: handler.handleFindNode(from, request.target) };
    case "get-peer-record":
      return { type: "get-peer-record", ...handler.handleGetPeerRecord(from, request.peerId) };
    case "put-peer-record":
      await handler.handlePutPeerRecord(from, request.record);
      return { type: "put-peer-record" };
    case "get-providers":
      return { type: "get-providers", ...handler.handleFindProviders(from, request.key) };
    case "add-provider":
      handler.handleAddProvider(from, request.record);
      return { type: "add-provider" };
  }
}
