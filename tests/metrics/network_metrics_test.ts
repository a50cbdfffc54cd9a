import assert from "node:assert/strict";
import { metrics } from "@opentelemetry/api";
import { METRICS, NetworkMetrics, networkMetrics } from "../../src/metrics/_network_metrics.ts";
import { addr, nextEvent, node } from "../transport/_util.ts";
import { RecordingMeterProvider } from "./_recording_meter.ts";

Deno.test("README's metric table lists every instrument with its unit", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  for (const { name, unit } of METRICS) {
    const row = readme.split("\n").find((line) => line.startsWith(`| \`${name}\``));
    assert.ok(row, `README lists ${name}`);
    assert.ok(row.includes(`\`${unit}\``), `README gives ${name} its unit ${unit}`);
  }
});

Deno.test("without a meter provider nothing is created or recorded", () => {
  assert.equal(networkMetrics(), undefined);
});

Deno.test("with a meter provider: connections, messages, requests, round trips, bans", async () => {
  const provider = new RecordingMeterProvider();
  metrics.setGlobalMeterProvider(provider);
  try {
    const recorder = networkMetrics();
    assert.ok(recorder, "instruments once a provider is installed");
    assert.equal(provider.units.get("cretoai.bytes.sent"), "By");
    await using a = await node(0);
    await using b = await node(1);
    b.handle("echo/1", (request) => request);
    const connected = nextEvent(b, "peer:connected");
    const remote = await a.connectPeer(addr(b));
    await connected;
    await a.send(remote, { type: "consensus", data: new Uint8Array(100) });
    await a.send(remote, { type: "vertex", data: new Uint8Array(10) });
    await a.request(remote, "echo/1", new Uint8Array(5));
    await a.ping(remote);

    assert.equal(provider.total("cretoai.connections.opened", { direction: "outbound" }), 1);
    assert.equal(provider.total("cretoai.connections.opened", { direction: "inbound" }), 1);
    assert.equal(provider.total("cretoai.connections.active", { path: "direct" }), 2);
    assert.equal(provider.count("cretoai.connection.setup.duration", { outcome: "ready" }), 2);
    assert.equal(provider.total("cretoai.messages.sent", { "message.type": "consensus" }), 1);
    assert.equal(provider.total("cretoai.messages.received", { "message.type": "vertex" }), 1);
    // 100 bytes of payload plus the message header and the frame's length and seal.
    assert.ok(provider.total("cretoai.bytes.sent", { "message.type": "consensus" }) > 100);
    assert.equal(provider.count("cretoai.message.rtt", { "message.type": "consensus" }), 1);
    assert.ok(provider.count("cretoai.ping.rtt") >= 1);
    const echo = { "message.type": "request", protocol: "echo/1" };
    assert.equal(provider.total("cretoai.messages.sent", echo), 1);
    assert.equal(provider.total("cretoai.messages.received", echo), 1);
    assert.equal(
      provider.total("cretoai.messages.received", {
        "message.type": "response",
        protocol: "echo/1",
      }),
      1,
    );
    const depth = await provider.observe("cretoai.inbound_queue.depth");
    assert.equal(
      depth.reduce((sum, r) => sum + r.value, 0),
      2,
      "b's two messages wait in its queue",
    );

    const gone = nextEvent(b, "peer:disconnected");
    a.ban(remote, 60_000, "misbehaved in a test");
    await gone;
    assert.equal(provider.total("cretoai.peers.banned", { reason: "manual" }), 1);
    assert.equal(provider.total("cretoai.connections.closed", { direction: "inbound" }), 1);
    assert.equal(provider.total("cretoai.connections.active", { direction: "inbound" }), 0);
  } finally {
    metrics.disable();
  }
  assert.equal(networkMetrics(), undefined, "none again once the provider is removed");
});

Deno.test("protocol ids beyond 256 distinct attribute sets share the bucket 'other'", () => {
  const provider = new RecordingMeterProvider();
  const recorder = new NetworkMetrics(provider.getMeter());
  for (let i = 0; i < 300; i++) recorder.requestSent("request", `proto/${i}`, 10);
  recorder.messageSent("consensus", 10);
  const protocols = new Set(
    provider.recorded.get("cretoai.messages.sent")!.map((r) => r.attributes.protocol),
  );
  assert.equal(protocols.size, 258, "256 protocols, 'other' and the lane message's none");
  assert.equal(provider.total("cretoai.messages.sent", { "message.type": "consensus" }), 1);
  assert.ok(protocols.has("other"));
  assert.equal(provider.total("cretoai.messages.sent", { protocol: "other" }), 44);
  assert.equal(provider.total("cretoai.bytes.sent"), 3010);
});

Deno.test("the NAT type gauge reports the last discovery's type", async () => {
  const provider = new RecordingMeterProvider();
  const recorder = new NetworkMetrics(provider.getMeter());
  assert.deepEqual(await provider.observe("cretoai.nat.type"), [], "nothing before a discovery");
  recorder.setNatType("symmetric");
  recorder.setNatType("eim");
  assert.deepEqual(await provider.observe("cretoai.nat.type"), [
    { value: 1, attributes: { "nat.type": "eim" } },
  ]);
});

Deno.test("a send that waits for the bandwidth limiter is counted with its wait", async () => {
  const provider = new RecordingMeterProvider();
  metrics.setGlobalMeterProvider(provider);
  try {
    // 200 KB/s with a 256 KiB burst: the second 200 KiB message waits for tokens.
    await using a = await node(0, { maxBandwidthBps: 8 * 200_000 });
    await using b = await node(1);
    const remote = await a.connectPeer(addr(b));
    const data = new Uint8Array(200 * 1024);
    await Promise.all([
      a.send(remote, { type: "vertex", data }),
      a.send(remote, { type: "vertex", data }),
    ]);
    assert.equal(provider.total("cretoai.limiter.waits", { "traffic.class": "vertex" }), 1);
    assert.equal(provider.count("cretoai.limiter.wait.duration", { "traffic.class": "vertex" }), 1);
  } finally {
    metrics.disable();
  }
});
