/**
 * The post-quantum handshake as a pure state machine: it is fed the bytes of whole handshake
 * messages and answers with bytes to send, never touching a socket or a clock (quinn style).
 * The caller carries each message as one record on the connection's first QUIC stream (see
 * `record.ts`) and applies its own timeout.
 *
 * @module
 */

import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, InvalidConfigError, NetworkError, type NetworkErrorCode } from "../errors.ts";
import { Identity } from "../identity/identity.ts";
import { PeerId } from "../identity/peer_id.ts";
import { PublicIdentity } from "../identity/public_identity.ts";
import {
  decodeAlert,
  decodeClientFinish,
  decodeClientHello,
  decodeServerHello,
  encodeAlert,
  encodeClientFinish,
  encodeClientHello,
  encodeServerHello,
  encodeServerHelloSignedPart,
  HANDSHAKE_VERSION,
  type Hello,
  MessageType,
  Mode,
  NONCE_LENGTH,
  peekType,
  typeName,
} from "./_messages.ts";
import {
  deriveSessionKeys,
  DIALER_SIGNATURE_LABEL,
  LISTENER_SIGNATURE_LABEL,
  signedMessage,
  transcriptHash,
} from "./_transcript.ts";

/** Length of a certificate hash (SHA-256). */
const CERT_HASH_LENGTH = 32;
/** TLS caps an ALPN protocol name at 255 bytes. */
const MAX_ALPN_LENGTH = 255;

/** Options common to both sides of the handshake. */
export interface HandshakeOptions {
  /** This node's identity; it signs the transcript. */
  identity: Identity;
  /** The ALPN protocol negotiated by TLS on this connection, as this side saw it. */
  alpn: string;
  /**
   * SHA-256 of the DER of this side's own TLS certificate, as presented on this connection
   * (see {@linkcode hashCertificate}).
   */
  localCertHash: Uint8Array;
  /** SHA-256 of the DER of the TLS certificate the peer presented on this connection. */
  peerCertHash: Uint8Array;
  /**
   * Agree ML-KEM-768 session keys for {@linkcode FrameCipher}. Both sides must choose the same;
   * a mismatch fails the handshake. When `false` the handshake only authenticates.
   *
   * @default {true}
   */
  pqEncryption?: boolean;
  /**
   * Source of randomness for the nonce and the ML-KEM key pair or encapsulation. Replace it only
   * to make tests reproducible.
   *
   * @default {(n) => crypto.getRandomValues(new Uint8Array(n))}
   */
  randomBytes?: (length: number) => Uint8Array;
}

/** Options of {@linkcode HandshakeDialer}. */
export interface HandshakeDialerOptions extends HandshakeOptions {
  /**
   * The peer id the dialer means to reach. When set, any other peer fails the handshake with
   * `ERR_PEER_ID_MISMATCH` before its signature is even checked.
   *
   * @default {undefined} (any peer is accepted; check `result.peerId` yourself)
   */
  expectedPeerId?: PeerId;
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
  /** SHA-256 transcript hash both sides signed; unique per connection. */
  transcriptHash: Uint8Array;
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
  identity: Identity;
  alpn: string;
  localCertHash: Uint8Array;
  peerCertHash: Uint8Array;
  mode: number;
  randomBytes: (length: number) => Uint8Array;
}

function settings(options: HandshakeOptions): Settings {
  const {
    identity,
    alpn,
    localCertHash,
    peerCertHash,
    pqEncryption = true,
    randomBytes = (n: number) => crypto.getRandomValues(new Uint8Array(n)),
  } = options ?? {};
  if (!(identity instanceof Identity)) {
    throw new InvalidConfigError("identity", "an Identity", identity);
  }
  if (typeof alpn !== "string" || new TextEncoder().encode(alpn).byteLength > MAX_ALPN_LENGTH) {
    throw new InvalidConfigError("alpn", `a string of at most ${MAX_ALPN_LENGTH} bytes`, alpn);
  }
  for (const [name, value] of [["localCertHash", localCertHash], ["peerCertHash", peerCertHash]]) {
    if (!(value instanceof Uint8Array) || value.byteLength !== CERT_HASH_LENGTH) {
      throw new InvalidConfigError(name as string, "a 32-byte SHA-256 hash", value);
    }
  }
  if (typeof pqEncryption !== "boolean") {
    throw new InvalidConfigError("pqEncryption", "a boolean", pqEncryption);
  }
  if (typeof randomBytes !== "function") {
    throw new InvalidConfigError("randomBytes", "a function", randomBytes);
  }
  return {
    identity,
    alpn,
    localCertHash: localCertHash.slice(),
    peerCertHash: peerCertHash.slice(),
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

function decodePeerIdentity(bytes: Uint8Array, peerRole: string): PublicIdentity {
  try {
    return PublicIdentity.decode(bytes);
  } catch (e) {
    return fail(`Invalid ${peerRole} identity in handshake: ${(e as Error).message}`);
  }
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
 * import { hashCertificate, HandshakeDialer, HandshakeListener } from "@cretoai/network/handshake";
 * import { Identity } from "@cretoai/network";
 *
 * const dialerCert = hashCertificate(new Uint8Array([1]));
 * const listenerCert = hashCertificate(new Uint8Array([2]));
 * const listenerId = Identity.generate();
 * const dialer = new HandshakeDialer({
 *   identity: Identity.generate(),
 *   alpn: "cretoai/1",
 *   localCertHash: dialerCert,
 *   peerCertHash: listenerCert,
 *   expectedPeerId: listenerId.peerId,
 * });
 * const listener = new HandshakeListener({
 *   identity: listenerId,
 *   alpn: "cretoai/1",
 *   localCertHash: listenerCert,
 *   peerCertHash: dialerCert,
 * });
 * const serverHello = listener.receive(dialer.start()).send!;
 * const { send: clientFinish, done: dialerResult } = dialer.receive(serverHello);
 * const listenerResult = listener.receive(clientFinish!).done!;
 * console.assert(dialerResult!.peerId.equals(listenerId.peerId));
 * console.assert(listenerResult.keys!.recv.every((b, i) => b === dialerResult!.keys!.send[i]));
 * ```
 */
export class HandshakeDialer {
  readonly #s: Settings;
  readonly #expected: PeerId | undefined;
  #state: "initial" | "awaiting ServerHello" | "done" | "failed" = "initial";
  #clientHello: Uint8Array | undefined;
  #nonce: Uint8Array | undefined;
  #kemSecretKey: Uint8Array | undefined;

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
  }

  /**
   * Makes the ClientHello, the first message of the handshake.
   *
   * @example
   * ```ts
   * import { HandshakeDialer } from "@cretoai/network/handshake";
   * import { Identity } from "@cretoai/network";
   *
   * const dialer = new HandshakeDialer({
   *   identity: Identity.generate(),
   *   alpn: "cretoai/1",
   *   localCertHash: new Uint8Array(32),
   *   peerCertHash: new Uint8Array(32),
   * });
   * const clientHello = dialer.start();
   * console.assert(clientHello[0] === 1);
   * ```
   *
   * @returns The message to send, as one record.
   * @throws {NetworkError} `ERR_HANDSHAKE_FAILED` when called twice.
   */
  start(): Uint8Array {
    if (this.#state !== "initial") {
      fail(`HandshakeDialer.start() may be called once: the handshake is ${this.#state}`);
    }
    try {
      const s = this.#s;
      this.#nonce = random(s, NONCE_LENGTH);
      let kem = new Uint8Array(0);
      if (s.mode === Mode.PqEncryption) {
        const pair = ml_kem768.keygen(random(s, ml_kem768.lengths.seed!));
        this.#kemSecretKey = pair.secretKey;
        kem = pair.publicKey;
      }
      this.#clientHello = encodeClientHello({
        version: HANDSHAKE_VERSION,
        mode: s.mode,
        identity: s.identity.publicIdentity.encode(),
        nonce: this.#nonce,
        kem,
      });
      this.#state = "awaiting ServerHello";
      return this.#clientHello.slice();
    } catch (e) {
      this.#state = "failed";
      throw e;
    }
  }

  /**
   * Feeds the listener's reply (a ServerHello, or an Alert) to the dialer.
   *
   * @example
   * ```ts ignore
   * const { send, done } = dialer.receive(serverHello);
   * await writeRecord(send!); // the ClientFinish
   * useSession(done!);
   * ```
   *
   * @param msg One whole handshake message (the payload of one record).
   * @returns The ClientFinish to send and the result: the handshake is complete on this side.
   * @throws {HandshakeError} `ERR_PEER_ID_MISMATCH` when `expectedPeerId` is set and the peer is
   * another; `ERR_HANDSHAKE_FAILED` for a malformed message, a version or mode mismatch, a bad
   * signature, an Alert from the listener or a call in the wrong state. Send `error.alert`, if
   * set, before closing.
   */
  receive(msg: Uint8Array): HandshakeStep {
    try {
      if (this.#state !== "awaiting ServerHello") {
        fail(`HandshakeDialer.receive() called while the handshake is ${this.#state}`);
      }
      throwIfAlert(msg, "listener");
      if (peekType(msg) !== MessageType.ServerHello) {
        unexpected(msg, "ServerHello", this.#state);
      }
      const result = this.#onServerHello(msg);
      this.#state = "done";
      return result;
    } catch (e) {
      if (this.#state !== "done") this.#state = "failed";
      this.#kemSecretKey = undefined;
      throw toHandshakeError(e);
    }
  }

  #onServerHello(msg: Uint8Array): HandshakeStep {
    const s = this.#s;
    const hello = decodeServerHello(msg);
    const peer = decodePeerIdentity(hello.identity, "listener");
    if (this.#expected !== undefined && !peer.peerId.equals(this.#expected)) {
      fail(
        `Peer id mismatch: expected ${this.#expected}, the listener presented ${peer.peerId}`,
        "ERR_PEER_ID_MISMATCH",
      );
    }
    checkMode(s.mode, hello.mode, "listener");
    const transcript = transcriptHash({
      version: HANDSHAKE_VERSION,
      mode: s.mode,
      alpn: s.alpn,
      dialerCertHash: s.localCertHash,
      listenerCertHash: s.peerCertHash,
      clientHello: this.#clientHello!,
      serverHelloSignedPart: hello.signedPart,
    });
    if (
      !Identity.verify(peer, signedMessage(LISTENER_SIGNATURE_LABEL, transcript), hello.signature)
    ) {
      fail(
        `Invalid listener signature from ${peer.peerId}: the transcript differs (another ` +
          `connection, a relay, a tampered field) or the signature is forged`,
      );
    }
    let keys: SessionKeys | undefined;
    if (s.mode === Mode.PqEncryption) {
      const secret = ml_kem768.decapsulate(hello.kem, this.#kemSecretKey!);
      const k = deriveSessionKeys(secret, transcript);
      secret.fill(0);
      keys = { send: k.dialerToListener, recv: k.listenerToDialer };
    }
    this.#kemSecretKey = undefined;
    const send = encodeClientFinish(
      s.identity.sign(signedMessage(DIALER_SIGNATURE_LABEL, transcript)),
    );
    return {
      send,
      done: { peerId: peer.peerId, peerPublicKeys: peer, keys, transcriptHash: transcript },
    };
  }
}

/**
 * The listening side of the handshake. Feed it the dialer's ClientHello, send the ServerHello
 * it returns, then feed it the ClientFinish: its result completes the handshake.
 *
 * @example
 * ```ts
 * import { HandshakeDialer, HandshakeListener } from "@cretoai/network/handshake";
 * import { Identity } from "@cretoai/network";
 *
 * const certA = new Uint8Array(32).fill(1);
 * const certB = new Uint8Array(32).fill(2);
 * const options = { alpn: "cretoai/1", pqEncryption: false };
 * const dialer = new HandshakeDialer({
 *   ...options, identity: Identity.generate(), localCertHash: certA, peerCertHash: certB,
 * });
 * const listener = new HandshakeListener({
 *   ...options, identity: Identity.generate(), localCertHash: certB, peerCertHash: certA,
 * });
 * const finish = dialer.receive(listener.receive(dialer.start()).send!).send!;
 * const result = listener.receive(finish).done!;
 * console.assert(result.keys === undefined);
 * ```
 */
export class HandshakeListener {
  readonly #s: Settings;
  #state: "awaiting ClientHello" | "awaiting ClientFinish" | "done" | "failed" =
    "awaiting ClientHello";
  #peer: PublicIdentity | undefined;
  #transcript: Uint8Array | undefined;
  #keys: SessionKeys | undefined;

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
   * const { send } = listener.receive(clientHello);   // send is the ServerHello
   * const { done } = listener.receive(clientFinish);  // done is the result
   * ```
   *
   * @param msg One whole handshake message (the payload of one record).
   * @returns After a ClientHello: the ServerHello to send. After a ClientFinish: the result.
   * @throws {HandshakeError} `ERR_HANDSHAKE_FAILED` for a malformed message, a version or mode
   * mismatch, an invalid ML-KEM key, a bad signature, an Alert from the dialer or a call in the
   * wrong state. Send `error.alert`, if set, before closing.
   */
  receive(msg: Uint8Array): HandshakeStep {
    try {
      if (this.#state === "awaiting ClientHello" || this.#state === "awaiting ClientFinish") {
        throwIfAlert(msg, "dialer");
      }
      if (this.#state === "awaiting ClientHello") {
        if (peekType(msg) !== MessageType.ClientHello) {
          unexpected(msg, "ClientHello", this.#state);
        }
        const step = this.#onClientHello(msg);
        this.#state = "awaiting ClientFinish";
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

  #onClientHello(msg: Uint8Array): HandshakeStep {
    const s = this.#s;
    const hello = decodeClientHello(msg);
    checkMode(s.mode, hello.mode, "dialer");
    const peer = decodePeerIdentity(hello.identity, "dialer");
    let kem = new Uint8Array(0);
    let secret: Uint8Array | undefined;
    if (s.mode === Mode.PqEncryption) {
      try {
        const enc = ml_kem768.encapsulate(hello.kem, random(s, ml_kem768.lengths.msg!));
        kem = enc.cipherText;
        secret = enc.sharedSecret;
      } catch (e) {
        fail(`Invalid ML-KEM-768 public key from the dialer: ${(e as Error).message}`);
      }
    }
    const mine: Hello = {
      version: HANDSHAKE_VERSION,
      mode: s.mode,
      identity: s.identity.publicIdentity.encode(),
      nonce: random(s, NONCE_LENGTH),
      kem,
    };
    const signedPart = encodeServerHelloSignedPart(mine);
    const transcript = transcriptHash({
      version: HANDSHAKE_VERSION,
      mode: s.mode,
      alpn: s.alpn,
      dialerCertHash: s.peerCertHash,
      listenerCertHash: s.localCertHash,
      clientHello: msg,
      serverHelloSignedPart: signedPart,
    });
    if (secret !== undefined) {
      const k = deriveSessionKeys(secret, transcript);
      secret.fill(0);
      this.#keys = { send: k.listenerToDialer, recv: k.dialerToListener };
    }
    this.#peer = peer;
    this.#transcript = transcript;
    const sig = s.identity.sign(signedMessage(LISTENER_SIGNATURE_LABEL, transcript));
    return { send: encodeServerHello(signedPart, sig) };
  }

  #onClientFinish(msg: Uint8Array): HandshakeStep {
    const sig = decodeClientFinish(msg);
    const peer = this.#peer!;
    const transcript = this.#transcript!;
    if (!Identity.verify(peer, signedMessage(DIALER_SIGNATURE_LABEL, transcript), sig)) {
      fail(
        `Invalid dialer signature from ${peer.peerId}: the transcript differs (another ` +
          `connection, a relay, a tampered field) or the signature is forged`,
      );
    }
    return {
      done: {
        peerId: peer.peerId,
        peerPublicKeys: peer,
        keys: this.#keys,
        transcriptHash: transcript,
      },
    };
  }
}
