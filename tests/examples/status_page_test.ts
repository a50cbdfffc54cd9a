/**
 * The status page of `quic_node.ts --status` in a real browser: headless Chromium renders the
 * peer table of a node with two peers (checked in its DOM dump) and takes a screenshot.
 */
import assert from "node:assert/strict";
import { skipReason } from "../_netlab.ts";
import { chromium, statusLab } from "./_status_lab.ts";

const ignore = skipReason({ tools: ["chromium"] }) !== undefined;

Deno.test({
  name: "status page: /status.json and the page Chromium renders list both peers",
  ignore,
  async fn() {
    await using lab = await statusLab(2);
    const peerIds = lab.peers.map((p) => p.events.find((e) => e.event === "listening")!.peerId);

    const status = await (await fetch(new URL("status.json", lab.url))).json();
    assert.equal(status.peerId, lab.hub.events.find((e) => e.event === "listening")!.peerId);
    assert.deepEqual(status.peers.map((p: { peerId: string }) => p.peerId).sort(), peerIds.sort());
    for (const peer of status.peers) {
      assert.equal(peer.path, "direct");
      assert.equal(peer.foundBy, "inbound");
      assert.ok(
        peer.messagesReceived >= 40,
        `${peer.messagesReceived} messages from ${peer.peerId}`,
      );
      assert.ok(peer.rttP50Ms > 0, "a ping round trip");
      for (
        const field of ["address", "rttP99Ms", "messagesSent", "bytesSent", "bytesReceived"]
      ) assert.ok(field in peer, field);
    }
    for (const field of ["addresses", "natType", "uptimeMs"]) assert.ok(field in status, field);

    // A request naming another host is refused (DNS rebinding).
    // (fetch() does not let a Host header through: a raw request.)
    const { port } = new URL(lab.url);
    const socket = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
    await socket.write(
      new TextEncoder().encode(
        "GET / HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
      ),
    );
    const answer = await new Response(socket.readable).text();
    assert.match(answer, /^HTTP\/1\.1 421 /);

    const dom = await chromium(["--dump-dom", lab.url]);
    const rows = [...dom.matchAll(/<tr data-peer-id="([a-z0-9]+)">(.*?)<\/tr>/gs)];
    assert.deepEqual(rows.map((r) => r[1]).sort(), peerIds.sort(), "one table row per peer");
    for (const [, , cells] of rows) {
      assert.match(cells, /<span class="tag direct">direct<\/span>/);
      assert.match(cells, /<td>inbound<\/td>/);
    }
    assert.match(dom, /<dd id="peer-count">2<\/dd>/);

    const dir = await Deno.makeTempDir({ prefix: "status-page-" });
    try {
      const png = `${dir}/status.png`;
      await chromium(["--screenshot=" + png, "--window-size=1280,800", lab.url]);
      const image = await Deno.readFile(png);
      assert.deepEqual([...image.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
      assert.ok(image.byteLength > 10_000, `${image.byteLength} bytes`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
