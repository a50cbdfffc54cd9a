/**
 * A node's long-term identity: a hybrid signing key made of Ed25519 and ML-DSA-65.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { getLogger } from "@logtape/logtape";
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { NetworkError } from "../errors.ts";
import { ByteReader, ByteWriter } from "../_bytes.ts";
import {
  checkKeyLength,
  ED25519_SEED_LENGTH,
  invalidKey,
  ML_DSA65_SEED_LENGTH,
  signatureInput,
  verifyHybrid,
} from "./_keys.ts";
import type { PeerId } from "./peer_id.ts";
import { PublicIdentity } from "./public_identity.ts";

/** A signature by both keys of an identity; valid only if both parts verify. */
export interface HybridSignature {
  /** Ed25519 signature, 64 bytes. */
  ed25519: Uint8Array;
  /** ML-DSA-65 signature, 3309 bytes. */
  mlDsa65: Uint8Array;
}

/** The secret seeds an identity is generated from. */
export interface IdentitySeeds {
  /** Ed25519 secret key (RFC 8032 seed), 32 bytes. */
  ed25519Seed: Uint8Array;
  /** ML-DSA-65 key-generation seed (FIPS 204 `xi`), 32 bytes. */
  mlDsa65Seed: Uint8Array;
}

/** Options of {@linkcode Identity.save}. */
export interface SaveIdentityOptions {
  /**
   * Replace an existing file. When `false`, saving over an existing file fails, so that a
   * node's identity is never lost by accident.
   *
   * @default {false}
   */
  overwrite?: boolean;
}

const log = getLogger(["cretoai", "identity"]);

/** First bytes of an identity file, so that a wrong file is recognised as such. */
const FILE_MAGIC = new TextEncoder().encode("CRID");
const FILE_VERSION = 1;

/**
 * A node's long-term identity. Signs with Ed25519 and ML-DSA-65 at once, so that a signature
 * stays unforgeable as long as either algorithm is unbroken: Ed25519 against a flaw in the young
 * lattice scheme, ML-DSA against a quantum computer.
 *
 * The secret is kept as two 32-byte seeds (FIPS 204 allows the seed as ML-DSA's private key);
 * the expanded keys are derived when the identity is made or loaded.
 *
 * @example Signing and verifying
 * ```ts
 * import { Identity } from "@cretoai/network";
 *
 * const identity = Identity.generate();
 * const msg = new TextEncoder().encode("hello");
 * const sig = identity.sign(msg);
 * console.assert(Identity.verify(identity.publicIdentity, msg, sig));
 * ```
 */
export class Identity {
  /** The public keys. */
  readonly publicIdentity: PublicIdentity;
  readonly #edSeed: Uint8Array;
  readonly #dsaSeed: Uint8Array;
  readonly #dsaSecret: Uint8Array;

  private constructor(seeds: IdentitySeeds) {
    this.#edSeed = seeds.ed25519Seed.slice();
    this.#dsaSeed = seeds.mlDsa65Seed.slice();
    const dsa = ml_dsa65.keygen(this.#dsaSeed);
    this.#dsaSecret = dsa.secretKey;
    this.publicIdentity = new PublicIdentity({
      ed25519: ed25519.getPublicKey(this.#edSeed),
      mlDsa65: dsa.publicKey,
    });
  }

  /**
   * Generates a new identity from the system's secure random source.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const a = Identity.generate();
   * console.assert(!a.peerId.equals(Identity.generate().peerId));
   * ```
   *
   * @returns A fresh identity.
   */
  static generate(): Identity {
    return new Identity({
      ed25519Seed: crypto.getRandomValues(new Uint8Array(ED25519_SEED_LENGTH)),
      mlDsa65Seed: crypto.getRandomValues(new Uint8Array(ML_DSA65_SEED_LENGTH)),
    });
  }

  /**
   * Rebuilds an identity from its two seeds (deterministic: the same seeds give the same keys).
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const seeds = {
   *   ed25519Seed: crypto.getRandomValues(new Uint8Array(32)),
   *   mlDsa65Seed: crypto.getRandomValues(new Uint8Array(32)),
   * };
   * console.assert(Identity.fromSeeds(seeds).peerId.equals(Identity.fromSeeds(seeds).peerId));
   * ```
   *
   * @param seeds The seeds; they are copied.
   * @returns The identity.
   * @throws {NetworkError} `ERR_INVALID_KEY` naming the seed, the expected and the seen size.
   */
  static fromSeeds(seeds: IdentitySeeds): Identity {
    checkKeyLength("Ed25519 seed", seeds?.ed25519Seed, ED25519_SEED_LENGTH);
    checkKeyLength("ML-DSA-65 seed", seeds?.mlDsa65Seed, ML_DSA65_SEED_LENGTH);
    return new Identity(seeds);
  }

  /**
   * The peer id of this identity.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * console.log(`I am ${Identity.generate().peerId}`);
   * ```
   */
  get peerId(): PeerId {
    return this.publicIdentity.peerId;
  }

  /**
   * Signs a message with both keys.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const sig = Identity.generate().sign(new Uint8Array([1, 2, 3]));
   * console.assert(sig.ed25519.byteLength === 64 && sig.mlDsa65.byteLength === 3309);
   * ```
   *
   * @param msg The message.
   * @returns The two signatures.
   */
  sign(msg: Uint8Array): HybridSignature {
    const input = signatureInput(msg);
    return {
      ed25519: ed25519.sign(input, this.#edSeed),
      mlDsa65: ml_dsa65.sign(input, this.#dsaSecret),
    };
  }

  /**
   * Verifies a hybrid signature: `true` only if the Ed25519 and the ML-DSA-65 signature both
   * verify. Malformed signatures (wrong sizes, garbage) give `false` and never throw.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const signer = Identity.generate();
   * const msg = new Uint8Array([1]);
   * const sig = signer.sign(msg);
   * console.assert(Identity.verify(signer.publicIdentity, msg, sig));
   * console.assert(!Identity.verify(signer.publicIdentity, new Uint8Array([2]), sig));
   * ```
   *
   * @param publicKeys The signer's public keys.
   * @param msg The message.
   * @param sig The signature.
   * @returns Whether both halves verify.
   */
  static verify(publicKeys: PublicIdentity, msg: Uint8Array, sig: HybridSignature): boolean {
    return verifyHybrid(publicKeys, msg, sig);
  }

  /**
   * Writes the identity to a file readable only by its owner (mode 0600 on Unix).
   *
   * The file appears whole or not at all: the data goes to `<path>.tmp` (created with mode
   * 0600), is flushed to disk, and then takes the name, by a hard link when an existing file
   * must not be replaced and by a rename otherwise. A symbolic link at `path` is refused rather
   * than followed or replaced. Permissions: `--allow-read=<path>,<path>.tmp` and
   * `--allow-write=<path>,<path>.tmp`.
   *
   * File layout: `"CRID" | version u8 (=1) | len u16 | Ed25519 seed | len u16 | ML-DSA-65 seed |
   * len u16 | public identity`. The public keys are stored so that {@linkcode Identity.load}
   * detects a corrupted file instead of silently becoming another peer.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const path = await Deno.makeTempFile();
   * await Deno.remove(path);
   * const identity = Identity.generate();
   * await identity.save(path);
   * console.assert((await Identity.load(path)).peerId.equals(identity.peerId));
   * await Deno.remove(path);
   * ```
   *
   * @param path Where to write.
   * @param options See {@linkcode SaveIdentityOptions}.
   * @returns Resolves when the file is written.
   * @throws {Deno.errors.AlreadyExists} When the file exists and `overwrite` is `false`.
   * @throws {NetworkError} `ERR_INVALID_KEY` when `path` is a symbolic link.
   */
  async save(path: string | URL, options: SaveIdentityOptions = {}): Promise<void> {
    const { overwrite = false } = options;
    const data = new ByteWriter()
      .bytes(FILE_MAGIC)
      .u8(FILE_VERSION)
      .vec16(this.#edSeed)
      .vec16(this.#dsaSeed)
      .vec16(this.publicIdentity.encode())
      .finish();
    const target = path instanceof URL ? fileURLToPath(path) : path;
    const existing = await Deno.lstat(target).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    if (existing?.isSymlink) {
      throw new NetworkError(
        "ERR_INVALID_KEY",
        `Cannot save the identity to ${target}: it is a symbolic link, which is not followed; ` +
          "save to the file it points to, or remove the link",
      );
    }
    // One fixed name beside the file, so narrowed permissions can list it; a leftover of an
    // interrupted save is ours to replace (removing a link there removes the link only).
    const temp = `${target}.tmp`;
    await Deno.remove(temp).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    try {
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      try {
        for (let at = 0; at < data.byteLength;) at += await file.write(data.subarray(at));
        await file.sync();
      } finally {
        file.close();
      }
      // link(2) never replaces an existing file: without `overwrite` no identity is lost.
      if (overwrite) await Deno.rename(temp, target);
      else await Deno.link(temp, target);
    } finally {
      await Deno.remove(temp).catch(() => {}); // gone already after a rename
    }
  }

  /**
   * Reads an identity written by {@linkcode Identity.save}.
   *
   * @example
   * ```ts
   * import { Identity } from "@cretoai/network";
   *
   * const path = await Deno.makeTempFile();
   * await Identity.generate().save(path, { overwrite: true });
   * const identity = await Identity.load(path);
   * console.assert(identity.peerId.toString().length === 52);
   * await Deno.remove(path);
   * ```
   *
   * A file that its group or others may read or write is loaded, with a warning logged under
   * `["cretoai", "identity"]`: its secret may have leaked.
   *
   * @param path The file.
   * @returns The identity.
   * @throws {NetworkError} `ERR_INVALID_KEY` when the file is not an identity file, is truncated,
   * holds seeds of the wrong size, or its public keys do not match its seeds.
   * @throws {Deno.errors.NotFound} When the file does not exist.
   */
  static async load(path: string | URL): Promise<Identity> {
    const data = await Deno.readFile(path);
    const { mode } = await Deno.stat(path);
    if (mode !== null && (mode & 0o077) !== 0) {
      log.warn(
        "Identity file {path} has mode {mode}: its group or others may read or write the " +
          "secret key; chmod 600 it",
        { path: String(path), mode: (mode & 0o777).toString(8).padStart(4, "0") },
      );
    }
    const r = new ByteReader(data, `identity file ${String(path)}`, invalidKey);
    const magic = r.bytes(FILE_MAGIC.byteLength, "magic");
    if (magic.some((b, i) => b !== FILE_MAGIC[i])) r.fail('it does not start with "CRID"');
    const version = r.u8("version");
    if (version !== FILE_VERSION) {
      r.fail(`unsupported version ${version}, this code reads version ${FILE_VERSION}`);
    }
    const ed25519Seed = r.vec16("Ed25519 seed");
    const mlDsa65Seed = r.vec16("ML-DSA-65 seed");
    const stored = PublicIdentity.decode(r.vec16("public identity"));
    r.end();
    const identity = Identity.fromSeeds({ ed25519Seed, mlDsa65Seed });
    if (!identity.peerId.equals(stored.peerId)) {
      throw new NetworkError(
        "ERR_INVALID_KEY",
        `Corrupt identity file ${String(path)}: its seeds give peer id ${identity.peerId}, ` +
          `but it records ${stored.peerId}`,
      );
    }
    return identity;
  }
}
