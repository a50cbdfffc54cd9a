/**
 * A client refused at its first Initial (`admit` returning a reason) hears CONNECTION_REFUSED
 * and the reason from a stateless Initial packet, against quiche's own client over real UDP.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { writeInitialClose } from "../../src/quic/_initial_close.ts";
import { ConnectionClosedError, type NetworkError } from "../../src/errors.ts";
import { pair, within } from "./_util.ts";

const CONNECTION_REFUSED = 0x2;

Deno.test("initial close: a client refused before TLS hears why, and the listener keeps nothing", async () => {
  const reason = "Too many new handshakes from 127.0.0.1: refused a moment ago, retry later";
  await using p = await pair({ admit: () => reason });
  const refused = await within(
    p.client.connect(p.server.localAddr, { timeoutMs: 60_000 }).then(
      () => undefined,
      (e: Error) => e,
    ),
    10_000,
    "the refused connect",
  );
  assert.ok(refused instanceof ConnectionClosedError, String(refused));
  assert.deepEqual([refused.isApp, refused.errorCode, refused.reason], [
    false,
    CONNECTION_REFUSED,
    reason,
  ]);
  const stats = p.server.stats();
  // The Retry proved the address; then no connection, no TLS.
  assert.deepEqual(
    [stats.retriesSent, stats.connectionsAccepted, stats.connectionsRefused, stats.openConnections],
    [1, 0, 1, 0],
  );
});

Deno.test("initial close: refusals are rate-limited per address, then dropped unanswered", async () => {
  await using p = await pair({ admit: () => "no" });
  // Six clients of one address at once: a burst of two answers, then one a second.
  const startedAt = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: 6 }, () =>
      p.client.connect(p.server.localAddr, { timeoutMs: 1500 }).then(
        () => "connected",
        (e: NetworkError) => e.code,
      )),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  const answered = outcomes.filter((o) => o === "ERR_CONNECTION_CLOSED").length;
  const unanswered = outcomes.filter((o) => o === "ERR_CONNECT_TIMEOUT").length;
  assert.equal(answered + unanswered, 6, outcomes.join());
  // The bucket's bound, whatever the machine's speed: the burst plus one a second since.
  assert.ok(answered >= 2 && answered <= 2 + Math.ceil(seconds), `${answered} in ${seconds} s`);
  assert.ok(unanswered >= 1, outcomes.join());
  // Unanswered clients send their Initial again before they give up: refused again.
  assert.ok(p.server.stats().connectionsRefused >= 6);
});

Deno.test("initial close: the packet opens with RFC 9001's server Initial keys (Appendix A)", () => {
  // RFC 9001 A.1: the keys of a client destination connection id 0x8394c8f03e515708.
  const clientDcid = hex("8394c8f03e515708");
  const key = hex("cf3a5331653c364c88f0f379b6067e37");
  const iv = hex("0ac1493ca1905853b0bba03e");
  const hp = hex("c206b8d9b9f0f37644430b490eeaa314");
  const clientScid = hex("0011223344");
  const serverScid = hex("f067a5502a4262b5");
  const out = new Uint8Array(1500);
  const length = writeInitialClose({
    version: 1,
    clientDcid,
    clientScid,
    serverScid,
    errorCode: CONNECTION_REFUSED,
    reason: "busy",
  }, out);
  const packet = out.slice(0, length);
  // Long header, Initial, version 1, the client's SCID as destination, ours as source, no token.
  assert.equal(packet[0] & 0xf0, 0xc0);
  assert.deepEqual([...packet.subarray(1, 5)], [0, 0, 0, 1]);
  assert.deepEqual(packet.subarray(6, 11), clientScid);
  assert.deepEqual(packet.subarray(12, 20), serverScid);
  assert.equal(packet[20], 0);
  const payloadLength = ((packet[21] & 0x3f) << 8) | packet[22];
  const pnOffset = 23;
  assert.equal(pnOffset + payloadLength, length);
  // Header protection off (RFC 9001 5.4.1), then the AEAD (5.3) with the packet number 0.
  const mask = createCipheriv("aes-128-ecb", hp, null).setAutoPadding(false)
    .update(packet.subarray(pnOffset + 4, pnOffset + 20));
  packet[0] ^= mask[0] & 0x0f;
  const pnLength = (packet[0] & 0x03) + 1;
  for (let i = 0; i < pnLength; i++) packet[pnOffset + i] ^= mask[1 + i];
  assert.deepEqual(
    [...packet.subarray(pnOffset, pnOffset + pnLength)],
    new Array(pnLength).fill(0),
  );
  const decipher = createDecipheriv("aes-128-gcm", key, iv);
  decipher.setAAD(packet.subarray(0, pnOffset + pnLength));
  decipher.setAuthTag(packet.subarray(length - 16));
  const payload = new Uint8Array([
    ...decipher.update(packet.subarray(pnOffset + pnLength, length - 16)),
    ...decipher.final(),
  ]);
  // CONNECTION_CLOSE (0x1c), CONNECTION_REFUSED, frame type 0, reason "busy".
  assert.deepEqual([...payload], [0x1c, 0x02, 0x00, 0x04, ...new TextEncoder().encode("busy")]);
});

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g)!, (byte) => parseInt(byte, 16));
}
