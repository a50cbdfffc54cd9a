/**
 * OpenTelemetry end to end: `examples/quic_node.ts` with `OTEL_DENO=true` exports its
 * `cretoai.*` metrics as OTLP/JSON to a receiver on loopback, with the values of what happened.
 */
import assert from "node:assert/strict";
import { parseAddress } from "../../src/quic/address.ts";
import { LOOPBACK_FLAGS, NodeProcess } from "../node/_node_process.ts";
import { dialWithoutCertificate } from "../quic/_certless_client.ts";
import { OtlpReceiver } from "./_otlp_receiver.ts";

Deno.test("a node with OTEL_DENO=true exports its cretoai metrics over OTLP/JSON", async () => {
  await using receiver = new OtlpReceiver();
  await using node = new NodeProcess("exporter", [...LOOPBACK_FLAGS, "--keepalive", "1"], {
    env: {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_METRIC_EXPORT_INTERVAL: "1000",
      OTEL_SERVICE_NAME: "cretoai-otlp-test",
    },
  });
  const address = (await node.listening()).address as string;
  await using _sender = new NodeProcess("sender", [
    ...LOOPBACK_FLAGS,
    "--peer",
    address,
    "--broadcast",
    "5",
    "--interval",
    "20",
    "--wait-peers",
    "1",
  ]);
  // A client without a certificate: refused by quiche, counted by the endpoint.
  const refused = await dialWithoutCertificate(parseAddress(address));
  assert.equal(refused.peerError?.errorCode, 0x100 + 116);

  await receiver.until(
    "the broadcast, a ping and the refused handshake",
    () =>
      receiver.total("cretoai.messages.received", { "message.type": "consensus" }) >= 5 &&
      receiver.total("cretoai.ping.rtt", {}, true) >= 1 &&
      receiver.total("cretoai.quic.handshakes.failed") >= 1,
    20_000,
  );
  const has = (name: string) => assert.ok(receiver.latest.has(name), `${name} exported`);
  for (
    const name of [
      "cretoai.connections.opened",
      "cretoai.connections.active",
      "cretoai.connection.setup.duration",
      "cretoai.bytes.received",
      "cretoai.inbound_queue.depth",
    ]
  ) has(name);
  assert.equal(receiver.total("cretoai.connections.opened", { direction: "inbound" }), 1);
  assert.equal(
    receiver.total("cretoai.connections.active", { direction: "inbound", path: "direct" }),
    1,
  );
  assert.equal(receiver.total("cretoai.connection.setup.duration", { outcome: "ready" }, true), 1);
  assert.equal(receiver.total("cretoai.messages.received", { "message.type": "consensus" }), 5);
  // 64-byte payloads with their frame headers: more than 5 * 64 bytes.
  assert.ok(receiver.total("cretoai.bytes.received", { "message.type": "consensus" }) > 5 * 64);
  assert.equal(receiver.latest.get("cretoai.bytes.received")![0].unit, "By");
  assert.equal(receiver.latest.get("cretoai.ping.rtt")![0].unit, "ms");
  assert.equal(
    receiver.total("cretoai.quic.handshakes.failed", { error: "tls_alert_116" }),
    1,
  );
  // The DHT's requests are counted by protocol.
  const protocols = (receiver.latest.get("cretoai.messages.received") ?? [])
    .map((p) => p.attributes.protocol).filter((p) => p !== undefined);
  assert.ok(protocols.length > 0, "requests by protocol");
});
