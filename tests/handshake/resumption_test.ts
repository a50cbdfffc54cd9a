/**
 * Resumption of the identity handshake in memory (docs/handshake.md, "Resumption"): tickets,
 * binder, early data, single use, tampering, modes and directions.
 */

import { assert, assertEquals, assertRejects } from "../_assert.ts";
import {
  HandshakeDialer,
  HandshakeError,
  HandshakeListener,
  type HandshakeOptions,
  type HandshakeResult,
  NodeCredentials,
  SessionTicketStore,
} from "../../src/handshake/mod.ts";
import { decodeAlert, encodeClientHello, MessageType } from "../../src/handshake/_messages.ts";
import {
  resumptionBinder,
  resumptionTranscriptHash,
  sealEarlyData,
} from "../../src/handshake/_transcript.ts";
import { toHex } from "../../src/_bytes.ts";
import { Identity } from "../../src/identity/mod.ts";
import { ALPN, dialerIdentity, dialerNode, listenerIdentity, listenerNode } from "./_util.ts";

// Offsets in a resuming ClientHello (docs/handshake.md): type, version, mode, nonce (32), an
// empty ML-KEM ciphertext (2), an empty certificate (2: the in-memory dialers send none), ticket
// id length, ticket id (16), early data (2 + n + 16), binder.
const NONCE_AT = 3;
const TICKET_LENGTH_AT = NONCE_AT + 32 + 2 + 2;
const TICKET_ID_AT = TICKET_LENGTH_AT + 1;
const EARLY_DATA_AT = TICKET_ID_AT + 16 + 2;
/** A ClientHello that offers no ticket: with the ciphertext, up to a zero ticket length. */
const PLAIN_CLIENT_HELLO_LENGTH = NONCE_AT + 32 + 2 + 1088 + 2 + 1;
/** A ResumedServerHello: type, version, mode, confirmation (32). */
const RESUMED_SERVER_HELLO_LENGTH = 3 + 32;

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const out = bytes.slice();
  out[at] ^= 0x01;
  return out;
}

const EARLY = new TextEncoder().encode("open frame of the dialer");

/** One node's side of the tests: its credentials and ticket store. */
interface Side {
  credentials: NodeCredentials;
  tickets?: SessionTicketStore;
}

function side(credentials: NodeCredentials, tickets = new SessionTicketStore()): Side {
  return { credentials, tickets };
}

/** The handshake options of `own`'s side of a connection with `peer`, either direction. */
function optionsOf(own: Side, peer: Side, pqEncryption = true): HandshakeOptions {
  return {
    credentials: own.credentials,
    tickets: own.tickets,
    alpn: ALPN,
    peerCertificate: peer.credentials.certificate.der,
    pqEncryption,
  };
}

/** What one connection exchanged, whichever handshake it was. */
interface Connection {
  /** Every message in order, a HelloRetry and the ClientHello sent again included. */
  messages: Uint8Array[];
  dialer: HandshakeResult;
  listener: HandshakeResult;
}

/** Completes a handshake (full or resumed), failing loudly when a step does something else. */
async function finish(
  dialer: HandshakeDialer,
  listener: HandshakeListener,
  clientHello: Uint8Array,
): Promise<Connection> {
  const messages = [clientHello];
  let s1 = await listener.receive(clientHello);
  assert(s1.send !== undefined, "the listener answers a ClientHello");
  if (s1.send[0] === MessageType.HelloRetry) {
    assertEquals(s1.done, undefined);
    const again = await dialer.receive(s1.send);
    assert(again.send !== undefined && again.done === undefined, "the full ClientHello follows");
    messages.push(s1.send, again.send);
    s1 = await listener.receive(again.send);
    assert(s1.send !== undefined, "the listener answers the full ClientHello");
  }
  messages.push(s1.send);
  const s2 = await dialer.receive(s1.send);
  assert(s2.done !== undefined, "the dialer is done after the listener's hello");
  if (s1.done !== undefined) {
    assertEquals(s2.send, undefined, "a resumed session has no third message");
    return { messages, dialer: s2.done, listener: s1.done };
  }
  assert(s2.send !== undefined, "a full handshake ends with a ClientFinish");
  messages.push(s2.send);
  const s3 = await listener.receive(s2.send);
  assert(s3.done !== undefined && s3.send === undefined, "the listener is done");
  return { messages, dialer: s2.done, listener: s3.done };
}

/** Dials `to` from `from` in memory, offering `early` as early data when a ticket is held. */
async function connect(
  from: Side,
  to: Side,
  { early = EARLY, pqEncryption = true }: { early?: Uint8Array; pqEncryption?: boolean } = {},
): Promise<Connection> {
  const dialer = new HandshakeDialer(optionsOf(from, to, pqEncryption));
  const listener = new HandshakeListener(optionsOf(to, from, pqEncryption));
  return await finish(dialer, listener, await dialer.start(() => early));
}

/** Asserts two results agree: same transcript, keys crosswise (or none on both). */
function assertAgree(c: Connection, resumed: boolean): void {
  assertEquals([c.dialer.resumed, c.listener.resumed], [resumed, resumed]);
  assertEquals(c.dialer.transcriptHash, c.listener.transcriptHash);
  if (c.dialer.keys === undefined) {
    assertEquals(c.listener.keys, undefined);
    return;
  }
  assertEquals(c.dialer.keys.send, c.listener.keys!.recv);
  assertEquals(c.dialer.keys.recv, c.listener.keys!.send);
  assert(toHex(c.dialer.keys.send) !== toHex(c.dialer.keys.recv), "one key per direction");
}

/** Counts calls of `NodeCredentials.prototype.decapsulate` while `fn` runs, then restores it. */
async function countDecapsulations<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const original = NodeCredentials.prototype.decapsulate;
  let calls = 0;
  NodeCredentials.prototype.decapsulate = function (this: NodeCredentials, cipherText) {
    calls++;
    return original.call(this, cipherText);
  };
  try {
    return [await fn(), calls];
  } finally {
    NodeCredentials.prototype.decapsulate = original;
  }
}

/** Asserts that `fn` fails with ERR_HANDSHAKE_FAILED naming `includes`; returns the error. */
async function assertFails(fn: () => Promise<unknown>, includes: string): Promise<HandshakeError> {
  const err = await assertRejects(fn, HandshakeError, includes);
  assertEquals(err.code, "ERR_HANDSHAKE_FAILED", err.message);
  return err;
}

const listenerKey = toHex(listenerNode.certificateHash);

Deno.test("resumption: full, then resumed, then resumed again; keys agree and differ per session", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  const [full, fullDecaps] = await countDecapsulations(() => connect(a, b));
  assertAgree(full, false);
  assertEquals(fullDecaps, 2, "the full handshake decapsulates once on each side");
  assertEquals(full.messages.map((m) => m[0]), [
    MessageType.ClientHello,
    MessageType.ServerHello,
    MessageType.ClientFinish,
  ]);
  assertEquals(full.messages[0].byteLength, PLAIN_CLIENT_HELLO_LENGTH, "no ticket offered yet");
  assertEquals([full.dialer.earlyData, full.listener.earlyData], [undefined, undefined]);

  const sessions = [full];
  for (const round of [1, 2]) {
    const [c, decaps] = await countDecapsulations(() => connect(a, b));
    assertAgree(c, true);
    assertEquals(decaps, 0, `resumption ${round} calls no ML-KEM decapsulation`);
    assertEquals(c.messages.map((m) => m[0]), [
      MessageType.ClientHello,
      MessageType.ResumedServerHello,
    ]);
    assertEquals(c.messages[1].byteLength, RESUMED_SERVER_HELLO_LENGTH);
    assertEquals(c.messages[0][TICKET_LENGTH_AT], 16, "the ClientHello names a ticket");
    assertEquals(c.listener.earlyData, EARLY, "early data arrives intact at the listener");
    assertEquals(c.dialer.earlyData, undefined, "the dialer gets no early data back");
    assert(c.dialer.peerId.equals(listenerIdentity.peerId));
    assert(c.listener.peerId.equals(dialerIdentity.peerId));
    assertEquals(c.dialer.peerPublicKeys.encode(), listenerIdentity.publicIdentity.encode());
    sessions.push(c);
  }
  // Every session has its own transcript and keys; the ticket ids differ too.
  const distinct = (f: (c: Connection) => Uint8Array) => new Set(sessions.map((c) => toHex(f(c))));
  assertEquals(distinct((c) => c.dialer.transcriptHash).size, 3);
  assertEquals(distinct((c) => c.dialer.keys!.send).size, 3);
  assertEquals(distinct((c) => c.dialer.keys!.recv).size, 3);
  const ids = sessions.slice(1).map((c) =>
    toHex(c.messages[0].subarray(TICKET_ID_AT, TICKET_ID_AT + 16))
  );
  assert(ids[0] !== ids[1], "each resumption presents a new ticket");
});

Deno.test("resumption: a ticket is single use; a replayed resuming ClientHello gets a HelloRetry, no ML-KEM work", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  const dialer = new HandshakeDialer(optionsOf(a, b));
  const hello = await dialer.start(() => EARLY);
  const resumed = await finish(dialer, new HandshakeListener(optionsOf(b, a)), hello);
  assertAgree(resumed, true);
  assert(a.tickets!.has(listenerKey, 1), "the resumed session left the dialer a new ticket");

  // The same ClientHello again, on another connection, to the same store: the id is unknown now.
  const replayListener = new HandshakeListener(optionsOf(b, a));
  const [replay, decaps] = await countDecapsulations(() => replayListener.receive(hello));
  assertEquals(replay.send, Uint8Array.of(MessageType.HelloRetry, 4), "a HelloRetry, not resumed");
  assertEquals(replay.done, undefined, "nothing is admitted and no early data is returned");
  assertEquals(decaps, 0, "the listener did no ML-KEM work for it");
  // The replayer cannot go on: the dialer that made the hello is done, and the same hello
  // again is refused (only a full ClientHello, whose ML-KEM secret it lacks, would be taken).
  await assertFails(() => dialer.receive(replay.send!), "while the handshake is done");
  await assertFails(
    () => replayListener.receive(hello),
    "A second ClientHello without an ML-KEM ciphertext",
  );
  // The genuine pair still resumes with the tickets the resumed session left.
  assertAgree(await connect(a, b), true);
});

Deno.test("resumption: a flipped bit in the binder, early data or nonce fails with an alert naming the binder", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  for (
    const [what, at] of [
      ["binder", -1],
      ["sealed early data", EARLY_DATA_AT + 3],
      ["early data tag", -33],
      ["nonce", NONCE_AT + 7],
    ] as const
  ) {
    await connect(a, b); // full or resumed: either leaves a fresh ticket
    const dialer = new HandshakeDialer(optionsOf(a, b));
    const hello = await dialer.start(() => EARLY);
    const tampered = flip(hello, at < 0 ? hello.byteLength + at : at);
    const listener = new HandshakeListener(optionsOf(b, a));
    const err = await assertFails(() => listener.receive(tampered), "Invalid resumption binder");
    assert(err.alert !== undefined, `${what}: an alert for the dialer`);
    assert(decodeAlert(err.alert).reason.includes("binder"), what);
    // The dialer that hears the alert fails with the reason.
    await assertFails(() => dialer.receive(err.alert!), "binder");
    // The ticket was used: the untampered hello is now met with a HelloRetry.
    assertEquals(
      (await new HandshakeListener(optionsOf(b, a)).receive(hello)).send?.[0],
      MessageType.HelloRetry,
    );
  }
});

Deno.test("resumption: early data under a valid binder that fails its tag is refused", async () => {
  // Only a holder of the ticket's secret can make this: the binder covers the sealed bytes.
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  const ticket = a.tickets!.takeForDialing(listenerKey, 1)!;
  const template = await new HandshakeDialer(optionsOf(side(dialerNode), b)).start();
  const base = {
    version: template[1],
    mode: template[2],
    nonce: template.slice(NONCE_AT, NONCE_AT + 32),
    cipherText: new Uint8Array(0),
  };
  const wrongNonce = new Uint8Array(32).fill(9); // sealed under another nonce's key
  const unbound = {
    ...base,
    resumption: { ticketId: ticket.id, earlyData: sealEarlyData(ticket.secret, wrongNonce, EARLY) },
  };
  const boundPart = encodeClientHello({
    ...unbound,
    resumption: { ...unbound.resumption, binder: new Uint8Array(0) },
  });
  const binder = resumptionBinder(
    ticket.secret,
    resumptionTranscriptHash({
      version: base.version,
      mode: base.mode,
      alpn: ALPN,
      dialerCertHash: dialerNode.certificateHash,
      listenerCertHash: listenerNode.certificateHash,
      clientHelloBoundPart: boundPart,
    }),
  );
  const hello = encodeClientHello({ ...unbound, resumption: { ...unbound.resumption, binder } });
  const listener = new HandshakeListener(optionsOf(b, a));
  const err = await assertFails(() => listener.receive(hello), "failed its tag");
  assert(err.alert !== undefined);
});

Deno.test("resumption: a flipped ticket id is an unknown ticket: a HelloRetry, then the full handshake", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  const dialer = new HandshakeDialer(optionsOf(a, b));
  const hello = await dialer.start(() => EARLY);
  const listener = new HandshakeListener(optionsOf(b, a));
  const c = await finish(dialer, listener, flip(hello, TICKET_ID_AT + 5));
  assertEquals(c.messages.map((m) => m[0]), [
    MessageType.ClientHello,
    MessageType.HelloRetry,
    MessageType.ClientHello,
    MessageType.ServerHello,
    MessageType.ClientFinish,
  ]);
  assertAgree(c, false);
  assertEquals(c.listener.earlyData, undefined, "the early data of a ticket not taken is lost");
  // The ClientHello sent again carries the ciphertext and no ticket.
  assertEquals(c.messages[2].byteLength, PLAIN_CLIENT_HELLO_LENGTH);
  // A full ServerHello to a ClientHello without the ciphertext is refused by the dialer.
  await connect(a, b);
  const resuming = new HandshakeDialer(optionsOf(a, b));
  await resuming.start(() => EARLY);
  const fresh = new HandshakeDialer(optionsOf(a, b));
  const other = await new HandshakeListener(optionsOf(b, a)).receive(await fresh.start());
  await assertFails(() => resuming.receive(other.send!), "expected ServerHello");
});

Deno.test("resumption: a tampered ResumedServerHello fails the dialer", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  for (
    const [what, at, why] of [
      ["confirmation", 3 + 17, "Invalid listener confirmation of a resumed session"],
      ["mode", 2, "mode mismatch"],
      ["version", 1, "unsupported version 5"],
    ] as const
  ) {
    const dialer = new HandshakeDialer(optionsOf(a, b));
    const step = await new HandshakeListener(optionsOf(b, a)).receive(
      await dialer.start(() => EARLY),
    );
    assert(step.done?.resumed, what);
    await assertFails(() => dialer.receive(flip(step.send!, at)), why);
    assert(!a.tickets!.has(listenerKey, 1), `${what}: the failed dialer saved no ticket`);
    await connect(a, b); // a full handshake leaves the next pair
  }
  // A ResumedServerHello to a dialer that offered no ticket is unexpected.
  const plain = new HandshakeDialer(optionsOf(side(dialerNode), b));
  await plain.start();
  const step = await new HandshakeListener(optionsOf(b, a)).receive(
    await new HandshakeDialer(optionsOf(a, b)).start(() => EARLY),
  );
  await assertFails(() => plain.receive(step.send!), "expected ServerHello");
});

Deno.test("resumption: a ticket presented under another certificate gets the full handshake", async () => {
  for (const identity of [dialerIdentity, Identity.generate()]) {
    const a = side(dialerNode), b = side(listenerNode);
    await connect(a, b);
    // Another run (same identity or not) that holds a's store: its certificate is not the one
    // the ticket was issued to.
    const other = side(await NodeCredentials.create(identity), a.tickets);
    const dialer = new HandshakeDialer(optionsOf(other, b));
    const hello = await dialer.start(() => EARLY);
    assertEquals(hello[TICKET_LENGTH_AT], 16, "the ticket in the shared store is offered");
    const c = await finish(dialer, new HandshakeListener(optionsOf(b, other)), hello);
    assertAgree(c, false);
    assertEquals(c.listener.earlyData, undefined);
    assert(c.listener.peerId.equals(identity.peerId));
    // The shared store now holds the ticket of other's session, issued to other's certificate:
    // presented by a's certificate, it gets the full handshake too.
    assertAgree(await connect(a, b), false);
  }
});

Deno.test("resumption: a listener with a fresh store answers with the full handshake; the next dial resumes", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  const restarted = side(listenerNode); // same credentials, tickets lost
  const c = await connect(a, restarted);
  assertEquals(c.messages[0][TICKET_LENGTH_AT], 16, "the dialer offered its ticket");
  assertEquals(c.messages[1][0], MessageType.HelloRetry, "the listener asked for the full hello");
  assertAgree(c, false);
  assertEquals(c.listener.earlyData, undefined);
  assertAgree(await connect(a, restarted), true);
});

Deno.test("resumption: tickets are per mode; pqEncryption off resumes too, without keys", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b); // pqEncryption on
  const off = await connect(a, b, { pqEncryption: false });
  assertEquals(
    off.messages[0].byteLength,
    PLAIN_CLIENT_HELLO_LENGTH,
    "the mode-1 ticket is not offered",
  );
  assertAgree(off, false);
  const resumed = await connect(a, b, { pqEncryption: false });
  assertAgree(resumed, true);
  assertEquals([resumed.dialer.keys, resumed.listener.keys], [undefined, undefined]);
  assertEquals(resumed.listener.earlyData, EARLY);
  // A mode-0 ticket is not offered by a dialer with pqEncryption on either.
  const on = await connect(a, b);
  assertEquals(on.messages[0].byteLength, PLAIN_CLIENT_HELLO_LENGTH, "no ticket offered");
  assertAgree(on, false);
});

Deno.test("resumption: both directions hold their own ticket; B dialing A and A dialing B both resume", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  const back = await connect(b, a);
  assertAgree(back, true);
  assert(back.dialer.peerId.equals(dialerIdentity.peerId));
  assertAgree(await connect(a, b), true);
  assertAgree(await connect(b, a), true);
});

Deno.test("resumption: dials in opposite directions at the same time both resume", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  await connect(a, b);
  const aDials = new HandshakeDialer(optionsOf(a, b));
  const bDials = new HandshakeDialer(optionsOf(b, a));
  const aHello = await aDials.start(() => EARLY);
  const bHello = await bDials.start(() => EARLY);
  const bAnswers = await new HandshakeListener(optionsOf(b, a)).receive(aHello);
  const aAnswers = await new HandshakeListener(optionsOf(a, b)).receive(bHello);
  const aDone = await aDials.receive(bAnswers.send!);
  const bDone = await bDials.receive(aAnswers.send!);
  for (const [dialer, listener] of [[aDone, bAnswers], [bDone, aAnswers]] as const) {
    assertAgree({ messages: [], dialer: dialer.done!, listener: listener.done! }, true);
    assertEquals(listener.done!.earlyData, EARLY);
  }
  // Each end saved the tickets of its own dial last, so its dialing ticket comes from another
  // session than the peer's latest; the listener keeps the previous session's listening ticket
  // too, so the next dials resume either way, in both directions.
  assertAgree(await connect(a, b), true);
  assertAgree(await connect(b, a), true);
  assertAgree(await connect(a, b), true);
});

Deno.test("resumption: early data callback: undefined keeps the ticket, too much is a typed error, no ticket no call", async () => {
  const a = side(dialerNode), b = side(listenerNode);
  let calls = 0;
  const noData = () => {
    calls++;
    return undefined;
  };
  // No ticket yet: the callback is not asked.
  const first = new HandshakeDialer(optionsOf(a, b));
  await finish(first, new HandshakeListener(optionsOf(b, a)), await first.start(noData));
  assertEquals(calls, 0, "no ticket, no call");
  // With a ticket, undefined means: do not resume (and keep the ticket).
  const declined = new HandshakeDialer(optionsOf(a, b));
  const hello = await declined.start(noData);
  assertEquals(calls, 1);
  assertEquals(hello.byteLength, PLAIN_CLIENT_HELLO_LENGTH, "no ticket offered");
  assert(a.tickets!.has(listenerKey, 1), "the ticket is kept for the next dial");
  // No callback at all: no resumption either.
  const withoutCallback = new HandshakeDialer(optionsOf(a, b));
  assertEquals((await withoutCallback.start()).byteLength, PLAIN_CLIENT_HELLO_LENGTH);
  assert(a.tickets!.has(listenerKey, 1));
  // 257 bytes is refused with a typed error before the ticket is taken; 256 bytes resumes.
  const tooMuch = new HandshakeDialer(optionsOf(a, b));
  const err = await assertFails(
    () => tooMuch.start(() => new Uint8Array(257)),
    "at most 256 bytes",
  );
  assert(err.message.includes("257"), err.message);
  const notBytes = new HandshakeDialer(optionsOf(a, b));
  await assertFails(
    () => notBytes.start(() => "text" as unknown as Uint8Array),
    "at most 256 bytes",
  );
  assert(a.tickets!.has(listenerKey, 1), "a refused start keeps the ticket");
  const most = new Uint8Array(256).map((_, i) => i);
  const c = await connect(a, b, { early: most });
  assertAgree(c, true);
  assertEquals(c.listener.earlyData, most);
  // The largest resuming ClientHello: without the ciphertext, a ticket id, 256 + 16 bytes sealed,
  // a binder.
  assertEquals(c.messages[0].byteLength, TICKET_LENGTH_AT + 1 + 16 + 2 + 256 + 16 + 32);
  // Empty early data is allowed and delivered as empty.
  const empty = await connect(a, b, { early: new Uint8Array(0) });
  assertAgree(empty, true);
  assertEquals(empty.listener.earlyData, new Uint8Array(0));
});

Deno.test("resumption: a ClientHello with neither an ML-KEM ciphertext nor a ticket is malformed", async () => {
  const hello = encodeClientHello({
    version: 4,
    mode: 1,
    nonce: new Uint8Array(32),
    cipherText: new Uint8Array(0),
  });
  const [_, decaps] = await countDecapsulations(() =>
    assertFails(
      () => new HandshakeListener(optionsOf(side(listenerNode), side(dialerNode))).receive(hello),
      "a ClientHello without an ML-KEM ciphertext must offer a ticket",
    )
  );
  assertEquals(decaps, 0);
});
