import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import {
  HandshakeDialer,
  HandshakeError,
  HandshakeListener,
  hashCertificate,
} from "../../src/handshake/mod.ts";
import { Identity } from "../../src/identity/mod.ts";
import {
  ALPN,
  DIALER_CERT,
  dialerIdentity,
  LISTENER_CERT,
  listenerIdentity,
  pairOptions,
  run,
  seededRandom,
} from "./_util.ts";

// Offsets in the v1 layouts (docs/handshake.md): type, version, mode, identity (2 + 1989),
// nonce (32), KEM field (2 + n). The ServerHello's signature follows its KEM field.
const NONCE_AT = 3 + 2 + 1989;
const KEM_AT = NONCE_AT + 32 + 2;
const SERVER_SIGNED_PART = KEM_AT + 1088;

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const out = bytes.slice();
  out[at] ^= 0x01;
  return out;
}

/** Asserts that `fn` fails with a HandshakeError of `code` whose message contains `includes`. */
function assertFails(fn: () => unknown, includes = "", code = "ERR_HANDSHAKE_FAILED") {
  const err = assertThrows(fn, HandshakeError, includes);
  assertEquals(err.code, code, err.message);
  return err;
}

Deno.test("handshake with pqEncryption: both sides authenticated, keys agree crosswise", () => {
  const o = pairOptions(true);
  const r = run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
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
});

Deno.test("handshake without pqEncryption: authenticated, no KEM, no keys", () => {
  const o = pairOptions(false);
  const r = run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  assert(r.dialer.peerId.equals(listenerIdentity.peerId));
  assert(r.listener.peerId.equals(dialerIdentity.peerId));
  assertEquals(r.dialer.keys, undefined);
  assertEquals(r.listener.keys, undefined);
  assertEquals(r.dialer.transcriptHash, r.listener.transcriptHash);
  assertEquals(r.clientHello.byteLength, KEM_AT);
});

Deno.test("handshake is reproducible with injected randomness and unique per connection", () => {
  const a1 = run(
    new HandshakeDialer(pairOptions(true, "a").dialer),
    new HandshakeListener(pairOptions(true, "a").listener),
  );
  const a2 = run(
    new HandshakeDialer(pairOptions(true, "a").dialer),
    new HandshakeListener(pairOptions(true, "a").listener),
  );
  const b = run(
    new HandshakeDialer(pairOptions(true, "b").dialer),
    new HandshakeListener(pairOptions(true, "b").listener),
  );
  assertEquals(a1.dialer.transcriptHash, a2.dialer.transcriptHash);
  assertEquals(a1.dialer.keys, a2.dialer.keys);
  assert(!a1.dialer.transcriptHash.every((x, i) => x === b.dialer.transcriptHash[i]));
});

Deno.test("expected peer id: accepted when it matches", () => {
  const o = pairOptions(true);
  const r = run(
    new HandshakeDialer({ ...o.dialer, expectedPeerId: listenerIdentity.peerId }),
    new HandshakeListener(o.listener),
  );
  assert(r.dialer.peerId.equals(listenerIdentity.peerId));
});

Deno.test("expected peer id: a different listener fails with ERR_PEER_ID_MISMATCH first", () => {
  const o = pairOptions(true);
  const wanted = Identity.generate().peerId;
  const dialer = new HandshakeDialer({ ...o.dialer, expectedPeerId: wanted });
  const listener = new HandshakeListener(o.listener);
  const serverHello = listener.receive(dialer.start()).send!;
  // Even with a broken signature, the id check comes first and gives its own code.
  const broken = flip(serverHello, serverHello.byteLength - 1);
  const err = assertFails(() => dialer.receive(broken), "Peer id mismatch", "ERR_PEER_ID_MISMATCH");
  assert(err.message.includes(wanted.toString()), err.message);
  assert(err.message.includes(listenerIdentity.peerId.toString()), err.message);
  // The listener learns it was refused, without learning whom the dialer wanted.
  const seen = assertFails(() => listener.receive(err.alert!), "The dialer aborted");
  assert(!seen.message.includes(wanted.toString()));
  assertEquals(seen.alert, undefined);
});

Deno.test("mode mismatch fails on the listener with a clear error that reaches the dialer", () => {
  const dialer = new HandshakeDialer(pairOptions(true).dialer);
  const listener = new HandshakeListener(pairOptions(false).listener);
  const err = assertFails(
    () => listener.receive(dialer.start()),
    "mode mismatch: this side has pqEncryption off, the dialer has pqEncryption on",
  );
  assertFails(
    () => dialer.receive(err.alert!),
    "The listener aborted the handshake: Handshake mode",
  );

  // And the other way round, as the dialer would see a downgraded ServerHello.
  const d2 = new HandshakeDialer(pairOptions(false).dialer);
  const l2 = new HandshakeListener(pairOptions(true).listener);
  const e2 = assertFails(() => l2.receive(d2.start()), "pqEncryption on, the dialer has");
  assert(e2.alert !== undefined);
});

Deno.test("downgrade: a ClientHello rewritten to mode 0 changes the signed transcript", () => {
  // An attacker who could rewrite the mode byte and strip the KEM key: the listener (mode off)
  // accepts, but the dialer's transcript has its own, original ClientHello.
  const dialer = new HandshakeDialer(pairOptions(true).dialer);
  const listener = new HandshakeListener(pairOptions(false).listener);
  const hello = dialer.start();
  const downgraded = Uint8Array.of(
    ...hello.subarray(0, 2),
    0,
    ...hello.subarray(3, KEM_AT - 2),
    0,
    0,
  );
  const serverHello = listener.receive(downgraded).send!;
  assertFails(() => dialer.receive(serverHello), "mode mismatch");
});

Deno.test("tampered ServerHello fields are refused by the dialer", () => {
  const positions: [string, number, string][] = [
    ["nonce", NONCE_AT + 5, "Invalid listener signature"],
    ["KEM ciphertext", KEM_AT + 500, "Invalid listener signature"],
    ["Ed25519 signature", SERVER_SIGNED_PART + 2 + 10, "Invalid listener signature"],
    ["ML-DSA-65 signature", SERVER_SIGNED_PART + 2 + 64 + 2 + 1000, "Invalid listener signature"],
    ["identity key", 3 + 2 + 1 + 2 + 3, "Invalid listener signature"],
    ["version", 1, "unsupported version 0"],
    ["mode", 2, "mode"],
    ["a length field", KEM_AT - 2, "'ML-KEM ciphertext' must be 1088 bytes"],
  ];
  for (const [field, at, why] of positions) {
    const o = pairOptions(true);
    const dialer = new HandshakeDialer(o.dialer);
    const listener = new HandshakeListener(o.listener);
    const serverHello = listener.receive(dialer.start()).send!;
    const err = assertFails(() => dialer.receive(flip(serverHello, at)), why);
    assert(err.alert !== undefined, `no alert for tampered ${field}`);
  }
});

Deno.test("tampered ClientHello fields make the handshake fail", () => {
  for (const at of [NONCE_AT, KEM_AT + 7, 3 + 2 + 1 + 2 + 40]) {
    const o = pairOptions(true);
    const dialer = new HandshakeDialer(o.dialer);
    const listener = new HandshakeListener(o.listener);
    const serverHello = listener.receive(flip(dialer.start(), at)).send!;
    assertFails(() => dialer.receive(serverHello), "Invalid listener signature");
  }
});

Deno.test("tampered ClientFinish is refused by the listener", () => {
  for (const at of [0 + 3, 2 + 64 + 2 + 17]) {
    const o = pairOptions(true);
    const dialer = new HandshakeDialer(o.dialer);
    const listener = new HandshakeListener(o.listener);
    const clientFinish = dialer.receive(listener.receive(dialer.start()).send!).send!;
    assertFails(() => listener.receive(flip(clientFinish, at)), "Invalid dialer signature");
  }
});

Deno.test("relay: each side seeing a different certificate fails the handshake", () => {
  // A relay terminating TLS towards both sides shows each its own certificate.
  const relayCert = hashCertificate(new TextEncoder().encode("relay cert"));
  for (const pq of [true, false]) {
    const o = pairOptions(pq);
    const dialer = new HandshakeDialer({ ...o.dialer, peerCertHash: relayCert });
    const listener = new HandshakeListener({ ...o.listener, peerCertHash: relayCert });
    const serverHello = listener.receive(dialer.start()).send!;
    assertFails(() => dialer.receive(serverHello), "Invalid listener signature");
  }
  // Only the listener's view differs (relay towards the listener): still refused by the dialer.
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener({ ...o.listener, peerCertHash: relayCert });
  assertFails(() => dialer.receive(listener.receive(dialer.start()).send!), "signature");
});

Deno.test("a different ALPN on each side fails the handshake", () => {
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener({ ...o.listener, alpn: "other/1" });
  assertFails(() => dialer.receive(listener.receive(dialer.start()).send!), "signature");
});

Deno.test("replay: a recorded ServerHello fails on a new connection", () => {
  // Same identities, same certificates: only the dialer's fresh nonce and KEM key differ.
  const recorded = run(
    new HandshakeDialer(pairOptions(true, "old").dialer),
    new HandshakeListener(pairOptions(true, "old").listener),
  );
  for (const pq of [true, false]) {
    const dialer = new HandshakeDialer(pairOptions(pq, "new").dialer);
    dialer.start();
    const old = pq ? recorded.serverHello : run(
      new HandshakeDialer(pairOptions(false, "old").dialer),
      new HandshakeListener(pairOptions(false, "old").listener),
    ).serverHello;
    assertFails(() => dialer.receive(old), "Invalid listener signature");
  }
});

Deno.test("replay: a recorded ClientHello + ClientFinish fails on a new connection", () => {
  for (const pq of [true, false]) {
    const recorded = run(
      new HandshakeDialer(pairOptions(pq, "old").dialer),
      new HandshakeListener(pairOptions(pq, "old").listener),
    );
    const listener = new HandshakeListener(pairOptions(pq, "new").listener);
    const { send } = listener.receive(recorded.clientHello);
    assert(send !== undefined);
    assertFails(() => listener.receive(recorded.clientFinish), "Invalid dialer signature");
  }
});

Deno.test("a listener's signature cannot be reflected as the dialer's", () => {
  // The ServerHello's signature bytes, repackaged as a ClientFinish, sign the same transcript
  // but under the listener's role label and key.
  const o = pairOptions(true);
  const dialer = new HandshakeDialer(o.dialer);
  const listener = new HandshakeListener(o.listener);
  const serverHello = listener.receive(dialer.start()).send!;
  const reflected = Uint8Array.of(3, ...serverHello.subarray(SERVER_SIGNED_PART));
  assertFails(() => listener.receive(reflected), "Invalid dialer signature");
});

Deno.test("truncated messages are refused with a typed error, never a crash", () => {
  const o = pairOptions(true);
  const r = run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  const cuts = (n: number) => [0, 1, 2, 3, 4, 5, 100, n - 1000, n - 33, n - 2, n - 1];
  for (const cut of cuts(r.clientHello.byteLength)) {
    const listener = new HandshakeListener(pairOptions(true).listener);
    assertFails(() => listener.receive(r.clientHello.subarray(0, cut)), cut ? "" : "empty");
  }
  for (const cut of cuts(r.serverHello.byteLength)) {
    const dialer = new HandshakeDialer(pairOptions(true).dialer);
    dialer.start();
    assertFails(() => dialer.receive(r.serverHello.subarray(0, cut)), cut ? "truncated" : "");
  }
  for (const cut of [1, 2, 60, 66, 67, 68, 500, r.clientFinish.byteLength - 1]) {
    const listener = new HandshakeListener(pairOptions(true).listener);
    listener.receive(r.clientHello);
    assertFails(() => listener.receive(r.clientFinish.subarray(0, cut)), "truncated");
  }
});

Deno.test("garbage, oversized and misplaced messages are refused with a typed error", () => {
  const random = seededRandom("garbage");
  const o = pairOptions(true);
  const hello = new HandshakeDialer(o.dialer).start();
  const cases: [Uint8Array, string][] = [
    [random(100), ""],
    [Uint8Array.of(1, ...random(3000)), ""],
    [new Uint8Array(16385).fill(1), "16385 bytes exceeds the maximum of 16384"],
    [Uint8Array.of(9, 1, 1), "expected ClientHello (awaiting ClientHello), got unknown type 9"],
    [Uint8Array.of(2, ...hello.subarray(1)), "expected ClientHello"],
    [Uint8Array.of(3, 0, 0), "expected ClientHello"],
    [Uint8Array.of(1, 2, ...hello.subarray(2)), "unsupported version 2"],
    [Uint8Array.of(1, 1, 7, ...hello.subarray(3)), "unknown mode 7"],
    [Uint8Array.of(...hello, 0), "1 unexpected trailing bytes"],
    [Uint8Array.of(...hello.subarray(0, 5), 0xff, ...hello.subarray(6)), ""],
    // A KEM public key whose coefficients are out of range is not a key.
    [
      Uint8Array.of(...hello.subarray(0, KEM_AT), ...new Uint8Array(1184).fill(0xff)),
      "Invalid ML-KEM-768 public key",
    ],
  ];
  for (const [msg, why] of cases) {
    const listener = new HandshakeListener(pairOptions(true).listener);
    assertFails(() => listener.receive(msg), why);
  }
  // Random single-byte corruptions anywhere in a ServerHello never pass and never crash.
  const r = run(new HandshakeDialer(o.dialer), new HandshakeListener(o.listener));
  const positions = random(24);
  for (let i = 0; i < positions.length; i += 2) {
    const at = ((positions[i] << 8) | positions[i + 1]) % r.serverHello.byteLength;
    const dialer = new HandshakeDialer(pairOptions(true).dialer);
    dialer.start();
    assertFails(() => dialer.receive(flip(r.serverHello, at)));
  }
});

Deno.test("calls in the wrong state fail with a clear error", () => {
  const o = pairOptions(false);
  assertFails(
    () => new HandshakeDialer(o.dialer).receive(new Uint8Array([2])),
    "while the handshake is initial",
  );
  const dialer = new HandshakeDialer(o.dialer);
  const hello = dialer.start();
  assertThrows(() => dialer.start(), NetworkError, "may be called once");
  const listener = new HandshakeListener(o.listener);
  const serverHello = listener.receive(hello).send!;
  assertFails(() => listener.receive(hello), "expected ClientFinish (awaiting ClientFinish)");
  // A failed listener stays failed.
  assertFails(() => listener.receive(new Uint8Array([3])), "while the handshake is failed");

  const d2 = new HandshakeDialer(o.dialer);
  const l2 = new HandshakeListener(o.listener);
  const r = run(d2, l2);
  assertFails(() => d2.receive(serverHello), "while the handshake is done");
  assertFails(() => l2.receive(r.clientFinish), "while the handshake is done");
});

Deno.test("invalid options are refused with ERR_INVALID_CONFIG naming the option", () => {
  const o = pairOptions(true).dialer;
  const cases: [Record<string, unknown>, string][] = [
    [{ identity: undefined }, "'identity'"],
    [{ alpn: 5 }, "'alpn'"],
    [{ alpn: "x".repeat(256) }, "'alpn' must be a string of at most 255 bytes"],
    [{ localCertHash: new Uint8Array(31) }, "'localCertHash' must be a 32-byte SHA-256 hash"],
    [{ peerCertHash: "abc" }, "'peerCertHash'"],
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
  assertThrows(() => bad.start(), NetworkError, "randomBytes(32) must return 32 bytes");
});

Deno.test("hashCertificate is SHA-256 of the DER", async () => {
  const der = new TextEncoder().encode("dialer cert");
  assertEquals(hashCertificate(der), DIALER_CERT);
  assertEquals(
    hashCertificate(new Uint8Array(0)),
    new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(0))),
  );
  assert(ALPN.length > 0 && LISTENER_CERT.byteLength === 32);
});
