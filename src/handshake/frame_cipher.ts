/**
 * AEAD sealing of application frames with the handshake's session keys.
 *
 * AES-256-GCM via WebCrypto. `bench/handshake/aead_bench.ts` measured it against the synchronous
 * `@noble/ciphers` implementation: WebCrypto was as fast for 256-byte frames (noble pays for its
 * key schedule on every call) and 8-14x faster for 64 KiB frames, so one asynchronous
 * implementation serves every size and there is no second nonce path to keep in step.
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { describe, InvalidConfigError, NetworkError } from "../errors.ts";
import type { SessionKeys } from "./handshake.ts";

/**
 * Frames up to this size are sealed and opened synchronously with `node:crypto` (native AES-GCM
 * in Deno, without an asynchronous op), larger ones with WebCrypto. Both are AES-256-GCM with
 * the same key and nonce, so the choice is invisible on the wire. Measured on this machine
 * (docs/handshake.md): 256 bytes 11 µs against 22-31 µs, 16 KiB about even, 1 MiB WebCrypto 2-4x
 * faster.
 */
const SYNC_MAX_BYTES = 4096;
/** GCM authentication tag length in bytes; a sealed frame is ciphertext || tag. */
const TAG_LENGTH = 16;
const KEY_LENGTH = 32;
/**
 * Blocks one key may process before it must be retired: 2^34 16-byte blocks (256 GiB), inside
 * the AES-GCM confidentiality bound TLS 1.3 uses (RFC 8446 section 5.5). Counting blocks, not
 * bytes, also covers floods of empty frames.
 */
const MAX_BLOCKS_PER_KEY = 2 ** 34;

/**
 * Largest stream id a cipher can be bound to: the nonce has 7 bytes for it, a number holds 53
 * bits exactly. QUIC stream ids go to 2^62, but a connection would need 2^51 streams to get here.
 */
const MAX_STREAM_ID = Number.MAX_SAFE_INTEGER;

/**
 * 96-bit GCM nonce: the stream id as a big-endian u56, then the frame counter as a big-endian
 * u40. The counter cannot outgrow 40 bits: every frame uses at least one of the key's 2^34
 * blocks. For stream 0 this is the same as four zero bytes and a u64 counter.
 */
function nonce(streamId: number, counter: number): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  view.setUint32(0, Math.floor(streamId / 2 ** 24));
  view.setUint32(4, (streamId % 2 ** 24) * 2 ** 8 + Math.floor(counter / 2 ** 32));
  view.setUint32(8, counter >>> 0);
  return iv;
}

/** Blocks processed under each key, shared by every stream's cipher made from the same keys. */
interface KeyUsage {
  send: number;
  recv: number;
}

/** WebCrypto refuses views of a SharedArrayBuffer; copy only in that rare case. */
function source(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes);
}

/** Blocks GCM processes for a frame: its payload blocks plus the tag/length block. */
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

/**
 * A raw key and its WebCrypto import, made on first use: small frames never need it, and
 * importing would put two asynchronous operations on every connection set-up.
 */
class AesKey {
  readonly raw: Uint8Array;
  readonly #usage: "encrypt" | "decrypt";
  #imported: Promise<CryptoKey> | undefined;

  constructor(raw: Uint8Array, usage: "encrypt" | "decrypt") {
    this.raw = raw.slice();
    this.#usage = usage;
  }

  get web(): Promise<CryptoKey> {
    this.#imported ??= crypto.subtle.importKey("raw", new Uint8Array(this.raw), "AES-GCM", false, [
      this.#usage,
    ]);
    return this.#imported;
  }
}

/**
 * Seals and opens application frames with AES-256-GCM. Each direction has its own key and a
 * frame counter starting at 0 that is the nonce, so a nonce is never reused under a key. Frames
 * travel on an ordered QUIC stream, so `open` expects exactly the next counter: a replayed,
 * dropped, reordered, truncated or tampered frame fails authentication.
 *
 * The counter is taken when `seal`/`open` is called, before the first await: issue calls in
 * stream order (awaiting them concurrently is fine) and write sealed frames in call order.
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
  readonly #sendKey: AesKey;
  readonly #recvKey: AesKey;
  readonly #usage: KeyUsage;
  #sendCounter = 0;
  #recvCounter = 0;
  #failed: NetworkError | undefined;

  private constructor(sendKey: AesKey, recvKey: AesKey, usage: KeyUsage, streamId: number) {
    this.#sendKey = sendKey;
    this.#recvKey = recvKey;
    this.#usage = usage;
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
      const send = new AesKey(keys.send, "encrypt");
      const recv = new AesKey(keys.recv, "decrypt");
      return Promise.resolve(new FrameCipher(send, recv, { send: 0, recv: 0 }, 0));
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
    return new FrameCipher(this.#sendKey, this.#recvKey, this.#usage, streamId);
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
  async seal(plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    const used = this.#usage.send + blocks(plaintext.byteLength);
    if (used > MAX_BLOCKS_PER_KEY) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `Cannot seal frame ${this.#sendCounter}: the send key reached its limit of 2^34 ` +
          `AES blocks (256 GiB); reconnect to agree fresh keys`,
      );
    }
    this.#usage.send = used;
    const iv = nonce(this.streamId, this.#sendCounter++);
    if (plaintext.byteLength <= SYNC_MAX_BYTES) {
      const cipher = createCipheriv("aes-256-gcm", this.#sendKey.raw, iv, {
        authTagLength: TAG_LENGTH,
      });
      if (aad !== undefined) cipher.setAAD(aad);
      const body = cipher.update(plaintext);
      cipher.final();
      const sealed = new Uint8Array(body.byteLength + TAG_LENGTH);
      sealed.set(body);
      sealed.set(cipher.getAuthTag(), body.byteLength);
      return sealed;
    }
    const params: AesGcmParams = { name: "AES-GCM", iv, tagLength: TAG_LENGTH * 8 };
    if (aad !== undefined) params.additionalData = source(aad);
    return new Uint8Array(
      await crypto.subtle.encrypt(params, await this.#sendKey.web, source(plaintext)),
    );
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
   * @param frame ciphertext || tag, as made by the peer's `seal`.
   * @param aad The extra data the sealer authenticated, if any.
   * @returns The plaintext.
   * @throws {NetworkError} `ERR_DECRYPT` when the frame is shorter than a tag, fails
   * authentication (tampered, replayed, reordered, dropped predecessor, wrong key), or an
   * earlier frame failed; `ERR_LIMIT_EXCEEDED` past the receive key's limit.
   */
  async open(frame: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    if (this.#failed !== undefined) {
      throw new NetworkError(
        "ERR_DECRYPT",
        `Cannot open frame: an earlier frame failed (${this.#failed.message})`,
      );
    }
    const counter = this.#recvCounter;
    if (!(frame instanceof Uint8Array) || frame.byteLength < TAG_LENGTH) {
      throw this.#poison(
        `Cannot open frame ${counter}: it must be at least ${TAG_LENGTH} bytes (the tag): ` +
          `current value is ${describe(frame)}`,
      );
    }
    const used = this.#usage.recv + blocks(frame.byteLength - TAG_LENGTH);
    if (used > MAX_BLOCKS_PER_KEY) {
      throw new NetworkError(
        "ERR_LIMIT_EXCEEDED",
        `Cannot open frame ${counter}: the receive key reached its limit of 2^34 AES blocks`,
      );
    }
    this.#usage.recv = used;
    this.#recvCounter++;
    const iv = nonce(this.streamId, counter);
    try {
      if (frame.byteLength - TAG_LENGTH <= SYNC_MAX_BYTES) {
        const length = frame.byteLength - TAG_LENGTH;
        const decipher = createDecipheriv("aes-256-gcm", this.#recvKey.raw, iv, {
          authTagLength: TAG_LENGTH,
        });
        if (aad !== undefined) decipher.setAAD(aad);
        decipher.setAuthTag(frame.subarray(length));
        const body = decipher.update(frame.subarray(0, length));
        decipher.final(); // throws when authentication fails
        return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
      }
      const params: AesGcmParams = { name: "AES-GCM", iv, tagLength: TAG_LENGTH * 8 };
      if (aad !== undefined) params.additionalData = source(aad);
      return new Uint8Array(
        await crypto.subtle.decrypt(params, await this.#recvKey.web, source(frame)),
      );
    } catch {
      throw this.#poison(
        `Cannot open frame ${counter} (${frame.byteLength} bytes): authentication failed; ` +
          `it was tampered with, replayed, reordered, truncated or sealed with another key`,
      );
    }
  }

  #poison(message: string): NetworkError {
    this.#failed = new NetworkError("ERR_DECRYPT", message);
    return this.#failed;
  }
}
