import { assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { resolveNetworkConfig } from "../../src/transport/config.ts";
import { QuicTransport } from "../../src/transport/transport.ts";
import { identity } from "./_util.ts";

Deno.test("config: the design's defaults", () => {
  const c = resolveNetworkConfig();
  assertEquals(
    [c.listenAddr, c.quicPort, c.bootstrapPeers, c.maxConnections, c.connectionTimeoutMs],
    ["0.0.0.0", 9001, [], 100, 5000],
  );
  assertEquals(
    [c.keepAliveIntervalSecs, c.maxBandwidthBps, c.enableNatTraversal, c.stunServers],
    // Keep-alive 15 s, not the design's 30: Linux's conntrack forgets an idle UDP flow (a NAT
    // mapping) after 30 s, and a node behind it would be unreachable until its next packet.
    [15, 100_000_000, true, []],
  );
  assertEquals([c.turnServers, c.enableMdns, c.enableDht, c.pqEncryption], [[], true, true, true]);
  assertEquals(c.maxMessageBytes, 16 * 1024 * 1024);
});

Deno.test("config: invalid values fail at construction naming field, rule and value", () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ listenAddr: "not an ip" }, "listenAddr", '"not an ip"'],
    [{ quicPort: 70000 }, "quicPort", "70000"],
    [{ quicPort: 1.5 }, "quicPort", "1.5"],
    [{ bootstrapPeers: ["127.0.0.1:1", "nope"] }, "bootstrapPeers[1]", '"nope"'],
    [{ maxConnections: 0 }, "maxConnections", "0"],
    [{ connectionTimeoutMs: -1 }, "connectionTimeoutMs", "-1"],
    [{ keepAliveIntervalSecs: -5 }, "keepAliveIntervalSecs", "-5"],
    [{ maxBandwidthBps: 0 }, "maxBandwidthBps", "0"],
    [{ enableMdns: "yes" }, "enableMdns", '"yes"'],
    [{ stunServers: [42] }, "stunServers[0]", "42"],
    [
      { turnServers: [{ address: "x", username: "u", password: "p" }] },
      "turnServers[0].address",
      '"x"',
    ],
    [{ maxMessageBytes: 0 }, "maxMessageBytes", "0"],
    [{ handshakeTimeoutMs: "10" }, "handshakeTimeoutMs", '"10"'],
    [{ pqEncryption: 1 }, "pqEncryption", "1"],
    [{ inboundQueueLength: 0 }, "inboundQueueLength", "0"],
    [{ idleTimeoutMs: 1000, keepAliveIntervalSecs: 5 }, "idleTimeoutMs", "1000"],
  ];
  for (const [config, field, shown] of cases) {
    const e = assertThrows(
      () => new QuicTransport({ identity: identity(0), config }),
      InvalidConfigError,
      `'${field}' must be`,
    );
    assertEquals(e.field, field);
    assertEquals(e.code, "ERR_INVALID_CONFIG");
    if (!e.message.endsWith(`current value is ${shown}`)) {
      throw new Error(`message should show ${shown}: ${e.message}`);
    }
  }
  assertThrows(
    () => new QuicTransport({ identity: "me" as never }),
    InvalidConfigError,
    "'identity' must be an Identity",
  );
});
