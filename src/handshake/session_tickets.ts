/**
 * Resumption tickets of the identity handshake (docs/handshake.md, "Resumption"): every
 * completed handshake leaves both ends two secrets, one for each direction of the next dial,
 * so that a reconnect proves both sides with an HMAC instead of four ML-KEM operations and a
 * second round trip. A ticket is used once: dialer and listener each forget it when it is
 * presented, and the resumed session leaves the next pair.
 *
 * @module
 */

import { toHex } from "../_bytes.ts";
import { InvalidConfigError } from "../errors.ts";

/** Options of {@linkcode SessionTicketStore}. */
export interface SessionTicketStoreOptions {
  /**
   * Peers (by the certificate of their run) whose tickets are kept; the least recently used
   * goes first. Each costs about 200 bytes. 0 keeps none: every connection does the full
   * handshake.
   *
   * @default {1024}
   */
  maxPeers?: number;
}

/**
 * One resumption ticket: its id, sent in the clear in a resuming ClientHello, and its secret,
 * which only the two ends of the session that made it know.
 */
export interface TicketSecret {
  /** 16 bytes. */
  id: Uint8Array;
  /** 32 bytes. */
  secret: Uint8Array;
}

/** What is kept for one peer's run: either half may have been used already. */
interface Held {
  /** The ticket to present when dialing this peer's run. */
  dialing?: TicketSecret;
  /**
   * The ids (hex) of the tickets this peer's run may present when it dials us: the latest
   * session's and the one before, oldest first. Two dials crossing (each side dials the other
   * at once) leave two sessions, and each side may keep its dialing ticket from either.
   */
  listeningIds: string[];
  /** The handshake mode of the session that issued both. */
  mode: number;
}

/** A ticket a dialer presented, as the listener issued it. */
export interface AcceptedTicket {
  /** The ticket's secret. */
  secret: Uint8Array;
  /** Hex SHA-256 of the certificate of the run it was issued to. */
  peer: string;
  /** The handshake mode (0 authenticate only, 1 pqEncryption) of the session that issued it. */
  mode: number;
}

/**
 * The resumption tickets of one node, shared by all its connections (the transport keeps one);
 * bounded by {@linkcode SessionTicketStoreOptions.maxPeers}. Tickets are in memory only and
 * name the peer's certificate, which is new in every run of a node: a restarted peer is
 * always met with the full handshake.
 *
 * @example
 * ```ts
 * import { SessionTicketStore } from "@cretoai/network/handshake";
 *
 * const tickets = new SessionTicketStore({ maxPeers: 16 });
 * console.assert(tickets.size === 0);
 * ```
 */
export class SessionTicketStore {
  readonly #max: number;
  /** By hex SHA-256 of the peer's certificate, least recently used first. */
  readonly #byPeer = new Map<string, Held>();
  /** The listening half, by ticket id (hex). */
  readonly #byId = new Map<string, { secret: Uint8Array; peer: string }>();

  /**
   * Creates an empty store.
   *
   * @param options See {@linkcode SessionTicketStoreOptions}.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` for a `maxPeers` that is not a
   * non-negative integer.
   */
  constructor(options: SessionTicketStoreOptions = {}) {
    const { maxPeers = 1024 } = options;
    if (!Number.isSafeInteger(maxPeers) || maxPeers < 0) {
      throw new InvalidConfigError("maxPeers", "a non-negative integer", maxPeers);
    }
    this.#max = maxPeers;
  }

  /**
   * Peers with a ticket now.
   *
   * @example
   * ```ts
   * import { SessionTicketStore } from "@cretoai/network/handshake";
   *
   * console.assert(new SessionTicketStore().size === 0);
   * ```
   */
  get size(): number {
    return this.#byPeer.size;
  }

  /** Whether a ticket for dialing `peer` in `mode` is held. */
  has(peer: string, mode: number): boolean {
    const held = this.#byPeer.get(peer);
    return held?.dialing !== undefined && held.mode === mode;
  }

  /** The ticket to present to `peer` in `mode`, forgotten now: it is good for one dial. */
  takeForDialing(peer: string, mode: number): TicketSecret | undefined {
    const held = this.#byPeer.get(peer);
    if (held?.dialing === undefined || held.mode !== mode) return undefined;
    const { dialing } = held;
    held.dialing = undefined;
    if (held.listeningIds.length === 0) this.#byPeer.delete(peer);
    return dialing;
  }

  /** The ticket a dialer presented (its id in hex), forgotten now whatever comes of it. */
  takeForListening(id: string): AcceptedTicket | undefined {
    const found = this.#byId.get(id);
    if (found === undefined) return undefined;
    this.#byId.delete(id);
    const held = this.#byPeer.get(found.peer)!;
    held.listeningIds = held.listeningIds.filter((kept) => kept !== id);
    if (held.dialing === undefined && held.listeningIds.length === 0) {
      this.#byPeer.delete(found.peer);
    }
    return { secret: found.secret, peer: found.peer, mode: held.mode };
  }

  /**
   * Keeps the tickets a session with `peer` left: `dialing` for this node's next dial,
   * `listening` for the peer's. Replaces the dialing ticket; of the listening ones, the
   * previous session's stays beside the new one (in the same mode), older ones go.
   */
  save(peer: string, mode: number, dialing: TicketSecret, listening: TicketSecret): void {
    if (this.#max === 0) return;
    const before = this.#byPeer.get(peer);
    const kept = before?.mode === mode ? before.listeningIds.slice(-1) : [];
    for (const id of before?.listeningIds ?? []) if (!kept.includes(id)) this.#byId.delete(id);
    this.#byPeer.delete(peer);
    if (this.#byPeer.size >= this.#max) this.#forget(this.#byPeer.keys().next().value!);
    const listeningId = toHex(listening.id);
    this.#byPeer.set(peer, { dialing, listeningIds: [...kept, listeningId], mode });
    this.#byId.set(listeningId, { secret: listening.secret, peer });
  }

  #forget(peer: string): void {
    const held = this.#byPeer.get(peer);
    if (held === undefined) return;
    this.#byPeer.delete(peer);
    for (const id of held.listeningIds) this.#byId.delete(id);
  }
}
