/**
 * TURN client: the pure allocation timers and message building on numbers, the client on a
 * virtual clock against a scripted server, and the client against a real coturn on loopback.
 */
import assert from "node:assert/strict";
import stun from "stun";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { NetworkError } from "../../src/errors.ts";
import { TurnClient, TurnError } from "../../src/nat/mod.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import { decodeStunMessage } from "../../src/nat/_stun_codec.ts";
import {
  channelOf,
  channelPayload,
  encodeChannelData,
  encodeSendIndication,
  encodeTurnRequest,
  integrityMatches,
  isChannelData,
  longTermKey,
  TurnMethod,
} from "../../src/nat/_turn_codec.ts";
import {
  allocationRefreshDelayMs,
  CHANNEL_LIFETIME_MS,
  MAX_ALLOCATION_LIFETIME_S,
  PERMISSION_LIFETIME_MS,
  TurnAllocationState,
} from "../../src/nat/_turn_state.ts";
import { VirtualClock } from "../_virtual_clock.ts";
import { FakePort, type Sent } from "./_fakes.ts";
import { startTurnServer, TURN_USER, turnSkipReason } from "./_turn_server.ts";
import { UdpTestPort } from "./_udp_port.ts";

const coturnIgnore = turnSkipReason() !== undefined;
if (coturnIgnore) console.warn(`[turn_client_test] skipping coturn tests: ${turnSkipReason()}`);

// ---------------------------------------------------------------------------------------------
// Pure parts

Deno.test("allocation refresh: a quarter early, at most a minute early", () => {
  assert.equal(allocationRefreshDelayMs(600), 540_000);
  assert.equal(allocationRefreshDelayMs(3600), 3_540_000);
  assert.equal(allocationRefreshDelayMs(10), 7_500);
  assert.equal(allocationRefreshDelayMs(4), 3_000);
});

Deno.test("allocation state: refreshes due once, failures retried, expiry at the lifetime", () => {
  const s = new TurnAllocationState({ permissionRefreshMs: 240_000, channelRefreshMs: 540_000 });
  assert.equal(s.nextDeadline(), undefined);
  assert.equal(s.expired(1e12), false, "nothing granted, nothing expires");
  s.allocated(1000, 600);
  assert.equal(s.expiresAt, 601_000);
  assert.equal(s.nextDeadline(), 541_000);
  assert.deepEqual(s.due(540_999), []);
  assert.deepEqual(s.due(541_000), [{ kind: "allocation" }]);
  assert.deepEqual(s.due(541_001), [], "in flight: handed out once");
  assert.equal(s.nextDeadline(), 601_000, "while in flight only the expiry is due");
  s.failed(550_000, { kind: "allocation" });
  assert.equal(s.nextDeadline(), 575_500, "retried halfway to expiry");
  assert.deepEqual(s.due(575_500), [{ kind: "allocation" }]);
  s.failed(600_900, { kind: "allocation" });
  assert.equal(s.nextDeadline(), 601_000, "too late to retry: only the expiry is left");
  assert.equal(s.expired(600_999), false);
  assert.equal(s.expired(601_000), true);
  s.allocated(601_000, 600);
  assert.equal(s.expired(601_000), false, "a refresh grants a new lifetime");
});

Deno.test("allocation state: permissions every 4 min, channels every 9 min, numbers unique", () => {
  const s = new TurnAllocationState({ permissionRefreshMs: 240_000, channelRefreshMs: 540_000 });
  s.allocated(0, 3600);
  s.permitted(0, "192.0.2.7");
  assert.equal(s.hasPermission(1, "192.0.2.7"), true);
  assert.equal(s.hasPermission(PERMISSION_LIFETIME_MS, "192.0.2.7"), false);
  assert.equal(s.nextDeadline(), 240_000);
  assert.deepEqual(s.due(240_000), [{ kind: "permission", ip: "192.0.2.7" }]);
  // Unanswered until it lapses: dropped at its expiry.
  assert.equal(s.nextDeadline(), PERMISSION_LIFETIME_MS);
  assert.deepEqual(s.due(PERMISSION_LIFETIME_MS), []);
  assert.equal(s.hasPermission(PERMISSION_LIFETIME_MS, "192.0.2.7"), false);

  const peer = { hostname: "192.0.2.9", port: 5000 };
  const c = s.channelFor(peer)!;
  assert.equal(c, 0x4000);
  s.bound(1000, peer, c);
  assert.equal(s.boundChannel(peer), c);
  assert.deepEqual(s.peerOf(c), peer);
  assert.equal(s.channelFor(peer), c, "a bound peer keeps its channel");
  assert.equal(s.channelFor({ hostname: "192.0.2.9", port: 5001 }), 0x4001);
  assert.equal(s.hasPermission(2000, "192.0.2.9"), true, "a binding installs the permission");
  // The permission (due at 241 s) is refreshed by CreatePermission; at 541 s both are due
  // again and the ChannelBind covers the permission.
  assert.deepEqual(s.due(241_000), [{ kind: "permission", ip: "192.0.2.9" }]);
  s.permitted(241_000, "192.0.2.9");
  const tasks = s.due(541_000);
  assert.deepEqual(tasks, [{ kind: "channel", peer, channel: c }]);
  s.bound(541_000, peer, c);
  assert.equal(s.nextDeadline(), 541_000 + 240_000);
  // A binding nobody refreshes lapses after 10 minutes and its number is free again.
  s.due(541_000 + 540_000);
  s.due(541_000 + CHANNEL_LIFETIME_MS);
  assert.equal(s.boundChannel(peer), undefined);
  assert.equal(s.peerOf(c), undefined);
});

Deno.test("allocation state: channel numbers wrap and run out after 4096", () => {
  const s = new TurnAllocationState({ permissionRefreshMs: 240_000, channelRefreshMs: 540_000 });
  for (let i = 0; i < 4096; i++) {
    const peer = { hostname: "192.0.2.1", port: 1000 + i };
    const c = s.channelFor(peer);
    assert.equal(c, 0x4000 + i);
    s.bound(0, peer, c!);
  }
  assert.equal(s.channelFor({ hostname: "192.0.2.2", port: 1 }), undefined);
});

Deno.test("codec: requests carry their attributes and a MESSAGE-INTEGRITY the key verifies", () => {
  const key = longTermKey("test", "example.org", "secret");
  // RFC 8489 long-term key: MD5 over "user:realm:password".
  assert.deepEqual(
    key,
    new Uint8Array(createHash("md5").update("test:example.org:secret").digest()),
  );
  const id = crypto.getRandomValues(new Uint8Array(12));
  const peer = { hostname: "192.0.2.44", port: 6000 };
  const bytes = encodeTurnRequest(TurnMethod.channelBind, id, { peers: [peer], channel: 0x4abc }, {
    username: "test",
    realm: "example.org",
    nonce: new TextEncoder().encode("n0nce"),
    key,
  });
  const m = decodeStunMessage(bytes)!;
  assert.equal(m.type, 0x0009);
  assert.deepEqual(m.peerAddress, peer);
  assert.equal(m.realm, "example.org");
  assert.equal(new TextDecoder().decode(m.nonce), "n0nce");
  assert.equal(integrityMatches(bytes, key), true);
  assert.equal(integrityMatches(bytes, longTermKey("test", "example.org", "wrong")), false);
  const tampered = bytes.slice();
  tampered[30] ^= 1;
  assert.equal(integrityMatches(tampered, key), false);
  // npm `stun`, independent of the code under test, reads the channel number.
  const other = stun.decode(Buffer.from(bytes));
  assert.equal(other.getAttribute(0x000c).value >>> 16, 0x4abc);

  const allocate = decodeStunMessage(encodeTurnRequest(TurnMethod.allocate, id, {
    udp: true,
    lifetime: 77,
  }))!;
  assert.equal(allocate.lifetime, 77);
  assert.equal(integrityMatches(encodeTurnRequest(TurnMethod.refresh, id, {}), key), false);
});

Deno.test("codec: ChannelData and Send indications", () => {
  const payload = new Uint8Array([0x40, 1, 2, 3, 4]);
  const cd = encodeChannelData(0x4001, payload);
  assert.deepEqual([...cd.subarray(0, 4)], [0x40, 0x01, 0, 5]);
  assert.equal(isChannelData(cd), true);
  assert.equal(channelOf(cd), 0x4001);
  assert.deepEqual(channelPayload(cd), payload);
  // Padding after the data is allowed over UDP; a length past the end is not.
  assert.equal(isChannelData(new Uint8Array([...cd, 0, 0, 0])), true);
  assert.equal(isChannelData(cd.subarray(0, 8)), false);
  assert.equal(isChannelData(new Uint8Array([0x50, 0, 0, 0])), false, "0x5000 is no channel");
  const si = decodeStunMessage(encodeSendIndication({ hostname: "192.0.2.5", port: 9 }, payload))!;
  assert.equal(si.type, 0x0016);
  assert.deepEqual(si.peerAddress, { hostname: "192.0.2.5", port: 9 });
  assert.deepEqual(si.data, payload);
});

// ---------------------------------------------------------------------------------------------
// The client on a virtual clock against a scripted server

const SERVER: UdpAddress = { hostname: "192.0.2.1", port: 3478 };
const RELAYED: UdpAddress = { hostname: "192.0.2.1", port: 49152 };
const KEY = new Uint8Array(createHash("md5").update("test:example.org:secret").digest());

/** A TURN server in a few lines of npm `stun`: answers per a script, never on its own. */
class ScriptedServer {
  lifetime = 10;
  /** Whether to answer Refresh requests. */
  answerRefresh = true;
  /** Answer with 438 once to the next authenticated request. */
  staleOnce = false;
  /** Requests seen: method, LIFETIME, authenticated. */
  readonly seen: { method: number; lifetime?: number; auth: boolean; at: number }[] = [];

  constructor(readonly port: FakePort) {
    port.onSend = (s) => this.#onRequest(s);
  }

  #onRequest(s: Sent): void {
    const req = stun.decode(Buffer.from(s.data));
    const method = req.type & 0x3eef;
    const auth = req.getAttribute(0x0008) !== undefined;
    this.seen.push({ method, lifetime: req.getAttribute(0x000d)?.value, auth, at: s.at });
    if (method === 0x0004 && !this.answerRefresh) return;
    const tx = Buffer.from(s.data.subarray(8, 20));
    let m;
    if (!auth || this.staleOnce) {
      m = stun.createMessage(method | 0x0110, tx);
      m.addError(auth ? 438 : 401, auth ? "Stale Nonce" : "Unauthorized");
      m.addAttribute(0x0014, "example.org");
      m.addAttribute(0x0015, `nonce-${this.seen.length}`);
      this.staleOnce = false;
    } else {
      // Integrity of the request, checked with the test's own key.
      const username = req.getAttribute(0x0006).value.toString();
      if (username !== "test" || !integrityMatches(s.data, KEY)) {
        m = stun.createMessage(method | 0x0110, tx);
        m.addError(401, "Unauthorized");
        m.addAttribute(0x0014, "example.org");
        m.addAttribute(0x0015, "nonce-x");
      } else {
        m = stun.createMessage(method | 0x0100, tx);
        if (method === 0x0003) {
          m.addAttribute(0x0016, RELAYED.hostname, RELAYED.port);
          m.addAttribute(0x0020, s.to.hostname === SERVER.hostname ? "10.1.0.2" : "0.0.0.0", 40000);
        }
        if (method === 0x0003 || method === 0x0004) {
          m.addAttribute(0x000d, req.getAttribute(0x000d)?.value === 0 ? 0 : this.lifetime);
        }
        m.addMessageIntegrity(Buffer.from(KEY));
      }
    }
    m.addFingerprint();
    const answer = new Uint8Array(stun.encode(m));
    queueMicrotask(() => this.port.deliver(answer, SERVER));
  }
}

function virtualSetup() {
  const clock = new VirtualClock();
  const port = new FakePort(clock);
  const server = new ScriptedServer(port);
  const options = {
    server: SERVER,
    username: "test",
    password: "secret",
    lifetimeSecs: 10,
    clock,
    rto: 100,
    rc: 3,
    rm: 4,
  };
  return { clock, port, server, options };
}

Deno.test("virtual clock: allocate with 401 then credentials, refresh before expiry, close frees", async () => {
  const { clock, port, server, options } = virtualSetup();
  const turn = await TurnClient.allocate(port, options);
  assert.deepEqual(turn.relayedAddress, RELAYED);
  assert.deepEqual(turn.mappedAddress, { hostname: "10.1.0.2", port: 40000 });
  assert.equal(turn.lifetimeSecs, 10);
  assert.deepEqual(server.seen.map((s) => [s.method, s.auth]), [[3, false], [3, true]]);
  // Refreshes at 7.5 s of each 10 s lifetime: three lifetimes later it still lives.
  await clock.advanceTo(30_000);
  const refreshes = server.seen.filter((s) => s.method === 4).map((s) => s.at);
  assert.deepEqual(refreshes, [7_500, 15_000, 22_500, 30_000]);
  assert.equal(turn.expired, false);
  // A stale nonce is replaced and the request repeated.
  server.staleOnce = true;
  assert.equal(await turn.refresh(), 10);
  await turn.close();
  const last = server.seen.at(-1)!;
  assert.equal(last.method, 4);
  assert.equal(last.lifetime, 0, "close sends Refresh with LIFETIME 0");
  assert.equal(clock.timers, 0, "no timer left after close");
  assert.equal(port.handlers, 0, "handler removed after close");
});

Deno.test("virtual clock: a LIFETIME of 2^32-1 s is kept as an hour and refreshed within it", async () => {
  // Found by fuzzing: a LIFETIME above ~2,147,543 s put the refresh past setTimeout's limit,
  // where it fired every millisecond.
  const { clock, port, server, options } = virtualSetup();
  server.lifetime = 0xffff_ffff;
  const turn = await TurnClient.allocate(port, options);
  assert.equal(turn.lifetimeSecs, MAX_ALLOCATION_LIFETIME_S);
  assert.equal(turn.expiresAt, MAX_ALLOCATION_LIFETIME_S * 1000);
  await clock.advanceTo(2 * MAX_ALLOCATION_LIFETIME_S * 1000);
  const refreshes = server.seen.filter((s) => s.method === 4).map((s) => s.at);
  assert.deepEqual(refreshes, [3_540_000, 7_080_000], "a minute before each hour runs out");
  assert.equal(turn.expired, false);
  await turn.close();
  assert.equal(clock.timers, 0);
});

Deno.test("virtual clock: unanswered refreshes end in ERR_TURN_ALLOCATION_EXPIRED at the lifetime", async () => {
  const { clock, port, server, options } = virtualSetup();
  const turn = await TurnClient.allocate(port, options);
  server.answerRefresh = false;
  let expiredAt: number | undefined;
  let event: TurnError | undefined;
  turn.onExpired = (e) => {
    event = e;
    expiredAt = clock.now();
  };
  await clock.advanceTo(20_000);
  assert.equal(expiredAt, 10_000);
  assert.equal(event?.code, "ERR_TURN_ALLOCATION_EXPIRED");
  assert.equal(turn.expired, true);
  await assert.rejects(
    turn.bindChannel({ hostname: "192.0.2.9", port: 1 }),
    (e: unknown) => e instanceof TurnError && e.code === "ERR_TURN_ALLOCATION_EXPIRED",
  );
  await assert.rejects(turn.send(new Uint8Array(1), { hostname: "192.0.2.9", port: 1 }), TurnError);
  // Refresh retries: 7.5 s, then halfway to expiry after each failure (rto 100, rc 3, rm 4).
  const refreshes = server.seen.filter((s) => s.method === 4).map((s) => s.at);
  assert.ok(refreshes.length >= 3 && refreshes[0] === 7_500, `refreshes at ${refreshes}`);
  // Expired, it no longer holds the port: a new client allocates there, and closing the old
  // one leaves the new one's hold (a third is refused up front).
  server.answerRefresh = true;
  const again = await TurnClient.allocate(port, options);
  await turn.close();
  await assert.rejects(
    TurnClient.allocate(port, options),
    (e: unknown) => e instanceof TurnError && /already holds/.test(e.message),
  );
  await again.close();
  assert.equal(clock.timers, 0);
});

Deno.test("virtual clock: wrong password is ERR_TURN_AUTH; no answer is ERR_TURN at the give-up time", async () => {
  {
    const { port, options } = virtualSetup();
    await assert.rejects(
      TurnClient.allocate(port, { ...options, password: "wrong" }),
      (e: unknown) =>
        e instanceof TurnError && e.code === "ERR_TURN_AUTH" && e.errorCode === 401 &&
        e.message.includes('"test"') && e.message.includes("example.org"),
    );
    assert.equal(port.handlers, 0);
  }
  {
    const clock = new VirtualClock();
    const port = new FakePort(clock);
    let failedAt: number | undefined;
    const p = TurnClient.allocate(port, { ...virtualSetup().options, clock }).catch((e) => {
      failedAt = clock.now();
      return e;
    });
    await clock.advanceTo(5_000);
    const e = await p;
    // rto 100, rc 3, rm 4: requests at 0, 100, 300; give up at 700 ms.
    assert.deepEqual(port.sent.map((s) => s.at), [0, 100, 300]);
    assert.equal(failedAt, 700);
    assert.ok(e instanceof TurnError && e.code === "ERR_TURN", String(e));
    assert.match(e.message, /no answer to Allocate: 3 requests within 700 ms/);
    assert.equal(clock.timers, 0);
  }
});

Deno.test("virtual clock: options are checked up front", async () => {
  const { port, options } = virtualSetup();
  await assert.rejects(
    TurnClient.allocate(port, { ...options, server: { hostname: "turn.example", port: 3478 } }),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_INVALID_ADDRESS",
  );
  await assert.rejects(
    TurnClient.allocate(port, { ...options, permissionRefreshMs: 300_000 }),
    /permissionRefreshMs.*300000/,
  );
  await assert.rejects(TurnClient.allocate(port, { ...options, lifetimeSecs: 0 }), /lifetimeSecs/);
  assert.equal(port.sent.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Against coturn on loopback

/** Resolves with the next datagram `port` receives from anyone but `except`. */
function nextDatagram(port: UdpTestPort, except?: UdpAddress): Promise<[Uint8Array, UdpAddress]> {
  return new Promise((resolve) => {
    const off = port.addRawHandler((data, from) => {
      if (except && from.port === except.port && from.hostname === except.hostname) return false;
      off();
      resolve([data.slice(), from]);
      return true;
    });
  });
}

Deno.test({
  name: "coturn: allocate, permission, channel bind, data both ways between two clients",
  ignore: coturnIgnore,
  fn: async () => {
    await using server = await startTurnServer();
    await using a = UdpTestPort.listen();
    await using b = UdpTestPort.listen();
    await using plain = UdpTestPort.listen();
    await using ta = await TurnClient.allocate(a, { server: server.address, ...TURN_USER });
    await using tb = await TurnClient.allocate(b, { server: server.address, ...TURN_USER });
    assert.equal(ta.relayedAddress.hostname, "127.0.0.1");
    assert.notDeepEqual(ta.relayedAddress, tb.relayedAddress);
    assert.deepEqual(ta.mappedAddress, a.localAddr);
    assert.equal(ta.lifetimeSecs, 600);

    // A -> B over ChannelData on both legs: A binds B's relayed address, B binds A's.
    const ca = await ta.bindChannel(tb.relayedAddress);
    const cb = await tb.bindChannel(ta.relayedAddress);
    assert.ok(ca >= 0x4000 && ca <= 0x4fff);
    assert.equal(await ta.bindChannel(tb.relayedAddress), ca, "idempotent");
    const atB = new Promise<[Uint8Array, UdpAddress]>((r) =>
      tb.onData = (d, f) => r([d.slice(), f])
    );
    await ta.send(new TextEncoder().encode("hello B"), tb.relayedAddress);
    const [dataB, fromB] = await atB;
    assert.equal(new TextDecoder().decode(dataB), "hello B");
    assert.deepEqual(fromB, ta.relayedAddress);
    const atA = new Promise<[Uint8Array, UdpAddress]>((r) =>
      ta.onData = (d, f) => r([d.slice(), f])
    );
    await tb.send(new Uint8Array(1200).fill(7), ta.relayedAddress);
    const [dataA, fromA] = await atA;
    assert.equal(dataA.byteLength, 1200);
    assert.deepEqual(fromA, tb.relayedAddress);
    assert.equal(tb.channelOf(ta.relayedAddress), cb);

    // Fallback: a plain UDP peer with only a permission, Send and Data indications.
    await ta.createPermission(plain.localAddr);
    const atPlain = nextDatagram(plain);
    await ta.send(new TextEncoder().encode("via Send indication"), plain.localAddr);
    const [dataPlain, fromPlain] = await atPlain;
    assert.equal(new TextDecoder().decode(dataPlain), "via Send indication");
    assert.deepEqual(fromPlain, ta.relayedAddress, "the peer sees the relayed address");
    const viaData = new Promise<[Uint8Array, UdpAddress]>((r) =>
      ta.onData = (d, f) => r([d.slice(), f])
    );
    await plain.sendRaw(new TextEncoder().encode("back via Data indication"), ta.relayedAddress);
    const [dataBack, fromBack] = await viaData;
    assert.equal(new TextDecoder().decode(dataBack), "back via Data indication");
    assert.deepEqual(fromBack, plain.localAddr);

    // Without a permission the server drops a peer's datagrams.
    const unknown = UdpTestPort.listen();
    let leaked = false;
    tb.onData = () => leaked = true;
    await unknown.sendRaw(new Uint8Array([1]), tb.relayedAddress);
    // Ordering, not sleeping: B's own datagram through the same server arrives after it.
    const marker = new Promise<void>((r) => tb.onData = () => r());
    await ta.send(new Uint8Array([2]), tb.relayedAddress);
    await marker;
    await unknown.close();
    assert.equal(leaked, false);
  },
});

/**
 * Allocates on `port` by hand, as a client that then crashes would: the allocation stays on the
 * server, and nobody on the port knows of it. Returns its relayed address.
 */
async function abandonedAllocation(port: UdpTestPort, server: UdpAddress): Promise<UdpAddress> {
  const ask = async (auth?: Parameters<typeof encodeTurnRequest>[3]) => {
    const id = crypto.getRandomValues(new Uint8Array(12));
    const answer = nextDatagram(port);
    await port.sendRaw(
      encodeTurnRequest(TurnMethod.allocate, id, { udp: true, lifetime: 600 }, auth),
      server,
    );
    return decodeStunMessage((await answer)[0])!;
  };
  const challenge = await ask();
  assert.equal(challenge.error?.code, 401);
  const realm = challenge.realm!;
  const key = longTermKey(TURN_USER.username, realm, TURN_USER.password);
  // coturn may answer a new 5-tuple's next request with 438 and another nonce ("Wrong nonce":
  // seen once in CI); a client retries with that one, as TurnClient does.
  let nonce = challenge.nonce!;
  for (let attempt = 1;; attempt++) {
    const granted = await ask({ ...TURN_USER, realm, nonce: nonce.slice(), key });
    if (granted.error?.code === 438 && granted.nonce !== undefined && attempt < 3) {
      nonce = granted.nonce;
      continue;
    }
    assert.ok(granted.relayedAddress, `Allocate by hand: ${JSON.stringify(granted.error)}`);
    return granted.relayedAddress;
  }
}

Deno.test({
  name: "coturn: an allocation left on the socket by a crashed client is released, then " +
    "allocated anew (437 Allocation Mismatch)",
  ignore: coturnIgnore,
  fn: async () => {
    await using server = await startTurnServer();
    await using a = UdpTestPort.listen();
    const stale = await abandonedAllocation(a, server.address);
    await using turn = await TurnClient.allocate(a, { server: server.address, ...TURN_USER });
    assert.equal(turn.relayedAddress.hostname, "127.0.0.1");
    // The new allocation relays: a plain peer with a permission hears from it.
    await using plain = UdpTestPort.listen();
    await turn.createPermission(plain.localAddr);
    const heard = nextDatagram(plain);
    await turn.send(new Uint8Array([42]), plain.localAddr);
    assert.deepEqual((await heard)[1], turn.relayedAddress);
    // A second live client on the same port and server is refused before anything is sent:
    // the server would see the same 5-tuple.
    await assert.rejects(
      TurnClient.allocate(a, { server: server.address, ...TURN_USER }),
      (e: unknown) =>
        e instanceof TurnError && e.code === "ERR_TURN" && /already holds/.test(e.message),
    );
    // Two at once on another port: the first holds the port from its first request, so the
    // second is refused, not answered 437 and mistaken for a stale allocation to release.
    await using b = UdpTestPort.listen();
    const both = await Promise.allSettled([
      TurnClient.allocate(b, { server: server.address, ...TURN_USER }),
      TurnClient.allocate(b, { server: server.address, ...TURN_USER }),
    ]);
    assert.equal(both[0].status, "fulfilled");
    assert.ok(
      both[1].status === "rejected" && /already holds/.test(String(both[1].reason)),
      `the second allocate: ${both[1].status}`,
    );
    await (both[0] as PromiseFulfilledResult<TurnClient>).value.close();
    // Closed (released), the port allocates again: coturn frees the allocation on its next
    // tick, and the Allocate that meets it before then (437) waits for that.
    await turn.close();
    const started = performance.now();
    await using again = await TurnClient.allocate(a, { server: server.address, ...TURN_USER });
    console.log(
      `[turn] stale allocation ${stale.hostname}:${stale.port} released; new one ` +
        `${turn.relayedAddress.hostname}:${turn.relayedAddress.port}; after a close, ` +
        `${again.relayedAddress.port} in ${(performance.now() - started).toFixed(0)} ms`,
    );
  },
});

Deno.test({
  name: "coturn: wrong credentials fail with ERR_TURN_AUTH",
  ignore: coturnIgnore,
  fn: async () => {
    await using server = await startTurnServer();
    for (const creds of [{ ...TURN_USER, password: "nope" }, { username: "eve", password: "x" }]) {
      // A socket each: coturn ties the failed session to the 5-tuple and its user name.
      await using a = UdpTestPort.listen();
      const started = performance.now();
      await assert.rejects(
        TurnClient.allocate(a, { server: server.address, ...creds }),
        (e: unknown) =>
          e instanceof TurnError && e.code === "ERR_TURN_AUTH" && e.errorCode === 401 &&
          e.message.includes(JSON.stringify(creds.username)),
      );
      assert.ok(performance.now() - started < 1000, "answered, not timed out");
    }
  },
});

Deno.test({
  name: "coturn: an unreachable server fails with ERR_TURN within the configured timeout",
  ignore: coturnIgnore,
  fn: async () => {
    // A port nobody listens on (bound, then closed).
    const gone = UdpTestPort.listen();
    const dead = gone.localAddr;
    await gone.close();
    await using a = UdpTestPort.listen();
    const retransmit = { rto: 50, rc: 3, rm: 4 }; // give up after 50 + 100 + 200 = 350 ms
    const started = performance.now();
    await assert.rejects(
      TurnClient.allocate(a, { server: dead, ...TURN_USER, ...retransmit }),
      (e: unknown) =>
        e instanceof TurnError && e.code === "ERR_TURN" && /no answer/.test(e.message),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 350 && elapsed < 1350, `failed after ${elapsed} ms, configured 350 ms`);
    // An abort signal bounds it too, with ERR_TIMEOUT.
    await assert.rejects(
      TurnClient.allocate(a, { server: dead, ...TURN_USER, signal: AbortSignal.timeout(30) }),
      (e: unknown) => e instanceof NetworkError && e.code === "ERR_TIMEOUT",
    );
  },
});

Deno.test({
  name: "coturn: refresh keeps an allocation alive past its first lifetime; without it it expires",
  ignore: coturnIgnore,
  fn: async () => {
    // coturn caps the first lifetime at 4 s and really drops the allocation after it.
    await using server = await startTurnServer({ extraArgs: ["--max-allocate-lifetime=4"] });
    await using a = UdpTestPort.listen();
    await using peer = UdpTestPort.listen();
    await using live = await TurnClient.allocate(a, {
      server: server.address,
      ...TURN_USER,
      lifetimeSecs: 4,
    });
    assert.equal(live.lifetimeSecs, 4);
    const firstExpiry = live.expiresAt;

    // A second client whose timers never fire: it does not refresh.
    await using b = UdpTestPort.listen();
    const frozen = { now: () => performance.now(), schedule: () => () => {} };
    await using stale = await TurnClient.allocate(b, {
      server: server.address,
      ...TURN_USER,
      lifetimeSecs: 4,
      clock: frozen,
    });

    // Wait on coturn's own log for the unrefreshed allocation to time out (about 4 s).
    await server.process.waitForOutput(
      (out) => out.includes("allocation timeout"),
      10_000,
      "coturn timed out the unrefreshed allocation",
    );
    // coturn's own timeout of `stale`, allocated after `live` with the same lifetime, is the
    // evidence that live's first lifetime is over on the server. (The client's expiresAt runs
    // from when the answer arrived, so coturn may time out slightly before it: not a check.)
    await assert.rejects(
      stale.refresh(),
      (e: unknown) =>
        e instanceof TurnError && e.code === "ERR_TURN_ALLOCATION_EXPIRED" && e.errorCode === 437,
    );
    assert.equal(stale.expired, true);

    // The refreshed one still relays.
    assert.equal(live.expired, false);
    assert.ok(live.expiresAt > firstExpiry, "refreshed");
    await live.createPermission(peer.localAddr);
    const got = nextDatagram(peer);
    await live.send(new TextEncoder().encode("still here"), peer.localAddr);
    assert.equal(new TextDecoder().decode((await got)[0]), "still here");
  },
});

Deno.test({
  name: "coturn: a server that goes away ends in ERR_TURN_ALLOCATION_EXPIRED",
  ignore: coturnIgnore,
  fn: async () => {
    const server = await startTurnServer({ extraArgs: ["--max-allocate-lifetime=2"] });
    await using a = UdpTestPort.listen();
    let turn: TurnClient | undefined;
    try {
      turn = await TurnClient.allocate(a, {
        server: server.address,
        ...TURN_USER,
        lifetimeSecs: 2,
        rto: 50,
        rc: 3,
        rm: 4,
      });
      const expired = new Promise<TurnError>((r) => turn!.onExpired = r);
      await server.stop();
      const started = performance.now();
      const e = await expired;
      assert.equal(e.code, "ERR_TURN_ALLOCATION_EXPIRED");
      assert.ok(performance.now() - started < 2500, "at the end of the 2 s lifetime");
      await assert.rejects(turn.createPermission(a.localAddr), /expired/);
    } finally {
      await turn?.close();
      await server.stop();
    }
  },
});
