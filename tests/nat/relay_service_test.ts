/**
 * `RelayService` and `parseTurnUrl` on loopback with a real coturn: a relayed connection
 * signalled through a third node (path `relay` on both sides, events), typed errors for wrong
 * credentials, an unreachable server (and failover to the next one) and an expired allocation,
 * and the option checks.
 */
import assert from "node:assert/strict";
import { Identity, NetworkError, QuicTransport } from "../../mod.ts";
import {
  parseTurnUrl,
  RELAY_PROTOCOL,
  type RelayConnectedDetail,
  RelayService,
  RelaySocket,
  TurnError,
} from "../../src/nat/mod.ts";
import type { TurnServerConfig } from "../../src/transport/config.ts";
import { DenoUdpSocket } from "../../src/quic/udp_socket.ts";
import { startTurnServer, TURN_USER, turnSkipReason } from "./_turn_server.ts";
import { VirtualClock } from "../_virtual_clock.ts";

const ignore = turnSkipReason() !== undefined;

/** A transport on a relay socket on loopback, with its relay service (not started). */
async function relayNode(
  turnServers: TurnServerConfig[],
  lifetime?: number,
  clock?: VirtualClock,
) {
  const relaySocket = new RelaySocket(DenoUdpSocket.bind({ hostname: "127.0.0.1", port: 0 }));
  const transport = new QuicTransport({
    identity: Identity.generate(),
    socket: relaySocket,
    config: { turnServers, keepAliveIntervalSecs: 0 },
  });
  await transport.bindAndListen();
  const relay = new RelayService(transport, { relaySocket, lifetimeSecs: lifetime, clock });
  return {
    transport,
    relay,
    relaySocket,
    async [Symbol.asyncDispose]() {
      await relay.close();
      await transport.close();
    },
  };
}

/** A UDP port on loopback where nothing answers (bound and released). */
function silentPort(): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

Deno.test("parseTurnUrl: the example node's --turn form, with typed errors and no password shown", () => {
  assert.deepEqual(parseTurnUrl("turn:test:secret@10.200.0.1:3478"), {
    address: "10.200.0.1:3478",
    username: "test",
    password: "secret",
  });
  assert.deepEqual(parseTurnUrl("TURN:a%3Ab:p:w@d@[::1]:5349?transport=udp"), {
    address: "[::1]:5349",
    username: "a:b",
    password: "p:w@d",
  });
  assert.equal(parseTurnUrl("turn:u:p@localhost").address, "127.0.0.1:3478");
  assert.equal(parseTurnUrl("turn:u:@127.0.0.1:1").password, "");
  for (
    const bad of [
      "stun:u:p@127.0.0.1:3478",
      "turns:u:hunter2@127.0.0.1:5349",
      "turn:u:hunter2@127.0.0.1:3478?transport=tcp",
      "turn:127.0.0.1:3478",
      "turn:uhunter2@127.0.0.1:3478",
      "turn::hunter2@127.0.0.1:3478",
      "turn:u:hunter2@turn.example.org:3478",
      "turn:u:hunter2@127.0.0.1:70000",
      "turn:u:%E0%A4%A@127.0.0.1:3478",
    ]
  ) {
    assert.throws(() => parseTurnUrl(bad), (e: unknown) => {
      assert.ok(e instanceof NetworkError && e.code === "ERR_INVALID_CONFIG", String(e));
      assert.ok(!e.message.includes("hunter2"), `password shown: ${e.message}`);
      return true;
    });
  }
});

Deno.test("RelayService: option checks", async () => {
  await using transport = new QuicTransport({
    identity: Identity.generate(),
    config: { listenAddr: "127.0.0.1", quicPort: 0 },
  });
  const turnServers = [{ address: "127.0.0.1:3478", ...TURN_USER }];
  assert.throws(() => new RelayService(transport, { turnServers }), /relaySocket/);
  assert.throws(
    () => new RelayService(transport, { turnServers: [{ ...turnServers[0], address: "x" }] }),
    /turnServers\[0\]\.address/,
  );
  assert.throws(() => new RelayService(transport, { lifetimeSecs: 0 }), /lifetimeSecs/);
  assert.throws(() => new RelayService(transport, { signalTimeoutMs: -1 }), /signalTimeoutMs/);
  // Not started: no allocation to relay through.
  await using relay = new RelayService(transport);
  await assert.rejects(
    relay.connect(Identity.generate().peerId),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_ENDPOINT_CLOSED",
  );
});

Deno.test({
  name: "RelayService on loopback: signalled through a third node, both sides report path relay",
  ignore,
  fn: async () => {
    await using server = await startTurnServer();
    const turnServers = [{ address: `127.0.0.1:${server.address.port}`, ...TURN_USER }];
    await using a = await relayNode(turnServers);
    await using b = await relayNode(turnServers);
    await using c = new QuicTransport({
      identity: Identity.generate(),
      config: { listenAddr: "127.0.0.1", quicPort: 0, keepAliveIntervalSecs: 0 },
    });
    const { port } = await c.bindAndListen();
    await using forwarder = new RelayService(c);
    assert.equal(await forwarder.start(), undefined);
    const relayedA = await a.relay.start();
    const relayedB = await b.relay.start();
    assert.deepEqual(a.relay.relayedAddress, relayedA);
    assert.equal(relayedA?.hostname, "127.0.0.1");
    assert.notEqual(relayedA?.port, relayedB?.port);
    const viaC = await a.transport.connectPeer(`127.0.0.1:${port}`);
    await b.transport.connectPeer(`127.0.0.1:${port}`);
    assert.equal(a.relay.path(viaC), "direct");
    assert.equal(a.relay.path(b.transport.peerId), undefined);

    const inbound = new Promise<RelayConnectedDetail>((resolve) =>
      b.relay.addEventListener("relay:connected", (e) => resolve(e.detail), { once: true })
    );
    const outbound = new Promise<RelayConnectedDetail>((resolve) =>
      a.relay.addEventListener("relay:connected", (e) => resolve(e.detail), { once: true })
    );
    // No `via`: the connected peers are tried, C is the only one.
    const peer = await a.relay.connect(b.transport.peerId);
    assert.ok(peer.equals(b.transport.peerId));
    assert.equal(a.relay.path(peer), "relay");
    assert.deepEqual((await outbound).address, relayedB);
    assert.equal((await outbound).direction, "outbound");
    const seen = await inbound;
    assert.ok(seen.peerId.equals(a.transport.peerId));
    assert.deepEqual(seen.address, relayedA);
    assert.equal(b.relay.path(a.transport.peerId), "relay");
    // Connected already: at once, on the same path.
    assert.ok((await a.relay.connect(peer, { via: viaC })).equals(peer));

    b.transport.handle("/echo/1", (request) => request);
    const data = crypto.getRandomValues(new Uint8Array(60_000));
    assert.deepEqual(await a.transport.request(peer, "/echo/1", data), data);
    assert.ok(a.relaySocket.stats.relayedOut > 0 && b.relaySocket.stats.relayedIn > 0);

    // A forward to a peer the forwarder does not know fails with what went wrong.
    await assert.rejects(
      a.relay.connect(Identity.generate().peerId, { via: viaC }),
      (e: unknown) =>
        e instanceof NetworkError && e.code === "ERR_NAT_TRAVERSAL_FAILED" &&
        /ERR_UNKNOWN_PEER/.test(e.message),
    );
  },
});

Deno.test({
  name: "RelayService: wrong credentials ERR_TURN_AUTH; unreachable server ERR_TURN, then failover",
  ignore,
  fn: async () => {
    await using server = await startTurnServer();
    const good = { address: `127.0.0.1:${server.address.port}`, ...TURN_USER };
    const silent = { ...good, address: `127.0.0.1:${silentPort()}` };
    {
      await using n = await relayNode([{ ...good, password: "wrong" }]);
      await assert.rejects(
        n.relay.start(),
        (e: unknown) => e instanceof TurnError && e.code === "ERR_TURN_AUTH" && e.errorCode === 401,
      );
      assert.equal(n.relay.relayedAddress, undefined);
    }
    {
      await using n = await relayNode([silent]);
      await assert.rejects(
        n.relay.start(),
        (e: unknown) =>
          e instanceof TurnError && e.code === "ERR_TURN" && /no answer/.test(e.message),
      );
    }
    {
      await using n = await relayNode([silent, good]);
      const relayed = await n.relay.start();
      assert.equal(relayed?.hostname, "127.0.0.1");
      assert.equal(n.relay.turn?.server.port, server.address.port);
    }
  },
});

Deno.test({
  name: "RelayService: an allocation that cannot be refreshed expires: event, then connect fails " +
    "with ERR_TURN_ALLOCATION_EXPIRED",
  ignore,
  fn: async () => {
    const lifetime = 2;
    const server = await startTurnServer({ extraArgs: [`--max-allocate-lifetime=${lifetime}`] });
    try {
      await using n = await relayNode(
        [{ address: `127.0.0.1:${server.address.port}`, ...TURN_USER }],
        lifetime,
      );
      await n.relay.start();
      assert.equal(n.relay.turn?.lifetimeSecs, lifetime);
      const expired = new Promise<TurnError>((resolve) =>
        n.relay.addEventListener("relay:expired", (e) => resolve(e.detail), { once: true })
      );
      // The server goes away: the refresh gets no answer until the lifetime runs out.
      await server.stop();
      const error = await expired;
      assert.equal(error.code, "ERR_TURN_ALLOCATION_EXPIRED");
      assert.equal(n.relay.relayedAddress, undefined);
      await assert.rejects(
        n.relay.connect(Identity.generate().peerId),
        (e: unknown) => e instanceof TurnError && e.code === "ERR_TURN_ALLOCATION_EXPIRED",
      );
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "RelayService: offers from a connected peer: only addresses with a basis, rate-limited",
  ignore,
  fn: async () => {
    await using server = await startTurnServer();
    // Time stands still on the virtual clock: no token comes back during the test.
    await using n = await relayNode(
      [{ address: `127.0.0.1:${server.address.port}`, ...TURN_USER }],
      undefined,
      new VirtualClock(),
    );
    await n.relay.start();
    await using attacker = new QuicTransport({
      identity: Identity.generate(),
      config: { listenAddr: "127.0.0.1", quicPort: 0, keepAliveIntervalSecs: 0 },
    });
    await attacker.bindAndListen();
    await attacker.connectPeer(`127.0.0.1:${n.transport.localAddr.port}`);
    const offer = async (relayed: string) =>
      JSON.parse(
        new TextDecoder().decode(
          await attacker.request(
            n.transport.peerId,
            RELAY_PROTOCOL,
            new TextEncoder().encode(JSON.stringify({ t: "offer", relayed })),
          ),
        ),
      );

    // Our TURN server and the requester are on loopback: a private or unusable address has no
    // basis, whatever the peer says.
    for (const relayed of ["10.9.9.9:3478", "0.0.0.0:3478", "224.0.0.1:3478"]) {
      const answer = await offer(relayed);
      assert.equal(answer.error?.code, "ERR_NAT_TRAVERSAL_FAILED", JSON.stringify(answer));
      assert.match(answer.error.message, /may send to on a peer's word/);
    }
    // Three tokens went; of ten more offers, five are taken and the rest refused.
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => offer(`127.0.0.1:${40000 + i}`)),
    );
    assert.equal(answers.filter((a) => a.relayed !== undefined).length, 5, JSON.stringify(answers));
    const limited = answers.filter((a) => a.error?.code === "ERR_LIMIT_EXCEEDED");
    assert.equal(limited.length, 5, JSON.stringify(answers));
    assert.match(limited[0].error.message, /requests a second/);
  },
});
