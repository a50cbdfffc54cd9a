/**
 * In-process tests of {@linkcode MdnsDiscovery} that only make sense inside a test namespace:
 * `mdns_test.ts` runs this file with `ip netns exec NS deno test`, so Deno's sanitizers check
 * that closing the service leaves no socket, timer or pending op behind. The interface address
 * comes from the environment variable `MDNS_TEST_ADDR`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MdnsDiscovery, type MdnsPeer } from "../../src/discovery/mod.ts";
import { testPeerId } from "./_mdns_lab.ts";

const addr = Deno.env.get("MDNS_TEST_ADDR");

function nextEvent<T>(subscribe: (fn: (v: T) => void) => () => void, ms: number, what: string) {
  let off = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new Promise<T>((resolve, reject) => {
    off = subscribe(resolve);
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  }).finally(() => {
    off();
    clearTimeout(timer);
  });
}

/** UDP sockets on port 5353 in this namespace (/proc/net follows the network namespace). */
async function mdnsSockets(): Promise<string[]> {
  const lines = (await Deno.readTextFile("/proc/net/udp")).split("\n").slice(1);
  return lines.filter((l) => / [0-9A-F]{8}:14E9 /.test(l));
}

Deno.test({
  name: "two services in one process discover each other, goodbye expires, close is clean",
  ignore: addr === undefined,
  fn: async () => {
    const a = new MdnsDiscovery({ peerId: testPeerId(11), port: 7001, interfaces: [addr!] });
    const b = new MdnsDiscovery({ peerId: testPeerId(12), port: 7002, interfaces: [addr!] });
    try {
      const aSeesB = nextEvent<MdnsPeer>((f) => a.on("discovered", f), 10_000, "discovery of b");
      const iter = b.events();
      await a.start();
      await b.start();
      const peer = await aSeesB;
      assert.equal(peer.peerId, testPeerId(12));
      assert.deepEqual(peer.addresses, [{ hostname: addr, port: 7002 }]);
      const first = await iter.next();
      assert.equal(first.done, false);
      assert.equal(first.value?.type, "discovered");

      const expired = nextEvent<{ peerId: string }>((f) => b.on("expired", f), 10_000, "expiry");
      await a.close();
      assert.equal((await expired).peerId, testPeerId(11));
      assert.equal((await iter.next()).value?.type, "expired");
      assert.equal(a.stats().peers, 1, "closing does not forget");
      await b.close();
      assert.equal((await iter.next()).done, true, "the iterator ends on close");
      assert.deepEqual(await mdnsSockets(), [], "no socket left on port 5353");
    } finally {
      await a.close();
      await b.close();
    }
  },
});

Deno.test({
  name: "close during start, double close, and start after close",
  ignore: addr === undefined,
  fn: async () => {
    const m = new MdnsDiscovery({ peerId: testPeerId(13), port: 7003, interfaces: [addr!] });
    const starting = m.start();
    const closing = m.close();
    await starting;
    await closing;
    await m.close();
    assert.deepEqual(await mdnsSockets(), []);
    await assert.rejects(() => m.start(), /Cannot start mDNS discovery: it is closed/);
  },
});
