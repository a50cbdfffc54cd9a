/**
 * The STUN client and NAT discovery against a real coturn on loopback (127.0.0.1 and
 * 127.0.0.2, so RFC 5780 OTHER-ADDRESS and CHANGE-REQUEST work).
 */
import assert from "node:assert/strict";
import { discoverNat, StunClient, stunRetransmitSchedule } from "../../src/nat/mod.ts";
import { skipReason, startCoturn } from "../_netlab.ts";
import { udpSkipReason, UdpTestPort } from "./_udp_port.ts";

const ignore = (udpSkipReason() ?? skipReason({ tools: ["turnserver"] })) !== undefined;
if (udpSkipReason()) console.warn(`[stun_coturn_test] skipping: ${udpSkipReason()}`);

Deno.test({
  name: "coturn on loopback: binding, RFC 5780 attributes, CHANGE-REQUEST",
  ignore,
  fn: async () => {
    await using turn = await startCoturn({ listen: ["127.0.0.1", "127.0.0.2"] });
    await using port = UdpTestPort.listen("127.0.0.1");
    using client = new StunClient(port);
    const server = { hostname: "127.0.0.1", port: turn.port };
    const alt = { hostname: "127.0.0.2", port: turn.port + 1 };

    const r = await client.binding(server);
    assert.deepEqual(r.mapped, port.localAddr);
    assert.deepEqual(r.server, server);
    assert.deepEqual(r.from, server);
    assert.deepEqual(r.responseOrigin, server);
    assert.deepEqual(r.otherAddress, alt);

    const both = await client.binding(server, { changeIp: true, changePort: true });
    assert.deepEqual(both.from, alt);
    assert.deepEqual(both.responseOrigin, alt);
    assert.deepEqual(both.mapped, port.localAddr);
    const portOnly = await client.binding(server, { changePort: true });
    assert.deepEqual(portOnly.from, { hostname: "127.0.0.1", port: turn.port + 1 });
    const ipOnly = await client.binding(server, { changeIp: true });
    assert.deepEqual(ipOnly.from, { hostname: "127.0.0.2", port: turn.port });

    // Several transactions at once are told apart by transaction id.
    const many = await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.binding(i % 2 ? server : alt)),
    );
    for (const m of many) assert.deepEqual(m.mapped, port.localAddr);
    assert.equal(client.pendingTransactions, 0);
  },
});

Deno.test({
  name: "coturn on loopback: failover from a dead port answers within the configured timeout",
  ignore,
  fn: async () => {
    await using turn = await startCoturn({ listen: ["127.0.0.1", "127.0.0.2"] });
    // A port nobody listens on any more (the kernel answers ICMP port unreachable).
    const gone = UdpTestPort.listen("127.0.0.1");
    const dead = gone.localAddr;
    await gone.close();
    await using port = UdpTestPort.listen("127.0.0.1");
    const retransmit = { rto: 20, rc: 3, rm: 4 };
    using client = new StunClient(port, retransmit);
    const { giveUpAt } = stunRetransmitSchedule(retransmit); // 140 ms
    const started = performance.now();
    const r = await client.binding([dead, { hostname: "127.0.0.2", port: turn.port }]);
    const elapsed = performance.now() - started;
    assert.deepEqual(r.server, { hostname: "127.0.0.2", port: turn.port });
    assert.deepEqual(r.mapped, port.localAddr);
    assert.ok(
      elapsed >= giveUpAt,
      `answered after ${elapsed} ms, before the dead server's ${giveUpAt} ms`,
    );
    assert.ok(elapsed < giveUpAt + 1000, `took ${elapsed} ms, configured ${giveUpAt} ms`);
  },
});

Deno.test({
  name: "coturn on loopback: garbage on the socket is ignored, the binding still completes",
  ignore,
  fn: async () => {
    await using turn = await startCoturn({ listen: ["127.0.0.1", "127.0.0.2"] });
    await using port = UdpTestPort.listen("127.0.0.1");
    await using noise = UdpTestPort.listen("127.0.0.1");
    using client = new StunClient(port);
    // Registered after the client, so it sees only what the client declined.
    const declined: Uint8Array[] = [];
    const { promise: bothDeclined, resolve } = Promise.withResolvers<void>();
    port.addRawHandler((data, from) => {
      // Late answers to retransmissions are declined too; only the junk is counted.
      if (from.port !== noise.localAddr.port) return true;
      declined.push(data.slice());
      if (declined.length === 2) resolve();
      return true;
    });
    const pending = client.binding({ hostname: "127.0.0.1", port: turn.port });
    const junk = [new Uint8Array([0xc0, 0, 0, 0, 1]), new Uint8Array(100).fill(0x21)];
    for (const j of junk) await noise.sendRaw(j, port.localAddr);
    const r = await pending;
    assert.deepEqual(r.mapped, port.localAddr);
    await bothDeclined;
    assert.deepEqual(declined, junk);
  },
});

Deno.test({
  name: "coturn on loopback: NAT discovery finds no NAT, endpoint-independent both ways",
  ignore,
  fn: async () => {
    await using turn = await startCoturn({ listen: ["127.0.0.1", "127.0.0.2"] });
    await using port = UdpTestPort.listen("127.0.0.1");
    using client = new StunClient(port);
    const nat = await discoverNat(client, {
      servers: [{ hostname: "127.0.0.1", port: turn.port }],
    });
    assert.equal(nat.rfc5780, true);
    assert.equal(nat.behindNat, false);
    assert.equal(nat.type, "Cone");
    assert.equal(nat.mapping, "endpoint-independent");
    assert.equal(nat.filtering, "endpoint-independent");
    assert.deepEqual(nat.publicAddress, port.localAddr);
  },
});
