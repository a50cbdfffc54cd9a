/**
 * NatService without NATs: the punch session on virtual time, the rendezvous codec, and three
 * real transports on loopback (introduction, punching, dial, refusals, fallback, options).
 * The NAT lab runs (real NATs) are in nat_service_lab_test.ts.
 */
import assert from "node:assert/strict";
import { InvalidConfigError, NetworkError } from "../../src/errors.ts";
import { Identity } from "../../src/identity/identity.ts";
import {
  type NatConnection,
  type NatFallback,
  NatService,
  NatTraversalError,
  type NatUpgradeFailure,
  planHolePunch,
  type RelayService,
  RENDEZVOUS_PROTOCOL,
} from "../../src/nat/mod.ts";
import { decodePunch, encodePunch, PunchSession } from "../../src/nat/_punch_session.ts";
import { decodeRendezvous, encodeRendezvous } from "../../src/nat/_rendezvous.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { FakePort } from "./_fakes.ts";
import { udpSkipReason } from "./_udp_port.ts";
import { VirtualClock } from "../_virtual_clock.ts";
import { startUdpRelay } from "../transport/_udp_relay.ts";
import { RawSocket, within } from "../quic/_util.ts";

const peerAddr = { hostname: "203.0.113.9", port: 40000 };
const session = new Uint8Array(16).fill(7);

Deno.test("PunchSession: sends on time, acks punches, says where the peer was heard", async () => {
  const clock = new VirtualClock(1000);
  const port = new FakePort(clock);
  const plan = planHolePunch({
    startAt: 1100,
    peer: { addresses: [peerAddr], natType: "Cone" },
    interval: 50,
    duration: 200,
  });
  const s = new PunchSession(port, clock, plan, session);
  assert.equal(port.sent.length, 0, "nothing before startAt");
  await clock.advanceTo(1100);
  assert.equal(port.sent.length, 1);
  assert.deepEqual(decodePunch(port.sent[0].data)?.kind, "punch");
  // The peer's punch comes in from a port other than the one punched (peer-reflexive).
  const from = { hostname: "203.0.113.9", port: 40001 };
  s.receive("punch", from);
  assert.deepEqual(await s.punched, from);
  assert.equal(port.sent.at(-1)!.to.port, 40001);
  assert.equal(decodePunch(port.sent.at(-1)!.data)?.kind, "ack");
  s.receive("ack", peerAddr); // acks are not answered
  assert.equal(s.counters.acksSent, 1);
  await clock.advanceTo(1400);
  await s.done;
  assert.equal(s.counters.punchesSent, 4); // 1100, 1150, 1200, 1250
  assert.equal(s.counters.received, 2);
  assert.equal(clock.timers, 0, "no timer left once the plan ran out");
});

Deno.test("PunchSession: running out unheard resolves undefined; stop() ends at once", async () => {
  const clock = new VirtualClock(0);
  const port = new FakePort(clock);
  const plan = planHolePunch({ startAt: 0, peer: { addresses: [peerAddr] }, duration: 100 });
  const s = new PunchSession(port, clock, plan, session);
  await clock.advanceTo(200);
  assert.equal(await s.punched, undefined);
  const s2 = new PunchSession(port, clock, { ...plan, until: 10_000 }, session);
  s2.stop();
  s2.stop();
  await s2.done;
  assert.equal(await s2.punched, undefined);
  assert.equal(clock.timers, 0);
});

Deno.test("punch packets: first byte below 0x40, anything else is not a punch", () => {
  const p = encodePunch("punch", session);
  assert.ok(p[0] < 0x40 && p[0] > 3, "not QUIC and not STUN");
  assert.deepEqual(decodePunch(p)?.session, session);
  assert.equal(decodePunch(p.subarray(1)), undefined);
  assert.equal(decodePunch(new Uint8Array(22)), undefined);
  const bad = p.slice();
  bad[5] = 9;
  assert.equal(decodePunch(bad), undefined);
});

Deno.test("rendezvous messages: round trip and field checks", () => {
  const connected = {
    t: "connected" as const,
    session: "ab".repeat(16),
    addresses: [peerAddr],
    nat: "Cone" as const,
    startIn: 80,
    handledMs: 3,
  };
  assert.deepEqual(decodeRendezvous(encodeRendezvous(connected)), connected);
  const bad = (o: unknown) =>
    assert.throws(
      () => decodeRendezvous(new TextEncoder().encode(JSON.stringify(o))),
      (e: unknown) => e instanceof NetworkError && e.code === "ERR_MALFORMED_FRAME",
    );
  bad({ ...connected, v: 1, nat: "Open" });
  bad({ ...connected, v: 1, session: "zz" });
  bad({ ...connected, v: 1, startIn: 1e9 });
  bad({ ...connected, v: 1, addresses: [{ hostname: "example.org", port: 1 }] });
  bad({ ...connected, v: 1, addresses: Array(9).fill(peerAddr) });
  bad({ ...connected, v: 2 });
  bad({ v: 1, t: "nope" });
  assert.throws(() => decodeRendezvous(new Uint8Array([0xff])), NetworkError);

  // waitMs: optional (older dialers leave it out), else 0-600000 ms.
  const sync = {
    t: "sync" as const,
    session: "cd".repeat(16),
    peer: "12D3KooW",
    addresses: [peerAddr],
    nat: "Unknown" as const,
    startIn: 40,
  };
  assert.deepEqual(decodeRendezvous(encodeRendezvous(sync)), sync);
  assert.deepEqual(decodeRendezvous(encodeRendezvous({ ...sync, waitMs: 35_000 })), {
    ...sync,
    waitMs: 35_000,
  });
  const connect = {
    t: "connect" as const,
    target: "12D3KooW",
    addresses: [],
    nat: "Cone" as const,
  };
  assert.deepEqual(decodeRendezvous(encodeRendezvous({ ...connect, waitMs: 0 })), {
    ...connect,
    waitMs: 0,
  });
  bad({ ...sync, v: 1, waitMs: -1 });
  bad({ ...sync, v: 1, waitMs: 600_001 });
  bad({ ...connect, v: 1, waitMs: "35000" });
});

Deno.test("NatService options are checked up front", async () => {
  await using t = new QuicTransport({ identity: Identity.generate(), config: { quicPort: 0 } });
  assert.throws(() => new NatService(t, { punchIntervalMs: 0 }), InvalidConfigError);
  assert.throws(() => new NatService(t, { connectionTimeoutMs: -1 }), InvalidConfigError);
  assert.throws(() => new NatService(t, { stunServers: ["nowhere"] }), NetworkError);
  await using nat = new NatService(t);
  await assert.rejects(nat.discover(), InvalidConfigError); // no STUN servers configured
  await assert.rejects(nat.connect(Identity.generate().peerId, { via: [] }), InvalidConfigError);
  // RelayService.fallback plugs in as it is.
  const _fallback: NatFallback = null as unknown as RelayService["fallback"];
});

const loopback = udpSkipReason() !== undefined;

/** Three transports on loopback, B and C connected to R, each with a NatService. */
async function trio(
  options: { fallback?: NatFallback; cService?: boolean; directRetryMs?: number } = {},
) {
  const config = { listenAddr: "127.0.0.1", quicPort: 0, keepAliveIntervalSecs: 0 };
  const r = new QuicTransport({ identity: Identity.generate(), config });
  const b = new QuicTransport({ identity: Identity.generate(), config });
  const c = new QuicTransport({ identity: Identity.generate(), config });
  const natR = new NatService(r);
  const natB = new NatService(b, {
    fallback: options.fallback,
    directRetryMs: options.directRetryMs,
  });
  const natC = options.cService === false ? undefined : new NatService(c);
  await Promise.all([natR.start(), natB.start(), natC?.start()]);
  const { port } = await r.bindAndListen();
  await b.bindAndListen();
  await c.bindAndListen();
  await b.connectPeer(`127.0.0.1:${port}`);
  await c.connectPeer(`127.0.0.1:${port}`);
  return {
    r,
    b,
    c,
    natB,
    natC,
    async [Symbol.asyncDispose]() {
      await Promise.all([natR.close(), natB.close(), natC?.close()]);
      await Promise.all([r.close(), b.close(), c.close()]);
    },
  };
}

Deno.test({
  name: "NatService on loopback: an introduction punches and dials; both sides report direct",
  ignore: loopback,
  fn: async () => {
    await using n = await trio();
    const seenByC = new Promise<NatConnection>((resolve) =>
      n.natC!.addEventListener("nat:connected", (e) => resolve(e.detail), { once: true })
    );
    const t0 = performance.now();
    const conn = await n.natB.connect(n.c.peerId, { via: n.r.peerId, timeoutMs: 5000 });
    assert.equal(conn.path, "direct");
    assert.ok(conn.peerId.equals(n.c.peerId));
    assert.equal(conn.address.port, n.c.localAddr.port);
    assert.ok(conn.via?.equals(n.r.peerId));
    const other = await seenByC;
    assert.ok(other.peerId.equals(n.b.peerId) && other.direction === "inbound");
    // The connection is usable, and a second connect finds it.
    assert.ok(await n.b.ping(n.c.peerId) >= 0);
    const again = await n.natB.connect(n.c.peerId, { via: n.r.peerId });
    assert.equal(again.elapsedMs, 0);
    console.log(`loopback introduction + punch + dial: ${(performance.now() - t0).toFixed(0)} ms`);
  },
});

Deno.test({
  name: "NatService on loopback: refusals fail fast with what was tried; the fallback takes over",
  ignore: loopback,
  fn: async () => {
    // C runs no NatService: its transport answers the sync with ERR_UNKNOWN_PROTOCOL.
    let fallbackCalls = 0;
    const fallback: NatFallback = async (peerId, info) => {
      fallbackCalls++;
      assert.equal(info.error.code, "ERR_NAT_TRAVERSAL_FAILED");
      assert.ok(info.via !== undefined && info.signal !== undefined);
      // Stands in for a relay: any path that ends with the peer connected.
      return await n.b.connectPeer(n.c.localAddr, { expectedPeerId: peerId });
    };
    await using n = await trio({ cService: false, fallback });
    const stranger = Identity.generate().peerId;
    const t0 = performance.now();
    const err = await n.natB.connect(stranger, { via: [n.c.peerId, n.r.peerId] }).then(
      () => assert.fail("connected to a peer nobody knows"),
      (e) => e,
    );
    assert.ok(err instanceof NatTraversalError, String(err));
    assert.equal(err.attempt.stage, "rendezvous");
    assert.equal(err.attempt.via.length, 2);
    assert.match(err.message, /not connected to/);
    assert.equal(fallbackCalls, 1);
    assert.ok(err.fallbackError !== undefined);
    assert.ok(performance.now() - t0 < 3000);

    const conn = await n.natB.connect(n.c.peerId, { via: n.r.peerId, timeoutMs: 3000 });
    assert.equal(conn.path, "relay");
    assert.equal(fallbackCalls, 2);
    assert.equal((await n.natB.connect(n.c.peerId, { via: n.r.peerId })).path, "relay");
  },
});

Deno.test({
  name: "NatService on loopback: the rendezvous protocol refuses garbage and unknown targets",
  ignore: loopback,
  fn: async () => {
    await using n = await trio();
    const ask = async (o: unknown) =>
      decodeRendezvous(
        await n.b.request(
          n.r.peerId,
          RENDEZVOUS_PROTOCOL,
          new TextEncoder().encode(JSON.stringify(o)),
        ),
      );
    assert.equal((await ask({ v: 1, t: "nope" })).t, "refused");
    const unknown = await ask({
      v: 1,
      t: "connect",
      target: Identity.generate().peerId.toString(),
      addresses: [],
      nat: "Unknown",
    });
    assert.equal(unknown.t, "refused");
  },
});

/** Collects the sequence numbers of `count` consensus messages `t` receives. */
async function collect(t: QuicTransport, count: number): Promise<number[]> {
  const seqs: number[] = [];
  for await (const { message } of t.messages()) {
    if (message.type === "consensus") seqs.push(message.data[0] * 256 + message.data[1]);
    if (seqs.length === count) return seqs;
  }
  return seqs;
}

/**
 * A trio whose B falls back to a UDP forwarder to C (standing in for a TURN relay); C runs no
 * NatService, so punching fails (its transport refuses the sync) until a test starts one.
 */
async function relayedTrio(directRetryMs: number) {
  let relayPort = 0;
  const fallback: NatFallback = (peerId) =>
    n.b.connectPeer(`127.0.0.1:${relayPort}`, { expectedPeerId: peerId });
  const n = await trio({ cService: false, fallback, directRetryMs });
  const relay = startUdpRelay(n.c.localAddr);
  relayPort = relay.port;
  return {
    ...n,
    relay,
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await n[Symbol.asyncDispose]();
    },
  };
}

function consensus(seq: number) {
  return { type: "consensus" as const, data: new Uint8Array([seq >> 8, seq & 255]) };
}

Deno.test({
  name: "NatService on loopback: a relayed peer moves to the direct path once punching works, " +
    "under traffic, with nothing lost (upgrade())",
  ignore: loopback,
  fn: async () => {
    await using n = await relayedTrio(0);
    const first = await n.natB.connect(n.c.peerId, { via: n.r.peerId, timeoutMs: 3000 });
    assert.equal(first.path, "relay");
    const addressOfC = () => n.b.peers().find((p) => p.peerId.equals(n.c.peerId))?.addresses;
    assert.deepEqual(addressOfC(), [`127.0.0.1:${n.relay.port}`]);
    const tooEarly = await n.natB.upgrade(n.c.peerId).then(() => undefined, (e) => e);
    assert.ok(tooEarly instanceof NatTraversalError, String(tooEarly));

    await using natC = new NatService(n.c);
    await natC.start();
    const seenByC = new Promise<NatConnection>((resolve) =>
      natC.addEventListener("nat:migrated", (e) => resolve(e.detail), { once: true })
    );
    const total = 600;
    const received = collect(n.c, total);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < total / 2; i++) sends.push(n.b.send(n.c.peerId, consensus(i)));
    const moved = await n.natB.upgrade(n.c.peerId);
    for (let i = total / 2; i < total; i++) sends.push(n.b.send(n.c.peerId, consensus(i)));
    assert.equal(moved.path, "direct");
    assert.equal(moved.address.port, n.c.localAddr.port);
    assert.equal((await seenByC).path, "direct");
    await Promise.all(sends);
    assert.deepEqual(await received, Array.from({ length: total }, (_, i) => i));
    assert.deepEqual(addressOfC(), [`127.0.0.1:${n.c.localAddr.port}`]);
    assert.equal((await n.natB.connect(n.c.peerId, { via: n.r.peerId })).path, "direct");
    assert.equal((await n.natB.upgrade(n.c.peerId)).elapsedMs, 0, "already direct");
  },
});

Deno.test({
  name:
    "NatService on loopback: the periodic retry reports its failures (nat:upgrade-failed) and " +
    "moves a relayed peer by itself once punching works",
  ignore: loopback,
  fn: async () => {
    await using n = await relayedTrio(200);
    const failed = new Promise<NatUpgradeFailure>((resolve) =>
      n.natB.addEventListener("nat:upgrade-failed", (e) => resolve(e.detail), { once: true })
    );
    const migrated = new Promise<NatConnection>((resolve) =>
      n.natB.addEventListener("nat:migrated", (e) => resolve(e.detail), { once: true })
    );
    assert.equal((await n.natB.connect(n.c.peerId, { via: n.r.peerId })).path, "relay");
    // Retries fail (C refuses the sync) until C runs the service.
    const failure = await failed;
    assert.ok(failure.peerId.equals(n.c.peerId));
    assert.ok(failure.error instanceof NatTraversalError, String(failure.error));
    assert.equal(failure.retryInMs, 200);
    await using natC = new NatService(n.c);
    await natC.start();
    const moved = await migrated;
    assert.equal(moved.path, "direct");
    assert.equal(moved.address.port, n.c.localAddr.port);
    assert.ok(await n.b.ping(n.c.peerId) >= 0);
  },
});

/** A victim C with a NatService on a virtual clock, and a connected peer R that attacks it. */
async function victim() {
  const config = { listenAddr: "127.0.0.1", quicPort: 0, keepAliveIntervalSecs: 0 };
  const r = new QuicTransport({ identity: Identity.generate(), config });
  const c = new QuicTransport({ identity: Identity.generate(), config });
  const clock = new VirtualClock(performance.now());
  const natC = new NatService(c, { clock, punchIntervalMs: 50, punchDurationMs: 500 });
  const { port } = await c.bindAndListen();
  await natC.start();
  await r.bindAndListen();
  await r.connectPeer(`127.0.0.1:${port}`);
  const sync = async (session: number, addresses: { hostname: string; port: number }[]) =>
    decodeRendezvous(
      await r.request(
        c.peerId,
        RENDEZVOUS_PROTOCOL,
        encodeRendezvous({
          t: "sync",
          session: session.toString(16).padStart(32, "0"),
          peer: Identity.generate().peerId.toString(),
          addresses,
          nat: "Cone",
          startIn: 0,
        }),
      ),
    );
  return {
    clock,
    sync,
    async [Symbol.asyncDispose]() {
      await natC.close();
      await Promise.all([r.close(), c.close()]);
    },
  };
}

Deno.test({
  name: "NatService: a sync from a connected peer punches at most two hosts, never fanned out",
  ignore: loopback,
  fn: async () => {
    await using v = await victim();
    const sockets = ["127.0.0.1", "127.0.0.2", "127.0.0.3"].map((hostname) =>
      Deno.listenDatagram({ transport: "udp", hostname, port: 0 })
    );
    try {
      const targets = sockets.map((s) => {
        const { hostname, port } = s.addr as Deno.NetAddr;
        return { hostname, port };
      });
      assert.equal((await v.sync(1, targets)).t, "synced");
      await v.clock.advance(0);
      await v.clock.advance(50);
      // Two rounds reached the first two hosts; a punch at the third would have been sent
      // before the second round, so it would be waiting by now.
      for (const s of sockets.slice(0, 2)) {
        for (let i = 0; i < 2; i++) {
          const [data] = await within(s.receive(), 5000, "a punch");
          assert.equal(decodePunch(data)?.kind, "punch");
        }
      }
      const third = await within(sockets[2].receive(), 100, "nothing").then(
        () => "punched",
        () => "spared",
      );
      assert.equal(third, "spared");
    } finally {
      for (const s of sockets) s.close();
    }
  },
});

Deno.test({
  name: "NatService: syncs from one peer are rate-limited (a burst of 16, then refused)",
  ignore: loopback,
  fn: async () => {
    await using v = await victim();
    await using sink = new RawSocket();
    const target = [sink.addr];
    // Time stands still on the virtual clock: no token comes back during the test.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => v.sync(i + 1, target)));
    assert.equal(answers.filter((a) => a.t === "synced").length, 16);
    const refused = answers.filter((a) => a.t === "refused");
    assert.equal(refused.length, 4);
    assert.match(refused[0].t === "refused" ? refused[0].reason : "", /introductions a second/);
    await v.clock.advance(1000);
    assert.equal((await v.sync(100, target)).t, "synced", "four more a second");
  },
});
