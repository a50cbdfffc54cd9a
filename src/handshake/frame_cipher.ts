/**
 * AEAD sealing of application frames with the handshake's session keys.
 *
 * ChaCha20-Poly1305 (RFC 8439), native and synchronous, for every frame size: through the
 * system's OpenSSL with Deno FFI where that is allowed, else through `node:crypto` (same bytes;
 * see `_aead.ts`). Measured in Deno 2.9.6 on this project's machines (docs/handshake.md, "Why
 * ChaCha20-Poly1305"): 0.8-1.0 ms of CPU per MiB through `node:crypto`, against 5.3 ms for
 * AES-256-GCM, whose AES runs without AES-NI in both `node:crypto` and WebCrypto there; the AES
 * cost made PQ encryption halve the transport's bulk throughput. Large frames can be sealed and
 * opened piece by piece ({@linkcode FrameCipher.sealer}, {@linkcode FrameCipher.opener}), so a
 * 16 MiB frame never needs a second 16 MiB buffer and never blocks the event loop for long.
 *
 * @module
 */

import { describe, InvalidConfigError, NetworkError } from "../errors.ts";
import type { SessionKeys } from "./handshake.ts";
import { type AeadFrame, type AeadKey, defaultAead, TAG_BYTES } from "./_aead.ts";

/** Poly1305 tag length in bytes; a sealed frame is ciphertext || tag. */
const TAG_LENGTH = TAG_BYTES;
const KEY_LENGTH = 32;
/**
 * Bytes one key may process before it must be retired, counted in 16-byte blocks: 2^34 blocks
 * (256 GiB). This is the AES-GCM confidentiality bound TLS 1.3 uses (RFC 8446 section 5.5),
 * kept as a conservative rekey point: ChaCha20-Poly1305 has no confidentiality limit within a
 * 96-bit nonce space, and its integrity limit (RFC 9001 section 6.6) is 2^36 forgery attempts,
 * which the first failed frame ends here (a failure poisons the opener). Counting blocks, not
 * bytes, also covers floods of empty frames.
 */
const MAX_BLOCKS_PER_KEY = 2 ** 34;

/**
 * Largest stream id a cipher can be bound to: the nonce has 7 bytes for it, a number holds 53
 * bits exactly. QUIC stream ids go to 2^62, but a connection would need 2^51 streams to get here.
 */
const MAX_STREAM_ID = Number.MAX_SAFE_INTEGER;
/** Largest frame a sealer or opener is made for: frame lengths are u32 on the wire. */
const MAX_FRAME_BYTES = 2 ** 32 - 1;

/**
 * 96-bit nonce: the stream id as a big-endian u56, then the frame counter as a big-endian u40.
 * The counter cannot outgrow 40 bits: every frame uses at least one of the key's 2^34 blocks.
 * For stream 0 this is the same as four zero bytes and a u64 counter. Written into one buffer
 * that a frame's start reads at once (a typed array costs about 1 µs to allocate in Deno 2.9).
 */
function nonce(streamId: number, counter: number): Uint8Array {
  const high = Math.floor(streamId / 2 ** 24);
  const middle = (streamId % 2 ** 24) * 2 ** 8 + Math.floor(counter / 2 ** 32);
  const low = counter >>> 0;
  for (let i = 0; i < 4; i++) {
    const shift = 24 - 8 * i;
    NONCE[i] = high >>> shift;
    NONCE[4 + i] = middle >>> shift;
    NONCE[8 + i] = low >>> shift;
  }
  return NONCE;
}
const NONCE = new Uint8Array(12);

/**
 * What every stream's cipher of one connection shares: the keys' cipher contexts and the blocks
 * processed under each key.
 */
interface ConnectionKeys {
  sealing: AeadKey;
  opening: AeadKey;
  sentBlocks: number;
  receivedBlocks: number;
}

/** 16-byte blocks a frame counts against its key: its payload blocks plus the tag block. */
function blocks(length: number): number {
  return Math.ceil(length / 16) + 1;
}

function checkKey(which: string, key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.byteLength !== KEY_LENGTH) {
    throw new NetworkError(
      "ERR_INVALID_KEY",
      `Invalid ${which} key: must be ${KEY_LENGTH} bytes: current value is ${describe(key)}`,
    );
  }
}

function checkFrameBytes(what: string, name: string, bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_FRAME_BYTES) {
    throw new RangeError(
      `Cannot ${what} as '${name}' must be an integer from 0 to 2^32-1: current value is ${
        describe(bytes)
      }`,
    );
  }
}

/**
 * Seals one frame piece by piece: made by {@linkcode FrameCipher.sealer} for a frame of known
 * length, whose nonce it took when it was made.
 */
export interface FrameSealer {
  /**
   * Encrypts the frame's next bytes.
   *
   * @example
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const cipher = await FrameCipher.create({
   *   send: new Uint8Array(32).fill(1),
   *   recv: new Uint8Array(32).fill(2),
   * });
   * const sealer = cipher.sealer(5);
   * console.assert(sealer.update(new Uint8Array(5)).byteLength === 5);
   * ```
   *
   * @example Sealing into a reused buffer
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const cipher = await FrameCipher.create({
   *   send: new Uint8Array(32).fill(1),
   *   recv: new Uint8Array(32).fill(2),
   * });
   * const out = new Uint8Array(8);
   * const sealer = cipher.sealer(5);
   * console.assert(sealer.update(new Uint8Array(5), out).buffer === out.buffer);
   * ```
   *
   * @param piece The next plaintext bytes.
   * @param into Where to write their ciphertext: at least `piece.byteLength` bytes, `piece`
   *   itself or a buffer that does not overlap it. Without it, a new buffer is made.
   * @returns Their ciphertext: the first `piece.byteLength` bytes of `into`, or a new buffer.
   * @throws {RangeError} when the pieces add up to more than the announced length, or `into`
   *   is too short.
   */
  update(piece: Uint8Array, into?: Uint8Array): Uint8Array;
  /**
   * Ends the frame.
   *
   * @example
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const cipher = await FrameCipher.create({
   *   send: new Uint8Array(32).fill(1),
   *   recv: new Uint8Array(32).fill(2),
   * });
   * const sealer = cipher.sealer(0);
   * console.assert(sealer.final().byteLength === 16);
   * ```
   *
   * @param into Where to write the tag (at least 16 bytes). Without it, a new buffer is made.
   * @returns The 16-byte tag, sent after the ciphertext.
   * @throws {RangeError} when fewer bytes than announced were sealed, or the frame already ended.
   */
  final(into?: Uint8Array): Uint8Array;
}

/**
 * Opens one frame piece by piece, decrypting in place: made by {@linkcode FrameCipher.opener}
 * for a frame of known length. The plaintext is not authentic until `final` returns: a caller
 * must drop all of it when `final` throws.
 */
export interface FrameOpener {
  /**
   * Decrypts the frame's next ciphertext bytes (the tag excluded) in place.
   *
   * @example
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const k1 = new Uint8Array(32).fill(1);
   * const k2 = new Uint8Array(32).fill(2);
   * const a = await FrameCipher.create({ send: k1, recv: k2 });
   * const b = await FrameCipher.create({ send: k2, recv: k1 });
   * const frame = await a.seal(new Uint8Array([1, 2, 3]));
   * const opener = b.opener(frame.byteLength);
   * opener.update(frame.subarray(0, 3));
   * opener.final(frame.subarray(3));
   * console.assert(frame.subarray(0, 3).join() === "1,2,3");
   * ```
   *
   * @param piece The next ciphertext bytes; overwritten with their plaintext.
   * @returns `piece`, now holding plaintext.
   * @throws {RangeError} when the pieces add up to more than the ciphertext's length.
   */
  update(piece: Uint8Array): Uint8Array;
  /**
   * Checks the tag: the frame is authentic only when this returns.
   *
   * @example
   * ```ts ignore
   * opener.final(frame.subarray(frame.byteLength - 16));
   * ```
   *
   * @param tag The frame's last 16 bytes.
   * @throws {NetworkError} `ERR_DECRYPT` when authentication fails (the cipher then refuses
   * every later frame).
   * @throws {RangeError} when fewer ciphertext bytes than announced were given, or the frame
   * already ended.
   */
  final(tag: Uint8Array): void;
}

/**
 * Seals and opens application frames with ChaCha20-Poly1305. Each direction has its own key
 * and a frame counter starting at 0 that is the nonce, so a nonce is never reused under a key.
 * Frames travel on an ordered QUIC stream, so `open` expects exactly the next counter: a
 * replayed, dropped, reordered, truncated or tampered frame fails authentication.
 *
 * The counter is taken when `seal`/`open`/`sealer`/`opener` is called: issue calls in stream
 * order and write sealed frames in call order.
 *
 * @example Sealing on one side, opening on the other
 * ```ts
 * import { FrameCipher } from "@cretoai/network/handshake";
 *
 * const a = crypto.getRandomValues(new Uint8Array(32));
 * const b = crypto.getRandomValues(new Uint8Array(32));
 * const dialer = await FrameCipher.create({ send: a, recv: b });
 * const listener = await FrameCipher.create({ send: b, recv: a });
 * const frame = await dialer.seal(new TextEncoder().encode("hi"));
 * console.assert(new TextDecoder().decode(await listener.open(frame)) === "hi");
 * ```
 */
export class FrameCipher {
  /** The QUIC stream this cipher's frames travel on; it is part of every nonce. */
  readonly streamId: number;
  readonly #keys: ConnectionKeys;
  #sendCounter = 0;
  #recvCounter = 0;
  #failed: NetworkError | undefined;

  private constructor(keys: ConnectionKeys, streamId: number) {
    this.#keys = keys;
    this.streamId = streamId;
  }

  /**
   * Makes a cipher from a handshake's session keys.
   *
   * @example
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const key = crypto.getRandomValues(new Uint8Array(32));
   * const cipher = await FrameCipher.create({ send: key, recv: key.slice().reverse() });
   * console.assert(cipher.sentFrames === 0);
   * ```
   *
   * @param keys `result.keys` of a handshake run with `pqEncryption` on.
   * @returns The cipher.
   * @throws {NetworkError} `ERR_INVALID_KEY` when a key is not 32 bytes.
   * @throws {InvalidConfigError} `ERR_INVALID_CONFIG` when both keys are equal (a caller that
   * swapped or duplicated them would otherwise reuse nonces across directions).
   */
  static create(keys: SessionKeys): Promise<FrameCipher> {
    try {
      checkKey("send", keys?.send);
      checkKey("recv", keys?.recv);
      if (keys.send.every((b, i) => b === keys.recv[i])) {
        throw new InvalidConfigError("keys", "two different keys for send and recv", "equal keys");
      }
      return Promise.resolve(
        new FrameCipher({
          sealing: defaultAead().forKey(keys.send.slice(), true),
          opening: defaultAead().forKey(keys.recv.slice(), false),
          sentBlocks: 0,
          receivedBlocks: 0,
        }, 0),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Makes a cipher for another QUIC stream of the same connection: same keys and the same
   * per-key block budget, its own counters, and the stream id in every nonce. Nonces therefore
   * never repeat under a key as long as each stream id gets one cipher per side, which QUIC
   * guarantees by never reusing a stream id; a frame moved to another stream fails to open.
   *
   * @example One cipher per stream
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const k1 = new Uint8Array(32).fill(1);
   * const k2 = new Uint8Array(32).fill(2);
   * const a = await FrameCipher.create({ send: k1, recv: k2 });
   * const b = await FrameCipher.create({ send: k2, recv: k1 });
   * const frame = await a.forStream(4).seal(new Uint8Array([1]));
   * console.assert((await b.forStream(4).open(frame))[0] === 1);
   * ```
   *
   * @param streamId The QUIC stream id, an integer from 0 to 2^53-1.
   * @returns A cipher with counters at 0.
   * @throws {RangeError} when `streamId` is out of range.
   */
  forStream(streamId: number): FrameCipher {
    if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) {
      throw new RangeError(
        `Cannot bind a cipher to a stream as 'streamId' must be an integer from 0 to 2^53-1: ` +
          `current value is ${describe(streamId)}`,
      );
    }
    return new FrameCipher(this.#keys, streamId);
  }

  /**
   * Number of frames sealed so far (the next send counter).
   *
   * @example
   * ```ts ignore
   * await cipher.seal(new Uint8Array(1));
   * console.assert(cipher.sentFrames === 1);
   * ```
   */
  get sentFrames(): number {
    return this.#sendCounter;
  }

  /**
   * Number of frames opened so far (the next expected receive counter).
   *
   * @example
   * ```ts ignore
   * await cipher.open(frame);
   * console.assert(cipher.receivedFrames === 1);
   * ```
   */
  get receivedFrames(): number {
    return this.#recvCounter;
  }

  /**
   * Encrypts and authenticates the next outgoing frame.
   *
   * @example
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const cipher = await FrameCipher.create({
   *   send: new Uint8Array(32).fill(1),
   *   recv: new Uint8Array(32).fill(2),
   * });
   * const frame = await cipher.seal(new Uint8Array(100));
   * console.assert(frame.byteLength === 116);
   * ```
   *
   * @param plaintext The frame's bytes.
   * @param aad Extra data to authenticate but not encrypt; the opener must pass the same.
   * @returns ciphertext || 16-byte tag.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` once the send key has processed 2^34 blocks
   * (256 GiB): reconnect for fresh keys.
   */
  seal(plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    try {
      const length = plaintext.byteLength;
      const sealer = this.sealer(length, aad);
      const sealed = new Uint8Array(length + TAG_LENGTH);
      sealer.update(plaintext, sealed);
      sealer.final(sealed.subarray(length));
      return Promise.resolve(sealed);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Starts sealing the next outgoing frame, for a writer that sends it in pieces: the frame's
   * nonce and its share of the key's budget are taken now.
   *
   * @example A frame sealed in two pieces opens whole
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const k1 = new Uint8Array(32).fill(1);
   * const k2 = new Uint8Array(32).fill(2);
   * const a = await FrameCipher.create({ send: k1, recv: k2 });
   * const b = await FrameCipher.create({ send: k2, recv: k1 });
   * const sealer = a.sealer(6);
   * const parts = [sealer.update(new Uint8Array([1, 2])), sealer.update(new Uint8Array([3, 4, 5, 6]))];
   * const frame = new Uint8Array([...parts[0], ...parts[1], ...sealer.final()]);
   * console.assert((await b.open(frame)).join() === "1,2,3,4,5,6");
   * ```
   *
   * @param plaintextBytes The frame's length, without the tag.
   * @param aad Extra data to authenticate but not encrypt; the opener must pass the same.
   * @returns The sealer of this frame.
   * @throws {RangeError} when `plaintextBytes` is not an integer from 0 to 2^32-1.
   * @throws {NetworkError} `ERR_LIMIT_EXCEEDED` once the send key has processed 2^34 blocks.
   */
  sealer(plaintextBytes: number, aad?: Uint8Array): FrameSealer {
    checkFrameBytes("seal a frame", "plaintextBytes", plaintextBytes);
    const used = this.#keys.sentBlocks + blocks(plaintextBytes);
    if (used > MAX_BLOCKS_PER_KEY) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `Cannot seal frame ${this.#sendCounter}: the send key reached its limit of 2^34 ` +
          `blocks (256 GiB); reconnect to agree fresh keys`,
      );
    }
    this.#keys.sentBlocks = used;
    const counter = this.#sendCounter++;
    const frame = this.#keys.sealing.start(nonce(this.streamId, counter));
    if (aad !== undefined) frame.aad(aad, plaintextBytes);
    let left = plaintextBytes;
    let ended = false;
    return {
      update(piece: Uint8Array, into?: Uint8Array): Uint8Array {
        const length = piece.byteLength;
        if (ended || length > left) {
          throw new RangeError(
            `Cannot seal ${length} more bytes of frame ${counter}: ${
              ended ? "it ended" : `${left} of its ${plaintextBytes} bytes are left`
            }`,
          );
        }
        if (into !== undefined && into.byteLength < length) {
          throw new RangeError(
            `Cannot seal ${length} bytes of frame ${counter} into ${into.byteLength} bytes`,
          );
        }
        left -= length;
        const out = into === undefined ? new Uint8Array(length) : into.subarray(0, length);
        frame.update(piece, out);
        return out;
      },
      final(into?: Uint8Array): Uint8Array {
        if (ended || left > 0) {
          throw new RangeError(
            `Cannot end frame ${counter}: ${
              ended ? "it already ended" : `${left} of its ${plaintextBytes} bytes were not sealed`
            }`,
          );
        }
        if (into !== undefined && into.byteLength < TAG_LENGTH) {
          throw new RangeError(
            `Cannot write the tag of frame ${counter} into ${into.byteLength} bytes`,
          );
        }
        ended = true;
        const tag = into === undefined ? new Uint8Array(TAG_LENGTH) : into.subarray(0, TAG_LENGTH);
        frame.seal(tag);
        return tag;
      },
    };
  }

  /**
   * Authenticates and decrypts the next incoming frame. After one failure every later call
   * fails too: the stream can no longer be trusted and must be closed.
   *
   * @example Tampering is detected
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   * import { NetworkError } from "@cretoai/network";
   *
   * const k1 = new Uint8Array(32).fill(1);
   * const k2 = new Uint8Array(32).fill(2);
   * const a = await FrameCipher.create({ send: k1, recv: k2 });
   * const b = await FrameCipher.create({ send: k2, recv: k1 });
   * const frame = await a.seal(new Uint8Array([1, 2, 3]));
   * frame[0] ^= 1;
   * try {
   *   await b.open(frame);
   * } catch (e) {
   *   console.assert(e instanceof NetworkError && e.code === "ERR_DECRYPT");
   * }
   * ```
   *
   * @param frame ciphertext || tag, as made by the peer's `seal`; left unchanged.
   * @param aad The extra data the sealer authenticated, if any.
   * @returns The plaintext.
   * @throws {NetworkError} `ERR_DECRYPT` when the frame is shorter than a tag, fails
   * authentication (tampered, replayed, reordered, dropped predecessor, wrong key), or an
   * earlier frame failed; `ERR_LIMIT_EXCEEDED` past the receive key's limit.
   */
  open(frame: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    try {
      if (!(frame instanceof Uint8Array)) {
        this.#checkUsable();
        throw this.#poison(
          `Cannot open frame ${this.#recvCounter}: it must be at least ${TAG_LENGTH} bytes ` +
            `(the tag): current value is ${describe(frame)}`,
        );
      }
      const opener = this.opener(frame.byteLength, aad);
      const length = frame.byteLength - TAG_LENGTH;
      const plaintext = frame.slice(0, length);
      opener.update(plaintext);
      opener.final(frame.subarray(length));
      return Promise.resolve(plaintext);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Starts opening the next incoming frame, for a reader that gets it in pieces: the frame's
   * nonce and its share of the key's budget are taken now. Nothing of the frame may be used
   * before the opener's `final` returned.
   *
   * @example A frame opened in place as its pieces arrive
   * ```ts
   * import { FrameCipher } from "@cretoai/network/handshake";
   *
   * const k1 = new Uint8Array(32).fill(1);
   * const k2 = new Uint8Array(32).fill(2);
   * const a = await FrameCipher.create({ send: k1, recv: k2 });
   * const b = await FrameCipher.create({ send: k2, recv: k1 });
   * const frame = await a.seal(new Uint8Array([1, 2, 3, 4]));
   * const opener = b.opener(frame.byteLength);
   * opener.update(frame.subarray(0, 1));
   * opener.update(frame.subarray(1, 4));
   * opener.final(frame.subarray(4));
   * console.assert(frame.subarray(0, 4).join() === "1,2,3,4");
   * ```
   *
   * @param sealedBytes The frame's length: ciphertext and tag.
   * @param aad The extra data the sealer authenticated, if any.
   * @returns The opener of this frame.
   * @throws {NetworkError} `ERR_DECRYPT` when `sealedBytes` is shorter than a tag or an earlier
   * frame failed; `ERR_LIMIT_EXCEEDED` past the receive key's limit.
   * @throws {RangeError} when `sealedBytes` is not an integer from 0 to 2^32-1.
   */
  opener(sealedBytes: number, aad?: Uint8Array): FrameOpener {
    this.#checkUsable();
    checkFrameBytes("open a frame", "sealedBytes", sealedBytes);
    const counter = this.#recvCounter;
    if (sealedBytes < TAG_LENGTH) {
      throw this.#poison(
        `Cannot open frame ${counter}: it must be at least ${TAG_LENGTH} bytes (the tag): ` +
          `current value is ${sealedBytes} bytes`,
      );
    }
    const length = sealedBytes - TAG_LENGTH;
    const used = this.#keys.receivedBlocks + blocks(length);
    if (used > MAX_BLOCKS_PER_KEY) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `Cannot open frame ${counter}: the receive key reached its limit of 2^34 blocks`,
      );
    }
    this.#keys.receivedBlocks = used;
    this.#recvCounter++;
    const frame: AeadFrame = this.#keys.opening.start(nonce(this.streamId, counter));
    if (aad !== undefined) frame.aad(aad, length);
    let left = length;
    let ended = false;
    const poison = (message: string) => this.#poison(message);
    return {
      update(piece: Uint8Array): Uint8Array {
        if (ended || piece.byteLength > left) {
          throw new RangeError(
            `Cannot open ${piece.byteLength} more bytes of frame ${counter}: ${
              ended ? "it ended" : `${left} of its ${length} ciphertext bytes are left`
            }`,
          );
        }
        left -= piece.byteLength;
        frame.update(piece, piece);
        return piece;
      },
      final(tag: Uint8Array): void {
        if (ended || left > 0) {
          throw new RangeError(
            `Cannot end frame ${counter}: ${
              ended ? "it already ended" : `${left} of its ${length} ciphertext bytes are missing`
            }`,
          );
        }
        ended = true;
        // Always called: it ends the frame's cipher state, whatever the tag's length.
        if (!frame.open(tag)) {
          throw poison(
            `Cannot open frame ${counter} (${sealedBytes} bytes): authentication failed; ` +
              `it was tampered with, replayed, reordered, truncated or sealed with another key`,
          );
        }
      },
    };
  }

  #checkUsable(): void {
    if (this.#failed !== undefined) {
      throw new NetworkError(
        "ERR_DECRYPT",
        `Cannot open frame: an earlier frame failed (${this.#failed.message})`,
      );
    }
  }

  #poison(message: string): NetworkError {
    this.#failed = new NetworkError("ERR_DECRYPT", message);
    return this.#failed;
  }
}
