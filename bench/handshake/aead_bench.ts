/**
 * AES-256-GCM through WebCrypto (async, native) against `@noble/ciphers` (sync, JavaScript), for
 * 256-byte frames (latency per operation) and 64 KiB frames (throughput). These numbers chose
 * the implementation of `FrameCipher`; its own cases show what callers get, counter and limit
 * bookkeeping included.
 *
 * Run: `deno bench bench/handshake/aead_bench.ts`
 *
 * @module
 */

import { gcm } from "@noble/ciphers/aes.js";
import { FrameCipher } from "../../src/handshake/mod.ts";

const key = new Uint8Array(32).fill(7);
const nonce = new Uint8Array(12);
const webKey = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
const sender = await FrameCipher.create({ send: key, recv: new Uint8Array(32) });

for (const [label, size] of [["256 B", 256], ["64 KiB", 64 * 1024]] as const) {
  const plaintext = new Uint8Array(size).fill(1);
  const sealed = gcm(key, nonce).encrypt(plaintext);
  const n = size > 1024 ? 2000 : 20000;

  Deno.bench(`webcrypto seal ${label}`, { group: `seal ${label}`, baseline: true, n }, async () => {
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, webKey, plaintext);
  });
  Deno.bench(`noble seal ${label}`, { group: `seal ${label}`, n }, () => {
    gcm(key, nonce).encrypt(plaintext);
  });
  Deno.bench(`FrameCipher.seal ${label}`, { group: `seal ${label}`, n }, async () => {
    await sender.seal(plaintext);
  });
  Deno.bench(`webcrypto open ${label}`, { group: `open ${label}`, baseline: true, n }, async () => {
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, webKey, sealed);
  });
  Deno.bench(`noble open ${label}`, { group: `open ${label}`, n }, () => {
    gcm(key, nonce).decrypt(sealed);
  });
}
