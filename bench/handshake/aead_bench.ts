/**
 * The AEADs Deno offers natively, for 256-byte frames (latency per operation), 64 KiB frames
 * (the piece the transport seals at a time) and 1 MiB frames (a vertex): ChaCha20-Poly1305
 * and AES-256-GCM through `node:crypto` (synchronous), AES-256-GCM through WebCrypto
 * (asynchronous), ChaCha20-Poly1305 through the system's OpenSSL with FFI (into a given buffer,
 * when `libcrypto.so.3` loads), and `FrameCipher` (counter and limit bookkeeping included, on
 * whichever of the two ChaCha20-Poly1305 backends it picked). These numbers chose
 * `FrameCipher`'s AEAD (docs/handshake.md).
 *
 * Run: `deno bench bench/handshake/aead_bench.ts`
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { FrameCipher } from "../../src/handshake/mod.ts";
import { libcryptoAead } from "../../src/handshake/_aead.ts";

const key = new Uint8Array(32).fill(7);
const nonce = new Uint8Array(12);
const webKey = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
const sender = await FrameCipher.create({ send: key, recv: new Uint8Array(32) });
const libcrypto = libcryptoAead();

type NodeAead = "chacha20-poly1305" | "aes-256-gcm";

function nodeOpen(algorithm: NodeAead, ciphertext: Uint8Array, tag: Uint8Array): void {
  const decipher = createDecipheriv(algorithm as "chacha20-poly1305", key, nonce, {
    authTagLength: 16,
  });
  decipher.update(ciphertext);
  decipher.setAuthTag(tag);
  decipher.final();
}

const sizes = [["256 B", 256], ["64 KiB", 64 * 1024], ["1 MiB", 1024 * 1024]] as const;
for (const [label, size] of sizes) {
  const plaintext = new Uint8Array(size).fill(1);
  const n = size >= 1024 * 1024 ? 50 : size > 1024 ? 1000 : 10000;
  const sealed: Record<NodeAead, { ciphertext: Uint8Array; tag: Uint8Array }> = {
    "chacha20-poly1305": sealWithTag("chacha20-poly1305", plaintext),
    "aes-256-gcm": sealWithTag("aes-256-gcm", plaintext),
  };
  const web = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, webKey, plaintext),
  );

  const seal = `seal ${label}`;
  Deno.bench(
    `node:crypto chacha20-poly1305 seal ${label}`,
    { group: seal, baseline: true, n },
    () => {
      sealWithTag("chacha20-poly1305", plaintext);
    },
  );
  Deno.bench(`node:crypto aes-256-gcm seal ${label}`, { group: seal, n }, () => {
    sealWithTag("aes-256-gcm", plaintext);
  });
  Deno.bench(`webcrypto aes-256-gcm seal ${label}`, { group: seal, n }, async () => {
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, webKey, plaintext);
  });
  Deno.bench(`FrameCipher.seal ${label}`, { group: seal, n }, async () => {
    await sender.seal(plaintext);
  });
  const out = new Uint8Array(size + 16);
  if (libcrypto !== undefined) {
    Deno.bench(
      `libcrypto chacha20-poly1305 seal ${label}, into a buffer`,
      { group: seal, n },
      () => {
        const frame = libcrypto.start(key, nonce, true);
        frame.update(plaintext, out);
        frame.seal(out.subarray(size));
      },
    );
  }

  const open = `open ${label}`;
  for (const algorithm of ["chacha20-poly1305", "aes-256-gcm"] as const) {
    const { ciphertext, tag } = sealed[algorithm];
    Deno.bench(`node:crypto ${algorithm} open ${label}`, {
      group: open,
      baseline: algorithm === "chacha20-poly1305",
      n,
    }, () => nodeOpen(algorithm, ciphertext, tag));
  }
  Deno.bench(`webcrypto aes-256-gcm open ${label}`, { group: open, n }, async () => {
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, webKey, web);
  });
  if (libcrypto !== undefined) {
    const { ciphertext, tag } = sealed["chacha20-poly1305"];
    Deno.bench(
      `libcrypto chacha20-poly1305 open ${label}, into a buffer`,
      { group: open, n },
      () => {
        const frame = libcrypto.start(key, nonce, false);
        frame.update(ciphertext, out);
        if (!frame.open(tag)) throw new Error("libcrypto refused a frame node:crypto sealed");
      },
    );
  }
}

function sealWithTag(algorithm: NodeAead, plaintext: Uint8Array) {
  const cipher = createCipheriv(algorithm as "chacha20-poly1305", key, nonce, {
    authTagLength: 16,
  });
  const ciphertext = cipher.update(plaintext);
  cipher.final();
  return { ciphertext, tag: cipher.getAuthTag() };
}
