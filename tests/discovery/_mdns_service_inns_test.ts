/**
 * In-process tests of {@linkcode MdnsService} that only make sense inside a test namespace:
 * `mdns_service_test.ts` runs this file with `ip netns exec NS deno test`, so Deno's sanitizers
 * check that closing the service and the transports leaves no socket, timer or pending op
 * behind. The interface address comes from the environment variable `MDNS_TEST_ADDR`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Identity } from "../../src/identity/identity.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import type { TransportEventMap } from "../../src/transport/events.ts";
import { NetworkError } from "../../src/errors.ts";
import {
  type MdnsDialFailedDetail,
  MdnsDiscovery,
  type MdnsExpiredDetail,
  type MdnsPeer,
  MdnsService,
  type MdnsServiceEventMap,
} from "../../src/discovery/mod.ts";
import { testPeerId } from "./_mdns_lab.ts";

const addr = Deno.env.get("MDNS_TEST_ADDR");

/** The next event of `type` whose detail passes `match`, or a rejection after `ms`. */
function next<T>(
  target: EventTarget,
  type: string,
  match: (detail: T) => boolean,
  ms: number,
): Promise<T> {
  let listener: EventListener = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new Promise<T>((resolve, reject) => {
    listener = (e) => {
      const detail = (e as CustomEvent<T>).detail;
      if (match(detail)) resolve(detail);
    };
    target.addEventListener(type, listener);
    timer = setTimeout(() => reject(new Error(`no matching ${type} within ${ms} ms`)), ms);
  }).finally(() => {
    target.removeEventListener(type, listener);
    clearTimeout(timer);
  });
}

/** UDP sockets on port 5353 in this namespace (/proc/net follows the network namespace). */
async function mdnsSockets(): Promise<string[]> {
  const lines = (await Deno.readTextFile("/proc/net/udp")).split("\n").slice(1);
  return lines.filter((l) => / [0-9A-F]{8}:14E9 /.test(l));
}

function node(config: Record<string, unknown> = {}): QuicTransport {
  return new QuicTransport({
    identity: Identity.generate(),
    config: { listenAddr: addr!, quicPort: 0, ...config },
  });
}

Deno.test({
  name: "a peer-id mismatch is counted once, not redialed; app-connected peers are not dropped",
  ignore: addr === undefined,
  fn: async () => {
    const t1 = node();
    const t2 = node();
    const fakeId = testPeerId(21);
    let fake: MdnsDiscovery | undefined;
    let s1: MdnsService | undefined;
    let s2: MdnsService | undefined;
    try {
      await t1.bindAndListen();
      const { port: port2 } = await t2.bindAndListen();
      s1 = new MdnsService(t1);
      const discovered: string[] = [];
      s1.addEventListener("mdns:discovered", (e) => discovered.push(e.detail.peerId));
      await s1.start();

      // Announces someone else's peer id at t2's port: the handshake must catch it.
      const failed = next<MdnsDialFailedDetail>(s1, "mdns:dial-failed", () => true, 10_000);
      fake = new MdnsDiscovery({ peerId: fakeId, port: port2, interfaces: [addr!] });
      await fake.start();
      const fakeStarted = Date.now();
      const f = await failed;
      assert.equal(f.peerId, fakeId);
      assert.deepEqual(f.address, { hostname: addr, port: port2 });
      assert.ok(
        f.error instanceof NetworkError && f.error.code === "ERR_PEER_ID_MISMATCH",
        String(f.error),
      );

      // The application connects t2 on purpose; then t2 announces itself (its real id) too.
      // Datagrams on the link arrive in order: by the time s1 discovers t2, it has also heard
      // the fake's second announcement (one second after its first) and not dialed again.
      const t2Id = t2.peerId.toString();
      assert.ok((await t1.connectPeer({ hostname: addr!, port: port2 })).equals(t2.peerId));
      // The fake repeats its announcement one second after its start (RFC 6762 section 8.3).
      // No event marks that, so wait out the second (plus margin) on the clock.
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, fakeStarted + 1200 - Date.now()))
      );
      const seesT2 = next<MdnsPeer>(s1, "mdns:discovered", (p) => p.peerId === t2Id, 10_000);
      s2 = new MdnsService(t2, { dial: false });
      await s2.start();
      await seesT2;
      assert.deepEqual(discovered, [fakeId, t2Id]);

      const expired = next<MdnsExpiredDetail>(s1, "mdns:expired", (d) => d.peerId === t2Id, 10_000);
      await s2.close();
      assert.equal((await expired).disconnect, false, "t1's application connected t2");
      assert.ok((await t1.ping(t2.peerId)) >= 0, "t2 is still connected");

      const st = s1.stats();
      assert.equal(st.peerIdMismatches, 1, JSON.stringify(st));
      assert.equal(st.dials, 1, "one dial in all: " + JSON.stringify(st));
      assert.equal(st.connected, 0, JSON.stringify(st));
      assert.equal(st.dropped, 0, JSON.stringify(st));
      assert.equal(st.discovery.peers, 1, "the fake is still known: " + JSON.stringify(st));
    } finally {
      await fake?.close();
      await s2?.close();
      await s1?.close();
      await t2.close();
      await t1.close();
    }
    assert.deepEqual(await mdnsSockets(), [], "no socket left on port 5353");
  },
});

Deno.test({
  name: "peers the service connected are disconnected on expiry and on close; release keeps one",
  ignore: addr === undefined,
  fn: async () => {
    const t1 = node();
    const t2 = node();
    const t3 = node();
    const services: MdnsService[] = [];
    try {
      for (const t of [t1, t2, t3]) await t.bindAndListen();
      const [s1, s2, s3] = [
        new MdnsService(t1),
        new MdnsService(t2, { dial: false }),
        new MdnsService(t3, { dial: false }),
      ];
      services.push(s1, s2, s3);
      const connected = (t: QuicTransport) =>
        next<TransportEventMap["peer:connected"]["detail"]>(
          t1,
          "peer:connected",
          (d) => d.peerId.equals(t.peerId),
          10_000,
        );
      const c2 = connected(t2);
      const c3 = connected(t3);
      await s1.start();
      await s2.start();
      await s3.start();
      await c2;
      await c3;
      // peer:connected fires inside the dial, before connectPeer resolves to the service; a
      // round trip later the service has marked both.
      await t1.ping(t2.peerId);
      await t1.ping(t3.peerId);
      assert.equal(s1.stats().managed, 2);

      // t2 is handed to the application; its goodbye no longer drops it.
      assert.equal(s1.release(t2.peerId), true);
      const expired = next<MdnsExpiredDetail>(
        s1,
        "mdns:expired",
        (d) => d.peerId === t2.peerId.toString(),
        10_000,
      );
      await s2.close();
      assert.equal((await expired).disconnect, false);

      // Closing s1 sends its goodbye, then disconnects t3, the one peer it still manages.
      const gone = next<TransportEventMap["peer:disconnected"]["detail"]>(
        t1,
        "peer:disconnected",
        () => true,
        10_000,
      );
      await s1.close();
      assert.ok((await gone).peerId.equals(t3.peerId));
      assert.deepEqual(t1.peers().map((p) => p.peerId.toString()), [t2.peerId.toString()]);
      assert.equal(s1.stats().managed, 0);
    } finally {
      for (const s of services) await s.close();
      for (const t of [t3, t2, t1]) await t.close();
    }
    assert.deepEqual(await mdnsSockets(), [], "no socket left on port 5353");
  },
});

Deno.test({
  name: "enableMdns: false opens nothing; start after close is refused",
  ignore: addr === undefined,
  fn: async () => {
    await using t = node({ enableMdns: false });
    await t.bindAndListen();
    const s = new MdnsService(t);
    await s.start();
    assert.equal(s.running, false);
    assert.deepEqual(await mdnsSockets(), []);
    await s.close();
    await assert.rejects(() => s.start(), /Cannot start the mDNS service: it is closed/);
    const events: (keyof MdnsServiceEventMap)[] = [];
    s.addEventListener("mdns:discovered", () => events.push("mdns:discovered"));
    assert.deepEqual(events, []);
  },
});
