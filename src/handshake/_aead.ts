/**
 * ChaCha20-Poly1305 (RFC 8439) one frame at a time, for {@linkcode FrameCipher}: through the
 * system's OpenSSL (`libcrypto.so.3`) with Deno FFI where that is allowed and passes a
 * known-answer check, else through `node:crypto`. Both produce the same bytes.
 *
 * Why a second backend: `node:crypto`'s `update` returns a new buffer per call, and a fresh
 * 64 KiB buffer cost about as much CPU as the cipher itself in the bulk benchmark (page faults,
 * then garbage collection; docs/performance.md, "Throughput"). OpenSSL's `EVP_CipherUpdate`
 * writes into a buffer the caller gives, the input itself included, and its ChaCha20 uses the
 * CPU's vector units: 0.27 ms of CPU per MiB against 0.76-1.5 ms for `node:crypto` on this
 * project's machine, 2 µs against 6 µs for a 300-byte frame.
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["cretoai", "handshake"]);

/** Poly1305 tag length in bytes. */
export const TAG_BYTES = 16;

/** One frame's cipher state, sealing or opening. Used once, in this order. */
export interface AeadFrame {
  /** Authenticates `aad` of a frame of `plaintextBytes`; only before the first update. */
  aad(aad: Uint8Array, plaintextBytes: number): void;
  /**
   * Encrypts (sealing) or decrypts (opening) `input` into the first `input.byteLength` bytes
   * of `output`, which may be `input` itself but must not overlap it otherwise.
   */
  update(input: Uint8Array, output: Uint8Array): void;
  /** Sealing: ends the frame and writes its 16-byte tag into `tag`. */
  seal(tag: Uint8Array): void;
  /** Opening: ends the frame; whether `tag` authenticates it. */
  open(tag: Uint8Array): boolean;
}

/**
 * Frames under one key and direction. A context is set up for the key once and frames reuse it
 * one after the other; a frame started while another is still open gets its own.
 */
export interface AeadKey {
  /** Starts a frame under the key with `nonce` (12 bytes, read before this returns). */
  start(nonce: Uint8Array): AeadFrame;
}

/** Makes {@linkcode AeadFrame}s. */
export interface Aead {
  /** Which implementation runs. */
  readonly name: "libcrypto" | "node:crypto";
  /**
   * Starts a frame.
   *
   * @param key 32 bytes.
   * @param nonce 12 bytes.
   * @param seal True to seal, false to open.
   */
  start(key: Uint8Array, nonce: Uint8Array, seal: boolean): AeadFrame;
  /**
   * Frames under `key`, sealing or opening, for many frames in turn.
   *
   * @param key 32 bytes, read at each start (not copied).
   * @param seal True to seal, false to open.
   */
  forKey(key: Uint8Array, seal: boolean): AeadKey;
}

const ALGORITHM = "chacha20-poly1305";
/**
 * Most bytes given to `node:crypto` in one call. Each call returns a fresh buffer of its input's
 * size: 64 KiB ones come from the allocator's reused memory, a 1 MiB one from fresh pages, which
 * cost more here than the cipher (1-2 ms of page faults per MiB under load).
 */
const NODE_PIECE_BYTES = 65536;

/** `node:crypto`'s `update` in pieces of at most 64 KiB, each copied to `output`. */
function updateInPieces(
  cipher: { update(data: Uint8Array): Uint8Array },
  input: Uint8Array,
  output: Uint8Array,
): void {
  for (let at = 0; at < input.byteLength; at += NODE_PIECE_BYTES) {
    output.set(cipher.update(input.subarray(at, at + NODE_PIECE_BYTES)), at);
  }
}

/** The `node:crypto` backend: every `update` allocates its output, which is then copied. */
export const nodeAead: Aead = {
  name: "node:crypto",
  start(key, nonce, seal) {
    const options = { authTagLength: TAG_BYTES };
    if (seal) {
      const cipher = createCipheriv(ALGORITHM, key, nonce, options);
      return {
        aad: (aad, plaintextLength) => void cipher.setAAD(aad, { plaintextLength }),
        update: (input, output) => updateInPieces(cipher, input, output),
        seal(tag) {
          cipher.final();
          tag.set(cipher.getAuthTag());
        },
        open: () => false,
      };
    }
    const decipher = createDecipheriv(ALGORITHM, key, nonce, options);
    return {
      aad: (aad, plaintextLength) => void decipher.setAAD(aad, { plaintextLength }),
      update: (input, output) => output.set(decipher.update(input)),
      seal: () => {
        throw new Error("Cannot seal with an opening frame");
      },
      open(tag) {
        try {
          decipher.setAuthTag(tag);
          decipher.final(); // throws when authentication fails
          return true;
        } catch {
          return false;
        }
      },
    };
  },
  forKey(key, seal) {
    return { start: (nonce) => nodeAead.start(key, nonce, seal) };
  },
};

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_CIPHER_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_CipherFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;
type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** Most bytes one `EVP_CipherUpdate` takes: its length is a C int. */
const MAX_UPDATE_BYTES = 2 ** 30;
/** Ended frames' contexts kept for the next one-off frames (early data, a busy key's frame). */
const SPARE_CONTEXTS = 8;

/**
 * The libcrypto backend. Each frame holds an `EVP_CIPHER_CTX` from its start to its end: its
 * key's context when that is free (set up for the key once, then only given the nonce, as
 * OpenSSL's own TLS 1.3 records do), else one of its own; a frame abandoned before its end (its
 * stream failed) gives its own context back when collected, a key's context goes when the key
 * is collected.
 *
 * Setting a context up for the cipher is what costs (OpenSSL 3 makes the provider's state anew):
 * 8-14 µs per context in a reconnect's handshake, against under 1 µs in a loop, where OpenSSL's
 * code and tables stay in the CPU's caches. So a context is set up once: the cipher is fetched
 * once (not looked up again at every set-up, as the legacy `EVP_chacha20_poly1305()` is), and the
 * context of an ended one-off frame serves the next one, given only its key and nonce.
 */
class LibcryptoAead implements Aead {
  readonly name = "libcrypto";
  readonly #c: Libcrypto;
  readonly #cipher: Deno.PointerObject;
  // Written by OpenSSL and never read: the byte counts (a stream cipher's are the input's).
  readonly #written = new Uint8Array(4);
  readonly #none = new Uint8Array(TAG_BYTES);
  readonly #abandoned: FinalizationRegistry<Deno.PointerObject>;
  readonly #keysGone: FinalizationRegistry<{ ctx: Deno.PointerObject | null }>;
  readonly #spare: Deno.PointerObject[] = [];

  constructor(c: Libcrypto, cipher: Deno.PointerObject) {
    this.#c = c;
    this.#cipher = cipher;
    this.#abandoned = new FinalizationRegistry((ctx) => c.EVP_CIPHER_CTX_free(ctx));
    this.#keysGone = new FinalizationRegistry((held) => c.EVP_CIPHER_CTX_free(held.ctx));
  }

  start(key: Uint8Array, nonce: Uint8Array, seal: boolean): AeadFrame {
    const c = this.#c;
    const ctx = this.#newContext(key, nonce, seal);
    const frame = this.#frame(ctx, () => {
      this.#abandoned.unregister(frame);
      if (this.#spare.length < SPARE_CONTEXTS) this.#spare.push(ctx);
      else c.EVP_CIPHER_CTX_free(ctx);
    });
    this.#abandoned.register(frame, ctx, frame);
    return frame;
  }

  forKey(key: Uint8Array, seal: boolean): AeadKey {
    const c = this.#c;
    const held: { ctx: Deno.PointerObject | null } = { ctx: null };
    let busy = false;
    const forKey: AeadKey = {
      start: (nonce) => {
        if (busy) return this.start(key, nonce, seal);
        if (held.ctx === null) {
          held.ctx = this.#newContext(key, nonce, seal);
          this.#keysGone.register(forKey, held);
        } else if (c.EVP_CipherInit_ex(held.ctx, null, null, null, nonce, seal ? 1 : 0) !== 1) {
          throw new Error("libcrypto refused the frame's nonce");
        }
        busy = true;
        return this.#frame(held.ctx, () => {
          busy = false;
          return forKey; // holds the key, and so its context, for as long as the frame lives
        });
      },
    };
    return forKey;
  }

  #newContext(key: Uint8Array, nonce: Uint8Array, seal: boolean): Deno.PointerObject {
    const c = this.#c;
    const spare = this.#spare.pop();
    if (spare !== undefined) {
      if (c.EVP_CipherInit_ex(spare, null, null, key, nonce, seal ? 1 : 0) === 1) return spare;
      c.EVP_CIPHER_CTX_free(spare);
    }
    const ctx = c.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("libcrypto could not allocate a cipher context");
    if (c.EVP_CipherInit_ex(ctx, this.#cipher, null, key, nonce, seal ? 1 : 0) !== 1) {
      c.EVP_CIPHER_CTX_free(ctx);
      throw new Error("libcrypto refused to start ChaCha20-Poly1305");
    }
    return ctx;
  }

  /** A frame on `context`, which it hands to `ended` when it ends. */
  #frame(context: Deno.PointerObject, ended: () => unknown): AeadFrame {
    const c = this.#c;
    const written = this.#written;
    const none = this.#none;
    let ctx: Deno.PointerObject | null = context;
    const live = (): Deno.PointerObject => {
      if (ctx === null) throw new Error("Cannot use a frame that ended");
      return ctx;
    };
    const end = (): void => {
      ctx = null;
      ended();
    };
    return {
      aad(aad) {
        if (c.EVP_CipherUpdate(live(), null, written, aad, aad.byteLength) !== 1) {
          throw new Error("libcrypto refused the additional data");
        }
      },
      update(input, output) {
        const at = live();
        // OpenSSL writes input.byteLength bytes at output's start: a shorter output would be a
        // write past its end in native memory, so it never reaches the library.
        if (output.byteLength < input.byteLength) {
          throw new RangeError(
            `Cannot process ${input.byteLength} bytes into an output of ${output.byteLength} bytes`,
          );
        }
        for (let done = 0; done < input.byteLength; done += MAX_UPDATE_BYTES) {
          const length = Math.min(MAX_UPDATE_BYTES, input.byteLength - done);
          const from = input.subarray(done, done + length);
          if (c.EVP_CipherUpdate(at, output.subarray(done), written, from, length) !== 1) {
            throw new Error("libcrypto refused to process a frame piece");
          }
        }
      },
      seal(tag) {
        const at = live();
        try {
          if (tag.byteLength < TAG_BYTES) {
            throw new RangeError(
              `Cannot write a ${TAG_BYTES}-byte tag into ${tag.byteLength} bytes`,
            );
          }
          if (
            c.EVP_CipherFinal_ex(at, none, written) !== 1 ||
            c.EVP_CIPHER_CTX_ctrl(at, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, tag) !== 1
          ) {
            throw new Error("libcrypto refused to end a sealed frame");
          }
        } finally {
          end();
        }
      },
      open(tag) {
        const at = live();
        try {
          return tag.byteLength === TAG_BYTES &&
            c.EVP_CIPHER_CTX_ctrl(at, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) === 1 &&
            c.EVP_CipherFinal_ex(at, none, written) === 1;
        } finally {
          end();
        }
      },
    };
  }
}

/**
 * Seals and opens a few frames with `candidate` and checks the bytes against `node:crypto`:
 * frames in turn under one key (each with another nonce, after a failed open too) as the
 * transport makes them, and one-off frames on their own (sealing, then opening on the context
 * the sealing one ended with).
 */
function agreesWithNode(candidate: Aead): boolean {
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const aad = new Uint8Array([1, 2, 3]);
  const sealing = candidate.forKey(key, true);
  const opening = candidate.forKey(key, false);
  for (const length of [0, 1, 63, 64, 1000]) {
    const nonce = new Uint8Array(12).map((_, i) => 255 - i - length);
    const plaintext = new Uint8Array(length).map((_, i) => (i * 31) & 255);
    const sealed = (frame: AeadFrame) => {
      const out = new Uint8Array(length + TAG_BYTES);
      frame.aad(aad, length);
      const split = length >> 1;
      frame.update(plaintext.subarray(0, split), out);
      frame.update(plaintext.subarray(split), out.subarray(split));
      frame.seal(out.subarray(length));
      return out;
    };
    const expected = sealed(nodeAead.start(key, nonce, true));
    const got = sealed(sealing.start(nonce));
    if (!got.every((b, i) => b === expected[i])) return false;
    if (!sealed(candidate.start(key, nonce, true)).every((b, i) => b === got[i])) return false;
    for (const tamper of [true, false]) {
      for (const start of [() => opening.start(nonce), () => candidate.start(key, nonce, false)]) {
        const copy = got.slice();
        if (tamper) copy[length] ^= 1;
        const frame = start();
        frame.aad(aad, length);
        frame.update(copy.subarray(0, length), copy); // in place
        const ok = frame.open(copy.subarray(length));
        if (ok === tamper || !copy.subarray(0, length).every((b, i) => b === plaintext[i])) {
          return false;
        }
      }
    }
  }
  return true;
}

/**
 * The libcrypto backend when it can run here: Linux, `--allow-ffi` granted without a path
 * list (the quiche addon alone may be allowed), `libcrypto.so.3` present, and its output equal
 * to `node:crypto`'s. Otherwise undefined.
 */
export function libcryptoAead(): Aead | undefined {
  if (Deno.build.os !== "linux" || typeof Deno.dlopen !== "function") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  } catch {
    return undefined;
  }
  let c: Libcrypto;
  try {
    c = Deno.dlopen("libcrypto.so.3", SYMBOLS).symbols;
  } catch (e) {
    log.debug("libcrypto.so.3 not loadable, frames use node:crypto: {error}", {
      error: (e as Error).message,
    });
    return undefined;
  }
  // Fetched once; the legacy object would be looked up in the providers at every set-up.
  const cipher = c.EVP_CIPHER_fetch(null, new TextEncoder().encode("ChaCha20-Poly1305\0"), null) ??
    c.EVP_chacha20_poly1305();
  if (cipher === null) return undefined;
  const aead = new LibcryptoAead(c, cipher);
  try {
    if (agreesWithNode(aead)) return aead;
  } catch {
    // counted as disagreeing
  }
  log.warn("libcrypto's ChaCha20-Poly1305 disagreed with node:crypto; frames use node:crypto");
  return undefined;
}

let chosen: Aead | undefined;

/** The backend frames use: {@linkcode libcryptoAead} where it runs, else `node:crypto`. */
export function defaultAead(): Aead {
  return chosen ??= libcryptoAead() ?? nodeAead;
}
