/**
 * RelaySocket: the send-buffer protocol and the demultiplexing on a fake socket, then QUIC
 * end to end through a real coturn on loopback (two endpoints, each behind its own relay).
 */
import assert from "node:assert/strict";
import stun from "stun";
import { Buffer } from "node:buffer";
import { RelaySocket, StunClient, TurnClient } from "../../src/nat/mod.ts";
import { NetworkError } from "../../src/errors.ts";
import { QuicEndpoint } from "../../src/quic/endpoint.ts";
import type { UdpAddress } from "../../src/quic/datagram_port.ts";
import {
  type DatagramReceiver,
  type DatagramSocket,
  DenoUdpSocket,
} from "../../src/quic/udp_socket.ts";
import { echo, percentile, serveEcho } from "../quic/_util.ts";
import { startTurnServer, TURN_USER, turnSkipReason } from "./_turn_server.ts";

const coturnIgnore = turnSkipReason() !== undefined;
if (coturnIgnore) console.warn(`[relay_socket_test] skipping coturn tests: ${turnSkipReason()}`);

const SERVER: UdpAddress = { hostname: "192.0.2.1", port: 3478 };
const PEER: UdpAddress = { hostname: "192.0.2.1", port: 49170 };
const DIRECT: UdpAddress = { hostname: "198.51.100.9", port: 7000 };

/** A socket in memory with two send buffers; records what leaves. */
class FakeSocket implements DatagramSocket {
  readonly localAddr: UdpAddress = { hostname: "10.0.0.1", port: 4000 };
  readonly sendBufferSize = 1500;
  onWritable: (() => void) | undefined = undefined;
  sendErrors = 0;
  readonly sent: { data: Uint8Array; to: UdpAddress }[] = [];
  readonly buffers = [new Uint8Array(1500), new Uint8Array(1500)];
  receiver: DatagramReceiver | undefined;
  #next = 0;
  start(receiver: DatagramReceiver): void {
    this.receiver = receiver;
  }
  nextSendBuffer(): Uint8Array | null {
    return this.buffers[this.#next];
  }
  send(length: number, to: UdpAddress): void {
    this.sent.push({ data: this.buffers[this.#next].slice(0, length), to });
    this.#next = 1 - this.#next;
  }
  sendCopy(data: Uint8Array, to: UdpAddress): Promise<void> {
    this.sent.push({ data: data.slice(), to });
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The part of a TurnClient the relay socket uses. */
function fakeTurn() {
  const handed: Uint8Array[] = [];
  const turn = {
    server: SERVER,
    expired: false,
    bindChannel: (_peer: UdpAddress) => Promise.resolve(0x4001),
    handleDatagram: (data: Uint8Array) => (handed.push(data.slice()), true),
  };
  return { turn, handed, asClient: turn as unknown as TurnClient };
}

Deno.test("relay socket: headroom, ChannelData out for relayed peers, unchanged for the rest", async () => {
  const inner = new FakeSocket();
  const relay = new RelaySocket(inner);
  const { turn, asClient } = fakeTurn();
  assert.equal(relay.sendBufferSize, 1496);
  assert.equal(relay.nextSendBuffer(), inner.buffers[0], "nobody relayed: the inner buffer");
  assert.equal(await relay.addPeer(PEER, asClient), 0x4001);
  assert.equal(relay.isRelayed(PEER), true);
  assert.equal(relay.isRelayed(DIRECT), false);

  const view = relay.nextSendBuffer()!;
  assert.equal(view.buffer, inner.buffers[0].buffer);
  assert.equal(view.byteOffset, inner.buffers[0].byteOffset + 4, "4 bytes of headroom");
  assert.equal(relay.nextSendBuffer(), view, "same buffer until send, same view object");
  view.set([0x41, 2, 3]);
  relay.send(3, PEER);
  assert.deepEqual(inner.sent.at(-1), {
    data: new Uint8Array([0x40, 0x01, 0, 3, 0x41, 2, 3]),
    to: SERVER,
  });
  relay.nextSendBuffer()!.set([0x41, 5, 6, 7]);
  relay.send(4, DIRECT);
  assert.deepEqual(inner.sent.at(-1), { data: new Uint8Array([0x41, 5, 6, 7]), to: DIRECT });

  // A buffer handed out before the peer was registered still gets its header.
  relay.removePeer(PEER);
  const early = relay.nextSendBuffer()!;
  assert.equal(early.byteLength, 1500, "handed out unshifted");
  await relay.addPeer(PEER, asClient);
  early.set([0x41, 8]);
  relay.send(2, PEER);
  assert.deepEqual(inner.sent.at(-1), {
    data: new Uint8Array([0x40, 1, 0, 2, 0x41, 8]),
    to: SERVER,
  });

  await relay.sendCopy(new Uint8Array([9]), PEER);
  assert.deepEqual(inner.sent.at(-1), { data: new Uint8Array([0x40, 1, 0, 1, 9]), to: SERVER });
  await relay.sendCopy(new Uint8Array([9]), DIRECT);
  assert.deepEqual(inner.sent.at(-1), { data: new Uint8Array([9]), to: DIRECT });

  // Expired allocation: relayed datagrams are dropped and counted, sendCopy rejects.
  turn.expired = true;
  const before = inner.sent.length;
  relay.nextSendBuffer()!.set([0x41]);
  relay.send(1, PEER);
  assert.equal(inner.sent.length, before);
  assert.equal(relay.sendErrors, 1);
  await assert.rejects(
    relay.sendCopy(new Uint8Array([1]), PEER),
    (e: unknown) => e instanceof NetworkError && e.code === "ERR_TURN_ALLOCATION_EXPIRED",
  );
  assert.equal(relay.removePeer(PEER), true);
  assert.equal(relay.removePeer(PEER), false);
  relay.nextSendBuffer()!.set([0x41]);
  relay.send(1, PEER);
  assert.deepEqual(inner.sent.at(-1), { data: new Uint8Array([0x41]), to: PEER }, "direct again");
  assert.deepEqual(relay.stats, { relayedOut: 3, relayedIn: 0, droppedExpired: 2 });
});

Deno.test("relay socket: demultiplexes ChannelData by source address (RFC 9443)", async () => {
  const inner = new FakeSocket();
  const relay = new RelaySocket(inner);
  const { handed, asClient } = fakeTurn();
  const up: { data: number[]; from: UdpAddress }[] = [];
  relay.start((data, from) => up.push({ data: [...data], from }));
  await relay.addPeer(PEER, asClient);
  const deliver = (bytes: number[], from: UdpAddress) =>
    inner.receiver!(new Uint8Array(bytes), from);

  deliver([0x40, 0x01, 0, 2, 0x45, 0x46, 0, 0], SERVER); // padded to 4 bytes
  assert.deepEqual(up.at(-1), { data: [0x45, 0x46], from: PEER });
  // The same bytes from anyone else are QUIC (a short header): passed up unchanged.
  deliver([0x40, 0x01, 0, 2, 0x45, 0x46], DIRECT);
  assert.deepEqual(up.at(-1), { data: [0x40, 0x01, 0, 2, 0x45, 0x46], from: DIRECT });
  // A channel the socket does not know goes to the TURN client.
  deliver([0x40, 0x07, 0, 1, 0x45], SERVER);
  assert.deepEqual([...handed.at(-1)!], [0x40, 0x07, 0, 1, 0x45]);
  // STUN from the server (a TURN response) goes up to the endpoint's raw handlers.
  const response = [0x01, 0x03, 0, 0, 0x21, 0x12, 0xa4, 0x42, ...new Array(12).fill(1)];
  deliver(response, SERVER);
  assert.deepEqual(up.at(-1), { data: response, from: SERVER });
  // A Data indication from the registered peer is unwrapped as well.
  const m = stun.createMessage(0x0017);
  m.addAttribute(0x0012, PEER.hostname, PEER.port);
  m.addAttribute(0x0013, Buffer.from([0x42, 0x43]));
  deliver([...stun.encode(m)], SERVER);
  assert.deepEqual(up.at(-1), { data: [0x42, 0x43], from: PEER });
  assert.equal(relay.stats.relayedIn, 2);
  assert.equal(up.length, 4);
});

// ---------------------------------------------------------------------------------------------
// QUIC through coturn

interface RelayedNode extends AsyncDisposable {
  relay: RelaySocket;
  endpoint: QuicEndpoint;
  turn: TurnClient;
}

async function relayedNode(server: UdpAddress): Promise<RelayedNode> {
  const relay = new RelaySocket(DenoUdpSocket.bind({ hostname: "127.0.0.1", port: 0 }));
  const endpoint = await QuicEndpoint.bind({ socket: relay });
  let turn: TurnClient;
  try {
    turn = await TurnClient.allocate(endpoint, { server, ...TURN_USER });
  } catch (e) {
    await endpoint.close();
    throw e;
  }
  return {
    relay,
    endpoint,
    turn,
    async [Symbol.asyncDispose]() {
      // The TURN client first: it frees the allocation through the endpoint's socket.
      await turn.close();
      await endpoint.close();
    },
  };
}

Deno.test({
  name: "coturn: QUIC through the relay: connect, echo 1 MiB intact, RTT and throughput",
  ignore: coturnIgnore,
  fn: async () => {
    await using server = await startTurnServer();
    await using a = await relayedNode(server.address);
    await using b = await relayedNode(server.address);
    // Each side reaches the other's relayed address through its own allocation.
    await a.relay.addPeer(b.turn.relayedAddress, a.turn);
    await b.relay.addPeer(a.turn.relayedAddress, b.turn);

    const serving = (async () => {
      const conn = await b.endpoint.accept();
      assert.deepEqual(conn.remoteAddr, a.turn.relayedAddress, "B sees A's relayed address");
      // Bounded by the client: it opens a fixed number of streams, then closes.
      await serveEcho(conn, { streaming: true });
    })();

    const t0 = performance.now();
    const conn = await a.endpoint.connect(b.turn.relayedAddress);
    const handshakeMs = performance.now() - t0;

    const payload = crypto.getRandomValues(new Uint8Array(65536));
    const mib = new Uint8Array(1 << 20);
    for (let at = 0; at < mib.length; at += payload.length) mib.set(payload, at);
    mib[12345] ^= 0x5a; // not periodic

    const t1 = performance.now();
    const back = await echo(conn, mib);
    const echoMs = performance.now() - t1;
    assert.equal(back.byteLength, mib.byteLength);
    assert.deepEqual(back, mib, "1 MiB intact");

    const rtts: number[] = [];
    const request = new Uint8Array(256).fill(3);
    for (let i = 0; i < 200; i++) {
      const s = performance.now();
      const r = await echo(conn, request);
      rtts.push(performance.now() - s);
      assert.equal(r.byteLength, 256);
    }
    rtts.sort((x, y) => x - y);
    const stats = a.relay.stats;
    console.log(
      `[relay] handshake ${handshakeMs.toFixed(1)} ms; 1 MiB echo ${echoMs.toFixed(0)} ms = ` +
        `${((2 * 8 * mib.byteLength) / (echoMs / 1000) / 1e6).toFixed(0)} Mbit/s both ways; ` +
        `256 B RTT p50 ${percentile(rtts, 0.5).toFixed(2)} ms, p99 ${
          percentile(rtts, 0.99).toFixed(2)
        } ms; A relayed out ${stats.relayedOut}, in ${stats.relayedIn}`,
    );
    assert.ok(stats.relayedOut > 700 && stats.relayedIn > 700, JSON.stringify(stats));
    assert.equal(b.relay.stats.droppedExpired, 0);
    await conn.close();
    await serving;
  },
});

Deno.test({
  name: "coturn: the relay socket passes STUN and direct QUIC through untouched",
  ignore: coturnIgnore,
  fn: async () => {
    await using server = await startTurnServer();
    await using a = await relayedNode(server.address);
    await using direct = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
    // A STUN Binding on the same socket: the response comes up to the raw handlers.
    using stunClient = new StunClient(a.endpoint);
    const mapped = await stunClient.binding(server.address);
    assert.deepEqual(mapped.mapped, a.endpoint.localAddr);
    // A peer that is not registered is reached directly.
    const accepted = direct.accept();
    const conn = await a.endpoint.connect(direct.localAddr);
    const inbound = await accepted;
    assert.deepEqual(inbound.remoteAddr, a.endpoint.localAddr);
    assert.equal(a.relay.stats.relayedOut, 0);
    await conn.close();
  },
});
