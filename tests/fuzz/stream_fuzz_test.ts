/**
 * Raw-stream fuzzing of a live node over real QUIC connections: garbage and mutated records on
 * the handshake stream before the identity handshake, then, from authenticated peers, sealed
 * mutated frames (control, message lanes, requests) and unsealed garbage on every kind of
 * stream. The node must close what breaks its protocol, stay up, keep serving a legitimate
 * peer, and keep its memory bounded.
 *
 * @module
 */

import { assert } from "../_assert.ts";
import { Prng } from "../_prng.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { QuicConnection } from "../../src/quic/connection.ts";
import { encodeRecord } from "../../src/handshake/record.ts";
import { HandshakeDialer } from "../../src/handshake/handshake.ts";
import { NodeCredentials } from "../../src/handshake/node_credentials.ts";
import { encodeMessage } from "../../src/transport/codec.ts";
import { encodeControl, encodeRequest } from "../../src/transport/_frames.ts";
import { FrameWriter } from "../../src/transport/_framed_stream.ts";
import { openRawLane, rawPeer } from "../transport/_raw_peer.ts";
import { addr, identity, node, within } from "../transport/_util.ts";
import { rssBytes, stillServes } from "./_live.ts";
import { mutate, randomInput } from "./_mutate.ts";

const HANDSHAKE_TIMEOUT_MS = 2000;
const MAX_RSS_GROWTH_BYTES = 128 * 1024 * 1024;
const ECHO = "/fuzz/echo";
const text = new TextEncoder();

/** A connection the node should close: how long it may take (a stalled one times out). */
const CLOSE_WITHIN_MS = HANDSHAKE_TIMEOUT_MS + 5000;

/**
 * One hostile move before the identity handshake, on a fresh QUIC connection whose TLS
 * certificate carries a valid identity binding (without one the node closes the connection
 * before it reads any stream).
 */
type PreHandshake = (conn: QuicConnection, rng: Prng) => Promise<void>;

/** The hostile dialers' credentials, one set for every connection as a single attacker has. */
const attacker = await NodeCredentials.create(identity(9));

/** A valid ClientHello to the node at the other end of `conn`, as a record. */
async function clientHello(conn: QuicConnection): Promise<Uint8Array> {
  const dialer = new HandshakeDialer({
    credentials: attacker,
    alpn: conn.alpn,
    peerCertificate: conn.peerCertificates()[0],
  });
  return encodeRecord(await dialer.start());
}

const preHandshake: readonly PreHandshake[] = [
  // Random bytes where the first record should be.
  async (conn, rng) =>
    await (await conn.openBidi()).write(randomInput(rng, 4096), rng.next() < 0.5),
  // A mutated ClientHello record (length prefix included in what is mutated).
  async (conn, rng) => {
    const record = await clientHello(conn);
    await (await conn.openBidi()).write(mutate(rng, record, [record], 20_000));
  },
  // A record announcing 4 GiB.
  async (conn) => await (await conn.openBidi()).write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1])),
  // Half a record, then silence: only the handshake timeout ends it.
  async (conn) => await (await conn.openBidi()).write((await clientHello(conn)).subarray(0, 600)),
  // A valid ClientHello (the node answers it with a ServerHello), then garbage for the Finish.
  async (conn, rng) => {
    const stream = await conn.openBidi();
    await stream.write(await clientHello(conn));
    await stream.write(encodeRecord(randomInput(rng, 4000)), true);
  },
  // The handshake on another stream than 0, and a unidirectional stream first.
  async (conn, rng) => {
    await (await conn.openUni()).write(randomInput(rng, 200), true);
    const first = await conn.openBidi();
    const second = await conn.openBidi();
    await second.write(await clientHello(conn));
    await first.write(new Uint8Array(0), true);
  },
];

Deno.test("fuzz: garbage on a live node's streams before the identity handshake gets closed", async () => {
  await using victim = await node(0, { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS });
  await using legit = await node(1);
  await legit.connectPeer(addr(victim));
  const rng = new Prng(0x17_0081);
  const rssBefore = rssBytes();
  const CASES = 24;
  let closedByVictim = 0;
  for (let batch = 0; batch < CASES / 6; batch++) {
    await Promise.all(Array.from({ length: 6 }, async (_, j) => {
      const i = batch * 6 + j;
      // Each from its own address, so the per-IP limit does not hide what the node does.
      await using raw = await QuicEndpoint.bind({
        hostname: `127.0.0.${10 + i}`,
        certificate: attacker.certificate,
      });
      const conn = await raw.connect({ hostname: "127.0.0.1", port: victim.localAddr.port });
      const move = preHandshake[i % preHandshake.length];
      await move(conn, new Prng(rng.int(0, 2 ** 31))).catch(() => {});
      await within(conn.closed, CLOSE_WITHIN_MS, `pre-handshake case ${i}: closed by the node`);
      closedByVictim++;
    }));
    await stillServes(victim, legit);
  }
  const growth = rssBytes() - rssBefore;
  console.log(`${closedByVictim}/${CASES} hostile connections closed; RSS +${growth >> 10} KiB`);
  assert(closedByVictim === CASES);
  assert(growth < MAX_RSS_GROWTH_BYTES, `RSS grew by ${growth} bytes`);
  assert(victim.stats().pendingHandshakes === 0, "handshake slots still held");
});

/** A hostile move from an authenticated peer. */
type PostHandshake = (peer: Awaited<ReturnType<typeof rawPeer>>, rng: Prng) => Promise<void>;

const controlSeeds = [
  encodeControl({ type: "ping", id: 7 }),
  encodeControl({ type: "ack", lane: 0, count: 0 }),
  encodeControl({ type: "drained" }),
  encodeControl({ type: "pong", id: 7 }),
];
const messageSeeds = [
  encodeMessage({ type: "vertex", data: text.encode("v") }),
  encodeMessage({ type: "ping", timestamp: 1 }),
  encodeMessage({ type: "unknown", code: 99, data: new Uint8Array(3) }),
];
const requestSeeds = [encodeRequest(text.encode(ECHO), text.encode("hi"))];

const postHandshake: readonly PostHandshake[] = [
  // Sealed, mutated control frames on the control stream.
  async ({ session }, rng) => {
    const writer = new FrameWriter(session.control, session.cipher);
    for (let k = 0; k < 4; k++) {
      await writer.write(mutate(rng, rng.pick(controlSeeds), controlSeeds, 64));
    }
  },
  // Unsealed garbage on the control stream.
  async ({ session }, rng) => await session.control.write(randomInput(rng, 2048)),
  // Sealed, mutated messages on a lane.
  async (peer, rng) => {
    const { stream, cipher } = await openRawLane(peer, rng.int(0, 2));
    const writer = new FrameWriter(stream, cipher);
    for (let k = 0; k < 4; k++) {
      await writer.write(mutate(rng, rng.pick(messageSeeds), messageSeeds, 256));
    }
    await stream.write(new Uint8Array(0), true);
  },
  // Sealed, mutated request frames, each on its own request stream.
  async ({ session, conn }, rng) => {
    await Promise.all(Array.from({ length: 4 }, async () => {
      const stream = await conn.openBidi();
      const body = mutate(rng, requestSeeds[0], requestSeeds, 600);
      await new FrameWriter(stream, session.cipher?.forStream(stream.id)).write(body, true);
      await within(stream.readAll().catch(() => {}), 5000, "the node answers or resets");
    }));
  },
  // Frame headers announcing more than maxMessageBytes, on a lane and a request stream.
  async ({ conn }) => {
    await (await conn.openUni()).write(new Uint8Array([0xff, 0xff, 0xff, 0xf0]));
    await (await conn.openBidi()).write(new Uint8Array([0x7f, 0xff, 0xff, 0xff]));
  },
  // Raw garbage on a fresh stream of each kind.
  async ({ conn }, rng) => {
    await (await conn.openUni()).write(randomInput(rng, 3000), true);
    await (await conn.openBidi()).write(randomInput(rng, 3000), true);
  },
];

Deno.test("fuzz: mutated frames from authenticated peers on every stream leave the node serving", async () => {
  // Every raw peer dials from 127.0.0.1: the per-IP limit is not what this test is about.
  await using victim = await node(0, { maxInboundPerIp: 64 });
  victim.handle(ECHO, (request) => request);
  await using legit = await node(1);
  await legit.connectPeer(addr(victim));
  const rng = new Prng(0x17_0082);
  const rssBefore = rssBytes();
  const PEERS = 24;
  let closedByVictim = 0;
  for (let batch = 0; batch < PEERS / 4; batch++) {
    const peers = await Promise.all(
      Array.from({ length: 4 }, (_, j) => rawPeer(victim, identity(10 + batch * 4 + j), true)),
    );
    try {
      await Promise.all(peers.map(async (peer, j) => {
        const move = postHandshake[(batch * 4 + j) % postHandshake.length];
        await move(peer, new Prng(rng.int(0, 2 ** 31))).catch(() => {});
      }));
      await stillServes(victim, legit);
      closedByVictim += peers.filter((p) => p.conn.closedError !== undefined).length;
    } finally {
      await Promise.all(peers.map((p) => p[Symbol.asyncDispose]()));
    }
  }
  const growth = rssBytes() - rssBefore;
  console.log(
    `${PEERS} hostile peers, ${closedByVictim} closed by the node while fuzzing; RSS +${
      growth >> 10
    } KiB; violations ${JSON.stringify(victim.stats().limitViolations)}`,
  );
  await stillServes(victim, legit);
  assert(victim.peers().some((p) => p.peerId.equals(legit.peerId)));
  assert(growth < MAX_RSS_GROWTH_BYTES, `RSS grew by ${growth} bytes`);
});
