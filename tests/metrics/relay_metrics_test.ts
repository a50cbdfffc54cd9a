/**
 * Metrics of relayed connections: nodes with a TURN allocation on a real coturn count their
 * allocation and the connection between them under `path: relay`.
 */
import assert from "node:assert/strict";
import { metrics } from "@opentelemetry/api";
import { startTurnServer, TURN_USER, turnSkipReason } from "../nat/_turn_server.ts";
import { addressOf, loopbackNode, nextNodeEvent, untilPeers } from "../node/_util.ts";
import { RecordingMeterProvider } from "./_recording_meter.ts";

Deno.test({
  name: "relayed connections are counted with path relay, allocations by outcome",
  ignore: turnSkipReason() !== undefined,
  async fn() {
    await using server = await startTurnServer();
    const provider = new RecordingMeterProvider();
    metrics.setGlobalMeterProvider(provider);
    try {
      const turnServers = [{ address: `127.0.0.1:${server.address.port}`, ...TURN_USER }];
      const quiet = { enableDht: false, keepAliveIntervalSecs: 0 };
      await using forwarder = await loopbackNode({ config: quiet });
      const options = {
        config: { ...quiet, turnServers, bootstrapPeers: [addressOf(forwarder)] },
      };
      await using a = await loopbackNode(options);
      await using b = await loopbackNode(options);
      await untilPeers(forwarder, 2);
      assert.equal(provider.total("cretoai.relay.allocations", { outcome: "allocated" }), 2);

      const inbound = nextNodeEvent(b, "peer:connected", (e) => e.detail.path === "relay");
      await a.relay!.connect(b.peerId);
      await inbound;
      assert.equal(
        provider.total("cretoai.connections.opened", { path: "relay", direction: "outbound" }),
        1,
      );
      assert.equal(
        provider.total("cretoai.connections.active", { path: "relay", direction: "inbound" }),
        1,
      );
      // The bootstrap connections to the forwarder: both ends of each, direct.
      assert.equal(provider.total("cretoai.connections.opened", { path: "direct" }), 4);
    } finally {
      metrics.disable();
    }
  },
});
