/**
 * The post-quantum handshake as a pure state machine: it is fed the bytes of whole handshake
 * messages and answers with bytes to send, never touching a socket or a clock (quinn style).
 * The caller carries each message as one record on the connection's first QUIC stream (see
 * `record.ts`) and applies its own timeout.
 *
 * @module
 */

import { sha256 } from "../_sha256.ts";
import { describe, InvalidConfigError, NetworkError, type NetworkErrorCode } from "../errors.ts";
import { PeerId } from "../identity/peer_id.ts";
import type { PublicIdentity } from "../identity/public_identity.ts";
import {
  type ClientHello,
  decodeAlert,
  decodeClientFinish,
  decodeClientHello,
  type DecodedClientHello,
  decodeHelloRetry,
  decodeResumedServerHello,
  decodeServerHello,
  encodeAlert,
  encodeClientFinish,
  encodeClientHello,
  encodeClientHelloBoundPart,
  encodeHelloRetry,
  encodeResumedServerHelloConfirmedPart,
  encodeServerHello,
  encodeServerHelloConfirmedPart,
  HANDSHAKE_VERSION,
  MAX_EARLY_DATA,
  MessageType,
  Mode,
  NONCE_LENGTH,
  peekType,
  typeName,
} from "./_messages.ts";
import {
  equalConstantTime,
  keySchedule,
  openEarlyData,
  resumedSchedule,
  resumedSessionHash,
  resumptionBinder,
  type ResumptionInput,
  resumptionTranscriptHash,
  sealEarlyData,
  transcriptHash,
} from "./_transcript.ts";
import {
  certificateReference,
  checkReferencedKey,
  dialerCertificate,
  NodeCredentials,
  PeerCertificateCache,
  type VerifiedPeer,
} from "./node_credentials.ts";
import { encapsulate } from "./_pq_crypto.ts";
import { SessionTicketStore, type TicketSecret } from "./session_tickets.ts";
import { toHex } from "../_bytes.ts";

/** TLS caps an ALPN protocol name at 255 bytes. */
const MAX_ALPN_LENGTH = 255;

/** Options common to both sides of the handshake. */
export interface HandshakeOptions {
  /** This node's credentials: its certificate (with the identity binding) and ML-KEM key. */
  credentials: NodeCredentials;
  /** The ALPN protocol negotiated by TLS on this connection, as this side saw it. */
  alpn: string;
  /**
   * The DER of the TLS certificate the peer presented on this connection. TLS has proved that
   * the peer holds its key; the handshake checks the identity binding in it.
   */
  peerCertificate: Uint8Array;
  /**
   * Verified peer certificates to reuse; share one per node so that a reconnect costs no
   * signature verification.
   *
   * @default {undefined} (the binding's signature is verified on every handshake)
   */
  certificateCache?: PeerCertificateCache;
  /**
   * Seal application frames with the handshake's ML-KEM keys ({@linkcode FrameCipher}). Both
   * sides must choose the same; a mismatch fails the handshake. When `false` the handshake
   * still authenticates both sides (with the same ML-KEM exchange) but returns no keys.
   *
   * @default {true}
   */
  pqEncryption?: boolean;
  /**
   * Resumption tickets to keep and to use; share one per node. With it, a dialer that met the
   * listener's run before resumes (one round trip, no ML-KEM operation, docs/handshake.md
   * "Resumption"), and every completed handshake leaves the next tickets.
   *
   * @default {undefined} (every handshake is a full one)
   */
  tickets?: SessionTicketStore;
  /**
   * Source of randomness for the nonce (the ML-KEM encapsulation draws its own inside
   * WebCrypto). Replace it only in tests.
   *
   * @default {(n) => crypto.getRandomValues(new Uint8Array(n))}
   */
  randomBytes?: (length: number) => Uint8Array;
}

/** Options of {@linkcode HandshakeDialer}. */
export interface HandshakeDialerOptions extends HandshakeOptions {
  /**
   * The peer id the dialer means to reach. When set, any other peer fails the handshake with
   * `ERR_PEER_ID_MISMATCH` in {@linkcode HandshakeDialer.start}, before anything is sent.
   *
   * @default {undefined} (any peer is accepted; check `result.peerId` yourself)
   */
  expectedPeerId?: PeerId;
  /**
   * Send this node's certificate (`credentials.certificate`, the identity binding) in the
   * ClientHello: for a dialer whose TLS client certificate is `credentials.clientCertificate`,
   * which names it by hash (docs/handshake.md, "Client certificate").
   *
   * @default {false}
   */
  certificateInHello?: boolean;
}

/** Options of {@linkcode HandshakeListener}. */
export type HandshakeListenerOptions = HandshakeOptions;

/** Per-direction AEAD keys agreed by the handshake, from this side's point of view. */
export interface SessionKeys {
  /** 32-byte key for frames this side sends. */
  send: Uint8Array;
  /** 32-byte key for frames this side receives. */
  recv: Uint8Array;
}

/** What a completed handshake established. */
export interface HandshakeResult {
  /** The authenticated peer's id. */
  peerId: PeerId;
  /** The authenticated peer's public keys. */
  peerPublicKeys: PublicIdentity;
  /** Session keys; present only when `pqEncryption` is on. */
  keys?: SessionKeys;
  /** SHA-256 transcript hash both sides confirmed; unique per connection. */
  transcriptHash: Uint8Array;
  /** SHA-256 of the peer's certificate: another run of the peer has another. */
  peerCertificateHash: Uint8Array;
  /** Whether the session was resumed from a ticket (no ML-KEM operation on this connection). */
  resumed: boolean;
  /**
   * The listener's side of a resumed session: the early data the dialer sealed into its
   * ClientHello (see {@linkcode HandshakeDialer.start}), authenticated and decrypted.
   */
  earlyData?: Uint8Array;
}

/** What the caller must do after feeding a message to the state machine. */
export interface HandshakeStep {
  /** A message to send to the peer, as one record. */
  send?: Uint8Array;
  /** Set when the handshake completed on this side. */
  done?: HandshakeResult;
}

/**
 * A handshake failure. Besides the error code and message it carries, when useful, an alert
 * message for the peer: send it as one record before closing, so that the peer fails with the
 * reason instead of a bare stream reset.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "@cretoai/network/handshake";
 *
 * const err = new HandshakeError("ERR_HANDSHAKE_FAILED", "mode mismatch", undefined);
 * console.assert(err.code === "ERR_HANDSHAKE_FAILED" && err.alert === undefined);
 * ```
 */
export class HandshakeError extends NetworkError {
  /** An Alert message to send to the peer before closing, or `undefined` for none. */
  readonly alert: Uint8Array | undefined;

  /**
   * Creates a handshake error.
   *
   * @param code The error code, usually `ERR_HANDSHAKE_FAILED` or `ERR_PEER_ID_MISMATCH`.
   * @param message What went wrong, and the value seen.
   * @param alert The Alert message for the peer, if any.
   * @param options Standard error options, such as `cause`.
   */
  constructor(
    code: NetworkErrorCode,
    message: string,
    alert: Uint8Array | undefined,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.alert = alert;
  }
}

/**
 * Hashes a DER certificate the way the handshake expects its `localCertHash`/`peerCertHash`.
 *
 * @example
 * ```ts
 * import { hashCertificate } from "@cretoai/network/handshake";
 *
 * console.assert(hashCertificate(new Uint8Array([0x30, 0x00])).byteLength === 32);
 * ```
 *
 * @param der The certificate in DER.
 * @returns Its SHA-256.
 */
export function hashCertificate(der: Uint8Array): Uint8Array {
  return sha256(der);
}

interface Settings {
  credentials: NodeCredentials;
  alpn: string;
  peerCertificate: Uint8Array;
  cache: PeerCertificateCache;
  tickets: SessionTicketStore | undefined;
  mode: number;
  randomBytes: (length: number) => Uint8Array;
}

function settings(options: HandshakeOptions): Settings {
  const {
    credentials,
    alpn,
    peerCertificate,
    certificateCache,
    tickets,
    pqEncryption = true,
    randomBytes = (n: number) => crypto.getRandomValues(new Uint8Array(n)),
  } = options ?? {};
  if (!(credentials instanceof NodeCredentials)) {
    throw new InvalidConfigError("credentials", "NodeCredentials", credentials);
  }
  if (typeof alpn !== "string" || new TextEncoder().encode(alpn).byteLength > MAX_ALPN_LENGTH) {
    throw new InvalidConfigError("alpn", `a string of at most ${MAX_ALPN_LENGTH} bytes`, alpn);
  }
  if (!(peerCertificate instanceof Uint8Array) || peerCertificate.byteLength === 0) {
    throw new InvalidConfigError("peerCertificate", "a DER certificate", peerCertificate);
  }
  if (certificateCache !== undefined && !(certificateCache instanceof PeerCertificateCache)) {
    throw new InvalidConfigError("certificateCache", "a PeerCertificateCache", certificateCache);
  }
  if (tickets !== undefined && !(tickets instanceof SessionTicketStore)) {
    throw new InvalidConfigError("tickets", "a SessionTicketStore", tickets);
  }
  if (typeof pqEncryption !== "boolean") {
    throw new InvalidConfigError("pqEncryption", "a boolean", pqEncryption);
  }
  if (typeof randomBytes !== "function") {
    throw new InvalidConfigError("randomBytes", "a function", randomBytes);
  }
  return {
    credentials,
    alpn,
    peerCertificate,
    cache: certificateCache ?? new PeerCertificateCache({ maxEntries: 0 }),
    tickets,
    mode: pqEncryption ? Mode.PqEncryption : Mode.AuthOnly,
    randomBytes,
  };
}

function random(s: Settings, n: number): Uint8Array {
  const bytes = s.randomBytes(n);
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== n) {
    throw new NetworkError(
      "ERR_HANDSHAKE_FAILED",
      `randomBytes(${n}) must return ${n} bytes: current value is ${describe(bytes)}`,
    );
  }
  return bytes;
}

function modeName(mode: number): string {
  return mode === Mode.PqEncryption ? "pqEncryption on" : "pqEncryption off";
}

function fail(message: string, code: NetworkErrorCode = "ERR_HANDSHAKE_FAILED"): never {
  throw new NetworkError(code, message);
}

function checkMode(local: number, peer: number, peerRole: string): void {
  if (local !== peer) {
    fail(
      `Handshake mode mismatch: this side has ${modeName(local)}, the ${peerRole} has ${
        modeName(peer)
      }`,
    );
  }
}

function result(
  peer: VerifiedPeer,
  keys: SessionKeys | undefined,
  transcript: Uint8Array,
  resumed = false,
): HandshakeResult {
  return {
    peerId: peer.peerId,
    peerPublicKeys: peer.publicIdentity,
    keys,
    transcriptHash: transcript,
    peerCertificateHash: peer.certificateHash,
    resumed,
  };
}

/** Keeps the tickets a completed session left, each for the direction of its next dial. */
function saveTickets(
  s: Settings,
  peer: VerifiedPeer,
  tickets: { dialer: TicketSecret; listener: TicketSecret },
  role: "dialer" | "listener",
): void {
  const [dialing, listening] = role === "dialer"
    ? [tickets.dialer, tickets.listener]
    : [tickets.listener, tickets.dialer];
  s.tickets?.save(toHex(peer.certificateHash), s.mode, dialing, listening);
}

/** What both sides put in a resumption's transcript besides the ClientHello. */
function resumptionInput(
  s: Settings,
  dialerCertHash: Uint8Array,
  listenerCertHash: Uint8Array,
  clientHelloBoundPart: Uint8Array,
): ResumptionInput {
  return {
    version: HANDSHAKE_VERSION,
    mode: s.mode,
    alpn: s.alpn,
    dialerCertHash,
    listenerCertHash,
    clientHelloBoundPart,
  };
}

/** Turns an Alert from the peer into an error, or returns when the message is something else. */
function throwIfAlert(msg: Uint8Array, peerRole: string): void {
  if (peekType(msg) !== MessageType.Alert) return;
  const { reason } = decodeAlert(msg);
  throw new HandshakeError(
    "ERR_HANDSHAKE_FAILED",
    `The ${peerRole} aborted the handshake: ${reason}`,
    undefined,
  );
}

/** Wraps a failure of `receive`: a typed error, with an alert for the peer when it helps. */
function toHandshakeError(e: unknown): HandshakeError {
  if (e instanceof HandshakeError) return e;
  if (e instanceof NetworkError) {
    // The expected id is the dialer's business; the listener only needs to know it was refused.
    const reason = e.code === "ERR_PEER_ID_MISMATCH"
      ? "the dialer expected a different peer id"
      : e.message;
    return new HandshakeError(e.code, e.message, encodeAlert(reason), { cause: e });
  }
  const message = `Handshake failed: ${e instanceof Error ? e.message : String(e)}`;
  return new HandshakeError("ERR_HANDSHAKE_FAILED", message, encodeAlert(message), { cause: e });
}

/** The ciphertext a resuming ClientHello leaves out. */
const EMPTY = new Uint8Array(0);

function unexpected(msg: Uint8Array, expected: string, state: string): never {
  return fail(
    `Unexpected handshake message: expected ${expected} (${state}), got ${typeName(msg[0])}`,
  );
}

/**
 * The dialing side of the handshake. Call {@linkcode HandshakeDialer.start} once and send its
 * bytes; feed the peer's reply to {@linkcode HandshakeDialer.receive}, send what it returns and
 * use its result.
 *
 * @example A complete handshake in memory
 * ```ts
 * import { HandshakeDialer, HandshakeListener, NodeCredentials } from "@cretoai/network/handshake";
 * import { Identity } from "@cretoai/network";
 *
 * const dialerNode = await NodeCredentials.create(Identity.generate());
 * const listenerNode = await NodeCredentials.create(Identity.generate());
 * const dialer = new HandshakeDialer({
 *   credentials: dialerNode,
 *   alpn: "cretoai/1",
 *   peerCertificate: listenerNode.certificate.der, // as TLS received it
 *   expectedPeerId: listenerNode.identity.peerId,
 * });
 * const listener = new HandshakeListener({
 *   credentials: listenerNode,
 *   alpn: "cretoai/1",
 *   peerCertificate: dialerNode.certificate.der,
 * });
 * const serverHello = (await listener.receive(await dialer.start())).send!;
 * const { send: clientFinish, done: dialerResult } = await dialer.receive(serverHello);
 * const listenerResult = (await listener.receive(clientFinish!)).done!;
 * console.assert(dialerResult!.peerId.equals(listenerNode.identity.peerId));
 * console.assert(listenerResult.keys!.recv.every((b, i) => b === dialerResult!.keys!.send[i]));
 * ```
 */
export class HandshakeDialer {
  readonly #s: Settings;
  readonly #expected: PeerId | undefined;
  #state:
    | "initial"
    | "checking the listener"
    | "awaiting ServerHello"
    | "checking the ServerHello"
    | "done"
    | "failed" = "initial";
  #clientHello: Uint8Array | undefined;
  #peer: VerifiedPeer | undefined;
  #toListener: Uint8Array | undefined;
  /** The ticket offered, with the bound transcript and binder of the ClientHello. */
  #offered: { secret: Uint8Array; boundTranscript: Uint8Array; binder: Uint8Array } | undefined;
  /** This node's certificate, when the ClientHello carries it. */
  readonly #certificate: Uint8Array | undefined;
  /** The ClientHello's fields, for the one sent again after a HelloRetry. */
  #hello: Omit<ClientHello, "certificate" | "resumption"> | undefined;

  /**
   * Prepares the dialer side.
   *
   * @param options See {@linkcode HandshakeDialerOptions}.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` naming the option that is wrong.
   */
  constructor(options: HandshakeDialerOptions) {
    this.#s = settings(options);
    const { expectedPeerId } = options;
    if (expectedPeerId !== undefined && !(expectedPeerId instanceof PeerId)) {
      throw new InvalidConfigError("expectedPeerId", "a PeerId or undefined", expectedPeerId);
    }
    this.#expected = expectedPeerId;
    const { certificateInHello = false } = options;
    if (typeof certificateInHello !== "boolean") {
      throw new InvalidConfigError("certificateInHello", "a boolean", certificateInHello);
    }
    this.#certificate = certificateInHello ? this.#s.credentials.certificate.der : undefined;
  }

  /**
   * Checks the listener's certificate and makes the ClientHello, the first message of the
   * handshake: it carries an ML-KEM ciphertext to the key the listener's identity bound to its
   * certificate, so only that listener can answer (or, resuming, a ticket only that listener
   * holds, and no ciphertext: a listener that cannot resume asks for it with a HelloRetry).
   *
   * @example
   * ```ts
   * import { HandshakeDialer, NodeCredentials } from "@cretoai/network/handshake";
   * import { Identity } from "@cretoai/network";
   *
   * const listener = await NodeCredentials.create(Identity.generate());
   * const dialer = new HandshakeDialer({
   *   credentials: await NodeCredentials.create(Identity.generate()),
   *   alpn: "cretoai/1",
   *   peerCertificate: listener.certificate.der,
   * });
   * const clientHello = await dialer.start();
   * console.assert(clientHello[0] === 1);
   * ```
   *
   * @param earlyData With {@linkcode HandshakeOptions.tickets} and a ticket for the listener's
   * run: called with the verified listener, it returns bytes (at most 256) to seal into the
   * ClientHello, which the listener gets with its result if it resumes the session
   * ({@linkcode HandshakeResult.earlyData}; it is lost if the listener does the full handshake
   * instead: `result.resumed` is then false on both sides). Returning `undefined` offers no
   * ticket. Not called without a ticket.
   * @returns The message to send, as one record.
   * @throws {HandshakeError} `ERR_PEER_ID_MISMATCH` when `expectedPeerId` is set and the
   * certificate is another peer's; `ERR_HANDSHAKE_FAILED` when the certificate carries no valid
   * identity binding, or when called twice. Send `error.alert`, if set, before closing.
   */
  async start(
    earlyData?: (listener: VerifiedPeer) => Uint8Array | undefined,
  ): Promise<Uint8Array> {
    try {
      if (this.#state !== "initial") {
        fail(`HandshakeDialer.start() may be called once: the handshake is ${this.#state}`);
      }
      this.#state = "checking the listener";
      const s = this.#s;
      const peer = await s.cache.verify(s.peerCertificate);
      if (this.#expected !== undefined && !peer.peerId.equals(this.#expected)) {
        fail(
          `Peer id mismatch: expected ${this.#expected}, the listener presented ${peer.peerId}`,
          "ERR_PEER_ID_MISMATCH",
        );
      }
      const nonce = random(s, NONCE_LENGTH);
      this.#peer = peer;
      // A resuming ClientHello leaves out this node's certificate (the listener verified it in
      // the session that left the ticket) and the ML-KEM ciphertext: a listener that cannot
      // resume answers HelloRetry, and the full ClientHello follows.
      this.#hello = { version: HANDSHAKE_VERSION, mode: s.mode, nonce, cipherText: EMPTY };
      this.#clientHello = this.#resume(peer, this.#hello, earlyData) ?? await this.#fullHello();
      this.#state = "awaiting ServerHello";
      return this.#clientHello.slice();
    } catch (e) {
      this.#state = "failed";
      throw toHandshakeError(e);
    }
  }

  /** A ClientHello that offers the ticket held for the listener's run, if there is one. */
  #resume(
    peer: VerifiedPeer,
    hello: Omit<ClientHello, "resumption">,
    earlyData: ((listener: VerifiedPeer) => Uint8Array | undefined) | undefined,
  ): Uint8Array | undefined {
    const s = this.#s;
    if (earlyData === undefined || s.tickets === undefined) return undefined;
    const peerKey = toHex(peer.certificateHash);
    if (!s.tickets.has(peerKey, s.mode)) return undefined;
    const early = earlyData(peer);
    if (early === undefined) return undefined;
    if (!(early instanceof Uint8Array) || early.byteLength > MAX_EARLY_DATA - 16) {
      fail(
        `Early data must be at most ${MAX_EARLY_DATA - 16} bytes: current value is ${
          describe(early)
        }`,
      );
    }
    const ticket = s.tickets.takeForDialing(peerKey, s.mode)!;
    const unbound = {
      ...hello,
      resumption: {
        ticketId: ticket.id,
        earlyData: sealEarlyData(ticket.secret, hello.nonce, early),
      },
    };
    const boundTranscript = resumptionTranscriptHash(resumptionInput(
      s,
      s.credentials.certificateHash,
      peer.certificateHash,
      encodeClientHelloBoundPart(unbound),
    ));
    const binder = resumptionBinder(ticket.secret, boundTranscript);
    this.#offered = { secret: ticket.secret, boundTranscript, binder };
    return encodeClientHello({ ...unbound, resumption: { ...unbound.resumption, binder } });
  }

  /**
   * Feeds the listener's reply (a ServerHello, a ResumedServerHello, a HelloRetry to a resuming
   * dialer, or an Alert) to the dialer.
   *
   * @example
   * ```ts ignore
   * const { send, done } = await dialer.receive(serverHello);
   * await writeRecord(send!); // the ClientFinish
   * useSession(done!);
   * ```
   *
   * @param msg One whole handshake message (the payload of one record).
   * @returns After a ServerHello, the ClientFinish to send and the result; after a
   * ResumedServerHello, the result alone; after a HelloRetry, the full ClientHello to send
   * (then call this again with the listener's next reply).
   * @throws {HandshakeError} `ERR_HANDSHAKE_FAILED` for a malformed message, a version or mode
   * mismatch, a wrong key confirmation, an Alert from the listener or a call in the wrong
   * state. Send `error.alert`, if set, before closing.
   */
  async receive(msg: Uint8Array): Promise<HandshakeStep> {
    try {
      if (this.#state !== "awaiting ServerHello") {
        fail(`HandshakeDialer.receive() called while the handshake is ${this.#state}`);
      }
      throwIfAlert(msg, "listener");
      const type = peekType(msg);
      if (type === MessageType.HelloRetry && this.#offered !== undefined) {
        return await this.#retry(msg);
      }
      const resumed = type === MessageType.ResumedServerHello && this.#offered !== undefined;
      // A full ServerHello needs the ciphertext a resuming ClientHello left out.
      const full = type === MessageType.ServerHello && this.#toListener !== undefined;
      if (!full && !resumed) unexpected(msg, "ServerHello", this.#state);
      this.#state = "checking the ServerHello";
      const result = resumed ? this.#onResumedServerHello(msg) : await this.#onServerHello(msg);
      this.#state = "done";
      return result;
    } catch (e) {
      if (this.#state !== "done") this.#state = "failed";
      throw toHandshakeError(e);
    } finally {
      // After a HelloRetry the ServerHello is still to come, and needs the secret.
      if (this.#state !== "awaiting ServerHello") {
        this.#toListener?.fill(0);
        this.#toListener = undefined;
        this.#offered?.secret.fill(0);
        this.#offered = undefined;
      }
    }
  }

  /** The full handshake's ClientHello: an ML-KEM ciphertext, and the certificate if asked. */
  async #fullHello(): Promise<Uint8Array> {
    const { cipherText, secret } = await encapsulate(this.#peer!.kemKey);
    this.#hello!.cipherText = cipherText;
    this.#toListener = secret;
    return encodeClientHello({ ...this.#hello!, certificate: this.#certificate });
  }

  /**
   * The listener cannot resume and asks for what a resuming ClientHello left out: the same
   * ClientHello, with the ciphertext and the certificate and without the ticket (used up),
   * starts a full handshake.
   */
  async #retry(msg: Uint8Array): Promise<HandshakeStep> {
    decodeHelloRetry(msg);
    this.#offered!.secret.fill(0);
    this.#offered = undefined;
    this.#clientHello = await this.#fullHello();
    return { send: this.#clientHello.slice() };
  }

  #onResumedServerHello(msg: Uint8Array): HandshakeStep {
    const s = this.#s;
    const peer = this.#peer!;
    const offered = this.#offered!;
    const hello = decodeResumedServerHello(msg);
    checkMode(s.mode, hello.mode, "listener");
    const session = resumedSessionHash(
      offered.boundTranscript,
      offered.binder,
      hello.confirmedPart,
    );
    const k = resumedSchedule(offered.secret, session);
    if (!equalConstantTime(k.listenerConfirmation, hello.confirmation)) {
      fail(
        `Invalid listener confirmation of a resumed session from ${peer.peerId}: the ` +
          `transcript differs (another connection, a relay, a tampered field) or the listener ` +
          `lacks the ticket's secret`,
      );
    }
    saveTickets(s, peer, k.tickets, "dialer");
    const keys = s.mode === Mode.PqEncryption
      ? { send: k.dialerToListener, recv: k.listenerToDialer }
      : undefined;
    return { done: result(peer, keys, session, true) };
  }

  async #onServerHello(msg: Uint8Array): Promise<HandshakeStep> {
    const s = this.#s;
    const peer = this.#peer!;
    const hello = decodeServerHello(msg);
    checkMode(s.mode, hello.mode, "listener");
    const transcript = transcriptHash({
      version: HANDSHAKE_VERSION,
      mode: s.mode,
      alpn: s.alpn,
      dialerCertHash: s.credentials.certificateHash,
      listenerCertHash: peer.certificateHash,
      clientHello: this.#clientHello!,
      serverHelloConfirmedPart: hello.confirmedPart,
    });
    const toDialer = await s.credentials.decapsulate(hello.cipherText);
    const k = keySchedule(this.#toListener!, toDialer, transcript);
    toDialer.fill(0);
    if (!equalConstantTime(k.listenerConfirmation, hello.confirmation)) {
      fail(
        `Invalid listener key confirmation from ${peer.peerId}: the transcript differs (another ` +
          `connection, a relay, a tampered field) or the listener lacks the key its identity bound`,
      );
    }
    saveTickets(s, peer, k.tickets, "dialer");
    const keys = s.mode === Mode.PqEncryption
      ? { send: k.dialerToListener, recv: k.listenerToDialer }
      : undefined;
    return {
      send: encodeClientFinish(k.dialerConfirmation),
      done: result(peer, keys, transcript),
    };
  }
}

/**
 * The listening side of the handshake. Feed it the dialer's ClientHello, send the ServerHello
 * it returns, then feed it the ClientFinish: its result completes the handshake. It never
 * signs anything; it verifies the dialer's certificate binding (once per certificate with a
 * {@linkcode PeerCertificateCache}) and does one ML-KEM decapsulation and one encapsulation.
 *
 * @example
 * ```ts
 * import { HandshakeDialer, HandshakeListener, NodeCredentials } from "@cretoai/network/handshake";
 * import { Identity } from "@cretoai/network";
 *
 * const a = await NodeCredentials.create(Identity.generate());
 * const b = await NodeCredentials.create(Identity.generate());
 * const options = { alpn: "cretoai/1", pqEncryption: false };
 * const dialer = new HandshakeDialer({
 *   ...options, credentials: a, peerCertificate: b.certificate.der,
 * });
 * const listener = new HandshakeListener({
 *   ...options, credentials: b, peerCertificate: a.certificate.der,
 * });
 * const serverHello = (await listener.receive(await dialer.start())).send!;
 * const finish = (await dialer.receive(serverHello)).send!;
 * const result = (await listener.receive(finish)).done!;
 * console.assert(result.keys === undefined && result.peerId.equals(a.identity.peerId));
 * ```
 */
export class HandshakeListener {
  readonly #s: Settings;
  #state:
    | "awaiting ClientHello"
    | "checking the ClientHello"
    | "awaiting ClientFinish"
    | "done"
    | "failed" = "awaiting ClientHello";
  #peer: VerifiedPeer | undefined;
  #transcript: Uint8Array | undefined;
  #keys: SessionKeys | undefined;
  #dialerConfirmation: Uint8Array | undefined;
  #tickets: { dialer: TicketSecret; listener: TicketSecret } | undefined;
  /**
   * A HelloRetry was sent: the next ClientHello must carry the dialer's certificate (if TLS
   * received only the small one) and the ML-KEM ciphertext.
   */
  #retried = false;

  /**
   * Prepares the listener side.
   *
   * @param options See {@linkcode HandshakeListenerOptions}.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` naming the option that is wrong.
   */
  constructor(options: HandshakeListenerOptions) {
    this.#s = settings(options);
  }

  /**
   * Feeds the dialer's next message (ClientHello, then ClientFinish) to the listener.
   *
   * @example
   * ```ts ignore
   * const { send } = await listener.receive(clientHello);  // send is the ServerHello
   * const { done } = await listener.receive(clientFinish); // done is the result
   * ```
   *
   * @param msg One whole handshake message (the payload of one record).
   * @returns After a ClientHello: the ServerHello to send. After a ClientFinish: the result.
   * @throws {HandshakeError} `ERR_HANDSHAKE_FAILED` for a malformed message, a version or mode
   * mismatch, a dialer certificate without a valid identity binding, a wrong key confirmation,
   * an Alert from the dialer or a call in the wrong state. Send `error.alert`, if set, before
   * closing.
   */
  async receive(msg: Uint8Array): Promise<HandshakeStep> {
    try {
      if (this.#state === "awaiting ClientHello" || this.#state === "awaiting ClientFinish") {
        throwIfAlert(msg, "dialer");
      }
      if (this.#state === "awaiting ClientHello") {
        if (peekType(msg) !== MessageType.ClientHello) {
          unexpected(msg, "ClientHello", this.#state);
        }
        this.#state = "checking the ClientHello";
        const step = await this.#onClientHello(msg);
        this.#state = step.done !== undefined
          ? "done"
          : this.#peer === undefined
          ? "awaiting ClientHello"
          : "awaiting ClientFinish";
        return step;
      }
      if (this.#state === "awaiting ClientFinish") {
        if (peekType(msg) !== MessageType.ClientFinish) {
          unexpected(msg, "ClientFinish", this.#state);
        }
        const step = this.#onClientFinish(msg);
        this.#state = "done";
        return step;
      }
      return fail(`HandshakeListener.receive() called while the handshake is ${this.#state}`);
    } catch (e) {
      if (this.#state !== "done") {
        this.#state = "failed";
        this.#keys = undefined;
      }
      throw toHandshakeError(e);
    }
  }

  async #onClientHello(msg: Uint8Array): Promise<HandshakeStep> {
    const s = this.#s;
    const hello = decodeClientHello(msg);
    checkMode(s.mode, hello.mode, "dialer");
    const peer = await this.#dialer(hello);
    if (peer === undefined) {
      // Its ticket, if any, is spent: the retried ClientHello carries none.
      if (hello.resumption) s.tickets?.takeForListening(toHex(hello.resumption.ticketId));
      this.#retried = true;
      return { send: encodeHelloRetry() };
    }
    const resumed = this.#resume(peer, hello);
    if (resumed !== undefined) return resumed;
    if (hello.cipherText.byteLength === 0) {
      // A resuming ClientHello whose ticket this node cannot take: ask for the full one, once.
      if (this.#retried) fail("A second ClientHello without an ML-KEM ciphertext");
      this.#retried = true;
      return { send: encodeHelloRetry() };
    }

    // Independent native operations, each on another thread: waited for together, not one
    // after the other (each wait is an event-loop round of its own on the critical path).
    const [toListener, { cipherText, secret: toDialer }] = await Promise.all([
      s.credentials.decapsulate(hello.cipherText),
      encapsulate(peer.kemKey),
    ]);
    const confirmedPart = encodeServerHelloConfirmedPart({
      version: HANDSHAKE_VERSION,
      mode: s.mode,
      nonce: random(s, NONCE_LENGTH),
      cipherText,
    });
    const transcript = transcriptHash({
      version: HANDSHAKE_VERSION,
      mode: s.mode,
      alpn: s.alpn,
      dialerCertHash: peer.certificateHash,
      listenerCertHash: s.credentials.certificateHash,
      clientHello: msg,
      serverHelloConfirmedPart: confirmedPart,
    });
    const k = keySchedule(toListener, toDialer, transcript);
    toListener.fill(0);
    toDialer.fill(0);
    if (s.mode === Mode.PqEncryption) {
      this.#keys = { send: k.listenerToDialer, recv: k.dialerToListener };
    }
    this.#peer = peer;
    this.#transcript = transcript;
    this.#dialerConfirmation = k.dialerConfirmation;
    this.#tickets = k.tickets;
    return { send: encodeServerHello(confirmedPart, k.listenerConfirmation) };
  }

  /**
   * The dialer's verified certificate: the one TLS received, or the one the ClientHello carries
   * in its place, or, when a resuming ClientHello carries none, the one this node verified
   * under the SHA-256 the TLS certificate names; `undefined` when that is no longer held (the
   * first time only: a HelloRetry asks for it).
   */
  async #dialer(hello: DecodedClientHello): Promise<VerifiedPeer | undefined> {
    const s = this.#s;
    const named = hello.certificate === undefined && hello.resumption !== undefined
      ? certificateReference(s.peerCertificate)
      : undefined;
    if (named !== undefined) {
      const held = s.cache.lookup(named.hash);
      if (held !== undefined) {
        checkReferencedKey(named, held);
        return held;
      }
      if (!this.#retried) return undefined;
    }
    return await s.cache.verify(dialerCertificate(s.peerCertificate, hello.certificate));
  }

  /**
   * Resumes the session a ticket names, or returns `undefined` for the full handshake: the
   * ticket is unknown (used already, forgotten, issued by another run of this node) or was
   * issued to another run of the dialer or in another mode.
   */
  #resume(peer: VerifiedPeer, hello: DecodedClientHello): HandshakeStep | undefined {
    const s = this.#s;
    const offer = hello.resumption;
    if (offer === undefined || s.tickets === undefined) return undefined;
    const ticket = s.tickets.takeForListening(toHex(offer.ticketId));
    if (
      ticket === undefined || ticket.mode !== s.mode ||
      ticket.peer !== toHex(peer.certificateHash)
    ) {
      return undefined;
    }
    try {
      const boundTranscript = resumptionTranscriptHash(resumptionInput(
        s,
        peer.certificateHash,
        s.credentials.certificateHash,
        hello.boundPart,
      ));
      const binder = resumptionBinder(ticket.secret, boundTranscript);
      // A wrong binder for a ticket this node issued to this very run is no accident: refuse.
      if (!equalConstantTime(binder, offer.binder)) {
        fail(`Invalid resumption binder from ${peer.peerId}: it lacks the ticket's secret`);
      }
      const earlyData = openEarlyData(ticket.secret, hello.nonce, offer.earlyData);
      if (earlyData === undefined) {
        fail(`The early data of ${peer.peerId}'s resuming ClientHello failed its tag`);
      }
      const confirmedPart = encodeResumedServerHelloConfirmedPart(HANDSHAKE_VERSION, s.mode);
      const session = resumedSessionHash(boundTranscript, binder, confirmedPart);
      const k = resumedSchedule(ticket.secret, session);
      saveTickets(s, peer, k.tickets, "listener");
      const keys = s.mode === Mode.PqEncryption
        ? { send: k.listenerToDialer, recv: k.dialerToListener }
        : undefined;
      return {
        send: encodeServerHello(confirmedPart, k.listenerConfirmation),
        done: { ...result(peer, keys, session, true), earlyData },
      };
    } finally {
      ticket.secret.fill(0);
    }
  }

  #onClientFinish(msg: Uint8Array): HandshakeStep {
    const confirmation = decodeClientFinish(msg);
    const peer = this.#peer!;
    if (!equalConstantTime(confirmation, this.#dialerConfirmation!)) {
      fail(
        `Invalid dialer key confirmation from ${peer.peerId}: the transcript differs (another ` +
          `connection, a relay, a tampered field) or the dialer lacks the key its identity bound`,
      );
    }
    saveTickets(this.#s, peer, this.#tickets!, "listener");
    return { done: result(peer, this.#keys, this.#transcript!) };
  }
}
