import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import {
  HandshakeDialer,
  HandshakeError,
  HandshakeListener,
  hashCertificate,
  IDENTITY_BINDING_OID,
  NodeCredentials,
  PeerCertificateCache,
} from "../../src/handshake/mod.ts";
import { keySchedule } from "../../src/handshake/_transcript.ts";
import { readCertificate } from "../../src/handshake/_x509.ts";
import { generateCertificate } from "../../src/quic/certificate.ts";
import { Identity } from "../../src/identity/mod.ts";
import {
  ALPN,
  dialerIdentity,
  dialerNode,
  listenerIdentity,
  listenerNode,
  pairOptions,
  run,
  seededRandom,
} from "./_util.ts";

// Offsets in the v3 layouts (docs/handshake.md): type, version, mode, nonce (32), ML-KEM
// ciphertext (2 + 1088); the ServerHello's confirmation (32) follows.
const NONCE_AT = 3;
const KEM_AT = NONCE_AT + 32 + 2;
const CONFIRMATION_AT = KEM_AT + 1088;

function assertNotEquals(a: unknown, b: unknown): void {
  assert(JSON.stringify(a) !== JSON.stringify(b), "expected the values to differ");
}

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const out = bytes.slice();
  out[at] ^= 0x01;
  return out;
}

/** Asserts that `fn` fails with a HandshakeError of `code` whose message contains `includes`. */
async function assertFails(
  fn: () => Promise<unknown>,
  includes = "",
  code = "ERR_HANDSHAKE_FAILED",
): Promise<HandshakeError> {
  const err = await assertRejects(fn, HandshakeError, includes);
  assertEquals(err.code, code, err.message);
  return err;
}

/** A third node: a relay or an impostor with a valid identity of its own. */
const relayNode = await NodeCredentials.create(Identity.generate());

Deno.test("handshake with pqEncryption: both sides authenticated, keys agree crosswise", async () => {
  const o = pairOptions(true);
  const r = await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  assert(r.dialer.peerId.equals(listenerIdentity.peerId));
  assert(r.listener.peerId.equals(dialerIdentity.peerId));
  assertEquals(r.dialer.peerPublicKeys.encode(), listenerIdentity.publicIdentity.encode());
  assertEquals(r.listener.peerPublicKeys.encode(), dialerIdentity.publicIdentity.encode());
  assertEquals(r.dialer.transcriptHash, r.listener.transcriptHash);
  assertEquals(r.dialer.transcriptHash.byteLength, 32);
  const dk = r.dialer.keys!, lk = r.listener.keys!;
  assertEquals(dk.send, lk.recv);
  assertEquals(dk.recv, lk.send);
  assertEquals(dk.send.byteLength, 32);
  assert(!dk.send.every((b, i) => b === dk.recv[i]), "directions must have distinct keys");
  assertEquals(
    [r.clientHello.byteLength, r.serverHello.byteLength, r.clientFinish.byteLength],
    [1128, 1157, 33],
  );
});

Deno.test("handshake without pqEncryption: authenticated by the same ML-KEM exchange, no keys", async () => {
  const o = pairOptions(false);
  const r = await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  assert(r.dialer.peerId.equals(listenerIdentity.peerId));
  assert(r.listener.peerId.equals(dialerIdentity.peerId));
  assertEquals(r.dialer.keys, undefined);
  assertEquals(r.listener.keys, undefined);
  assertEquals(r.dialer.transcriptHash, r.listener.transcriptHash);
  assertEquals(r.clientHello[2], 0);
});

Deno.test("no signature on either side per connection: the identities signed their bindings once", async () => {
  const sign = Identity.prototype.sign;
  let signatures = 0;
  Identity.prototype.sign = function (msg: Uint8Array) {
    signatures++;
    return sign.call(this, msg);
  };
  try {
    for (const pq of [true, false]) {
      const o = pairOptions(pq);
      await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
    }
  } finally {
    Identity.prototype.sign = sign;
  }
  assertEquals(signatures, 0);
});

Deno.test("the session keys are HKDF of both ML-KEM secrets: recomputed from the decapsulations", async () => {
  const o = pairOptions(true);
  const r = await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  const toListener = await listenerNode.decapsulate(
    r.clientHello.subarray(KEM_AT, CONFIRMATION_AT),
  );
  const toDialer = await dialerNode.decapsulate(r.serverHello.subarray(KEM_AT, CONFIRMATION_AT));
  const k = keySchedule(toListener, toDialer, r.dialer.transcriptHash);
  assertEquals(r.dialer.keys!.send, k.dialerToListener);
  assertEquals(r.dialer.keys!.recv, k.listenerToDialer);
  assertEquals(r.serverHello.subarray(CONFIRMATION_AT), k.listenerConfirmation);
  assertEquals(r.clientFinish.subarray(1), k.dialerConfirmation);
  // Without either secret (the transcript and everything sent in clear known) the keys differ.
  for (const [a, b] of [[new Uint8Array(32), toDialer], [toListener, new Uint8Array(32)]]) {
    assertNotEquals(
      keySchedule(a, b, r.dialer.transcriptHash).dialerToListener,
      k.dialerToListener,
    );
  }
});

Deno.test("every connection has its own transcript and keys, even with the same nonces", async () => {
  const a1 = await run(
    new HandshakeDialer(pairOptions(true, "a").dialer),
    new HandshakeListener(pairOptions(true, "a").listener),
  );
  const a2 = await run(
    new HandshakeDialer(pairOptions(true, "a").dialer),
    new HandshakeListener(pairOptions(true, "a").listener),
  );
  assertEquals(
    a1.clientHello.subarray(NONCE_AT, KEM_AT - 2),
    a2.clientHello.subarray(NONCE_AT, KEM_AT - 2),
  );
  assertNotEquals(a1.dialer.transcriptHash, a2.dialer.transcriptHash);
  assertNotEquals(a1.dialer.keys, a2.dialer.keys);
});

Deno.test("expected peer id: accepted when it matches", async () => {
  const o = pairOptions(true);
  const r = await run(
    new HandshakeDialer({ ...o.dialer, expectedPeerId: listenerIdentity.peerId }),
    new HandshakeListener(o.listener),
  );
  assert(r.dialer.peerId.equals(listenerIdentity.peerId));
});

Deno.test("expected peer id: another listener fails with ERR_PEER_ID_MISMATCH before anything is sent", async () => {
  const o = pairOptions(true);
  const wanted = Identity.generate().peerId;
  const dialer = new HandshakeDialer({ ...o.dialer, expectedPeerId: wanted });
  const err = await assertFails(() => dialer.start(), "Peer id mismatch", "ERR_PEER_ID_MISMATCH");
  assert(err.message.includes(wanted.toString()), err.message);
  assert(err.message.includes(listenerIdentity.peerId.toString()), err.message);
  // The listener learns it was refused, without learning whom the dialer wanted.
  const listener = new HandshakeListener(o.listener);
  const seen = await assertFails(() => listener.receive(err.alert!), "The dialer aborted");
  assert(!seen.message.includes(wanted.toString()));
  assertEquals(seen.alert, undefined);
});

Deno.test("mode mismatch fails on the listener with a clear error that reaches the dialer", async () => {
  const dialer = new HandshakeDialer(pairOptions(true).dialer);
  const listener = new HandshakeListener(pairOptions(false).listener);
  const err = await assertFails(
    async () => listener.receive(await dialer.start()),
    "mode mismatch: this side has pqEncryption off, the dialer has pqEncryption on",
  );
  await assertFails(
    () => dialer.receive(err.alert!),
    "The listener aborted the handshake: Handshake mode",
  );
  const d2 = new HandshakeDialer(pairOptions(false).dialer);
  const l2 = new HandshakeListener(pairOptions(true).listener);
  const e2 = await assertFails(
    async () => l2.receive(await d2.start()),
    "pqEncryption on, the dialer has",
  );
  assert(e2.alert !== undefined);
});

Deno.test("PQ cannot be stripped: a mode byte rewritten in both directions breaks the confirmation", async () => {
  // An attacker who could rewrite handshake bytes (it would have to break TLS first) turns
  // the dialer's mode 1 into 0 for a listener with pqEncryption off, and the answer back to 1.
  const dialer = new HandshakeDialer(pairOptions(true).dialer);
  const listener = new HandshakeListener(pairOptions(false).listener);
  const hello = await dialer.start();
  const downgraded = Uint8Array.of(...hello.subarray(0, 2), 0, ...hello.subarray(3));
  const serverHello = (await listener.receive(downgraded)).send!;
  assertEquals(serverHello[2], 0);
  // Passed on as it is, the dialer refuses the mode...
  await assertFails(() => new HandshakeDialer(pairOptions(true).dialer).receive(serverHello), "");
  await assertFails(() => dialer.receive(serverHello), "mode mismatch");
  // ...and rewritten back to mode 1, the transcripts differ and so do the confirmations.
  const dialer2 = new HandshakeDialer(pairOptions(true).dialer);
  const listener2 = new HandshakeListener(pairOptions(false).listener);
  const hello2 = await dialer2.start();
  const sh2 =
    (await listener2.receive(Uint8Array.of(...hello2.subarray(0, 2), 0, ...hello2.subarray(3))))
      .send!;
  const upgraded = Uint8Array.of(...sh2.subarray(0, 2), 1, ...sh2.subarray(3));
  await assertFails(() => dialer2.receive(upgraded), "Invalid listener key confirmation");
});

Deno.test("tampered ServerHello fields are refused by the dialer", async () => {
  const positions: [string, number, string][] = [
    ["nonce", NONCE_AT + 5, "Invalid listener key confirmation"],
    ["ML-KEM ciphertext", KEM_AT + 500, "Invalid listener key confirmation"],
    ["confirmation", CONFIRMATION_AT + 10, "Invalid listener key confirmation"],
    ["version", 1, "unsupported version 5"],
    ["mode", 2, "mode"],
    ["a length field", KEM_AT - 2, "truncated in 'ML-KEM ciphertext'"],
  ];
  for (const [field, at, why] of positions) {
    const o = pairOptions(true);
    const dialer = new HandshakeDialer(o.dialer);
    const listener = new HandshakeListener(o.listener);
    const serverHello = (await listener.receive(await dialer.start())).send!;
    const err = await assertFails(() => dialer.receive(flip(serverHello, at)), why);
    assert(err.alert !== undefined, `no alert for tampered ${field}`);
  }
});

Deno.test("tampered ClientHello fields make the handshake fail", async () => {
  for (const at of [NONCE_AT, KEM_AT + 7]) {
    const o = pairOptions(true);
    const dialer = new HandshakeDialer(o.dialer);
    const listener = new HandshakeListener(o.listener);
    const serverHello = (await listener.receive(flip(await dialer.start(), at))).send!;
    await assertFails(() => dialer.receive(serverHello), "Invalid listener key confirmation");
  }
});

Deno.test("tampered ClientFinish is refused by the listener", async () => {
  for (const at of [1, 32]) {
    const o = pairOptions(true);
    const dialer = new HandshakeDialer(o.dialer);
    const listener = new HandshakeListener(o.listener);
    const serverHello = (await listener.receive(await dialer.start())).send!;
    const clientFinish = (await dialer.receive(serverHello)).send!;
    await assertFails(
      () => listener.receive(flip(clientFinish, at)),
      "Invalid dialer key confirmation",
    );
  }
});

Deno.test("relay: a relay with a valid identity of its own, terminating TLS towards both, is refused", async () => {
  // The relay shows each side its own certificate (it has no other side's TLS key).
  for (const pq of [true, false]) {
    const o = pairOptions(pq);
    const dialer = new HandshakeDialer({ ...o.dialer, peerCertificate: relayNode.certificate.der });
    const listener = new HandshakeListener({
      ...o.listener,
      peerCertificate: relayNode.certificate.der,
    });
    const serverHello = (await listener.receive(await dialer.start())).send!;
    await assertFails(() => dialer.receive(serverHello), "Invalid listener key confirmation");
  }
  // Only the listener's view differs (relay towards the listener): still refused by the dialer.
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener({
    ...o.listener,
    peerCertificate: relayNode.certificate.der,
  });
  await assertFails(
    async () => dialer.receive((await listener.receive(await dialer.start())).send!),
    "confirmation",
  );
  // Only the dialer's view differs: the dialer's confirmation fails on the listener.
  const d2 = new HandshakeDialer({ ...o.dialer, peerCertificate: relayNode.certificate.der });
  const l2 = new HandshakeListener(o.listener);
  const sh = (await l2.receive(await d2.start())).send!;
  await assertFails(() => d2.receive(sh), "Invalid listener key confirmation");
});

Deno.test("certificates: no binding, a binding copied onto another key, a forged binding: refused", async () => {
  const binding = readCertificate(listenerNode.certificate.der, IDENTITY_BINDING_OID).extension!;
  const forged = binding.slice();
  forged[forged.byteLength - 1] ^= 1; // in the ML-DSA-65 signature
  const cases: [Uint8Array, string][] = [
    [(await generateCertificate()).der, "carries no identity binding"],
    [
      (await generateCertificate({ extensions: [{ oid: IDENTITY_BINDING_OID, value: binding }] }))
        .der,
      `Invalid identity binding for ${listenerIdentity.peerId}`,
    ],
    [
      (await generateCertificate({ extensions: [{ oid: IDENTITY_BINDING_OID, value: forged }] }))
        .der,
      "Invalid identity binding",
    ],
    [listenerNode.certificate.der.subarray(0, 500), "Malformed peer certificate"],
    [Uint8Array.of(0x30, 0x84, 1, 2, 3, 4), "unsupported length form"],
    [
      (await generateCertificate({
        extensions: [{ oid: IDENTITY_BINDING_OID, value: binding.subarray(0, 100) }],
      })).der,
      "Malformed identity binding",
    ],
  ];
  for (const [der, why] of cases) {
    const dialer = new HandshakeDialer({ ...pairOptions(true).dialer, peerCertificate: der });
    await assertFails(() => dialer.start(), why);
    const listener = new HandshakeListener({ ...pairOptions(true).listener, peerCertificate: der });
    const hello = await new HandshakeDialer(pairOptions(true).dialer).start();
    await assertFails(() => listener.receive(hello), why);
  }
});

Deno.test("a different ALPN on each side fails the handshake", async () => {
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener({ ...o.listener, alpn: "other/1" });
  await assertFails(
    async () => dialer.receive((await listener.receive(await dialer.start())).send!),
    "confirmation",
  );
});

Deno.test("replay: a recorded ServerHello fails on a new connection", async () => {
  for (const pq of [true, false]) {
    const recorded = await run(
      new HandshakeDialer(pairOptions(pq, "old").dialer),
      new HandshakeListener(pairOptions(pq, "old").listener),
    );
    const dialer = new HandshakeDialer(pairOptions(pq, "old").dialer); // even the same nonce
    await dialer.start();
    await assertFails(
      () => dialer.receive(recorded.serverHello),
      "Invalid listener key confirmation",
    );
  }
});

Deno.test("replay: a recorded ClientHello + ClientFinish fails on a new connection", async () => {
  for (const pq of [true, false]) {
    const recorded = await run(
      new HandshakeDialer(pairOptions(pq, "old").dialer),
      new HandshakeListener(pairOptions(pq, "old").listener),
    );
    const listener = new HandshakeListener(pairOptions(pq, "old").listener);
    const { send } = await listener.receive(recorded.clientHello);
    assert(send !== undefined);
    await assertFails(
      () => listener.receive(recorded.clientFinish),
      "Invalid dialer key confirmation",
    );
  }
});

Deno.test("a listener's confirmation cannot be reflected as the dialer's", async () => {
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener(o.listener);
  const serverHello = (await listener.receive(await dialer.start())).send!;
  const reflected = Uint8Array.of(3, ...serverHello.subarray(CONFIRMATION_AT));
  await assertFails(() => listener.receive(reflected), "Invalid dialer key confirmation");
});

Deno.test("truncated messages are refused with a typed error, never a crash", async () => {
  const o = pairOptions(true);
  const r = await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  const cuts = (n: number) => [0, 1, 2, 3, 4, 5, 36, 100, n - 33, n - 2, n - 1];
  for (const cut of cuts(r.clientHello.byteLength)) {
    const listener = new HandshakeListener(pairOptions(true).listener);
    await assertFails(() => listener.receive(r.clientHello.subarray(0, cut)), cut ? "" : "empty");
  }
  for (const cut of cuts(r.serverHello.byteLength)) {
    const dialer = new HandshakeDialer(pairOptions(true).dialer);
    await dialer.start();
    await assertFails(() => dialer.receive(r.serverHello.subarray(0, cut)), cut ? "truncated" : "");
  }
  for (const cut of [1, 2, 20, r.clientFinish.byteLength - 1]) {
    const listener = new HandshakeListener(pairOptions(true).listener);
    await listener.receive(r.clientHello);
    await assertFails(() => listener.receive(r.clientFinish.subarray(0, cut)), "truncated");
  }
});

Deno.test("garbage, oversized and misplaced messages are refused with a typed error", async () => {
  const random = seededRandom("garbage");
  const o = pairOptions(true);
  const hello = await new HandshakeDialer(o.dialer).start();
  const cases: [Uint8Array, string][] = [
    [random(100), ""],
    [Uint8Array.of(1, ...random(3000)), ""],
    [new Uint8Array(16385).fill(1), "16385 bytes exceeds the maximum of 16384"],
    [Uint8Array.of(9, 1, 1), "expected ClientHello (awaiting ClientHello), got unknown type 9"],
    [Uint8Array.of(2, ...hello.subarray(1)), "expected ClientHello"],
    [Uint8Array.of(3, 0, 0), "expected ClientHello"],
    [Uint8Array.of(1, 1, ...hello.subarray(2)), "unsupported version 1"],
    [Uint8Array.of(1, 4, 7, ...hello.subarray(3)), "unknown mode 7"],
    [Uint8Array.of(...hello, 0), "1 unexpected trailing bytes"],
  ];
  for (const [msg, why] of cases) {
    const listener = new HandshakeListener(pairOptions(true).listener);
    await assertFails(() => listener.receive(msg), why);
  }
  // Random single-byte corruptions anywhere in a ServerHello never pass and never crash.
  const r = await run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  const positions = random(24);
  for (let i = 0; i < positions.length; i += 2) {
    const at = ((positions[i] << 8) | positions[i + 1]) % r.serverHello.byteLength;
    const dialer = new HandshakeDialer(pairOptions(true).dialer);
    await dialer.start();
    await assertFails(() => dialer.receive(flip(r.serverHello, at)));
  }
});

Deno.test("calls in the wrong state fail with a clear error", async () => {
  const o = pairOptions(false);
  await assertFails(
    () => new HandshakeDialer(o.dialer).receive(new Uint8Array([2])),
    "while the handshake is initial",
  );
  const dialer = new HandshakeDialer(o.dialer);
  const starting = dialer.start();
  await assertFails(() => dialer.start(), "may be called once: the handshake is checking");
  const hello = await starting;
  await assertFails(() => dialer.start(), "may be called once");
  const listener = new HandshakeListener(o.listener);
  const serverHello = (await listener.receive(hello)).send!;
  await assertFails(() => listener.receive(hello), "expected ClientFinish (awaiting ClientFinish)");
  // A failed listener stays failed.
  await assertFails(() => listener.receive(new Uint8Array([3])), "while the handshake is failed");

  const d2 = new HandshakeDialer(o.dialer);
  const l2 = new HandshakeListener(o.listener);
  const r = await run(d2, l2);
  await assertFails(() => d2.receive(serverHello), "while the handshake is done");
  await assertFails(() => l2.receive(r.clientFinish), "while the handshake is done");
});

Deno.test("invalid options are refused with ERR_INVALID_CONFIG naming the option", async () => {
  const o = pairOptions(true).dialer;
  const cases: [Record<string, unknown>, string][] = [
    [{ credentials: dialerIdentity }, "'credentials' must be NodeCredentials"],
    [{ alpn: 5 }, "'alpn'"],
    [{ alpn: "x".repeat(256) }, "'alpn' must be a string of at most 255 bytes"],
    [{ peerCertificate: new Uint8Array(0) }, "'peerCertificate' must be a DER certificate"],
    [{ certificateCache: new Map() }, "'certificateCache'"],
    [{ pqEncryption: "yes" }, "'pqEncryption'"],
    [{ randomBytes: 1 }, "'randomBytes'"],
    [{ expectedPeerId: "abc" }, "'expectedPeerId'"],
  ];
  for (const [patch, why] of cases) {
    const err = assertThrows(
      () => new HandshakeDialer({ ...o, ...patch } as typeof o),
      InvalidConfigError,
      why,
    );
    assertEquals(err.code, "ERR_INVALID_CONFIG");
  }
  // A broken random source is reported, not turned into a weak nonce.
  const bad = new HandshakeDialer({ ...o, randomBytes: () => new Uint8Array(3) });
  await assertRejects(() => bad.start(), NetworkError, "randomBytes(32) must return 32 bytes");
});

Deno.test("the certificate cache verifies a certificate once, bounded by maxEntries", async () => {
  const cache = new PeerCertificateCache({ maxEntries: 2 });
  const first = await cache.verify(listenerNode.certificate.der);
  assertEquals(await cache.verify(listenerNode.certificate.der), first);
  for (const pq of [true, false]) {
    const o = pairOptions(pq);
    await run(
      new HandshakeDialer({ ...o.dialer, certificateCache: cache }),
      new HandshakeListener({ ...o.listener, certificateCache: cache }),
    );
  }
  assertEquals(cache.size, 2);
  await cache.verify(relayNode.certificate.der);
  assertEquals(cache.size, 2); // the least recently used (the listener's) went
  assert((await cache.verify(listenerNode.certificate.der)) !== first);
  assertThrows(
    () => new PeerCertificateCache({ maxEntries: -1 }),
    InvalidConfigError,
    "maxEntries",
  );
});

Deno.test("hashCertificate is SHA-256 of the DER", async () => {
  const der = new TextEncoder().encode("dialer cert");
  assertEquals(
    hashCertificate(der),
    new Uint8Array(await crypto.subtle.digest("SHA-256", der)),
  );
  assert(ALPN.length > 0);
});
