/**
 * Issue 3's handshake list over real QUIC connections between transports: the happy path in
 * both modes, a wrong expected peer id, a TLS-terminating relay, tampered and replayed
 * frames, a replayed handshake, and the handshake timeout.
 */

import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { ConnectionClosedError, NetworkError } from "../../src/errors.ts";
import { HandshakeDialer } from "../../src/handshake/handshake.ts";
import { NodeCredentials } from "../../src/handshake/node_credentials.ts";
import { encodeRecord, RecordDecoder } from "../../src/handshake/record.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { QuicTransport } from "../../src/transport/transport.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import type { QuicStream } from "../../src/quic/stream.ts";
import { FrameCipher } from "../../src/handshake/frame_cipher.ts";
import { encodeMessage } from "../../src/transport/codec.ts";
import { encodeControl } from "../../src/transport/_frames.ts";
import { FrameWriter } from "../../src/transport/_framed_stream.ts";
import {
  APP_ERROR_DECRYPT,
  APP_ERROR_HANDSHAKE_FAILED,
  APP_ERROR_HANDSHAKE_TIMEOUT,
} from "../../src/transport/close_codes.ts";
import { addr, identity, nextEvent, node, within } from "./_util.ts";
import { openRawLane, rawPeer, writeRawFrame } from "./_raw_peer.ts";

for (const pqEncryption of [true, false]) {
  Deno.test(`session: happy path over QUIC, pqEncryption ${pqEncryption}`, async () => {
    await using a = await node(0, { pqEncryption });
    await using b = await node(1, { pqEncryption });
    const connected = nextEvent(b, "peer:connected");
    const remote = await a.connectPeer(addr(b), { expectedPeerId: b.peerId });
    assert(remote.equals(b.peerId));
    const event = await connected;
    assert(event.detail.peerId.equals(a.peerId));
    assertEquals(event.detail.direction, "inbound");
    await a.send(remote, { type: "consensus", data: new Uint8Array([42]) });
    const got = await b.messages().next();
    assertEquals(got.value?.message, { type: "consensus", data: new Uint8Array([42]) });
  });
}

Deno.test("session: pqEncryption mismatch is refused on both sides", async () => {
  await using a = await node(0, { pqEncryption: true });
  await using b = await node(1, { pqEncryption: false });
  const failed = nextEvent(b, "connection:failed");
  const e = await assertRejects(() => a.connectPeer(addr(b)), NetworkError);
  assertEquals(e.code, "ERR_HANDSHAKE_FAILED");
  assert((await failed).detail.error instanceof Error);
  assertEquals([a.peers().length, b.peers().length], [0, 0]);
});

Deno.test("session: a wrong expected peer id fails with ERR_PEER_ID_MISMATCH, no data flows", async () => {
  await using a = await node(0);
  await using b = await node(1);
  const failed = nextEvent(b, "connection:failed");
  const e = await assertRejects(
    () => a.connectPeer(addr(b), { expectedPeerId: identity(2).peerId }),
    NetworkError,
    identity(2).peerId.toString(),
  );
  assertEquals(e.code, "ERR_PEER_ID_MISMATCH");
  await failed;
  assertEquals([a.peers().length, b.peers().length], [0, 0]);
});

/** Pipes one stream's bytes both ways between two connections, as a relay would. */
async function pipe(from: QuicStream, to: QuicStream): Promise<void> {
  try {
    for (let chunk = await from.read(); chunk !== null; chunk = await from.read()) {
      await to.write(chunk);
    }
    await to.close();
  } catch {
    // either side went away
  }
}

Deno.test("session: a relay terminating QUIC/TLS towards both nodes is refused on both sides", async () => {
  await using a = await node(0);
  await using b = await node(1);
  // The relay: one endpoint facing A (as its server), one dialing B; stream bytes are piped.
  // It cannot present A's or B's certificate: TLS would need their private keys. At best it is
  // a genuine node itself, with a certificate binding its own identity.
  const { certificate } = await NodeCredentials.create(identity(5));
  await using facingA = await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
  await using facingB = await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
  const relayed = (async () => {
    const fromA = await facingA.accept();
    const toB = await facingB.connect({ hostname: "127.0.0.1", port: b.localAddr.port });
    const streamA = await fromA.acceptBidi();
    const streamB = await toB.openBidi();
    await Promise.all([pipe(streamA, streamB), pipe(streamB, streamA)]);
    return { fromA, toB };
  })();
  const refusedByB = nextEvent(b, "connection:failed");
  const e = await assertRejects(
    () => a.connectPeer(`127.0.0.1:${facingA.localAddr.port}`),
    NetworkError,
  );
  assertEquals(e.code, "ERR_HANDSHAKE_FAILED");
  // A's ClientHello carries A's certificate, which is not the relay's TLS certificate: B
  // refuses it on sight; without it, A's confirmation would fail (a relay holds neither key).
  assert(
    e.message.includes("carries another certificate than the one TLS received"),
    e.message,
  );
  const refusal = await refusedByB;
  assertEquals((refusal.detail.error as NetworkError).code, "ERR_HANDSHAKE_FAILED");
  const { toB } = await within(relayed, 5000, "relay");
  const closed = await within(toB.closed, 5000, "B closes the relay's connection");
  assertEquals(closed.errorCode, APP_ERROR_HANDSHAKE_FAILED);
  assertEquals([a.peers().length, b.peers().length], [0, 0]);
});

Deno.test("session: a listener with a plain TLS certificate (no identity binding) is refused before anything is sent", async () => {
  await using a = await node(0);
  await using plain = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const e = await assertRejects(
    () => a.connectPeer(`127.0.0.1:${plain.localAddr.port}`),
    NetworkError,
    "carries no identity binding",
  );
  assertEquals(e.code, "ERR_HANDSHAKE_FAILED");
  assertEquals(a.peers().length, 0);
});

Deno.test("session: a dialer with a plain TLS certificate is refused as soon as TLS completes", async () => {
  await using b = await node(1);
  await using plain = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
  const refused = nextEvent(b, "connection:failed");
  const conn = await plain.connect({ hostname: "127.0.0.1", port: b.localAddr.port });
  assertEquals((await refused).detail.error.message.includes("no identity binding"), true);
  const closed = await within(conn.closed, 5000, "B closes the connection");
  assertEquals([closed.isApp, closed.errorCode], [true, APP_ERROR_HANDSHAKE_FAILED]);
  assertEquals(b.peers().length, 0);
});

Deno.test("session: tampered and replayed sealed frames close the connection with ERR_DECRYPT", async () => {
  await using b = await node(1);
  for (const attack of ["tamper", "replay"] as const) {
    await using raw = await rawPeer(b, identity(3), true);
    const disconnected = nextEvent(b, "peer:disconnected");
    const { stream: lane, cipher } = await openRawLane(raw, 0); // consensus
    const sealed = await cipher!.seal(
      encodeMessage({ type: "consensus", data: new Uint8Array(8) }),
    );
    if (attack === "tamper") {
      sealed[3] ^= 0x40;
      await writeRawFrame(lane, sealed);
    } else {
      await writeRawFrame(lane, sealed);
      await writeRawFrame(lane, sealed);
    }
    const event = await disconnected;
    assertEquals((event.detail.error as NetworkError).code, "ERR_DECRYPT", attack);
    const closed = await within(raw.conn.closed, 5000, "raw peer sees the close");
    assertEquals([closed.isApp, closed.errorCode], [true, APP_ERROR_DECRYPT]);
    if (attack === "replay") {
      // the first copy was genuine and delivered before the replay was caught
      assertEquals((await b.messages().next()).value?.from.equals(identity(3).peerId), true);
    }
  }
  assertEquals(b.peers().length, 0);
});

/** Runs a dialer handshake by hand on `conn`, returning the records it sent. */
async function handRolledHandshake(
  conn: QuicConnection,
  credentials: NodeCredentials,
  replay?: { clientHello: Uint8Array; clientFinish: Uint8Array },
): Promise<{ clientHello: Uint8Array; clientFinish: Uint8Array }> {
  const stream = await conn.openBidi();
  const dialer = new HandshakeDialer({
    credentials,
    alpn: conn.alpn,
    peerCertificate: conn.peerCertificates()[0],
  });
  const clientHello = replay?.clientHello ?? await dialer.start();
  if (replay !== undefined) await dialer.start(); // only to keep the state machine usable
  await stream.write(encodeRecord(clientHello));
  const decoder = new RecordDecoder();
  const records: Uint8Array[] = [];
  while (records.length === 0) {
    const chunk = await stream.read();
    if (chunk === null) throw new Error("stream ended");
    records.push(...decoder.push(chunk));
  }
  if (replay !== undefined) {
    await stream.write(encodeRecord(replay.clientFinish));
    return replay;
  }
  const { send: clientFinish, done } = await dialer.receive(records[0]);
  await stream.write(encodeRecord(clientFinish!));
  // The transport's dialer follows its Finish with the open control frame.
  const cipher = done!.keys === undefined ? undefined : await FrameCipher.create(done!.keys);
  await new FrameWriter(stream, cipher).write(
    encodeControl({ type: "open", replace: false, generation: 0, incarnation: 1n }),
  );
  return { clientHello, clientFinish: clientFinish! };
}

/**
 * A bare endpoint of identity 4 whose first connection to `b` completed a genuine handshake
 * (accepted by `b`), with what that handshake sent.
 */
async function genuineRawDialer(b: QuicTransport) {
  const credentials = await NodeCredentials.create(identity(4));
  const raw = await QuicEndpoint.bind({
    hostname: "127.0.0.1",
    certificate: credentials.certificate,
  });
  try {
    const target = { hostname: "127.0.0.1", port: b.localAddr.port };
    const first = await raw.connect(target);
    const connected = nextEvent(b, "peer:connected");
    const recorded = await handRolledHandshake(first, credentials);
    await connected;
    return { credentials, raw, target, first, recorded };
  } catch (e) {
    await raw.close();
    throw e;
  }
}

Deno.test("session: a replayed handshake (ClientHello and ClientFinish) is refused", async () => {
  await using b = await node(1);
  const { credentials, raw: endpoint, target, recorded } = await genuineRawDialer(b);
  await using raw = endpoint;
  const second = await raw.connect(target); // same endpoint: the same TLS certificates
  const refused = nextEvent(b, "connection:failed");
  await handRolledHandshake(second, credentials, recorded).catch(() => {});
  const event = await refused;
  assertEquals((event.detail.error as NetworkError).code, "ERR_HANDSHAKE_FAILED");
  const closed = await within(second.closed, 5000, "refused");
  assertEquals(closed.errorCode, APP_ERROR_HANDSHAKE_FAILED);
  assertEquals(b.peers().length, 1);
});

Deno.test("session: a resumed TLS session (no CertificateVerify) still needs the bound ML-KEM key", async () => {
  await using b = await node(1);
  const { credentials, raw: endpoint, target, first } = await genuineRawDialer(b);
  await using raw = endpoint;
  const gone = nextEvent(b, "peer:disconnected");
  await first.close(); // the endpoint keeps the TLS session of a connection it removed
  await gone;
  const second = await raw.connect(target);
  assert(second.isResumed, "the second connection resumed the first one's TLS session");
  // Holds the resumed session and the certificate, with another ML-KEM secret than the bound one:
  // what a thief of the TLS session state alone would have.
  const other = await NodeCredentials.create(identity(4));
  const thief = Object.create(NodeCredentials.prototype, {
    identity: { value: credentials.identity },
    certificate: { value: credentials.certificate },
    certificateHash: { value: credentials.certificateHash },
    kemPublicKey: { value: credentials.kemPublicKey },
    decapsulate: { value: (cipherText: Uint8Array) => other.decapsulate(cipherText) },
  }) as NodeCredentials;
  const refused = nextEvent(b, "connection:failed");
  await assertRejects(
    () => handRolledHandshake(second, thief),
    NetworkError,
    "Invalid listener key confirmation",
  );
  await second.close({ code: APP_ERROR_HANDSHAKE_FAILED, reason: "test" });
  assertEquals(((await refused).detail.error as NetworkError).code, "ERR_HANDSHAKE_FAILED");
  assertEquals(b.peers().length, 0);
});

Deno.test("session: a peer that never speaks is dropped after handshakeTimeoutMs", async () => {
  await using b = await node(1, { handshakeTimeoutMs: 300 });
  // A certificate with a valid binding: one without is refused at once, not timed out.
  const { certificate } = await NodeCredentials.create(identity(4));
  await using raw = await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
  const failed = nextEvent(b, "connection:failed");
  const conn = await raw.connect({ hostname: "127.0.0.1", port: b.localAddr.port });
  const event = await failed;
  assertEquals((event.detail.error as NetworkError).code, "ERR_HANDSHAKE_TIMEOUT");
  const closed = await within(conn.closed, 5000, "dropped");
  assert(closed instanceof ConnectionClosedError);
  assertEquals(closed.errorCode, APP_ERROR_HANDSHAKE_TIMEOUT);
});

Deno.test("session: dialing a listener that never answers fails with ERR_HANDSHAKE_TIMEOUT", async () => {
  await using a = await node(0, { handshakeTimeoutMs: 300 });
  const { certificate } = await NodeCredentials.create(identity(4));
  await using silent = await QuicEndpoint.bind({ hostname: "127.0.0.1", certificate });
  const accepted = silent.accept();
  const e = await assertRejects(
    () => a.connectPeer(`127.0.0.1:${silent.localAddr.port}`),
    NetworkError,
  );
  assertEquals(e.code, "ERR_HANDSHAKE_TIMEOUT");
  const conn = await accepted;
  assertEquals((await within(conn.closed, 5000, "closed")).errorCode, APP_ERROR_HANDSHAKE_TIMEOUT);
});
